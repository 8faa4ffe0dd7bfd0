//! The perf stream: a scenario that builds many VMAs and then churns them, for `mmprep bench`.
//!
//! Issue 8 measures the engine against the host kernel on one stream of operations, run whole by
//! `mmprep run` and by `mmprep kernel` (parsing and printing included). [`perf_stream`] writes
//! that scenario:
//!
//! - layout: `window`, one private anonymous `noreserve` mapping of `2 * vmas` pages, then every
//!   odd page made read-only, so the space starts with `2 * vmas` VMAs;
//! - `ops` random operations, each on one random page `p`:
//!   - half of them toggle `p`'s protection (`mprotect`: a split or a merge),
//!   - three in ten unmap `p` and map it again with its protection (`munmap` + `mmap`),
//!   - two in ten apply a flag advice and revert it (`madvise dontfork` + `madvise dofork`).
//!
//! On Linux the VMA count settles near `vmas`. The random numbers are Python's (`random.Random`,
//! a Mersenne Twister seeded by `init_by_array`, with its `randrange` and `random`), so the text
//! is byte for byte what the team's original Python generator printed for the same three
//! numbers, and old measurements stay comparable.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

/// Writes the perf stream for `vmas` VMAs, `ops` operations and `seed` (see the module docs).
pub fn perf_stream(vmas: u64, ops: u64, seed: u64) -> String {
    let pages = 2 * vmas;
    let mut rng = PyRandom::new(seed);
    // About 30 bytes a line; the layout has `vmas + 2` lines and the ops 1.5 lines each.
    let mut out = String::with_capacity((vmas as usize + 3 * ops as usize / 2 + 2) * 32);
    // `write!` into a `String` cannot fail.
    let _ = writeln!(out, "window {}K", pages * 4 + 64);
    let _ = writeln!(out, "mmap 0 {}K rw- private|anon|fixed|noreserve", pages * 4);
    for p in (1..pages).step_by(2) {
        let _ = writeln!(out, "mprotect {}K 4K r--", p * 4);
    }
    // One bit per page: read-only?
    let mut read_only: Vec<bool> = (0..pages).map(|p| p % 2 == 1).collect();
    let prot = |ro: bool| if ro { "r--" } else { "rw-" };
    for _ in 0..ops {
        let p = rng.randbelow(pages);
        let r = rng.random();
        let k = p * 4;
        let ro = &mut read_only[p as usize];
        if r < 0.5 {
            *ro = !*ro;
            let _ = writeln!(out, "mprotect {k}K 4K {}", prot(*ro));
        } else if r < 0.8 {
            let _ = writeln!(out, "munmap {k}K 4K");
            let _ = writeln!(out, "mmap {k}K 4K {} private|anon|fixed|noreserve", prot(*ro));
        } else {
            let _ = writeln!(out, "madvise {k}K 4K dontfork");
            let _ = writeln!(out, "madvise {k}K 4K dofork");
        }
    }
    out
}

/// Python's `random.Random`: MT19937 with CPython's seeding, `getrandbits`, `randrange(n)` and
/// `random()` (`Modules/_randommodule.c`, `Lib/random.py`).
pub struct PyRandom {
    state: [u32; 624],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed: `init_by_array` over the seed's
    /// 32-bit words, least significant first (one zero word for 0).
    pub fn new(seed: u64) -> PyRandom {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        let mut rng = PyRandom {
            state: [0; 624],
            index: 624,
        };
        rng.init_genrand(19_650_218);
        let n = 624;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..n.max(key.len()) {
            let prev = rng.state[i - 1];
            rng.state[i] = (rng.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= n {
                rng.state[0] = rng.state[n - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..n - 1 {
            let prev = rng.state[i - 1];
            rng.state[i] = (rng.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= n {
                rng.state[0] = rng.state[n - 1];
                i = 1;
            }
        }
        rng.state[0] = 0x8000_0000;
        rng
    }

    fn init_genrand(&mut self, s: u32) {
        self.state[0] = s;
        for i in 1..624 {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = 624;
    }

    /// `genrand_uint32`.
    pub fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        if self.index >= 624 {
            for k in 0..624 {
                let y = (self.state[k] & UPPER) | (self.state[(k + 1) % 624] & LOWER);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                self.state[k] = self.state[(k + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `1 <= k <= 64`: 32-bit words, least significant first, the last one
    /// cut to the bits still wanted.
    fn getrandbits(&mut self, k: u32) -> u64 {
        debug_assert!((1..=64).contains(&k));
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        low | (high << 32)
    }

    /// `randrange(n)` (`_randbelow_with_getrandbits`): `k = n.bit_length()` bits, drawn again
    /// until below `n`.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randrange of an empty range");
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random()`: 53 bits from two words, in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        let a = u64::from(self.next_u32() >> 5);
        let b = u64::from(self.next_u32() >> 6);
        (a as f64 * 67_108_864.0 + b as f64) * (1.0 / 9_007_199_254_740_992.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    /// Values CPython 3.11 prints for `random.Random(seed)`.
    #[test]
    fn matches_python() {
        let mut r = PyRandom::new(1);
        // random.Random(1).random()
        assert_eq!(r.random(), 0.13436424411240122);
        let mut r = PyRandom::new(42);
        // [random.Random(42).randrange(2000) for _ in range(3)]
        let got: Vec<u64> = (0..3).map(|_| r.randbelow(2000)).collect();
        assert_eq!(got, PY_42_RANDRANGE_2000);
    }

    const PY_42_RANDRANGE_2000: [u64; 3] = [1309, 228, 51];

    /// A seed of two words and draws of more than 32 bits.
    #[test]
    fn matches_python_wide() {
        // r = random.Random(2**40 + 5); [r.randrange(2**40) for _ in range(2)], r.random()
        let mut r = PyRandom::new((1 << 40) + 5);
        assert_eq!(r.randbelow(1 << 40), 64_105_765_088);
        assert_eq!(r.randbelow(1 << 40), 102_613_415_019);
        assert_eq!(r.random(), 0.16546122043968015);
    }

    /// The original generator's output for 2 VMAs, 12 ops, seed 3, after its four layout lines.
    #[test]
    fn matches_the_original_generator() {
        const WANT: &str = "\
            munmap 4K 4K\n\
            mmap 4K 4K r-- private|anon|fixed|noreserve\n\
            mprotect 4K 4K rw-\n\
            munmap 12K 4K\n\
            mmap 12K 4K r-- private|anon|fixed|noreserve\n\
            munmap 0K 4K\n\
            mmap 0K 4K rw- private|anon|fixed|noreserve\n\
            mprotect 12K 4K rw-\n\
            mprotect 4K 4K r--\n\
            munmap 12K 4K\n\
            mmap 12K 4K rw- private|anon|fixed|noreserve\n\
            mprotect 12K 4K r--\n\
            mprotect 4K 4K rw-\n\
            madvise 4K 4K dontfork\n\
            madvise 4K 4K dofork\n\
            munmap 12K 4K\n\
            mmap 12K 4K r-- private|anon|fixed|noreserve\n\
            mprotect 0K 4K r--\n";
        let text = perf_stream(2, 12, 3);
        let ops: String = text.lines().skip(4).flat_map(|l| [l, "\n"]).collect();
        assert_eq!(ops, WANT);
    }

    #[test]
    fn layout_and_counts() {
        let text = perf_stream(3, 10, 7);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "window 88K");
        assert_eq!(lines[1], "mmap 0 24K rw- private|anon|fixed|noreserve");
        assert_eq!(
            &lines[2..5],
            ["mprotect 4K 4K r--", "mprotect 12K 4K r--", "mprotect 20K 4K r--"]
        );
        assert!(lines.len() >= 5 + 10 && lines.len() <= 5 + 20);
    }
}

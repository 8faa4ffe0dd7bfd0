//! Engine benchmarks: lookup, mmap, munmap, mprotect, mremap, fork and a page fault in address
//! spaces of 1K, 64K and 1M VMAs.
//!
//! The layout is N one-page VMAs with a one-page hole after each (so nothing merges), starting at
//! the scenario window base. Every measured step leaves the layout as it found it:
//! - `lookup`: `vma_at` of an address in the middle;
//! - `mmap+munmap`: map a page into a hole (it merges with both neighbours if they match, so the
//!   neighbours alternate protections to keep them apart), then unmap it;
//! - `munmap+mmap`: unmap a mapped page, then map it again;
//! - `mprotect split+merge`: make a page of a three-page VMA read-only (split in three), then
//!   read-write again (merge back);
//! - `mremap move`: move a one-page VMA from the middle to a free address past the layout, then
//!   back (two moves, neither merges);
//! - `fork+exit`: fork the whole space and drop the child (`dup_mmap` then `exit_mmap`);
//! - `lookup random`, `mprotect random+back`: the look-up, and a protection change and its undo,
//!   at VMAs drawn at random (the other benchmarks repeat one place, so their caches stay warm);
//! - `write fault+dontneed`: the first write to a page of an anonymous `rw-` VMA (a fresh zeroed
//!   frame), then `MADV_DONTNEED` so the next write faults again.
//!
//! Sample counts are low (and `fork+exit` samples flat) so that `cargo bench -p mmprep` ends in a
//! few minutes on a shared machine.
//!
//! Engine-versus-host ratios for one identical op stream: `mmprep bench`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use mmprep::uapi::{madv, mremap};
use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};

const BASE: u64 = 0x2000_0000_0000;
const PAGE: u64 = 4096;

fn flags() -> MapFlags {
    MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED
}

/// N VMAs: page 2i is mapped (rw- or r-- alternately), page 2i+1 is a hole; the last VMA is
/// three pages long (for the mprotect bench).
fn layout(n: u64) -> Mm {
    let profile = Profile {
        max_map_count: u64::MAX,
        ..Profile::reference_host()
    };
    let mut mm = Mm::new(profile);
    for i in 0..n {
        let prot = if i.is_multiple_of(2) { Prot::RW } else { Prot::READ };
        let len = if i == n - 1 { 3 * PAGE } else { PAGE };
        mm.mmap(VirtAddr(BASE + 2 * i * PAGE), len, prot, flags(), None, 0)
            .expect("layout mmap");
    }
    assert_eq!(mm.vmas().count() as u64, n);
    mm
}

fn bench(c: &mut Criterion) {
    for &n in &[1_000u64, 64_000, 1_000_000] {
        let mut mm = layout(n);
        let mid = BASE + 2 * (n / 2) * PAGE;
        let hole = mid + PAGE;
        let last = BASE + 2 * (n - 1) * PAGE;
        let mut g = c.benchmark_group("engine");
        g.bench_with_input(BenchmarkId::new("lookup", n), &n, |b, _| {
            b.iter(|| black_box(mm.vma_at(VirtAddr(black_box(mid)))).is_some())
        });
        g.bench_with_input(BenchmarkId::new("mmap+munmap", n), &n, |b, _| {
            b.iter(|| {
                mm.mmap(VirtAddr(hole), PAGE, Prot::EXEC, flags(), None, 0).unwrap();
                mm.munmap(VirtAddr(hole), PAGE).unwrap();
            })
        });
        g.bench_with_input(BenchmarkId::new("munmap+mmap", n), &n, |b, _| {
            let prot = if (n / 2) % 2 == 0 { Prot::RW } else { Prot::READ };
            b.iter(|| {
                mm.munmap(VirtAddr(mid), PAGE).unwrap();
                mm.mmap(VirtAddr(mid), PAGE, prot, flags(), None, 0).unwrap();
            })
        });
        g.bench_with_input(BenchmarkId::new("mprotect split+merge", n), &n, |b, _| {
            let prot = if (n - 1) % 2 == 0 { Prot::RW } else { Prot::READ };
            let other = if prot == Prot::RW { Prot::READ } else { Prot::RW };
            b.iter(|| {
                mm.mprotect(VirtAddr(last + PAGE), PAGE, other).unwrap();
                mm.mprotect(VirtAddr(last + PAGE), PAGE, prot).unwrap();
            })
        });
        // An even index: page 2i of a `rw-` VMA, neighbours are holes.
        let rw = BASE + 2 * ((n / 2) & !1) * PAGE;
        let far = BASE + 4 * n * PAGE;
        g.bench_with_input(BenchmarkId::new("mremap move", n), &n, |b, _| {
            let flags = mremap::MAYMOVE | mremap::FIXED;
            b.iter(|| {
                mm.mremap(VirtAddr(rw), PAGE, PAGE, flags, VirtAddr(far)).unwrap();
                mm.mremap(VirtAddr(far), PAGE, PAGE, flags, VirtAddr(rw)).unwrap();
            })
        });
        // The same look-up and protection change at random VMAs: each step lands on a leaf
        // and a VMA the last one did not touch, so at a million VMAs it pays the memory reads
        // the warm benchmarks above never do (`docs/performance.md`, "Slotted leaves").
        let random: Vec<u64> = {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            (0..1 << 16)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    BASE + 2 * (x % (n - 1)) * PAGE
                })
                .collect()
        };
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::new("lookup random", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 0xffff;
                black_box(mm.vma_at(VirtAddr(random[k]))).is_some()
            })
        });
        g.bench_with_input(BenchmarkId::new("mprotect random+back", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 0xffff;
                let a = VirtAddr(random[k]);
                // Page 2i is rw- for even i: give it the other protection and then its own.
                let own = if ((random[k] - BASE) / (2 * PAGE)).is_multiple_of(2) {
                    Prot::RW
                } else {
                    Prot::READ
                };
                let other = if own == Prot::RW { Prot::READ } else { Prot::RW };
                mm.mprotect(a, PAGE, other).unwrap();
                mm.mprotect(a, PAGE, own).unwrap();
            })
        });
        g.bench_with_input(BenchmarkId::new("write fault+dontneed", n), &n, |b, _| {
            b.iter(|| {
                mm.write(VirtAddr(rw + 8), &[1]).unwrap();
                mm.madvise(VirtAddr(rw), PAGE, madv::DONTNEED).unwrap();
            })
        });
        g.finish();
        let mut g = c.benchmark_group("engine");
        g.sampling_mode(SamplingMode::Flat).sample_size(10);
        g.bench_with_input(BenchmarkId::new("fork+exit", n), &n, |b, _| {
            b.iter(|| black_box(mm.fork().unwrap()))
        });
        g.finish();
        assert_eq!(
            mm.vmas().count() as u64,
            n,
            "benchmarks leave the layout as they found it"
        );
        assert_eq!(mm.resident_pages(), 0, "the fault bench leaves no page behind");
        mm.check_invariants();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

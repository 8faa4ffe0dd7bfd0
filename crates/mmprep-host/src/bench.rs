//! `mmprep bench`: one identical stream of operations, timed on the engine and on the host kernel.
//!
//! The layout is N one-page VMAs in the window, alternately `rw-` and `r--`, each followed by a
//! one-page hole, so nothing merges. The stream is a seeded sequence of pairs that leave the
//! layout as they found it, so every pair sees N VMAs:
//! - *map a hole*: `mmap(MAP_FIXED, PROT_EXEC)` into the hole after VMA k (a VMA of its own),
//!   then `munmap` it;
//! - *flip*: `mprotect` VMA k to the other protection, then back.
//!
//! The kernel side runs in a forked child (the same isolation as [`crate::run`]); the child
//! builds the layout with real system calls, times the stream with a monotonic clock, and
//! reports the nanoseconds through a pipe. The engine side replays the stream on an
//! [`mmprep::Mm`] with the host profile. Both times cover the stream only, not the layout.
//!
//! The perf stream of issue 8 ([`mmprep_scenario::perf`]) is timed differently: as a whole
//! scenario, parse and transcript included, by [`run_whole_engine`] (what `mmprep run` does) and
//! [`run_whole_kernel`] (what `mmprep kernel` does).

use std::time::{Duration, Instant};

use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};
use mmprep_scenario::WINDOW_BASE;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use crate::sys;

const PAGE: u64 = 4096;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// VMAs in the layout.
    pub vmas: u64,
    /// Pairs of operations in the stream.
    pub pairs: u64,
    /// Seed of the stream.
    pub seed: u64,
}

/// One pair of operations on VMA `k`.
#[derive(Clone, Copy, Debug)]
enum Pair {
    MapHole(u64),
    Flip(u64),
}

fn stream(w: &Workload) -> Vec<Pair> {
    let mut rng = fastrand::Rng::with_seed(w.seed);
    (0..w.pairs)
        .map(|_| {
            let k = rng.u64(0..w.vmas);
            if rng.bool() { Pair::MapHole(k) } else { Pair::Flip(k) }
        })
        .collect()
}

fn vma_addr(k: u64) -> u64 {
    WINDOW_BASE + 2 * k * PAGE
}

fn prot_of(k: u64) -> Prot {
    if k.is_multiple_of(2) { Prot::RW } else { Prot::READ }
}

fn other(p: Prot) -> Prot {
    if p == Prot::RW { Prot::READ } else { Prot::RW }
}

const FIXED_ANON: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED.0);

/// Times the stream on the engine.
pub fn run_engine(w: &Workload, profile: &Profile) -> Result<Duration, String> {
    let mut mm = Mm::new(profile.clone());
    for k in 0..w.vmas {
        mm.mmap(VirtAddr(vma_addr(k)), PAGE, prot_of(k), FIXED_ANON, None, 0)
            .map_err(|e| format!("engine layout: mmap #{k}: {e}"))?;
    }
    let ops = stream(w);
    let start = Instant::now();
    for op in &ops {
        let r = match *op {
            Pair::MapHole(k) => {
                let hole = VirtAddr(vma_addr(k) + PAGE);
                mm.mmap(hole, PAGE, Prot::EXEC, FIXED_ANON, None, 0)
                    .and_then(|_| mm.munmap(hole, PAGE))
            }
            Pair::Flip(k) => {
                let a = VirtAddr(vma_addr(k));
                mm.mprotect(a, PAGE, other(prot_of(k)))
                    .and_then(|()| mm.mprotect(a, PAGE, prot_of(k)))
            }
        };
        r.map_err(|e| format!("engine stream: {op:?}: {e}"))?;
    }
    let elapsed = start.elapsed();
    if mm.vmas().count() as u64 != w.vmas {
        return Err("engine: the stream changed the layout".into());
    }
    Ok(elapsed)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
/// A kernel-side call's result as the benchmark's error text.
fn call<T>(result: Result<T, sys::RawErrno>) -> Result<T, String> {
    result.map_err(|e| format!("errno {e}"))
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn kernel_child(w: &Workload) -> Result<u64, String> {
    let prot = |p: Prot| p.bits();
    let flags = FIXED_ANON.bits();
    let end = vma_addr(w.vmas) + 2 * PAGE;
    // The window must be free (like `mmprep kernel`'s check).
    for v in crate::procfs::read_self(false)? {
        if v.start < end && v.end > WINDOW_BASE {
            return Err(format!("the window is not free: {:x}-{:x} {}", v.start, v.end, v.name));
        }
    }
    for k in 0..w.vmas {
        // SAFETY (every call of this function): every address lies in the scenario window,
        // which holds none of the process's own memory (the promise `crate::run` relies on).
        call(unsafe { sys::mmap(vma_addr(k), PAGE, prot(prot_of(k)), flags, None, 0) })
            .map_err(|e| format!("kernel layout: mmap #{k}: {e}"))?;
    }
    let ops = stream(w);
    let start = Instant::now();
    for op in &ops {
        match *op {
            Pair::MapHole(k) => {
                let hole = vma_addr(k) + PAGE;
                call(unsafe { sys::mmap(hole, PAGE, prot(Prot::EXEC), flags, None, 0) })?;
                call(unsafe { sys::munmap(hole, PAGE) })?;
            }
            Pair::Flip(k) => {
                let a = vma_addr(k);
                call(unsafe { sys::mprotect(a, PAGE, prot(other(prot_of(k)))) })?;
                call(unsafe { sys::mprotect(a, PAGE, prot(prot_of(k))) })?;
            }
        }
    }
    Ok(start.elapsed().as_nanos() as u64)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
/// Times the stream on the host kernel: needs Linux on x86_64.
pub fn run_kernel(_: &Workload) -> Result<Duration, String> {
    Err("the kernel benchmark needs Linux on x86_64".into())
}

/// Times the stream on the host kernel, in a forked child.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn run_kernel(w: &Workload) -> Result<Duration, String> {
    let (rd, wr) = sys::pipe().map_err(|e| format!("pipe: errno {e}"))?;
    match sys::fork().map_err(|e| format!("fork: errno {e}"))? {
        sys::Forked::Child => {
            drop(rd);
            let msg = match kernel_child(w) {
                Ok(ns) => format!("ok {ns}"),
                Err(e) => format!("err {e}"),
            };
            let _ = sys::write_all(std::os::fd::AsFd::as_fd(&wr), msg.as_bytes());
            sys::exit_now(0);
        }
        sys::Forked::Parent(pid) => {
            drop(wr);
            let mut text = String::new();
            {
                use std::io::Read;
                let mut f = std::fs::File::from(rd);
                let _ = f.read_to_string(&mut text);
            }
            let _ = sys::wait(pid);
            match text.split_once(' ') {
                Some(("ok", ns)) => ns.parse().map(Duration::from_nanos).map_err(|e| e.to_string()),
                Some(("err", why)) => Err(why.to_string()),
                _ => Err("the benchmark child died".into()),
            }
        }
    }
}

/// One side of a perf-stream run: how long the whole run took and what it printed.
#[derive(Debug)]
pub struct WholeRun {
    /// Parse, run and transcript text, as `mmprep run` or `mmprep kernel` spends it.
    pub wall: Duration,
    /// The transcript text (what `mmprep run`/`mmprep kernel` would print).
    pub text: String,
    /// How the run ended.
    pub end: mmprep_scenario::RunEnd,
}

/// Runs scenario `text` whole on the engine: parse, [`mmprep_scenario::engine::run`], print.
pub fn run_whole_engine(text: &str, profile: &Profile) -> WholeRun {
    let start = Instant::now();
    let script = mmprep_scenario::parse(text);
    let t = mmprep_scenario::engine::run(&script, profile);
    let out = t.text();
    WholeRun {
        wall: start.elapsed(),
        text: out,
        end: t.end,
    }
}

/// Runs scenario `text` whole on the host kernel: parse, [`crate::run`] (its forked child makes
/// the calls and writes the lines into a pipe), print.
pub fn run_whole_kernel(text: &str) -> WholeRun {
    let start = Instant::now();
    let script = mmprep_scenario::parse(text);
    let t = crate::run(&script);
    let out = t.text();
    WholeRun {
        wall: start.elapsed(),
        text: out,
        end: t.end,
    }
}

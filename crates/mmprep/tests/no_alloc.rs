//! Issue 8: "No heap allocation on the common paths of mmap, munmap, mprotect and flag madvise of
//! anonymous memory; the event log costs nothing when nobody reads it."
//!
//! This test binary counts every allocation through a global allocator (`stats_alloc` around the
//! system allocator). It builds a layout of a few thousand VMAs the way the perf stream does (one
//! anonymous mapping, every odd page made read-only), warms up by running every step a few times
//! on every page, then runs each kind of step a few thousand times on pages spread over the whole
//! tree and asserts that not one allocation, reallocation or free happened. The event log is off,
//! as it is for any caller that never turns it on.
//!
//! The steps come in cycles that leave the layout as they found it, so the steady state is the
//! same before and after each cycle (ruler: one column per page around an even page `k`; `W` a
//! rw- page, `r` a r-- one, `.` a hole; a letter run without `|` is one VMA):
//!
//! ```text
//!   layout           r|W|r       every page its own VMA
//!   munmap k         r|.|r       removes a whole VMA
//!   mmap k rw-       r|W|r       no merge (the neighbours are r--)
//!   mprotect k r--   rrr         merges with both neighbours
//!   mprotect k rw-   r|W|r       splits in three
//!   munmap k+1       W|.|W       removes a whole VMA
//!   mmap k+1 rw-     WWW         merges with both neighbours
//!   madvise k+1 DONTFORK   W|w|W  a flag change splits in three
//!   madvise k+1 DOFORK     WWW    and merges back
//!   munmap k+1       W|.|W       splits twice, removes the middle
//!   mmap k+1 rw-     WWW         merges again
//!   mprotect k+1 r-- W|r|W       splits in three: the layout again
//! ```
//!
//! Only one test runs in this binary, so no other test's allocations are counted.

use std::alloc::System;

use mmprep::uapi::madv;
use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BASE: u64 = 0x2000_0000_0000;
/// Pages in the layout: as many VMAs.
const PAGES: u64 = 4000;
/// Cycles measured per kind of step.
const STEPS: usize = 3000;
/// Passes of every cycle before the measured one.
const WARM_UP: usize = 3;

const ANON: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED.0);

fn page(n: u64) -> VirtAddr {
    VirtAddr(BASE + n * 4096)
}

/// The even pages `k` (with `k + 2` still in the layout) the cycles work on, spread over the
/// whole tree by a fixed multiplicative step, so that they fall in every leaf.
fn even_pages(n: usize) -> impl Iterator<Item = u64> {
    let slots = PAGES / 2 - 2;
    (0..n as u64).map(move |i| 2 * (1 + (i * 7919) % slots))
}

fn layout() -> Mm {
    let mut mm = Mm::new(Profile::reference_host());
    mm.mmap(page(0), PAGES * 4096, Prot::RW, ANON, None, 0)
        .expect("layout mmap");
    for p in (1..PAGES).step_by(2) {
        mm.mprotect(page(p), 4096, Prot::READ).expect("layout mprotect");
    }
    assert_eq!(mm.vmas().count() as u64, PAGES);
    mm
}

fn munmap(mm: &mut Mm, p: u64) {
    mm.munmap(page(p), 4096).expect("munmap");
}

fn mmap_rw(mm: &mut Mm, p: u64) {
    mm.mmap(page(p), 4096, Prot::RW, ANON, None, 0).expect("mmap");
}

fn mprotect(mm: &mut Mm, p: u64, prot: Prot) {
    mm.mprotect(page(p), 4096, prot).expect("mprotect");
}

fn madvise(mm: &mut Mm, p: u64, advice: u32) {
    mm.madvise(page(p), 4096, advice).expect("madvise");
}

/// One kind of step: its name and what it does on page `k` of the cycle in the module doc.
type Kind = (&'static str, fn(&mut Mm, u64));

/// Each kind of step. The kinds run in this order, each one once per page, and together leave
/// the layout unchanged.
const KINDS: [Kind; 6] = [
    ("munmap that removes a VMA, mmap that does not merge", |mm, k| {
        munmap(mm, k);
        mmap_rw(mm, k);
    }),
    ("mprotect that merges both sides, then splits in three", |mm, k| {
        mprotect(mm, k, Prot::READ);
        mprotect(mm, k, Prot::RW);
    }),
    ("munmap of a whole VMA, mmap that merges both sides", |mm, k| {
        munmap(mm, k + 1);
        mmap_rw(mm, k + 1);
    }),
    ("madvise DONTFORK that splits, DOFORK that merges back", |mm, k| {
        madvise(mm, k + 1, madv::DONTFORK);
        madvise(mm, k + 1, madv::DOFORK);
    }),
    ("munmap that splits twice, mmap that merges both sides", |mm, k| {
        munmap(mm, k + 1);
        mmap_rw(mm, k + 1);
    }),
    ("mprotect that splits in three", |mm, k| {
        mprotect(mm, k + 1, Prot::READ);
    }),
];

#[test]
fn common_paths_do_not_allocate() {
    let mut mm = layout();
    let before: Vec<String> = mm.vmas().map(|v| format!("{v:?}")).collect();
    // Warm up: every step on every page the measured runs visit, a few times over. The first
    // pass empties and refills leaves of the tree until its shape repeats from one pass to the
    // next (two passes are enough; the third is margin), and grows the buffers the engine keeps.
    for _ in 0..WARM_UP {
        for k in even_pages(STEPS) {
            for (_, step) in KINDS {
                step(&mut mm, k);
            }
        }
    }
    mm.check_invariants();
    let after: Vec<String> = mm.vmas().map(|v| format!("{v:?}")).collect();
    assert_eq!(before, after, "the cycle must leave the layout as it found it");

    // The same steps again, counted per kind. Each kind needs the ones before it on its page,
    // so the cycle runs whole on each page and only the kind's own calls are counted.
    let mut counted = [stats_alloc::Stats::default(); KINDS.len()];
    for k in even_pages(STEPS) {
        for (i, (_, step)) in KINDS.iter().enumerate() {
            let region = Region::new(GLOBAL);
            step(&mut mm, k);
            let s = region.change();
            counted[i].allocations += s.allocations;
            counted[i].reallocations += s.reallocations;
            counted[i].deallocations += s.deallocations;
            counted[i].bytes_allocated += s.bytes_allocated;
        }
    }
    mm.check_invariants();
    let failures: Vec<String> = KINDS
        .iter()
        .zip(&counted)
        .filter(|(_, s)| s.allocations + s.reallocations + s.deallocations != 0)
        .map(|((name, _), s)| {
            format!(
                "{name}: {} allocations, {} reallocations, {} frees, {} bytes over {STEPS} cycles",
                s.allocations, s.reallocations, s.deallocations, s.bytes_allocated
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "heap traffic on a common path:\n{}",
        failures.join("\n")
    );
}

//! `mseal` in the style of the kernel's `tools/testing/vma` tests: a layout drawn on a page
//! ruler, one call per step, the whole map asserted after each step, the invariants checked
//! every time.
//!
//! Every expected layout is the host kernel's: each test names the scenario under
//! `tests/scenarios/` whose `.expected` transcript (made by `mmprep kernel` on the 6.18.44 host)
//! shows the same steps; the `max_map_count` test follows vma-rules 3.2 (H). Ruler: one column
//! per 4 KiB page; `S` a sealed VMA, `.` a hole.

mod common;

use common::*;
use mmprep::uapi::madv;
use mmprep::{Errno, Mm, Profile, Prot, VirtAddr};

fn errno<T: core::fmt::Debug>(r: mmprep::Result<T>) -> Errno {
    r.expect_err("the call fails").errno
}

fn sealed(mm: &Mm) -> Vec<bool> {
    mm.vmas().map(|v| v.is_sealed()).collect()
}

/// Sealing part of a VMA splits it; sealing the adjacent part merges the sealed pieces; a
/// fresh neighbour never merges with a sealed VMA; a VMA that merged into a sealed one after it
/// does not keep the next VMA from merging too. (`mseal-merge.scn`, `mseal-merge-walk.scn`;
/// vma-rules 8.19)
#[test]
fn mseal_splits_and_merges() {
    let mut mm = new_mm();
    // 0123
    // ASAA
    map_anon(&mut mm, 0, 4, Prot::RW);
    mm.mseal(page(1), pages(1), 0).unwrap();
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00002000 rw-p 00000000
         00002000-00004000 rw-p 00000000"
    );
    assert_eq!(sealed(&mm), [false, true, false]);
    // ASSA     the next page: merges with the sealed piece; sealing twice is fine
    mm.mseal(page(2), pages(1), 0).unwrap();
    mm.mseal(page(1), pages(2), 0).unwrap();
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00003000 rw-p 00000000
         00003000-00004000 rw-p 00000000"
    );
    // SSSS     all: the head merges right into S, then the tail joins on its left
    mm.mseal(page(0), pages(4), 0).unwrap();
    assert_maps!(mm, "00000000-00004000 rw-p 00000000");
    // SSSSA    a new neighbour stays apart
    map_anon(&mut mm, 4, 5, Prot::RW);
    assert_eq!(sealed(&mm), [true, false]);
}

/// The checks before anything is sealed: flags, alignment, a zero or wrapping length, a hole
/// anywhere in the range. (`mseal-hole.scn`; vma-rules 4.7, 8.14, 8.15)
#[test]
fn mseal_checks_and_holes() {
    let mut mm = new_mm();
    // 0123
    // A.B.
    map_anon(&mut mm, 0, 1, Prot::RW);
    map_anon(&mut mm, 2, 3, Prot::RW);
    assert_eq!(errno(mm.mseal(page(0), pages(1), 1)), Errno::EINVAL);
    assert_eq!(errno(mm.mseal(VirtAddr(page(0).0 + 1), pages(1), 0)), Errno::EINVAL);
    assert_eq!(errno(mm.mseal(VirtAddr(page(0).0 + 1), 0, 0)), Errno::EINVAL);
    assert_eq!(errno(mm.mseal(page(0), u64::MAX, 0)), Errno::EINVAL, "rounds up to 0");
    assert_eq!(
        errno(mm.mseal(page(0), u64::MAX - page(0).0, 0)),
        Errno::EINVAL,
        "wraps"
    );
    for (from, n) in [(0, 3), (0, 4), (2, 2), (1, 2)] {
        assert_eq!(
            errno(mm.mseal(page(from), pages(n), 0)),
            Errno::ENOMEM,
            "pages {from}+{n}"
        );
    }
    assert_eq!(sealed(&mm), [false, false], "a hole seals nothing");
    mm.mseal(page(16), 0, 0).unwrap();
    // S.B.     length 1 rounds up to the page
    mm.mseal(page(0), 1, 0).unwrap();
    assert_eq!(sealed(&mm), [true, false]);
    mm.check_invariants();
}

/// What a sealed VMA refuses: munmap, MAP_FIXED over it, mprotect (EPERM, earlier changes
/// stay), discarding advices on read-only private anonymous memory; what it allows: mlock,
/// other advices, the discarding advices where the memory is writable.
/// (`mseal-munmap.scn`, `mseal-mprotect.scn`, `mseal-madvise.scn`, `mseal-mlock.scn`;
/// vma-rules 8.17, 8.18)
#[test]
fn what_a_seal_refuses() {
    let mut mm = new_mm();
    // 0123 56 89
    // AAAS RR WW    A rw-, S rw- sealed, R r-- sealed, W rw- sealed
    map_anon(&mut mm, 0, 3, Prot::RW);
    mm.mmap(page(3), pages(1), Prot::RW, ANON | mmprep::MapFlags::NORESERVE, None, 0)
        .unwrap();
    mm.mseal(page(3), pages(1), 0).unwrap();
    //  <-->    munmap into S: EPERM, the split of A at page 1 stays
    assert_eq!(errno(mm.munmap(page(1), pages(3))), Errno::EPERM);
    assert_eq!(mm.vmas().count(), 3);
    assert_eq!(
        errno(mm.mmap(page(2), pages(2), Prot::READ, ANON, None, 0)),
        Errno::EPERM
    );
    //  <-->    mprotect into S: pages 1-2 change, then EPERM
    assert_eq!(errno(mm.mprotect(page(1), pages(3), Prot::READ)), Errno::EPERM);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00003000 r--p 00000000
         00003000-00004000 rw-p 00000000"
    );
    assert_eq!(
        errno(mm.mprotect(page(3), pages(1), Prot::RW)),
        Errno::EPERM,
        "even unchanged"
    );

    map_anon(&mut mm, 5, 7, Prot::READ);
    map_anon(&mut mm, 8, 10, Prot::RW);
    mm.mseal(page(5), pages(2), 0).unwrap();
    mm.mseal(page(8), pages(2), 0).unwrap();
    for advice in [
        madv::DONTNEED,
        madv::FREE,
        madv::DONTFORK,
        madv::WIPEONFORK,
        madv::GUARD_INSTALL,
        madv::REMOVE,
        madv::DONTNEED_LOCKED,
    ] {
        assert_eq!(
            errno(mm.madvise(page(5), pages(1), advice)),
            Errno::EPERM,
            "advice {advice}"
        );
    }
    for advice in [madv::COLD, madv::PAGEOUT, madv::WILLNEED, madv::DONTDUMP] {
        mm.madvise(page(5), pages(1), advice).unwrap();
    }
    for advice in [madv::DONTNEED, madv::FREE, madv::WIPEONFORK, madv::GUARD_INSTALL] {
        mm.madvise(page(8), pages(1), advice).unwrap();
    }
    // mlock and munlock ignore seals, splitting and merging as usual.
    mm.mlock(page(9), pages(1)).unwrap();
    mm.munlock(page(8), pages(2)).unwrap();
    assert_eq!(
        mm.vmas()
            .map(|v| mmprep::procfs::vmflags(v, false).join(" "))
            .collect::<Vec<_>>()[3..],
        [
            "rd mr mw me dd sl",
            "rd mr mw me sl",
            "rd wr mr mw me gu ac wf sl",
            "rd wr mr mw me ac sl"
        ]
    );
    mm.check_invariants();
    // The child keeps the seals.
    let mut child = mm.fork().unwrap();
    assert_eq!(errno(child.munmap(page(8), pages(1))), Errno::EPERM);
}

/// A seal needing a split at `max_map_count` is ENOMEM (vma-rules 3.2, H); sealing whole VMAs
/// needs none.
#[test]
fn mseal_split_at_the_map_count_limit() {
    let mut p = Profile::reference_host();
    p.unmodelled_map_count = p.max_map_count - 2;
    let mut mm = Mm::new(p);
    map_anon(&mut mm, 0, 2, Prot::RW);
    map_anon(&mut mm, 2, 3, Prot::READ);
    assert_eq!(errno(mm.mseal(page(1), pages(2), 0)), Errno::ENOMEM);
    assert_eq!(sealed(&mm), [false, false]);
    mm.mseal(page(0), pages(3), 0).unwrap();
    assert_eq!(sealed(&mm), [true, true]);
    mm.check_invariants();
}

//! `mlock`, `mlock2` and `munlock` in the style of the kernel's `tools/testing/vma` tests: a
//! layout drawn on a page ruler, one call per step, the whole map (and `locked_vm`) asserted
//! after each step, the invariants checked every time (`Mm::check_invariants` recounts
//! `locked_vm` from the `VM_LOCKED` VMAs).
//!
//! Every expected layout is the host kernel's: each test names the scenario under
//! `tests/scenarios/` whose `.expected` transcript (made by `mmprep kernel` on the 6.18.44 host)
//! shows the same steps. The limit tests (`RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`,
//! `max_map_count`) cannot run as root on the host; they follow `mm/mlock.c:do_mlock` and
//! `mm/vma.c:split_vma` (S) and vma-rules 3.2 / 4.5. Ruler: one column per 4 KiB page; `L` a
//! locked VMA, `f` locked on fault, `.` a hole.

mod common;

use common::*;
use mmprep::uapi::mlock::ONFAULT;
use mmprep::{Errno, Mm, Profile, Prot, VirtAddr};

/// Each VMA as `START-END PERMS OFFSET | VmFlags`, offsets from the base.
fn smaps(mm: &Mm) -> Vec<String> {
    let maps = layout(mm);
    maps.lines()
        .zip(mm.vmas())
        .map(|(line, v)| format!("{line} | {}", mmprep::procfs::vmflags(v, false).join(" ")))
        .collect()
}

fn errno(r: mmprep::Result<()>) -> Errno {
    r.expect_err("the call fails").errno
}

/// mlock of the middle page splits the VMA and counts one locked page; munlock merges it back
/// (the pieces share the anon_vma mlock's populate made); MAP_LOCKED then munlock of the middle
/// splits the other way. (`mlock-split-merge.scn`)
#[test]
fn mlock_splits_and_munlock_merges() {
    let mut mm = new_mm();
    // 012
    // AAA
    map_anon(&mut mm, 0, 3, Prot::RW);
    //  ^      mlock page 1: split twice, populated for writing
    // ALA
    mm.mlock(page(1), pages(1)).unwrap();
    assert_eq!(
        smaps(&mm),
        [
            "00000000-00001000 rw-p 00000000 | rd wr mr mw me ac",
            "00001000-00002000 rw-p 00000000 | rd wr mr mw me lo ac",
            "00002000-00003000 rw-p 00000000 | rd wr mr mw me ac",
        ]
    );
    assert_eq!(mm.stats().locked_vm, 1);
    assert!(
        mm.vma_at(page(1)).unwrap().anon_vma().is_some(),
        "populate wrote the page"
    );
    mm.check_invariants();
    // AAA     munlock: the flags match again, one VMA
    mm.munlock(page(1), pages(1)).unwrap();
    assert_maps!(mm, "00000000-00003000 rw-p 00000000");
    assert_eq!(mm.stats().locked_vm, 0);

    //                 0123456789abcdef0 (page 16 on)
    //                 LLL      MAP_LOCKED
    //                 LuL      munlock the middle
    mm.mmap(page(16), pages(3), Prot::RW, ANON | mmprep::MapFlags::LOCKED, None, 0)
        .unwrap();
    assert_eq!(mm.stats().locked_vm, 3);
    mm.munlock(page(17), pages(1)).unwrap();
    assert_maps!(
        mm,
        "00000000-00003000 rw-p 00000000
         00010000-00011000 rw-p 00000000
         00011000-00012000 rw-p 00000000
         00012000-00013000 rw-p 00000000"
    );
    assert_eq!(mm.stats().locked_vm, 2);
    //                 LLL      mlock all three: one VMA again
    mm.mlock(page(16), pages(3)).unwrap();
    assert_maps!(
        mm,
        "00000000-00003000 rw-p 00000000
         00010000-00013000 rw-p 00000000"
    );
    assert_eq!(mm.stats().locked_vm, 3);
}

/// No alignment check: the start is rounded down, the length rounded up over the offset; a
/// zero length at an aligned address does nothing. (`mlock-rounding.scn`; vma-rules 8.16)
#[test]
fn mlock_rounds_instead_of_refusing() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 4, Prot::RW);
    // AL..     mlock(page 1 + 1, 0) locks page 1
    mm.mlock(VirtAddr(page(1).0 + 1), 0).unwrap();
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00002000 rw-p 00000000
         00002000-00004000 rw-p 00000000"
    );
    assert_eq!(mm.stats().locked_vm, 1);
    map_anon(&mut mm, 16, 20, Prot::RW);
    //                 LL..     mlock(page 17 - 1, 2) spans pages 16 and 17
    mm.mlock(VirtAddr(page(17).0 - 1), 2).unwrap();
    assert_eq!(mm.stats().locked_vm, 3);
    //                 Lu..     munlock(page 17 + 1, 0) unlocks page 17
    mm.munlock(VirtAddr(page(17).0 + 1), 0).unwrap();
    assert_eq!(mm.stats().locked_vm, 2);
    // Length 0 at an aligned address, and a length that wraps to 0 after rounding.
    mm.mlock(page(32), 0).unwrap();
    mm.mlock(VirtAddr(page(2).0 + 1), u64::MAX).unwrap();
    assert_eq!(mm.stats().locked_vm, 2);
    // A range whose end wraps past the top of the address space.
    assert_eq!(errno(mm.munlock(page(2), u64::MAX - page(2).0)), Errno::EINVAL);
    mm.check_invariants();
}

/// A hole stops the walk after the VMAs before it changed; a start in a hole changes nothing;
/// a range past the last VMA changes all it covers. (`mlock-partial-hole.scn`, `mlock-hole.scn`;
/// vma-rules 8.14)
#[test]
fn mlock_holes() {
    let mut mm = new_mm();
    // 0123 45
    // AA.B CC      C noreserve
    map_anon(&mut mm, 0, 2, Prot::RW);
    map_anon(&mut mm, 3, 4, Prot::RW);
    mm.mmap(page(4), pages(2), Prot::RW, ANON | mmprep::MapFlags::NORESERVE, None, 0)
        .unwrap();
    //  <->         mlock pages 1-3: page 1 locked, then the hole: ENOMEM
    assert_eq!(errno(mm.mlock(page(1), pages(3))), Errno::ENOMEM);
    assert_eq!(
        smaps(&mm),
        [
            "00000000-00001000 rw-p 00000000 | rd wr mr mw me ac",
            "00001000-00002000 rw-p 00000000 | rd wr mr mw me lo ac",
            "00003000-00004000 rw-p 00000000 | rd wr mr mw me ac",
            "00004000-00006000 rw-p 00000000 | rd wr mr mw me nr",
        ]
    );
    assert_eq!(mm.stats().locked_vm, 1);
    //    <--->     mlock pages 3-6: B and C locked, ENOMEM for the end past C
    assert_eq!(errno(mm.mlock(page(3), pages(4))), Errno::ENOMEM);
    assert_eq!(mm.stats().locked_vm, 4);
    // <---->       munlock pages 0-5 from a VMA: A's piece merges back, then the hole
    assert_eq!(errno(mm.munlock(page(0), pages(6))), Errno::ENOMEM);
    assert_eq!(mm.stats().locked_vm, 3);
    //   <>         starting in the hole: nothing changes
    assert_eq!(errno(mm.munlock(page(2), pages(2))), Errno::ENOMEM);
    assert_eq!(mm.stats().locked_vm, 3);
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00003000-00004000 rw-p 00000000
         00004000-00006000 rw-p 00000000"
    );
}

/// mlock2(MLOCK_ONFAULT) sets `lo lf` without populating; plain mlock over it clears `lf`
/// without counting the pages twice; munlock clears both; unknown flags are EINVAL.
/// (`mlock2-onfault.scn`)
#[test]
fn mlock2_onfault() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 3, Prot::RW);
    assert_eq!(errno(mm.mlock2(page(1), pages(1), 2)), Errno::EINVAL);
    assert_eq!(errno(mm.mlock2(page(1), pages(1), ONFAULT | 4)), Errno::EINVAL);
    // AfA
    mm.mlock2(page(1), pages(1), ONFAULT).unwrap();
    assert_eq!(
        smaps(&mm)[1],
        "00001000-00002000 rw-p 00000000 | rd wr mr mw me lo lf ac"
    );
    assert!(
        mm.vma_at(page(1)).unwrap().anon_vma().is_none(),
        "nothing was faulted in"
    );
    assert_eq!(mm.stats().locked_vm, 1);
    // LLL     mlock over all: one VMA, `lf` gone, page 1 not counted twice
    mm.mlock(page(0), pages(3)).unwrap();
    assert_eq!(smaps(&mm), ["00000000-00003000 rw-p 00000000 | rd wr mr mw me lo ac"]);
    assert_eq!(mm.stats().locked_vm, 3);
    // ffL     mlock2 over the first two pages
    mm.mlock2(page(0), pages(2), ONFAULT).unwrap();
    assert_eq!(mm.stats().locked_vm, 3);
    // AAA
    mm.munlock(page(0), pages(3)).unwrap();
    assert_maps!(mm, "00000000-00003000 rw-p 00000000");
    assert_eq!(mm.stats().locked_vm, 0);
}

/// The populate after locking stops at the first page it cannot fault in and makes the call
/// fail with ENOMEM, with the VMAs left locked: past the end of a memfd, a PROT_NONE VMA, a
/// guard page. (`mlock-populate-fault.scn`, `mlock-populate-stops.scn`)
#[test]
fn mlock_populate_failures() {
    let mut mm = new_mm();
    let data = mm.shmem().memfd_create("data", pages(1));
    // 01   4   67
    // ff   n   gg      f shared memfd (page 1 past EOF), n PROT_NONE, g guarded on page 7
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &data, 0);
    assert_eq!(errno(mm.mlock(page(0), pages(2))), Errno::ENOMEM);
    map_anon(&mut mm, 4, 5, Prot::NONE);
    assert_eq!(errno(mm.mlock(page(4), pages(1))), Errno::ENOMEM);
    map_anon(&mut mm, 6, 8, Prot::RW);
    mm.madvise(page(7), pages(1), mmprep::uapi::madv::GUARD_INSTALL)
        .unwrap();
    assert_eq!(errno(mm.mlock(page(6), pages(2))), Errno::ENOMEM);
    assert_eq!(
        smaps(&mm),
        [
            "00000000-00002000 rw-s 00000000 | rd wr sh mr mw me ms lo",
            "00004000-00005000 ---p 00000000 | mr mw me lo",
            "00006000-00008000 rw-p 00000000 | rd wr mr mw me gu lo ac",
        ]
    );
    assert_eq!(mm.stats().locked_vm, 5);
    // The locked pages before the guard are there: page 6 reads and writes.
    mm.access(page(6), mmprep::Access::Write).unwrap();
    assert_eq!(mm.access(page(7), mmprep::Access::Read), Err(mmprep::Signal::Segv));
    mm.check_invariants();
}

/// Without `CAP_IPC_LOCK`, `RLIMIT_MEMLOCK` caps `locked_vm`: pages of the range already
/// locked are not counted twice; munlock is never refused; a limit of 0 is EPERM
/// (`mm/mlock.c:do_mlock`, `can_do_mlock`, `count_mm_mlocked_page_nr`; vma-rules 4.5).
#[test]
fn rlimit_memlock_without_cap_ipc_lock() {
    let user = Profile {
        rlimit_memlock: pages(4),
        ..Profile::reference_user()
    };
    let mut mm = Mm::new(user.clone());
    map_anon(&mut mm, 0, 8, Prot::RW);
    // LLL.....     three pages: fine
    mm.mlock(page(0), pages(3)).unwrap();
    // LLLL....     pages 0-3: three already locked, one new: 3 + 4 - 3 <= 4
    mm.mlock(page(0), pages(4)).unwrap();
    assert_eq!(mm.stats().locked_vm, 4);
    // one more page anywhere: ENOMEM before anything changes
    assert_eq!(errno(mm.mlock(page(6), pages(1))), Errno::ENOMEM);
    assert_eq!(errno(mm.mlock2(page(4), pages(2), ONFAULT)), Errno::ENOMEM);
    assert_eq!(mm.stats().locked_vm, 4);
    // relocking what is locked is fine; munlock always is
    mm.mlock(page(0), pages(4)).unwrap();
    mm.munlock(page(0), pages(8)).unwrap();
    assert_eq!(mm.stats().locked_vm, 0);
    assert_maps!(mm, "00000000-00008000 rw-p 00000000");

    let mut mm = Mm::new(Profile {
        rlimit_memlock: 0,
        ..user
    });
    map_anon(&mut mm, 0, 1, Prot::RW);
    assert_eq!(errno(mm.mlock(page(0), pages(1))), Errno::EPERM);
    assert_eq!(errno(mm.mlock2(page(0), pages(1), ONFAULT)), Errno::EPERM);
    mm.munlock(page(0), pages(1)).unwrap();
    mm.check_invariants();
}

/// A split at `max_map_count` is ENOMEM (`split_vma`; vma-rules 3.2, H: "mprotect / mlock /
/// mseal needing any split: >= max"); a lock of whole VMAs needs no split and works.
#[test]
fn mlock_split_at_the_map_count_limit() {
    let mut p = Profile::reference_host();
    p.unmodelled_map_count = p.max_map_count - 1;
    let mut mm = Mm::new(p);
    map_anon(&mut mm, 0, 3, Prot::RW);
    assert_eq!(mm.map_count(), mm.profile().max_map_count);
    assert_eq!(errno(mm.mlock(page(1), pages(1))), Errno::ENOMEM);
    assert_eq!(errno(mm.mlock(page(0), pages(1))), Errno::ENOMEM);
    assert_eq!(mm.stats().locked_vm, 0);
    mm.mlock(page(0), pages(3)).unwrap();
    assert_eq!(mm.stats().locked_vm, 3);
    // munlock of a head needs a split too.
    assert_eq!(errno(mm.munlock(page(0), pages(1))), Errno::ENOMEM);
    assert_maps!(mm, "00000000-00003000 rw-p 00000000");
}

/// `lo` is an ordinary flag for the other calls: mprotect splits a locked VMA keeping `lo` on
/// both pieces, munmap of a locked page lowers `locked_vm`, a new neighbour does not merge.
/// (`mlock-other-calls.scn`)
#[test]
fn locked_vmas_in_other_calls() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 4, Prot::RW);
    mm.mlock(page(0), pages(4)).unwrap();
    mm.mprotect(page(1), pages(1), Prot::READ).unwrap();
    assert_eq!(smaps(&mm)[1], "00001000-00002000 r--p 00000000 | rd mr mw me lo ac");
    mm.mprotect(page(1), pages(1), Prot::RW).unwrap();
    assert_maps!(mm, "00000000-00004000 rw-p 00000000");
    mm.munmap(page(2), pages(1)).unwrap();
    assert_eq!(mm.stats().locked_vm, 3);
    map_anon(&mut mm, 2, 3, Prot::RW);
    map_anon(&mut mm, 4, 5, Prot::RW);
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00002000-00003000 rw-p 00000000
         00003000-00004000 rw-p 00000000
         00004000-00005000 rw-p 00000000"
    );
    assert_eq!(mm.stats().locked_vm, 3);
    // fork: the child has no locks
    let child = mm.fork().unwrap();
    assert_eq!(child.stats().locked_vm, 0);
    assert!(child.vmas().all(|v| !v.test(mmprep::flags::VmaBit::Locked)));
    child.check_invariants();
}

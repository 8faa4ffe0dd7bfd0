//! Merge and split cases of mmap, munmap and mprotect, in the style of the kernel's
//! `tools/testing/vma` tests: a layout drawn on a page ruler, one call per step, the whole map
//! asserted after each step, the invariants checked every time.
//!
//! Every expected layout is the host kernel's: each test names the scenario under
//! `tests/scenarios/` whose checked-in `.expected` transcript (made by `mmprep kernel`) shows the
//! same steps. Ruler: one column per 4 KiB page above the base; upper case letters are VMAs
//! without an anon_vma, lower case with one.

mod common;

use common::*;
use mmprep::{Errno, Prot};

/// Fresh neighbours with equal attributes merge; a different protection does not.
/// (`unit-new-range-merges.scn`, lines 2-5; vma-rules 8.1)
#[test]
fn new_range_merges_with_matching_neighbour() {
    let mut mm = new_mm();
    // 012
    // A        map page 0
    map_anon(&mut mm, 0, 1, Prot::RW);
    // AA       page 1 continues A: A grows (vma_merge_new_range, left)
    map_anon(&mut mm, 1, 2, Prot::RW);
    // AAB      r-- differs: a VMA of its own
    map_anon(&mut mm, 2, 3, Prot::READ);
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00002000-00003000 r--p 00000000"
    );
}

/// Two separately written VMAs have different anon_vmas: filling the gap merges left only.
/// With one neighbour written (or only read), everything merges.
/// (`unit-new-range-merges.scn`, lines 7-25; vma-rules 8.3-8.5)
#[test]
fn anon_vma_decides_gap_fills() {
    let mut mm = new_mm();
    // 0123456789
    // a.b          written separately
    // aab          the gap joins a only (prev and next anon_vmas differ)
    map_anon(&mut mm, 0, 1, Prot::RW);
    write_touch(&mut mm, 0, 1);
    map_anon(&mut mm, 2, 3, Prot::RW);
    write_touch(&mut mm, 2, 3);
    map_anon(&mut mm, 1, 2, Prot::RW);
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00002000-00003000 rw-p 00000000"
    );

    //     a.B      only the left one written
    //     aaa      one VMA
    map_anon(&mut mm, 4, 5, Prot::RW);
    write_touch(&mut mm, 4, 5);
    map_anon(&mut mm, 6, 7, Prot::RW);
    map_anon(&mut mm, 5, 6, Prot::RW);
    assert_eq!(mm.vmas().count(), 3);

    //         A.b  the left one only read: no anon_vma, so it merges
    map_anon(&mut mm, 8, 9, Prot::RW);
    mm.access(page(8), mmprep::Access::Read).unwrap();
    map_anon(&mut mm, 10, 11, Prot::RW);
    write_touch(&mut mm, 10, 11);
    map_anon(&mut mm, 9, 10, Prot::RW);
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00002000-00003000 rw-p 00000000
         00004000-00007000 rw-p 00000000
         00008000-0000b000 rw-p 00000000"
    );
}

/// A written rwx VMA next to a written rw one reuses its anon_vma at fault time, so making it
/// rw merges them; an unwritten rw neighbour merges with a written one (6.17+ rule).
/// (`unit-anon-vma-reuse-and-account.scn`, lines 2-13; vma-rules 8.7, 8.8)
#[test]
fn fault_time_reuse_and_unwritten_prev() {
    let mut mm = new_mm();
    // 01
    // a        written rw
    // ab       b rwx, written: reuses a's anon_vma (flags differ only in access bits)
    // aa       mprotect b rw: same anon_vma, one VMA
    map_anon(&mut mm, 0, 1, Prot::RW);
    write_touch(&mut mm, 0, 1);
    map_anon(&mut mm, 1, 2, Prot::RWX);
    write_touch(&mut mm, 1, 2);
    let (a, b) = {
        let v: Vec<_> = mm.vmas().map(|v| v.anon_vma().unwrap().id).collect();
        (v[0], v[1])
    };
    assert_eq!(a, b, "b reused a's anon_vma");
    mm.mprotect(page(1), pages(1), Prot::RW).unwrap();
    assert_maps!(mm, "00000000-00002000 rw-p 00000000");

    //     Ab       unwritten rw, written rwx; mprotect b rw -> one VMA
    map_anon(&mut mm, 16, 17, Prot::RW);
    map_anon(&mut mm, 17, 18, Prot::RWX);
    write_touch(&mut mm, 17, 18);
    mm.mprotect(page(17), pages(1), Prot::RW).unwrap();
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00010000-00012000 rw-p 00000000"
    );
}

/// `VM_ACCOUNT` is dropped by rw->r-- only while nothing was written, so only then does the VMA
/// merge with a fresh r-- neighbour. (`unit-anon-vma-reuse-and-account.scn`, lines 15-22)
#[test]
fn mprotect_readonly_keeps_account_once_written() {
    let mut mm = new_mm();
    // AB       A rw->r-- unwritten: loses ac, merges with fresh r-- B
    map_anon(&mut mm, 0, 1, Prot::RW);
    mm.mprotect(page(0), pages(1), Prot::READ).unwrap();
    map_anon(&mut mm, 1, 2, Prot::READ);
    assert_maps!(mm, "00000000-00002000 r--p 00000000");
    //     aB   written first: keeps ac, stays apart
    map_anon(&mut mm, 4, 5, Prot::RW);
    write_touch(&mut mm, 4, 5);
    mm.mprotect(page(4), pages(1), Prot::READ).unwrap();
    map_anon(&mut mm, 5, 6, Prot::READ);
    assert_maps!(
        mm,
        "00000000-00002000 r--p 00000000
         00004000-00005000 r--p 00000000
         00005000-00006000 r--p 00000000"
    );
    let codes: Vec<_> = mm.vmas().map(|v| mmprep::procfs::vmflags(v, false).join(" ")).collect();
    assert_eq!(codes, ["rd mr mw me", "rd mr mw me ac", "rd mr mw me"]);
}

/// MAP_NORESERVE and MAP_STACK change the flags (`nr` instead of `ac`; `nh`), so neighbours stay
/// apart; MAP_FIXED with equal attributes over the middle of a written VMA re-merges.
/// (`unit-flags-fixed-mprotect-hole.scn`, lines 2-9; vma-rules 8.10, 8.11)
#[test]
fn flags_keep_apart_and_fixed_remerges() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 1, Prot::RW);
    mm.mmap(page(1), pages(1), Prot::RW, ANON | mmprep::MapFlags::NORESERVE, None, 0)
        .unwrap();
    mm.mmap(page(2), pages(1), Prot::RW, ANON | mmprep::MapFlags::STACK, None, 0)
        .unwrap();
    assert_eq!(mm.vmas().count(), 3);
    // aaa      written
    // a*a      MAP_FIXED of page 1: unmapped, re-mapped, merges with both (same anon_vma)
    map_anon(&mut mm, 16, 19, Prot::RW);
    write_touch(&mut mm, 16, 19);
    map_anon(&mut mm, 17, 18, Prot::RW);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00002000 rw-p 00000000
         00002000-00003000 rw-p 00000000
         00010000-00013000 rw-p 00000000"
    );
}

/// mprotect splits a VMA, restoring the protection merges it back, and a hole stops the walk
/// with ENOMEM after the VMA before it changed. (`unit-flags-fixed-mprotect-hole.scn`, 11-18)
#[test]
fn mprotect_split_restore_then_hole() {
    let mut mm = new_mm();
    // 01234567
    // AAA.BBB      two rw VMAs, hole at page 3
    map_anon(&mut mm, 0, 3, Prot::RW);
    map_anon(&mut mm, 4, 7, Prot::RW);
    //  ^           page 1 r--: A splits in three
    // AaA.BBB
    mm.mprotect(page(1), pages(1), Prot::READ).unwrap();
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00002000 r--p 00000000
         00002000-00003000 rw-p 00000000
         00004000-00007000 rw-p 00000000"
    );
    //  ^           back to rw: prev and next match, the middle is absorbed
    mm.mprotect(page(1), pages(1), Prot::RW).unwrap();
    assert_maps!(
        mm,
        "00000000-00003000 rw-p 00000000
         00004000-00007000 rw-p 00000000"
    );
    // <----->      r-- across the hole: A changes, then the walk stops at page 3
    let err = mm.mprotect(page(0), pages(7), Prot::READ).unwrap_err();
    assert_eq!(err.errno, Errno::ENOMEM, "reason: {}", err.reason);
    assert_maps!(
        mm,
        "00000000-00003000 r--p 00000000
         00004000-00007000 rw-p 00000000"
    );
}

/// munmap of a middle page splits in two; head and tail shrink; bad arguments are EINVAL; an
/// empty range is fine. (`unit-munmap-and-fork-child.scn`, lines 2-9)
#[test]
fn munmap_splits_and_errors() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 8, Prot::RW);
    mm.munmap(page(2), pages(1)).unwrap();
    mm.munmap(page(0), pages(1)).unwrap();
    mm.munmap(page(7), pages(1)).unwrap();
    // .A.AAAA.
    assert_maps!(
        mm,
        "00001000-00002000 rw-p 00000000
         00003000-00007000 rw-p 00000000"
    );
    assert_eq!(
        mm.munmap(mmprep::VirtAddr(page(0).get() + 0x800), pages(1))
            .unwrap_err()
            .errno,
        Errno::EINVAL
    );
    assert_eq!(mm.munmap(page(1), 0).unwrap_err().errno, Errno::EINVAL);
    assert_eq!(mm.munmap(page(1), u64::MAX).unwrap_err().errno, Errno::EINVAL);
    mm.munmap(page(16), pages(1)).unwrap();
    mm.check_invariants();
}

/// In a fork child, a VMA inherited with an anon_vma refuses a new neighbour; one inherited
/// without merges freely. (`unit-munmap-and-fork-child.scn`, lines 11-17; vma-rules 7)
#[test]
fn fork_child_refuses_merge_with_written_vma() {
    let mut mm = new_mm();
    map_anon(&mut mm, 16, 17, Prot::RW);
    write_touch(&mut mm, 16, 17);
    map_anon(&mut mm, 32, 33, Prot::RW);
    let mut child = mm.fork().unwrap();
    child.check_invariants();
    map_anon(&mut child, 17, 18, Prot::RW);
    map_anon(&mut child, 33, 34, Prot::RW);
    assert_maps!(
        child,
        "00010000-00011000 rw-p 00000000
         00011000-00012000 rw-p 00000000
         00020000-00022000 rw-p 00000000"
    );
    // The parent is unaffected: the same mapping merges there.
    map_anon(&mut mm, 17, 18, Prot::RW);
    assert_maps!(
        mm,
        "00010000-00012000 rw-p 00000000
         00020000-00021000 rw-p 00000000"
    );
}

/// File mappings merge at contiguous offsets of the same open file only; shared anonymous
/// mappings never merge; a page past a mapping's end is SIGSEGV, past the file's end SIGBUS.
/// (`unit-memfd-offsets-shared-anon.scn`)
#[test]
fn memfd_offsets_and_shared_anon() {
    let mut mm = new_mm();
    let m = mm.shmem().memfd_create("m", pages(16));
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &m, 0);
    map_file(&mut mm, 2, 4, Prot::RW, SHARED_FIXED, &m, 2);
    map_file(&mut mm, 4, 6, Prot::RW, SHARED_FIXED, &m, 8);
    map_file(&mut mm, 6, 8, Prot::RW, PRIVATE_FIXED, &m, 10);
    for p in [16, 17] {
        let flags = mmprep::MapFlags::SHARED | mmprep::MapFlags::ANONYMOUS | mmprep::MapFlags::FIXED;
        mm.mmap(page(p), pages(1), Prot::RW, flags, None, 0).unwrap();
    }
    assert_maps!(
        mm,
        "00000000-00004000 rw-s 00000000
         00004000-00006000 rw-s 00008000
         00006000-00008000 rw-p 0000a000
         00010000-00011000 rw-s 00000000
         00011000-00012000 rw-s 00000000"
    );
    assert_eq!(mm.access(page(8), mmprep::Access::Read), Err(mmprep::Signal::Segv));
    let small = mm.shmem().memfd_create("small", pages(1));
    map_file(&mut mm, 32, 34, Prot::READ, SHARED_FIXED, &small, 0);
    assert_eq!(mm.access(page(32), mmprep::Access::Read), Ok(()));
    assert_eq!(mm.access(page(33), mmprep::Access::Read), Err(mmprep::Signal::Bus));
}

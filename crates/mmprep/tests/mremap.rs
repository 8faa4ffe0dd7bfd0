//! `mremap` on the engine, in the style of the kernel's `tools/testing/vma` and
//! `tools/testing/selftests/mm/mremap_test.c`: a layout drawn on a page ruler, one call per
//! step, the whole map asserted after each step, contents checked with `Mm::read`, the
//! invariants checked every time.
//!
//! Every expected layout and errno is the host kernel's: each test names the scenario under
//! `tests/scenarios/` whose checked-in `.expected` transcript (made by `mmprep kernel`) shows the
//! same steps, or the host-verified row of `docs/reference/vma-rules.md` it checks (limits,
//! placement). Ruler: one column per 4 KiB page above the base; upper case letters are VMAs
//! without an anon_vma, lower case with one, `.` a hole.

mod common;

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMremap, VmOpen};
use std::sync::{Arc, Mutex};

use common::*;
use mmprep::desc::VmAreaDesc;
use mmprep::events::Event;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::flags::{VmaBit, VmaFlags};
use mmprep::uapi::mremap::{DONTUNMAP, FIXED, MAYMOVE};
use mmprep::vma::{FaultResult, VmFault, VmOperations, Vma};
use mmprep::vma_flags;
use mmprep::{Errno, Error, MapFlags, Mm, Profile, Prot, Result, VirtAddr};

const NONE: VirtAddr = VirtAddr(0);

/// Writes `byte` over pages `[from, to)`.
fn fill(mm: &mut Mm, from: u64, to: u64, byte: u8) {
    mm.fill(page(from), pages(to - from), byte)
        .expect("the pages are writable");
    mm.check_invariants();
}

/// The bytes of pages `[from, to)`, one byte per page (the first of each), or the page where a
/// read faulted.
fn bytes(mm: &mut Mm, from: u64, to: u64) -> std::result::Result<Vec<u8>, u64> {
    let mut out = Vec::new();
    for p in from..to {
        let mut buf = [0u8; 4096];
        mm.read(page(p), &mut buf).map_err(|f| (f.addr.get() - BASE) / 4096)?;
        assert!(buf.iter().all(|b| *b == buf[0]), "page {p} is not uniform");
        out.push(buf[0]);
    }
    Ok(out)
}

fn errno<T: std::fmt::Debug>(r: Result<T>) -> Errno {
    r.expect_err("the call should fail").errno
}

/// The anon_vma identity of the VMA at page `p`.
fn anon_id(mm: &Mm, p: u64) -> Option<u64> {
    mm.vma_at(page(p)).unwrap().anon_vma().map(|a| a.id.0)
}

/// A fixed move carries the pages; growing in place adds zero pages; shrinking then growing
/// gives zeros, not the old data; moving part of a written VMA takes that part's pages.
/// (`mremap-contents.scn`)
#[test]
fn moves_carry_contents() {
    let mut mm = new_mm();
    // 0123               A rw-, each page its own byte
    map_anon(&mut mm, 0, 4, Prot::RW);
    for p in 0..4 {
        fill(&mut mm, p, p + 1, p as u8 + 1);
    }
    // ....|aaaa          whole A to page 16 (64K)
    let at = mm
        .mremap(page(0), pages(4), pages(4), MAYMOVE | FIXED, page(16))
        .unwrap();
    assert_eq!(at, page(16));
    assert_maps!(mm, "00010000-00014000 rw-p 00000000");
    assert_eq!(bytes(&mut mm, 16, 20), Ok(vec![1, 2, 3, 4]));
    assert_eq!(bytes(&mut mm, 0, 1), Err(0), "the old range is a hole");
    //     aaaaaa         grown in place by two pages: zeros
    mm.mremap(page(16), pages(4), pages(6), 0, NONE).unwrap();
    assert_eq!(bytes(&mut mm, 16, 22), Ok(vec![1, 2, 3, 4, 0, 0]));
    //     aa             shrink to 2, grow to 4 again: the dropped pages come back empty
    mm.mremap(page(16), pages(6), pages(2), 0, NONE).unwrap();
    mm.mremap(page(16), pages(2), pages(4), 0, NONE).unwrap();
    assert_eq!(bytes(&mut mm, 16, 20), Ok(vec![1, 2, 0, 0]));
    //     a.aa  ...a     page 17 alone to page 32 (128K)
    mm.mremap(page(17), pages(1), pages(1), MAYMOVE | FIXED, page(32))
        .unwrap();
    assert_maps!(
        mm,
        "00010000-00011000 rw-p 00000000
         00012000-00014000 rw-p 00000000
         00020000-00021000 rw-p 00000000"
    );
    assert_eq!(bytes(&mut mm, 16, 18), Err(17));
    assert_eq!(bytes(&mut mm, 32, 33), Ok(vec![2]));
}

/// A shrink unmaps `[addr + new, addr + old)` wherever it lies: across VMAs and holes, no
/// EFAULT; an end inside the VMA splits it. (`mremap-shrink.scn`)
#[test]
fn shrink_unmaps_the_tail() {
    let mut mm = new_mm();
    // 0123       AAAA -> AA
    map_anon(&mut mm, 0, 4, Prot::RW);
    assert_eq!(mm.mremap(page(0), pages(4), pages(2), 0, NONE), Ok(page(0)));
    assert_maps!(mm, "00000000-00002000 rw-p 00000000");
    // 8901 (page 8)   EEEE, old 6K -> 2 pages, new 1K -> 1 page: E.EE
    map_anon(&mut mm, 8, 12, Prot::RW);
    mm.mremap(page(8), 6 * 1024, 1024, 0, NONE).unwrap();
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00008000-00009000 rw-p 00000000
         0000a000-0000c000 rw-p 00000000"
    );
    // 6789A (page 16)  BB.CD -> B: the tail spans B, a hole, C and D
    map_anon(&mut mm, 16, 18, Prot::RW);
    map_anon(&mut mm, 19, 20, Prot::READ);
    mm.mmap(
        page(20),
        pages(1),
        Prot::RW,
        MapFlags(ANON.0 | MapFlags::NORESERVE.0),
        None,
        0,
    )
    .unwrap();
    mm.mremap(page(16), pages(5), pages(1), 0, NONE).unwrap();
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00008000-00009000 rw-p 00000000
         0000a000-0000c000 rw-p 00000000
         00010000-00011000 rw-p 00000000"
    );
}

/// Growing without MAYMOVE works only where the range ends its VMA and the space above is
/// free; the extension is a new-range merge, so a matching VMA it comes to touch is swallowed.
/// (`mremap-grow-in-place.scn`, `mremap-grow-merge.scn`; vma-rules 4.6 row 23)
#[test]
fn grow_in_place_and_merge_next() {
    let mut mm = new_mm();
    // 01 2          AA, grown to 4 pages
    map_anon(&mut mm, 0, 2, Prot::RW);
    fill(&mut mm, 0, 2, 0x41);
    assert_eq!(mm.mremap(page(0), pages(2), pages(4), 0, NONE), Ok(page(0)));
    assert_maps!(mm, "00000000-00004000 rw-p 00000000");
    assert_eq!(bytes(&mut mm, 0, 4), Ok(vec![0x41, 0x41, 0, 0]));
    // aaaa.N        N (noreserve) at page 5 blocks 6 pages; a prefix of A cannot grow either
    mm.mmap(
        page(5),
        pages(1),
        Prot::RW,
        MapFlags(ANON.0 | MapFlags::NORESERVE.0),
        None,
        0,
    )
    .unwrap();
    assert_eq!(errno(mm.mremap(page(0), pages(4), pages(6), 0, NONE)), Errno::ENOMEM);
    assert_eq!(errno(mm.mremap(page(0), pages(1), pages(2), 0, NONE)), Errno::ENOMEM);
    assert_maps!(
        mm,
        "00000000-00004000 rw-p 00000000
         00005000-00006000 rw-p 00000000"
    );

    // 0123 (page 32)  A..B grown to touch B: one VMA, then grown again: still one
    map_anon(&mut mm, 32, 33, Prot::RW);
    map_anon(&mut mm, 35, 36, Prot::RW);
    mm.mremap(page(32), pages(1), pages(3), 0, NONE).unwrap();
    mm.mremap(page(32), pages(4), pages(8), 0, NONE).unwrap();
    assert_maps!(
        mm,
        "00000000-00004000 rw-p 00000000
         00005000-00006000 rw-p 00000000
         00020000-00028000 rw-p 00000000"
    );
}

/// A blocked grow with MAYMOVE moves the VMA out of the way and unmaps the old range; with
/// FIXED it grows at the destination; with room above, MAYMOVE still grows in place.
/// (`mremap-grow-maymove.scn`)
#[test]
fn grow_with_maymove_moves() {
    let mut mm = new_mm();
    // 012           AAN: N blocks A
    map_anon(&mut mm, 0, 2, Prot::RW);
    fill(&mut mm, 0, 2, 0x41);
    mm.mmap(
        page(2),
        pages(1),
        Prot::RW,
        MapFlags(ANON.0 | MapFlags::NORESERVE.0),
        None,
        0,
    )
    .unwrap();
    let at = mm.mremap(page(0), pages(2), pages(4), MAYMOVE, NONE).unwrap();
    assert!(
        at.get() > BASE + (1 << 30),
        "placed by get_unmapped_area, above the window"
    );
    assert_eq!(mm.vma_at(at).unwrap().end(), VirtAddr(at.get() + pages(4)));
    let mut buf = [0u8; 2];
    mm.read(VirtAddr(at.get() + pages(2) - 1), &mut buf).unwrap();
    assert_eq!(buf, [0x41, 0], "the data moved, the growth is zero");
    mm.munmap(at, pages(4)).unwrap();
    assert_maps!(mm, "00002000-00003000 rw-p 00000000");

    //               FIXED: grow to 4 pages at page 16
    map_anon(&mut mm, 0, 2, Prot::RW);
    fill(&mut mm, 0, 2, 0x42);
    assert_eq!(
        mm.mremap(page(0), pages(2), pages(4), MAYMOVE | FIXED, page(16)),
        Ok(page(16))
    );
    // MAYMOVE with room above: in place
    assert_eq!(mm.mremap(page(16), pages(4), pages(5), MAYMOVE, NONE), Ok(page(16)));
    assert_maps!(
        mm,
        "00002000-00003000 rw-p 00000000
         00010000-00015000 rw-p 00000000"
    );
    assert_eq!(bytes(&mut mm, 16, 21), Ok(vec![0x42, 0x42, 0, 0, 0]));
}

/// FIXED with equal lengths moves every VMA of the range by the same offset, holes and flags
/// kept; the range may end in a hole, not start in one. (`mremap-move-multi.scn`; vma-rules
/// checklist 23)
#[test]
fn move_only_moves_several_vmas() {
    let mut mm = new_mm();
    // 0123          ab.c   a rw-, b r--, c rw- noreserve, all written
    map_anon(&mut mm, 0, 2, Prot::RW);
    fill(&mut mm, 0, 1, 0x61);
    fill(&mut mm, 1, 2, 0x62);
    mm.mprotect(page(1), pages(1), Prot::READ).unwrap();
    mm.mmap(
        page(3),
        pages(1),
        Prot::RW,
        MapFlags(ANON.0 | MapFlags::NORESERVE.0),
        None,
        0,
    )
    .unwrap();
    fill(&mut mm, 3, 4, 0x63);
    // (page 16)     ab.c
    assert_eq!(
        mm.mremap(page(0), pages(4), pages(4), MAYMOVE | FIXED, page(16)),
        Ok(page(16))
    );
    assert_maps!(
        mm,
        "00010000-00011000 rw-p 00000000
         00011000-00012000 r--p 00000000
         00013000-00014000 rw-p 00000000"
    );
    assert_eq!(bytes(&mut mm, 16, 18), Ok(vec![0x61, 0x62]));
    assert_eq!(bytes(&mut mm, 19, 20), Ok(vec![0x63]));
    // A range ending in a hole moves; one starting in a hole is EFAULT, even with a VMA after
    // the hole.
    assert_eq!(
        mm.mremap(page(16), pages(6), pages(6), MAYMOVE | FIXED, page(32)),
        Ok(page(32))
    );
    assert_eq!(
        errno(mm.mremap(page(34), pages(2), pages(2), MAYMOVE | FIXED, page(64))),
        Errno::EFAULT
    );
    assert_maps!(
        mm,
        "00020000-00021000 rw-p 00000000
         00021000-00022000 r--p 00000000
         00023000-00024000 rw-p 00000000"
    );
}

/// An unwritten anonymous VMA takes its new address as its pgoff and merges where it lands; a
/// written one keeps its pgoff and its anon_vma, so it merges only where that pgoff continues a
/// neighbour's, which then adopts its anon_vma (`ac` survives mprotect r--).
/// (`mremap-merge-unfaulted.scn`, `mremap-merge-adopts-anon-vma.scn`; vma-rules 2.6)
#[test]
fn copies_merge_by_pgoff_and_carry_their_anon_vma() {
    let mut mm = new_mm();
    // 01..4         T at 0, U unwritten at 4: U moved to 1 -> TT
    map_anon(&mut mm, 0, 1, Prot::RW);
    map_anon(&mut mm, 4, 5, Prot::RW);
    mm.mremap(page(4), pages(1), pages(1), MAYMOVE | FIXED, page(1))
        .unwrap();
    assert_maps!(mm, "00000000-00002000 rw-p 00000000");
    // (page 16)     W, v written at 20 moved to 17: pgoff 20 does not continue W's 16
    map_anon(&mut mm, 16, 17, Prot::RW);
    map_anon(&mut mm, 20, 21, Prot::RW);
    write_touch(&mut mm, 20, 21);
    mm.mremap(page(20), pages(1), pages(1), MAYMOVE | FIXED, page(17))
        .unwrap();
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00010000-00011000 rw-p 00000000
         00011000-00012000 rw-p 00000000"
    );

    // (page 32)     a written at 32 (pgoff 32), away to 42, B unwritten at 33, a back:
    //               a.B -> aa (B grows down over a and adopts a's anon_vma)
    map_anon(&mut mm, 32, 33, Prot::RW);
    fill(&mut mm, 32, 33, 0x61);
    let a = anon_id(&mm, 32);
    mm.mremap(page(32), pages(1), pages(1), MAYMOVE | FIXED, page(42))
        .unwrap();
    map_anon(&mut mm, 33, 34, Prot::RW);
    mm.mremap(page(42), pages(1), pages(1), MAYMOVE | FIXED, page(32))
        .unwrap();
    assert_eq!(mm.vma_at(page(32)).unwrap().start(), page(32));
    assert_eq!(mm.vma_at(page(32)).unwrap().end(), page(34));
    assert_eq!(anon_id(&mm, 33), a, "the survivor took the copied-from anon_vma");
    mm.mprotect(page(32), pages(2), Prot::READ).unwrap();
    assert!(
        mm.vma_at(page(32)).unwrap().flags().test(VmaBit::Account),
        "ac kept: it has an anon_vma"
    );
    assert_eq!(bytes(&mut mm, 32, 34), Ok(vec![0x61, 0]));
    mm.check_invariants();
}

/// The copy of a fork child's written VMA does not merge into an unwritten neighbour (its
/// copied-from VMA has a forked chain); in the parent it does. (`mremap-copy-fork-child.scn`,
/// with a memfd in place of the tmpfile; vma-rules 2.2)
#[test]
fn fork_child_copy_does_not_merge() {
    let mut parent = new_mm();
    let f = parent.shmem().memfd_create("t", pages(16));
    // 0   45        a = file page 0, written (CoW); B = file page 1 at page 5
    map_file(&mut parent, 0, 1, Prot::RW, PRIVATE_FIXED, &f, 0);
    fill(&mut parent, 0, 1, 8);
    map_file(&mut parent, 5, 6, Prot::RW, PRIVATE_FIXED, &f, 1);
    let mut child = parent.fork().unwrap();
    // parent:     aB at 4: one VMA
    parent
        .mremap(page(0), pages(1), pages(1), MAYMOVE | FIXED, page(4))
        .unwrap();
    assert_maps!(parent, "00004000-00006000 rw-p 00000000");
    // child:      a  B stay two VMAs
    child
        .mremap(page(0), pages(1), pages(1), MAYMOVE | FIXED, page(4))
        .unwrap();
    assert_maps!(
        child,
        "00004000-00005000 rw-p 00000000
         00005000-00006000 rw-p 00001000"
    );
    assert_eq!(bytes(&mut child, 4, 6), Ok(vec![8, 0]));
}

/// DONTUNMAP: the source stays mapped and empty, keeps `ac`, loses `lo` on the whole VMA, and a
/// source moved whole drops its anon_vma; a source moved in part keeps it. `locked_vm` counts
/// the locked VMAs' pages. (`mremap-dontunmap-anon-vma.scn`, `mremap-dontunmap.scn`)
#[test]
fn dontunmap_empties_and_unlocks_the_source() {
    let mut mm = new_mm();
    let locked = MapFlags(ANON.0 | MapFlags::LOCKED.0);
    // 012           s locked (populated: written), to page 16
    mm.mmap(page(0), pages(3), Prot::RW, locked, None, 0).unwrap();
    fill(&mut mm, 0, 3, 5);
    let committed = mm.stats().committed;
    mm.mremap(page(0), pages(3), pages(3), MAYMOVE | FIXED | DONTUNMAP, page(16))
        .unwrap();
    let src = mm.vma_at(page(0)).unwrap();
    assert!(!src.flags().test_any(vma_flags![Locked, LockOnFault]));
    assert!(src.flags().test(VmaBit::Account));
    assert_eq!(src.anon_vma(), None, "moved whole: anon_vma unlinked");
    assert!(mm.vma_at(page(16)).unwrap().flags().test(VmaBit::Locked));
    assert_eq!(
        mm.stats().committed,
        committed + 3,
        "the copy is charged, the source keeps its charge"
    );
    assert_eq!(mm.stats().locked_vm, 3);
    assert_eq!(bytes(&mut mm, 0, 3), Ok(vec![0, 0, 0]));
    assert_eq!(bytes(&mut mm, 16, 19), Ok(vec![5, 5, 5]));
    // (page 32)     the middle page of a locked VMA: the source stays one VMA
    mm.mmap(page(32), pages(3), Prot::RW, locked, None, 0).unwrap();
    fill(&mut mm, 32, 35, 6);
    mm.mremap(page(33), pages(1), pages(1), MAYMOVE | FIXED | DONTUNMAP, page(48))
        .unwrap();
    assert_maps!(
        mm,
        "00000000-00003000 rw-p 00000000
         00010000-00013000 rw-p 00000000
         00020000-00023000 rw-p 00000000
         00030000-00031000 rw-p 00000000"
    );
    assert!(
        mm.vma_at(page(32)).unwrap().anon_vma().is_some(),
        "moved in part: anon_vma kept"
    );
    assert!(!mm.vma_at(page(32)).unwrap().flags().test(VmaBit::Locked));
    assert_eq!(mm.stats().locked_vm, 4);
    assert_eq!(bytes(&mut mm, 32, 35), Ok(vec![6, 0, 6]));
    assert_eq!(bytes(&mut mm, 48, 49), Ok(vec![6]));
}

/// `old_len == 0` on a shared mapping maps the same object a second time; on a private one it
/// is EINVAL; without MAYMOVE it is ENOMEM. (`mremap-old-len-zero.scn`; vma-rules 4.6 row 16)
#[test]
fn old_len_zero_duplicates_a_shared_mapping() {
    let mut mm = new_mm();
    let shared_anon = MapFlags(MapFlags::SHARED.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED.0);
    // 01   45       ss shared anon, pp private anon
    mm.mmap(page(0), pages(2), Prot::RW, shared_anon, None, 0).unwrap();
    fill(&mut mm, 0, 2, 0x73);
    assert_eq!(mm.mremap(page(0), 0, pages(2), MAYMOVE | FIXED, page(16)), Ok(page(16)));
    assert_eq!(bytes(&mut mm, 16, 18), Ok(vec![0x73, 0x73]));
    fill(&mut mm, 17, 18, 0x74);
    assert_eq!(bytes(&mut mm, 0, 2), Ok(vec![0x73, 0x74]), "one object, two mappings");
    assert_eq!(errno(mm.mremap(page(0), 0, pages(1), 0, NONE)), Errno::ENOMEM);
    map_anon(&mut mm, 4, 6, Prot::RW);
    assert_eq!(
        errno(mm.mremap(page(4), 0, pages(2), MAYMOVE | FIXED, page(32))),
        Errno::EINVAL
    );
    assert_eq!(errno(mm.mremap(page(4), 0, pages(2), 0, NONE)), Errno::EINVAL);
    assert_eq!(mm.vmas().count(), 3);
    let same_object = |a: u64, b: u64| {
        let (x, y) = (mm.vma_at(page(a)).unwrap(), mm.vma_at(page(b)).unwrap());
        x.file().unwrap().inode().ino() == y.file().unwrap().inode().ino()
    };
    assert!(same_object(0, 16));
}

/// The argument checks, in the kernel's order, all before anything changes. (`mremap-errno.scn`,
/// `mremap-efault.scn`, `mremap-checks-before-dest.scn`; vma-rules 4.6 rows 1-18, checklist 24)
#[test]
fn checks_in_order_change_nothing() {
    let mut mm = new_mm();
    // 01  ....  4567   A rw-, D written at page 16 (a FIXED destination)
    map_anon(&mut mm, 0, 2, Prot::RW);
    map_anon(&mut mm, 16, 18, Prot::RW);
    fill(&mut mm, 16, 18, 0x44);
    let before = layout(&mm);
    let cases: &[(u64, u64, u64, u32, u64, Errno)] = &[
        // (addr page, old, new, flags, new_addr page, errno)
        (0, pages(2), pages(2), 8, 0, Errno::EINVAL),         // unknown flag
        (0, pages(2), pages(2), FIXED, 16, Errno::EINVAL),    // FIXED without MAYMOVE
        (0, pages(2), pages(2), DONTUNMAP, 0, Errno::EINVAL), // DONTUNMAP without MAYMOVE
        (0, pages(2), pages(4), MAYMOVE | DONTUNMAP, 0, Errno::EINVAL), // DONTUNMAP resizing
        (0, pages(2), 0, MAYMOVE, 0, Errno::EINVAL),          // new_len 0
        (0, pages(2), pages(2), MAYMOVE | FIXED, 1, Errno::EINVAL), // overlap
        (8, pages(1), 0, 0, 0, Errno::EINVAL),                // new_len 0 before the lookup
        (8, pages(1), pages(1), MAYMOVE | FIXED, 16, Errno::EFAULT), // hole at addr
        (0, pages(3), pages(4), MAYMOVE | FIXED, 16, Errno::EFAULT), // past the VMA's end
        (0, 0, pages(2), MAYMOVE | FIXED, 16, Errno::EINVAL), // old 0, private
        (0, pages(2), pages(2), MAYMOVE | FIXED | DONTUNMAP, 1, Errno::EINVAL), // overlap
    ];
    for &(p, old, new, flags, to, want) in cases {
        let got = errno(mm.mremap(page(p), old, new, flags, page(to)));
        assert_eq!(got, want, "mremap(page {p}, {old:#x}, {new:#x}, {flags:#x}, page {to})");
        assert_eq!(layout(&mm), before, "nothing changes");
    }
    assert_eq!(
        errno(mm.mremap(VirtAddr(BASE + 1), pages(1), pages(1), 0, NONE)),
        Errno::EINVAL
    );
    // The destination of those FIXED calls still holds its data.
    assert_eq!(bytes(&mut mm, 16, 18), Ok(vec![0x44, 0x44]));
    mm.check_invariants();
}

/// The `map_count` margins (vma-rules 3.2, host-verified rows): FIXED or DONTUNMAP fails once
/// `map_count + 2 >= max - 3`; a move without FIXED once `map_count >= max - 3`; growing in place
/// never; a shrink that splits its VMA twice at `map_count >= max`.
#[test]
fn map_count_margins() {
    let max = Profile::reference_host().max_map_count;
    // An address space whose count is `count` with two VMAs of its own: A (4 pages) and a
    // blocker right above it.
    let at = |count: u64| {
        let mut p = Profile::reference_host();
        p.unmodelled_map_count = count - 2;
        let mut mm = Mm::new(p);
        map_anon(&mut mm, 0, 4, Prot::RW);
        map_anon(&mut mm, 4, 5, Prot::READ);
        assert_eq!(mm.map_count(), count);
        mm
    };
    let fixed = |mm: &mut Mm| mm.mremap(page(0), pages(4), pages(4), MAYMOVE | FIXED, page(16));
    let moved = |mm: &mut Mm| mm.mremap(page(0), pages(4), pages(8), MAYMOVE, NONE);
    assert!(fixed(&mut at(max - 6)).is_ok(), "65524: FIXED ok");
    assert_eq!(errno(fixed(&mut at(max - 5))), Errno::ENOMEM, "65525: FIXED refused");
    assert!(moved(&mut at(max - 4)).is_ok(), "65526: move ok");
    assert_eq!(errno(moved(&mut at(max - 2))), Errno::ENOMEM, "65528: move refused");
    // Growing in place at the limit: fine.
    let mut mm = at(max);
    mm.munmap(page(4), pages(1)).unwrap();
    map_anon(&mut mm, 8, 9, Prot::READ);
    assert_eq!(mm.mremap(page(0), pages(4), pages(6), 0, NONE), Ok(page(0)));
    // A shrink unmapping the middle of a VMA (old range ends inside it): refused at max.
    let mut mm = at(max);
    assert_eq!(errno(mm.mremap(page(0), pages(3), pages(1), 0, NONE)), Errno::ENOMEM);
    assert_eq!(
        mm.mremap(page(0), pages(4), pages(1), 0, NONE),
        Ok(page(0)),
        "a tail: fine"
    );
    mm.check_invariants();
}

/// An anonymous move to a 2 MiB multiple is placed 2 MiB aligned (vma-rules 5.3, host-verified
/// for mremap moves); 1 MiB is not aligned on purpose.
#[test]
fn anonymous_moves_are_thp_aligned() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 1, Prot::RW);
    map_anon(&mut mm, 1, 2, Prot::READ);
    let at = mm.mremap(page(0), pages(1), 2 << 20, MAYMOVE, NONE).unwrap();
    assert_eq!(at.get() % (2 << 20), 0, "{at:?}");
    let small = mm.mremap(at, 2 << 20, 4 << 20, MAYMOVE, NONE).unwrap();
    assert_eq!(small.get() % (2 << 20), 0, "grew in place or moved aligned: {small:?}");
    mm.check_invariants();
}

/// `VM_ACCOUNT`: growth is charged, a shrink releases, a move of the same size charges
/// nothing; a `noreserve` mapping is never charged. `committed` stays the `ac` pages.
#[test]
fn commit_charge_follows_the_size() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 2, Prot::RW);
    assert_eq!(mm.stats().committed, 2);
    mm.mremap(page(0), pages(2), pages(5), 0, NONE).unwrap();
    assert_eq!(mm.stats().committed, 5);
    mm.mremap(page(0), pages(5), pages(3), MAYMOVE | FIXED, page(16))
        .unwrap();
    assert_eq!(
        mm.stats().committed,
        3,
        "shrink and move: the tail is released, nothing charged"
    );
    mm.mremap(page(16), pages(3), pages(6), MAYMOVE | FIXED, page(32))
        .unwrap();
    assert_eq!(mm.stats().committed, 6);
    mm.mmap(
        page(64),
        pages(2),
        Prot::RW,
        MapFlags(ANON.0 | MapFlags::NORESERVE.0),
        None,
        0,
    )
    .unwrap();
    mm.mremap(page(64), pages(2), pages(4), 0, NONE).unwrap();
    assert_eq!(mm.stats().committed, 6);
    assert_eq!(mm.stats().total_vm, 10);
    mm.check_invariants();
}

/// Every allocation of a move failing in turn: `ENOMEM` or success, never a broken address
/// space (the kernel's `fail_prealloc` style; rollback paths of `copy_vma` and the unmaps).
#[test]
fn allocation_failures_keep_the_invariants() {
    for flags in [MAYMOVE | FIXED, MAYMOVE | FIXED | DONTUNMAP] {
        let mut outcomes = Vec::new();
        for n in 0..12 {
            let mut mm = new_mm();
            // 0123 4       a written, middle part moved next to a written neighbour
            map_anon(&mut mm, 0, 4, Prot::RW);
            fill(&mut mm, 0, 4, 1);
            map_anon(&mut mm, 16, 17, Prot::RW);
            mm.fail_allocation_in(n);
            let r = mm.mremap(page(1), pages(2), pages(2), flags, page(17));
            match &r {
                Ok(at) => assert_eq!(*at, page(17)),
                Err(e) => assert_eq!(e.errno, Errno::ENOMEM, "allocation {n}: {}", e.reason),
            }
            mm.check_invariants();
            outcomes.push((r.is_ok(), mm.vmas().count()));
        }
        assert!(
            outcomes.iter().any(|o| !o.0) && outcomes.last().unwrap().0,
            "{outcomes:?}"
        );
    }
}

/// A test driver: counts its hooks, and may refuse `mremap` or set VMA flags at prepare time.
struct Driver {
    log: Arc<Mutex<Vec<String>>>,
    refuse_mremap: bool,
    flags: VmaFlags,
}

struct Ops {
    log: Arc<Mutex<Vec<String>>>,
    refuse_mremap: bool,
}

fn pg(a: VirtAddr) -> u64 {
    (a.get() - BASE) / 4096
}

impl FileOperations for Driver {
    fn name(&self) -> &'static str {
        "remapdrv"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Driver {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.set_flag_bits(self.flags);
        desc.set_vm_ops(Arc::new(Ops {
            log: self.log.clone(),
            refuse_mremap: self.refuse_mremap,
        }));
        Ok(())
    }
}

impl VmOperations for Ops {
    fn ops_name(&self) -> &'static str {
        "remapdrv_vm_ops"
    }
    fn open(&self) -> Option<&dyn VmOpen> {
        Some(self)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        Some(self)
    }
    fn mremap(&self) -> Option<&dyn VmMremap> {
        Some(self)
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
}

impl VmOpen for Ops {
    fn open(&self, vma: &Vma) {
        self.log
            .lock()
            .unwrap()
            .push(format!("open {}-{}", pg(vma.start()), pg(vma.end())));
    }
}

impl VmClose for Ops {
    fn close(&self, vma: &Vma) {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {}-{}", pg(vma.start()), pg(vma.end())));
    }
}

impl VmMremap for Ops {
    fn mremap(&self, new_vma: &Vma) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("mremap {}-{}", pg(new_vma.start()), pg(new_vma.end())));
        if self.refuse_mremap {
            return Err(Error::new(Errno::EBUSY, "the test driver refuses to move"));
        }
        Ok(())
    }
}

impl VmFaultHandler for Ops {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let frame = vmf.machine().alloc_frame();
        frame.fill(0, 4096, 0x5a);
        vmf.set_page(frame);
        FaultResult::Ok
    }
}

fn driver_file(refuse_mremap: bool, flags: VmaFlags) -> (Arc<File>, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 98 }, 9, InodeKind::CharDevice, 0));
    let ops = Driver {
        log: log.clone(),
        refuse_mremap,
        flags,
    };
    let file = File::new(inode, FileMode::READ_WRITE, Arc::new(ops), "/dev/remap".into(), false);
    (file, log)
}

fn take(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// A driver VMA moved whole: `open` on the copy, `mremap` with the copy, `close` on the source
/// (mm/vma.c:copy_vma, mm/mremap.c:copy_vma_and_data, unmap_source_vma; pipeline 15). The hook
/// log records the `mremap` call.
#[test]
fn driver_hooks_on_a_move() {
    let mut mm = new_mm();
    mm.set_event_log(true);
    let (f, log) = driver_file(false, VmaFlags::EMPTY);
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    assert_eq!(bytes(&mut mm, 0, 2), Ok(vec![0x5a, 0x5a]));
    take(&log);
    mm.take_events();
    mm.mremap(page(0), pages(2), pages(2), MAYMOVE | FIXED, page(8))
        .unwrap();
    assert_eq!(take(&log), ["open 8-10", "mremap 8-10", "close 0-2"]);
    let events = mm.take_events();
    assert!(
        events.iter().any(|e| matches!(e, Event::Mremap { result: Ok(()), .. })),
        "{events:?}"
    );
    assert_maps!(mm, "00008000-0000a000 rw-s 00000000");
}

/// The driver refuses in `mremap`: the entries move back, the copy is unmapped (its `close`
/// runs), the source is whole again with its pages, and the driver's errno is returned.
#[test]
fn driver_refusing_mremap_undoes_the_move() {
    let mut mm = new_mm();
    let (f, log) = driver_file(true, VmaFlags::EMPTY);
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    bytes(&mut mm, 0, 2).unwrap();
    take(&log);
    let resident = mm.resident_pages();
    let e = mm
        .mremap(page(0), pages(2), pages(3), MAYMOVE | FIXED, page(8))
        .unwrap_err();
    assert_eq!(e.errno, Errno::EBUSY);
    assert_eq!(take(&log), ["open 8-11", "mremap 8-11", "close 8-11"]);
    assert_maps!(mm, "00000000-00002000 rw-s 00000000");
    assert_eq!(mm.resident_pages(), resident, "the entries are back");
    assert_eq!(mm.stats().total_vm, 2);
}

/// `VM_DONTEXPAND`/`VM_PFNMAP` may move but not grow (EFAULT) nor use DONTUNMAP (EINVAL);
/// `VM_IO`/`VM_MIXEDMAP` (VM_SPECIAL, never merged) cannot grow in place: ENOMEM, even with
/// MAYMOVE (vma-rules 4.6 rows 17, 20; `expand_vma_in_place` when `vma_merge_extend` fails).
#[test]
fn special_mappings_refuse_to_grow() {
    let mut mm = new_mm();
    let (f, _log) = driver_file(false, vma_flags![DontExpand]);
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    assert_eq!(errno(mm.mremap(page(0), pages(2), pages(3), 0, NONE)), Errno::EFAULT);
    assert_eq!(
        errno(mm.mremap(page(0), pages(2), pages(3), MAYMOVE, NONE)),
        Errno::EFAULT
    );
    assert_eq!(
        errno(mm.mremap(page(0), pages(2), pages(2), MAYMOVE | FIXED | DONTUNMAP, page(8))),
        Errno::EINVAL
    );
    assert_eq!(
        mm.mremap(page(0), pages(2), pages(2), MAYMOVE | FIXED, page(8)),
        Ok(page(8))
    );
    assert_eq!(
        mm.mremap(page(8), pages(2), pages(1), 0, NONE),
        Ok(page(8)),
        "shrinking is fine"
    );

    let (g, _log) = driver_file(false, vma_flags![MixedMap]);
    map_file(&mut mm, 16, 17, Prot::RW, SHARED_FIXED, &g, 0);
    assert_eq!(
        errno(mm.mremap(page(16), pages(1), pages(2), MAYMOVE, NONE)),
        Errno::ENOMEM
    );
    assert_maps!(
        mm,
        "00008000-00009000 rw-s 00000000
         00010000-00011000 rw-s 00000000"
    );
}

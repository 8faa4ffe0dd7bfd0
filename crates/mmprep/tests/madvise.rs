//! `madvise` in the style of the kernel's `tools/testing/vma` and `selftests/mm/guard-regions.c`
//! tests: a layout drawn on a page ruler, one call per step, the whole map (or the bytes)
//! asserted after each step, the invariants checked every time.
//!
//! Every expected result is the host kernel's: each test names the scenario under
//! `tests/scenarios/` whose `.expected` transcript (made by `mmprep kernel` on the 6.18.44 host)
//! shows the same steps; the `max_map_count` and allocation-failure tests follow vma-rules 3.2
//! (H) and `mm/madvise.c:madvise_vma_behavior` (S). Ruler: one column per 4 KiB page; upper
//! case letters are VMAs, `d` a page with the advice's flag, `g` a guard page, `.` a hole.

mod common;

use common::*;
use mmprep::uapi::madv;
use mmprep::{Access, Errno, Mm, Profile, Prot, Signal, VirtAddr};

fn errno(r: mmprep::Result<()>) -> Errno {
    r.expect_err("the call fails").errno
}

/// The VmFlags codes of every VMA.
fn codes(mm: &Mm) -> Vec<String> {
    mm.vmas().map(|v| mmprep::procfs::vmflags(v, false).join(" ")).collect()
}

/// `n` pages from `page(from)` as `(byte, count)` runs.
fn runs(mm: &mut Mm, from: u64, n: u64) -> Result<Vec<(u8, usize)>, Signal> {
    let mut buf = vec![0u8; pages(n) as usize];
    mm.read(page(from), &mut buf).map_err(|f| f.signal)?;
    let mut out: Vec<(u8, usize)> = Vec::new();
    for b in buf {
        match out.last_mut() {
            Some((x, c)) if *x == b => *c += 1,
            _ => out.push((b, 1)),
        }
    }
    Ok(out)
}

/// A hint over a whole VMA rewrites it in place, over a head or tail splits once, and a range
/// across two VMAs merges the changed piece into a neighbour that already has the flag; the
/// walk merges alternating pieces as it goes. (`madvise-whole-and-edges.scn`)
#[test]
fn hints_split_and_merge() {
    let mut mm = new_mm();
    // 0123 5678
    // dddd dBBd
    map_anon(&mut mm, 0, 4, Prot::RW);
    mm.madvise(page(0), pages(4), madv::DONTDUMP).unwrap();
    map_anon(&mut mm, 5, 9, Prot::RW);
    mm.madvise(page(5), pages(1), madv::DONTDUMP).unwrap();
    mm.madvise(page(8), pages(1), madv::DONTDUMP).unwrap();
    assert_maps!(
        mm,
        "00000000-00004000 rw-p 00000000
         00005000-00006000 rw-p 00000000
         00006000-00008000 rw-p 00000000
         00008000-00009000 rw-p 00000000"
    );
    // page 16 on: CC DD, C dontdump, then dontdump over C's tail and D's head
    //             ddd D
    map_anon(&mut mm, 16, 18, Prot::RW);
    mm.madvise(page(16), pages(2), madv::DONTDUMP).unwrap();
    map_anon(&mut mm, 18, 20, Prot::RW);
    mm.madvise(page(17), pages(2), madv::DONTDUMP).unwrap();
    assert_eq!(codes(&mm)[4..], ["rd wr mr mw me ac dd", "rd wr mr mw me ac"]);
    // page 32 on: AdAd, then dontfork over all four pages: one VMA
    map_anon(&mut mm, 32, 36, Prot::RW);
    mm.madvise(page(33), pages(1), madv::DONTFORK).unwrap();
    mm.madvise(page(35), pages(1), madv::DONTFORK).unwrap();
    assert_eq!(mm.vmas().count(), 10);
    mm.madvise(page(32), pages(4), madv::DONTFORK).unwrap();
    assert_eq!(mm.vmas().count(), 7);
    assert_eq!(codes(&mm)[6], "rd wr mr mw me dc ac");
    // Undoing an advice merges the pieces back.
    mm.madvise(page(32), pages(4), madv::DOFORK).unwrap();
    mm.madvise(page(5), pages(1), madv::DODUMP).unwrap();
    mm.madvise(page(8), pages(1), madv::DODUMP).unwrap();
    assert_maps!(
        mm,
        "00000000-00004000 rw-p 00000000
         00005000-00009000 rw-p 00000000
         00010000-00013000 rw-p 00000000
         00013000-00014000 rw-p 00000000
         00020000-00024000 rw-p 00000000"
    );
}

/// A hole anywhere in the range is ENOMEM but the walk goes on; an error from a VMA stops it
/// and wins over the hole. (`madvise-hole.scn`, `madvise-error-stops-walk.scn`; vma-rules 8.14)
#[test]
fn holes_continue_and_errors_stop() {
    let mut mm = new_mm();
    // 0123
    // A.B.
    map_anon(&mut mm, 0, 1, Prot::RW);
    map_anon(&mut mm, 2, 3, Prot::RW);
    assert_eq!(errno(mm.madvise(page(0), pages(3), madv::DONTDUMP)), Errno::ENOMEM);
    assert_eq!(errno(mm.madvise(page(0), pages(4), madv::DONTFORK)), Errno::ENOMEM);
    assert_eq!(errno(mm.madvise(page(1), pages(2), madv::WIPEONFORK)), Errno::ENOMEM);
    assert_eq!(codes(&mm), ["rd wr mr mw me dc ac dd", "rd wr mr mw me dc ac wf dd"]);
    assert_eq!(errno(mm.madvise(page(16), pages(1), madv::DONTDUMP)), Errno::ENOMEM);
    assert_eq!(errno(mm.madvise(page(1), pages(1), madv::DONTNEED)), Errno::ENOMEM);
    // Length 0 is fine anywhere; unknown advices and unaligned starts are refused first.
    mm.madvise(page(16), 0, madv::NORMAL).unwrap();
    assert_eq!(errno(mm.madvise(page(16), 0, 999)), Errno::EINVAL);
    assert_eq!(
        errno(mm.madvise(VirtAddr(page(0).0 + 3), 0, madv::NORMAL)),
        Errno::EINVAL
    );
    assert_eq!(errno(mm.madvise(page(0), u64::MAX, madv::NORMAL)), Errno::EINVAL);
    assert_eq!(errno(mm.madvise(page(0), pages(1), madv::HWPOISON)), Errno::EINVAL);

    // page 16 on: p s . r . t     p, r private, s, t shared anonymous
    let shared =
        mmprep::MapFlags(mmprep::MapFlags::SHARED.0 | mmprep::MapFlags::ANONYMOUS.0 | mmprep::MapFlags::FIXED.0);
    map_anon(&mut mm, 16, 17, Prot::RW);
    mm.mmap(page(17), pages(1), Prot::RW, shared, None, 0).unwrap();
    map_anon(&mut mm, 19, 20, Prot::RW);
    mm.mmap(page(21), pages(1), Prot::RW, shared, None, 0).unwrap();
    // p changes, s refuses: EINVAL, r untouched
    assert_eq!(errno(mm.madvise(page(16), pages(4), madv::WIPEONFORK)), Errno::EINVAL);
    // hole, r changes, hole, t refuses: EINVAL, not ENOMEM
    assert_eq!(errno(mm.madvise(page(18), pages(4), madv::WIPEONFORK)), Errno::EINVAL);
    assert_eq!(
        codes(&mm)[2..],
        [
            "rd wr mr mw me ac wf",
            "rd wr sh mr mw me ms",
            "rd wr mr mw me ac wf",
            "rd wr sh mr mw me ms",
        ]
    );
    mm.check_invariants();
}

/// The per-advice refusals (`madvise-errno.scn`; vma-rules 4.4).
#[test]
fn per_advice_errno() {
    let mut mm = new_mm();
    let data = mm.shmem().memfd_create("data", pages(4));
    // 0 1 2 3 4
    // p s m q l    p private anon, s shared anon, m shared memfd, q private memfd, l locked
    map_anon(&mut mm, 0, 1, Prot::RW);
    let shared =
        mmprep::MapFlags(mmprep::MapFlags::SHARED.0 | mmprep::MapFlags::ANONYMOUS.0 | mmprep::MapFlags::FIXED.0);
    mm.mmap(page(1), pages(1), Prot::RW, shared, None, 0).unwrap();
    map_file(&mut mm, 2, 3, Prot::RW, SHARED_FIXED, &data, 0);
    map_file(&mut mm, 3, 4, Prot::RW, PRIVATE_FIXED, &data, 1);
    mm.mmap(page(4), pages(1), Prot::RW, ANON | mmprep::MapFlags::LOCKED, None, 0)
        .unwrap();
    let cases: &[(u64, u32, Option<Errno>)] = &[
        (1, madv::WIPEONFORK, Some(Errno::EINVAL)),
        (2, madv::WIPEONFORK, Some(Errno::EINVAL)),
        (3, madv::WIPEONFORK, Some(Errno::EINVAL)),
        (0, madv::WIPEONFORK, None),
        (1, madv::FREE, Some(Errno::EINVAL)),
        (2, madv::FREE, Some(Errno::EINVAL)),
        (3, madv::FREE, Some(Errno::EINVAL)),
        (0, madv::FREE, None),
        (0, madv::REMOVE, Some(Errno::EINVAL)),
        (3, madv::REMOVE, Some(Errno::EACCES)),
        (1, madv::REMOVE, None),
        (2, madv::REMOVE, None),
        (4, madv::DONTNEED, Some(Errno::EINVAL)),
        (4, madv::DONTNEED_LOCKED, None),
        (4, madv::FREE, Some(Errno::EINVAL)),
        (4, madv::COLD, Some(Errno::EINVAL)),
        (4, madv::PAGEOUT, Some(Errno::EINVAL)),
        (4, madv::GUARD_INSTALL, Some(Errno::EINVAL)),
        (4, madv::GUARD_REMOVE, None),
        (4, madv::REMOVE, Some(Errno::EINVAL)),
        (4, madv::WILLNEED, None),
        (0, madv::COLLAPSE, Some(Errno::EINVAL)),
    ];
    for &(p, advice, want) in cases {
        let got = mm.madvise(page(p), pages(1), advice).err().map(|e| e.errno);
        assert_eq!(got, want, "advice {advice} on page {p}");
    }
    assert_eq!(codes(&mm)[0], "rd wr mr mw me ac wf");
    mm.check_invariants();
}

/// Hints need splits: at `max_map_count` the split's ENOMEM becomes EAGAIN; advices that change
/// no VMA are never refused (vma-rules 3.2, H). An allocation failing in the split is EAGAIN too.
#[test]
fn hint_split_at_the_limit_is_eagain() {
    let mut p = Profile::reference_host();
    p.unmodelled_map_count = p.max_map_count - 1;
    let mut mm = Mm::new(p);
    map_anon(&mut mm, 0, 3, Prot::RW);
    assert_eq!(errno(mm.madvise(page(1), pages(1), madv::DONTDUMP)), Errno::EAGAIN);
    mm.madvise(page(1), pages(1), madv::DONTNEED).unwrap();
    mm.madvise(page(1), pages(1), madv::GUARD_INSTALL).unwrap();
    mm.madvise(page(0), pages(3), madv::DONTDUMP).unwrap();
    assert_maps!(mm, "00000000-00003000 rw-p 00000000");

    let mut mm = new_mm();
    map_anon(&mut mm, 0, 3, Prot::RW);
    mm.fail_allocation_in(0);
    assert_eq!(errno(mm.madvise(page(1), pages(1), madv::DONTFORK)), Errno::EAGAIN);
    assert_maps!(mm, "00000000-00003000 rw-p 00000000");
}

/// dontneed drops pages, not VMAs: private anonymous memory reads zeros again, a private file
/// mapping reads the file again, a shared mapping keeps its data. (`madvise-dontneed-contents.scn`)
#[test]
fn dontneed_contents() {
    let mut mm = new_mm();
    let data = mm.shmem().memfd_create("data", pages(4));
    // 0123 4567 89
    // pppp qqqq ss     p private anon, q private memfd, s shared memfd
    map_anon(&mut mm, 0, 4, Prot::RW);
    mm.fill(page(0), pages(4), 0x41).unwrap();
    mm.madvise(page(1), pages(2), madv::DONTNEED).unwrap();
    assert_eq!(runs(&mut mm, 0, 4), Ok(vec![(0x41, 4096), (0, 8192), (0x41, 4096)]));
    map_file(&mut mm, 8, 10, Prot::RW, SHARED_FIXED, &data, 0);
    mm.fill(page(8), pages(2), 0x42).unwrap();
    map_file(&mut mm, 4, 8, Prot::RW, PRIVATE_FIXED, &data, 0);
    mm.fill(page(4), pages(4), 0x43).unwrap();
    mm.madvise(page(4), pages(4), madv::DONTNEED).unwrap();
    assert_eq!(runs(&mut mm, 4, 4), Ok(vec![(0x42, 8192), (0, 8192)]));
    mm.madvise(page(8), pages(2), madv::DONTNEED).unwrap();
    assert_eq!(runs(&mut mm, 8, 2), Ok(vec![(0x42, 8192)]));
    // remove punches a hole in the file: every mapping of it reads zeros there.
    mm.madvise(page(8), pages(1), madv::REMOVE).unwrap();
    assert_eq!(runs(&mut mm, 4, 2), Ok(vec![(0, 4096), (0x42, 4096)]));
    assert_eq!(mm.vmas().count(), 3);
}

/// Guard pages: install sets `gu` on the whole VMA without splitting it and creates an
/// anon_vma; every access is SIGSEGV; dontneed keeps the marker, guard_remove drops it (the data
/// is gone) but `gu` stays; fork copies the markers; munmap drops them.
/// (`madvise-guard.scn`, `madvise-guard-lifetime.scn`, `madvise-guard-fork.scn`; vma-rules 8.20)
#[test]
fn guard_pages() {
    let mut mm = new_mm();
    // 0123
    // AAgA
    map_anon(&mut mm, 0, 4, Prot::RW);
    mm.fill(page(0), pages(4), 0x41).unwrap();
    mm.madvise(page(2), pages(1), madv::GUARD_INSTALL).unwrap();
    assert_maps!(mm, "00000000-00004000 rw-p 00000000");
    assert_eq!(codes(&mm), ["rd wr mr mw me gu ac"]);
    assert!(mm.vma_at(page(0)).unwrap().anon_vma().is_some());
    assert_eq!(mm.access(page(2), Access::Read), Err(Signal::Segv));
    assert_eq!(mm.access(page(2), Access::Write), Err(Signal::Segv));
    assert_eq!(runs(&mut mm, 0, 4), Err(Signal::Segv));
    assert_eq!(runs(&mut mm, 3, 1), Ok(vec![(0x41, 4096)]));
    // dontneed over it: the marker stays
    mm.madvise(page(0), pages(4), madv::DONTNEED).unwrap();
    assert_eq!(mm.access(page(2), Access::Read), Err(Signal::Segv));
    // populate stops at it
    assert_eq!(
        errno(mm.madvise(page(0), pages(4), madv::POPULATE_WRITE)),
        Errno::EFAULT
    );

    // fork: the child's copy keeps the marker
    mm.madvise(page(0), pages(2), madv::GUARD_INSTALL).unwrap();
    let mut child = mm.fork().unwrap();
    assert_eq!(child.access(page(1), Access::Read), Err(Signal::Segv));
    child.madvise(page(0), pages(4), madv::GUARD_REMOVE).unwrap();
    assert_eq!(runs(&mut child, 0, 4), Ok(vec![(0, 16384)]));
    assert_eq!(codes(&child), ["rd wr mr mw me gu ac"]);
    child.check_invariants();
    // the parent still has its markers; munmap and a new mapping there clear them
    assert_eq!(mm.access(page(0), Access::Read), Err(Signal::Segv));
    mm.munmap(page(0), pages(4)).unwrap();
    map_anon(&mut mm, 0, 4, Prot::RW);
    assert_eq!(runs(&mut mm, 0, 4), Ok(vec![(0, 16384)]));
    assert_eq!(codes(&mm), ["rd wr mr mw me ac"]);

    // A file mapping may be guarded too; the file keeps its data.
    let data = mm.shmem().memfd_create("data", pages(2));
    map_file(&mut mm, 16, 18, Prot::RW, SHARED_FIXED, &data, 0);
    mm.fill(page(16), pages(2), 0x66).unwrap();
    mm.madvise(page(17), pages(1), madv::GUARD_INSTALL).unwrap();
    assert!(
        mm.vma_at(page(16)).unwrap().anon_vma().is_none(),
        "only anonymous VMAs get one"
    );
    assert_eq!(mm.access(page(17), Access::Read), Err(Signal::Segv));
    mm.madvise(page(17), pages(1), madv::GUARD_REMOVE).unwrap();
    assert_eq!(runs(&mut mm, 16, 2), Ok(vec![(0x66, 8192)]));
    mm.check_invariants();
}

/// populate_write faults a writable private VMA in for writing (anon_vma), populate_read does
/// not; unmapped memory is ENOMEM, a VMA the access is not allowed on EINVAL, a page past the
/// end of the file EFAULT. (`madvise-populate.scn`, `madvise-populate-access.scn`)
#[test]
fn populate() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 1, Prot::RW);
    mm.madvise(page(0), pages(1), madv::POPULATE_READ).unwrap();
    assert!(mm.vma_at(page(0)).unwrap().anon_vma().is_none());
    mm.madvise(page(0), pages(1), madv::POPULATE_WRITE).unwrap();
    assert!(mm.vma_at(page(0)).unwrap().anon_vma().is_some());
    assert_eq!(errno(mm.madvise(page(0), pages(2), madv::POPULATE_READ)), Errno::ENOMEM);
    map_anon(&mut mm, 4, 5, Prot::READ);
    assert_eq!(
        errno(mm.madvise(page(4), pages(1), madv::POPULATE_WRITE)),
        Errno::EINVAL
    );
    map_anon(&mut mm, 5, 6, Prot::NONE);
    assert_eq!(errno(mm.madvise(page(4), pages(2), madv::POPULATE_READ)), Errno::EINVAL);
    map_anon(&mut mm, 6, 7, Prot::WRITE);
    assert_eq!(errno(mm.madvise(page(6), pages(1), madv::POPULATE_READ)), Errno::EINVAL);
    mm.madvise(page(6), pages(1), madv::POPULATE_WRITE).unwrap();
    let data = mm.shmem().memfd_create("data", pages(1));
    map_file(&mut mm, 8, 10, Prot::RW, SHARED_FIXED, &data, 0);
    assert_eq!(
        errno(mm.madvise(page(8), pages(2), madv::POPULATE_WRITE)),
        Errno::EFAULT
    );
    assert_eq!(errno(mm.madvise(page(8), pages(2), madv::POPULATE_READ)), Errno::EFAULT);
    mm.madvise(page(8), pages(1), madv::POPULATE_WRITE).unwrap();
    mm.check_invariants();
}

/// mergeable is ignored on shared VMAs, sets `mg` elsewhere; hugepage and nohugepage replace
/// each other. (`madvise-mergeable.scn`, `madvise-undo-remerge.scn`)
#[test]
fn ksm_and_thp_hints() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 3, Prot::RW);
    mm.madvise(page(1), pages(1), madv::MERGEABLE).unwrap();
    let shared =
        mmprep::MapFlags(mmprep::MapFlags::SHARED.0 | mmprep::MapFlags::ANONYMOUS.0 | mmprep::MapFlags::FIXED.0);
    mm.mmap(page(4), pages(2), Prot::RW, shared, None, 0).unwrap();
    mm.madvise(page(4), pages(2), madv::MERGEABLE).unwrap();
    assert_eq!(
        codes(&mm)[1..],
        ["rd wr mr mw me ac mg", "rd wr mr mw me ac", "rd wr sh mr mw me ms"]
    );
    assert_eq!(errno(mm.madvise(page(0), pages(6), madv::UNMERGEABLE)), Errno::ENOMEM);
    assert_maps!(
        mm,
        "00000000-00003000 rw-p 00000000
         00004000-00006000 rw-s 00000000"
    );
    mm.madvise(page(1), pages(1), madv::HUGEPAGE).unwrap();
    mm.madvise(page(1), pages(1), madv::NOHUGEPAGE).unwrap();
    assert_eq!(codes(&mm)[1], "rd wr mr mw me ac nh");
}

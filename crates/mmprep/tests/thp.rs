//! Transparent huge pages on the fault path, in the style of the kernel's
//! `selftests/mm/khugepaged.c` and `split_huge_page_test.c`: map, advise, fault, then assert
//! what maps each 2 MiB block ([`Mm::huge_mappings`], what `smaps`' `AnonHugePages` shows) and
//! whether the VMA got an anon_vma, checking the invariants after every step.
//!
//! Two kinds of expected results:
//! - settings the host has (`enabled=madvise`, `use_zero_page=1`, `CONFIG_PT_RECLAIM`): the
//!   host kernel's, each test naming the scenario under `tests/scenarios/thp/` or the smaps
//!   probe result ([H]) behind it;
//! - settings the host does not have (`enabled=always`, `enabled=never`, `use_zero_page=0`, no
//!   PT reclaim): from the kernel function cited in each test, engine only.
//!
//! Blocks are counted from the base (which is 2 MiB-aligned): block `n` is `[2n, 2n + 2)` MiB.

mod common;

use common::*;
use mmprep::mm::HugeMapping;
use mmprep::profile::ThpMode;
use mmprep::uapi::madv;
use mmprep::{Access, MapFlags, Mm, Profile, Prot, VirtAddr};

const MIB: u64 = 1 << 20;

/// The address `mib` MiB above the base.
fn at(mib: u64) -> VirtAddr {
    VirtAddr(BASE + mib * MIB)
}

fn mm_with(f: impl FnOnce(&mut Profile)) -> Mm {
    let mut p = Profile::reference_host();
    f(&mut p);
    Mm::new(p)
}

/// Maps `[from, to)` MiB private anonymous read-write, with `hugepage` advice if `advise`.
fn map(mm: &mut Mm, from: u64, to: u64, flags: MapFlags, advise: bool) {
    let flags = MapFlags(ANON.0 | flags.0);
    assert_eq!(
        mm.mmap(at(from), (to - from) * MIB, Prot::RW, flags, None, 0),
        Ok(at(from))
    );
    if advise {
        mm.madvise(at(from), (to - from) * MIB, madv::HUGEPAGE).unwrap();
    }
    mm.check_invariants();
}

fn read(mm: &mut Mm, a: VirtAddr) {
    mm.access(a, Access::Read).expect("read");
    mm.check_invariants();
}

fn write(mm: &mut Mm, a: VirtAddr) {
    mm.access(a, Access::Write).expect("write");
    mm.check_invariants();
}

/// Whether the VMA holding `a` has an anon_vma.
fn has_anon(mm: &Mm, a: VirtAddr) -> bool {
    mm.vmas()
        .find(|v| v.start() <= a && a < v.end())
        .expect("a VMA")
        .anon_vma()
        .is_some()
}

/// The huge blocks as `(first MiB, end MiB, kind)`.
fn huge(mm: &Mm) -> Vec<(u64, u64, HugeMapping)> {
    mm.huge_mappings()
        .into_iter()
        .map(|(s, e, k)| ((s.0 - BASE) / MIB, (e.0 - BASE) / MIB, k))
        .collect()
}

/// [H] `thp/read-huge-zero-anon-vma.scn` and the smaps probe: a read in a fitting block of a
/// `hg` VMA maps the huge zero page (`AnonHugePages: 0 kB`) and prepares an anon_vma; a write
/// into that block replaces it with a huge page (`do_huge_zero_wp_pmd`, 2048 kB); a write in a
/// fresh block maps a huge page at once.
#[test]
fn madvise_mode_read_then_write() {
    let mut mm = new_mm();
    map(&mut mm, 0, 4, MapFlags(0), true);
    read(&mut mm, at(1));
    assert!(has_anon(&mm, at(0)));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::ZeroPage)]);
    write(&mut mm, VirtAddr(at(0).0 + 4096));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::Page)]);
    write(&mut mm, at(3));
    assert_eq!(huge(&mm), [(0, 4, HugeMapping::Page)]);
    let mut buf = [1u8; 8];
    mm.read(at(2), &mut buf).unwrap();
    assert_eq!(buf, [0; 8]);
}

/// [H] `thp/split-after.scn` and the smaps probe: an mprotect of one page of a huge block
/// splits it (`__split_huge_pmd`, `AnonHugePages` drops by 2048 kB); the other block stays.
#[test]
fn a_boundary_splits_the_block() {
    let mut mm = new_mm();
    map(&mut mm, 0, 8, MapFlags(0), true);
    for mib in [0, 2, 4, 6] {
        read(&mut mm, at(mib));
    }
    assert_eq!(huge(&mm), [(0, 8, HugeMapping::ZeroPage)]);
    mm.mprotect(at(2), 4096, Prot::READ).unwrap();
    mm.check_invariants();
    mm.munmap(at(4), 64 * 1024).unwrap();
    mm.check_invariants();
    mm.madvise(at(6), 8192, madv::GUARD_INSTALL).unwrap();
    mm.check_invariants();
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::ZeroPage)]);
    // A dontneed of a whole block drops its huge entry: pmd_none again (zap_huge_pmd).
    mm.madvise(at(0), 2 * MIB, madv::DONTNEED).unwrap();
    assert_eq!(huge(&mm), []);
    read(&mut mm, at(1));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::ZeroPage)]);
}

/// `enabled=always` (`__thp_vma_allowable_orders`: with `TRANSPARENT_HUGEPAGE_FLAG` every
/// anonymous VMA qualifies without `VM_HUGEPAGE`), engine only: a read in a fitting block of an
/// unadvised VMA takes the huge path and prepares an anon_vma; `nh` (`vma_thp_disabled`) and
/// `MAP_STACK` (which sets `VM_NOHUGEPAGE`) still refuse it, and so does a block that does not
/// fit (`thp_vma_suitable_order`).
#[test]
fn always_mode_needs_no_advice() {
    let mut mm = mm_with(|p| p.thp = ThpMode::Always);
    map(&mut mm, 0, 4, MapFlags(0), false);
    read(&mut mm, at(0));
    assert!(has_anon(&mm, at(0)));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::ZeroPage)]);

    map(&mut mm, 8, 12, MapFlags(0), false);
    mm.madvise(at(8), 4 * MIB, madv::NOHUGEPAGE).unwrap();
    read(&mut mm, at(8));
    assert!(!has_anon(&mm, at(8)));

    map(&mut mm, 16, 20, MapFlags::STACK, false);
    read(&mut mm, at(16));
    assert!(!has_anon(&mm, at(16)));

    // 25 MiB to 27 MiB holds no whole aligned block.
    map(&mut mm, 25, 27, MapFlags(0), false);
    read(&mut mm, at(25));
    assert!(!has_anon(&mm, at(25)));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::ZeroPage)]);
}

/// `enabled=never` (`hugepage_pmd_enabled` is false, so `__thp_vma_allowable_orders` allows no
/// PMD order), engine only: `hugepage` advice is still accepted (`hugepage_madvise` sets the
/// flag), but a read takes the page path: no anon_vma, nothing huge.
#[test]
fn never_mode_keeps_the_page_path() {
    let mut mm = mm_with(|p| p.thp = ThpMode::Never);
    map(&mut mm, 0, 4, MapFlags(0), true);
    read(&mut mm, at(0));
    write(&mut mm, at(2));
    assert_eq!(huge(&mm), []);
    mm.madvise(at(0), 4 * MIB, madv::POPULATE_READ).unwrap();
    assert_eq!(huge(&mm), []);
}

/// `use_zero_page=0`, engine only: `do_huge_pmd_anonymous_page` prepares the anon_vma
/// (`vmf_anon_prepare`) before it asks `transparent_hugepage_use_zero_page()`, and without the
/// huge zero page a read allocates a huge page (`vma_alloc_anon_folio_pmd`), which reads as
/// zeros.
#[test]
fn without_the_huge_zero_page_a_read_allocates() {
    let mut mm = mm_with(|p| p.thp_use_zero_page = false);
    map(&mut mm, 0, 4, MapFlags(0), true);
    read(&mut mm, at(1));
    assert!(has_anon(&mm, at(0)));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::Page)]);
    let mut buf = [1u8; 16];
    mm.read(at(1), &mut buf).unwrap();
    assert_eq!(buf, [0; 16]);
}

/// Without `CONFIG_PT_RECLAIM`, engine only: `MADV_DONTNEED` leaves the emptied page table in
/// place (`zap_pte_range` frees it only through `try_get_and_clear_pmd`, which that option
/// builds), so a read after `hugepage` advice still takes the page path. With it ([H]
/// `thp/dontneed-frees-table.scn`) the read takes the huge path.
#[test]
fn pt_reclaim_decides_whether_dontneed_frees_the_table() {
    for reclaim in [false, true] {
        let mut mm = mm_with(|p| p.pt_reclaim = reclaim);
        map(&mut mm, 0, 4, MapFlags(0), false);
        read(&mut mm, at(0));
        mm.madvise(at(0), 4 * MIB, madv::DONTNEED).unwrap();
        mm.madvise(at(0), 4 * MIB, madv::HUGEPAGE).unwrap();
        read(&mut mm, at(1));
        assert_eq!(has_anon(&mm, at(0)), reclaim, "reclaim {reclaim}");
    }
}

/// [H] `thp/populate-read.scn`: populate faults every block through the fault path. A large
/// populate costs the blocks it maps huge, and one step for a VMA without huge pages: 1 TiB of
/// read-only `MAP_POPULATE` and 16 GiB of advised `populate_read` finish at once.
#[test]
fn populate_is_per_block_and_cheap() {
    let mut mm = mm_with(|p| p.thp = ThpMode::Madvise);
    let flags = MapFlags(ANON.0 | MapFlags::POPULATE.0);
    assert_eq!(mm.mmap(at(0), 1 << 40, Prot::READ, flags, None, 0), Ok(at(0)));
    mm.check_invariants();
    assert!(!has_anon(&mm, at(0)));
    assert_eq!(huge(&mm), []);

    let base = (1 << 40) / MIB + 2;
    map(&mut mm, base + 1, base + 1 + 16 * 1024, MapFlags(0), true);
    mm.madvise(at(base + 1), 16 * 1024 * MIB, madv::POPULATE_READ).unwrap();
    mm.check_invariants();
    assert!(has_anon(&mm, at(base + 1)));
    // The first block is not wholly inside the VMA; nor is the last.
    let end = base + 1 + 16 * 1024;
    assert_eq!(huge(&mm), [(base + 2, end - 1, HugeMapping::ZeroPage)]);

    // 1 TiB of advised read-only memory: 2^19 blocks, one run. A block read before through the
    // page path keeps its page table (and stays out of the run).
    let big = end + 3;
    let flags = ANON;
    assert_eq!(mm.mmap(at(big), 1 << 40, Prot::READ, flags, None, 0), Ok(at(big)));
    read(&mut mm, at(big + 5));
    mm.madvise(at(big), 1 << 40, madv::HUGEPAGE).unwrap();
    mm.madvise(at(big), 1 << 40, madv::POPULATE_READ).unwrap();
    mm.check_invariants();
    let runs = huge(&mm);
    assert_eq!(
        runs[1..],
        [
            (big, big + 4, HugeMapping::ZeroPage),
            (big + 6, big + (1 << 20), HugeMapping::ZeroPage)
        ]
    );
}

/// [H] `thp/fork-inherits.scn`, `thp/fork-no-table-copy.scn`: the child inherits the huge
/// mappings (`copy_huge_pmd`) and the anon_vma; a write on either side then copies only the
/// page written.
#[test]
fn fork_shares_the_block() {
    let mut mm = new_mm();
    map(&mut mm, 0, 4, MapFlags(0), true);
    mm.write(at(0), &[7; 4]).unwrap();
    read(&mut mm, at(2));
    let mut child = mm.fork().unwrap();
    child.check_invariants();
    assert_eq!(huge(&child), huge(&mm));
    child.write(at(0), &[8; 2]).unwrap();
    child.write(at(2), &[9; 1]).unwrap();
    let (mut p, mut c) = ([0u8; 4], [0u8; 4]);
    mm.read(at(0), &mut p).unwrap();
    child.read(at(0), &mut c).unwrap();
    assert_eq!((p, c), ([7, 7, 7, 7], [8, 8, 7, 7]));
    mm.read(at(2), &mut p).unwrap();
    child.read(at(2), &mut c).unwrap();
    assert_eq!((p, c), ([0; 4], [9, 0, 0, 0]));
    assert_eq!(huge(&child), [(0, 4, HugeMapping::Page)]);
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::Page), (2, 4, HugeMapping::ZeroPage)]);
}

/// mremap of whole aligned blocks to an aligned place moves the huge entries
/// (`move_huge_pmd`); to a place 4 KiB off, each block is split first
/// (`__split_huge_pmd`) and moves page by page. Contents follow either way.
#[test]
fn mremap_moves_or_splits() {
    use mmprep::uapi::mremap::{FIXED, MAYMOVE};
    let mut mm = new_mm();
    map(&mut mm, 0, 4, MapFlags(0), true);
    mm.write(at(0), &[5; 3]).unwrap();
    read(&mut mm, at(2));
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::Page), (2, 4, HugeMapping::ZeroPage)]);
    assert_eq!(mm.mremap(at(0), 4 * MIB, 4 * MIB, MAYMOVE | FIXED, at(8)), Ok(at(8)));
    mm.check_invariants();
    assert_eq!(huge(&mm), [(8, 10, HugeMapping::Page), (10, 12, HugeMapping::ZeroPage)]);
    let off = VirtAddr(at(16).0 + 4096);
    assert_eq!(mm.mremap(at(8), 4 * MIB, 4 * MIB, MAYMOVE | FIXED, off), Ok(off));
    mm.check_invariants();
    assert_eq!(huge(&mm), []);
    let mut buf = [0u8; 4];
    mm.read(off, &mut buf).unwrap();
    assert_eq!(buf, [5, 5, 5, 0]);
    mm.read(VirtAddr(off.0 + 2 * MIB), &mut buf).unwrap();
    assert_eq!(buf, [0; 4]);
}

/// `MADV_COLLAPSE` ignores the sysfs mode (`madvise_collapse` asks
/// `thp_vma_allowable_order` with `TVA_FORCED_COLLAPSE`; `Documentation/admin-guide/mm/
/// transhuge.rst`: "independent of the sysfs THP settings"), engine only for `never`: a written
/// block collapses into a huge page that keeps its data; a block without a page table fails
/// ([H] `thp/collapse-anon.scn` for the rule under `madvise`).
#[test]
fn collapse_ignores_the_mode() {
    let mut mm = mm_with(|p| p.thp = ThpMode::Never);
    map(&mut mm, 0, 4, MapFlags(0), false);
    mm.write(at(1), &[3; 2]).unwrap();
    assert_eq!(mm.madvise(at(0), 2 * MIB, madv::COLLAPSE), Ok(()));
    mm.check_invariants();
    assert_eq!(huge(&mm), [(0, 2, HugeMapping::Page)]);
    let mut buf = [0u8; 3];
    mm.read(at(1), &mut buf).unwrap();
    assert_eq!(buf, [3, 3, 0]);
    assert_eq!(
        mm.madvise(at(0), 4 * MIB, madv::COLLAPSE).map_err(|e| e.errno),
        Err(mmprep::Errno::EINVAL)
    );
}

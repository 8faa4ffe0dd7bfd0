//! A driver that misbehaves in `mmap_prepare` cannot break the engine's counters (issue 12
//! finding 6). The decisions, per flag, and why, are in the doc comment of
//! `mm/mmap.rs:check_prepared_flags` (and of `action::install_ptes` for the remap):
//!
//! | the driver | the engine | old behaviour |
//! | --- | --- | --- |
//! | clears `VM_MAYSHARE` of a shared mapping | `EINVAL`, a hole | `VM_SHARED` without `VM_MAYSHARE`: `check_invariants` panics |
//! | sets `VM_ACCOUNT` | charges it; `munmap` releases it | never charged: `munmap` underflowed `committed` |
//! | clears `VM_ACCOUNT` | releases the charge | the charge leaked: `committed` > `VM_ACCOUNT` pages |
//! | sets `VM_LOCKONFAULT` alone | `EINVAL`, a hole | `munlock` wrapped `locked_vm` to `u64::MAX - 1` |
//! | remaps a PFN range that wraps | `EINVAL` at completion, a hole | the page after PFN `u64::MAX` mapped PFN 0 |
//!
//! Each "old behaviour" is what these tests would hit without the checks: a panic in
//! `check_invariants`, a `debug_assert!` in `uncharge`, an arithmetic overflow in debug builds,
//! or wrong `stats()`.

mod common;

use mmprep::file::MmapPrepare;
use std::sync::Arc;

use common::*;
use mmprep::addr::Pfn;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::flags::VmaFlags;
use mmprep::mm::MmStats;
use mmprep::{Errno, Error, MapFlags, Mm, Profile, Prot, Result, vma_flags};

/// What the driver does to the descriptor.
#[derive(Clone, Copy)]
enum Misbehave {
    SetFlags(VmaFlags),
    ClearFlags(VmaFlags),
    /// `mmap_action_remap_full` from this PFN.
    Remap(u64),
}

struct Driver(Misbehave);

impl FileOperations for Driver {
    fn name(&self) -> &'static str {
        "misbehave"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Driver {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        match self.0 {
            Misbehave::SetFlags(f) => desc.set_flag_bits(f),
            Misbehave::ClearFlags(f) => desc.clear_flag_bits(f),
            Misbehave::Remap(pfn) => desc.mmap_action_remap_full(Pfn(pfn)),
        }
        Ok(())
    }
}

fn driver_file(how: Misbehave) -> Arc<File> {
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 97 }, 9, InodeKind::CharDevice, 0));
    File::new(
        inode,
        FileMode::READ_WRITE,
        Arc::new(Driver(how)),
        "/dev/misbehave".into(),
        false,
    )
}

fn stats(total_vm: u64, locked_vm: u64, committed: u64) -> (u64, u64, u64) {
    (total_vm, locked_vm, committed)
}

fn got(mm: &Mm) -> (u64, u64, u64) {
    let s: MmStats = mm.stats();
    (s.total_vm, s.locked_vm, s.committed)
}

/// The driver's mmap fails with `EINVAL` and is blamed for it.
fn assert_driver_einval(e: Error) {
    assert_eq!(e.errno, Errno::EINVAL, "{e}");
    assert_eq!(e.driver, Some("misbehave"), "{e}");
}

/// ```text
///   0123
///   aaaa      private anonymous rw-, written (4 pages charged)
/// ```
fn anon_base() -> Mm {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 4, Prot::RW);
    write_touch(&mut mm, 0, 4);
    assert_maps!(mm, "00000000-00004000 rw-p 00000000");
    assert_eq!(got(&mm), stats(4, 0, 4));
    mm
}

// ---- VM_MAYSHARE ----

/// Clearing `VM_MAYSHARE` of a shared mapping is refused; the `MAP_FIXED` range it replaced is
/// a hole (as after any `mmap_prepare` failure), the anonymous pages left keep their charge.
#[test]
fn clearing_mayshare_of_a_shared_mapping_is_refused() {
    let mut mm = anon_base();
    let f = driver_file(Misbehave::ClearFlags(vma_flags![MayShare]));
    let e = mm
        .mmap(page(1), pages(2), Prot::RW, SHARED_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_driver_einval(e);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00003000-00004000 rw-p 00000000"
    );
    assert_eq!(got(&mm), stats(2, 0, 2));
    mm.munmap(page(0), pages(4)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(0, 0, 0));
}

/// Adding `VM_SHARED` to a private mapping (without `VM_MAYSHARE`) is refused the same way.
#[test]
fn setting_shared_without_mayshare_is_refused() {
    let mut mm = new_mm();
    let f = driver_file(Misbehave::SetFlags(vma_flags![Shared]));
    let e = mm
        .mmap(page(0), pages(2), Prot::READ, PRIVATE_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_driver_einval(e);
    assert_maps!(mm, "");
    assert_eq!(got(&mm), stats(0, 0, 0));
}

/// Clearing both sharing bits makes a private mapping: consistent, allowed (shared mappings are
/// not charged, and a private writable VMA without `VM_ACCOUNT` is a `MAP_NORESERVE` one).
#[test]
fn clearing_both_sharing_bits_makes_a_private_mapping() {
    let mut mm = new_mm();
    let f = driver_file(Misbehave::ClearFlags(vma_flags![Shared, MayShare]));
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    assert_maps!(mm, "00000000-00002000 rw-p 00000000");
    assert_eq!(got(&mm), stats(2, 0, 0));
    mm.munmap(page(0), pages(2)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(0, 0, 0));
}

// ---- VM_ACCOUNT ----

/// An added `VM_ACCOUNT` is charged, and `munmap` gives exactly that back. Before, the mapping
/// was never charged and the `munmap` underflowed `committed`.
#[test]
fn setting_account_charges_it() {
    let mut mm = anon_base();
    let f = driver_file(Misbehave::SetFlags(vma_flags![Account]));
    // |aaaa|  |DD|
    map_file(&mut mm, 8, 10, Prot::RW, SHARED_FIXED, &f, 0);
    assert_maps!(
        mm,
        "00000000-00004000 rw-p 00000000
         00008000-0000a000 rw-s 00000000"
    );
    assert_eq!(got(&mm), stats(6, 0, 6));
    mm.munmap(page(9), pages(1)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(5, 0, 5));
    mm.munmap(page(8), pages(1)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(4, 0, 4));
    mm.munmap(page(0), pages(4)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(0, 0, 0));
}

/// Over charged anonymous pages (`MAP_FIXED`): their charge goes with them, the new mapping
/// is charged on its own; a fork charges the child too.
#[test]
fn setting_account_over_charged_pages() {
    let mut mm = anon_base();
    let f = driver_file(Misbehave::SetFlags(vma_flags![Account]));
    map_file(&mut mm, 1, 3, Prot::RW, SHARED_FIXED, &f, 0);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00003000 rw-s 00000000
         00003000-00004000 rw-p 00000000"
    );
    assert_eq!(got(&mm), stats(4, 0, 4));
    let child = mm.fork().unwrap();
    child.check_invariants();
    assert_eq!(got(&child), stats(4, 0, 4));
    drop(child);
    mm.munmap(page(0), pages(4)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(0, 0, 0));
}

/// A charge the overcommit policy refuses fails the mapping with `ENOMEM`, as any refused
/// charge; the replaced range is a hole, and nothing stays charged for it.
#[test]
fn setting_account_past_the_commit_limit_is_enomem() {
    let mut mm = Mm::new(Profile {
        total_ram_pages: 8,
        ..Profile::reference_host()
    });
    map_anon(&mut mm, 0, 4, Prot::RW);
    let f = driver_file(Misbehave::SetFlags(vma_flags![Account]));
    let e = mm
        .mmap(page(2), pages(16), Prot::RW, SHARED_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::ENOMEM, "{e}");
    assert_eq!(e.driver, Some("misbehave"), "{e}");
    assert_maps!(mm, "00000000-00002000 rw-p 00000000");
    assert_eq!(got(&mm), stats(2, 0, 2));
}

/// A cleared `VM_ACCOUNT` gives the charge back at once (also what it took over from the
/// anonymous pages it replaced). Before, the charge leaked: `committed` stayed above the
/// `VM_ACCOUNT` pages for good.
#[test]
fn clearing_account_releases_the_charge() {
    let mut mm = anon_base();
    let f = driver_file(Misbehave::ClearFlags(vma_flags![Account]));
    // A private writable mapping is accountable: charged before the hook, which clears the bit.
    map_file(&mut mm, 1, 3, Prot::RW, PRIVATE_FIXED, &f, 0);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00003000 rw-p 00000000
         00003000-00004000 rw-p 00000000"
    );
    assert_eq!(got(&mm), stats(4, 0, 2));
    map_file(&mut mm, 8, 10, Prot::RW, PRIVATE_FIXED, &f, 0);
    assert_eq!(got(&mm), stats(6, 0, 2));
    mm.munmap(page(0), pages(16)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(0, 0, 0));
}

// ---- VM_LOCKONFAULT / VM_LOCKED ----

/// `VM_LOCKONFAULT` without `VM_LOCKED` is refused. Before, the mapping counted no locked
/// pages and `munlock` then took its two pages off `locked_vm`: `u64::MAX - 1`.
#[test]
fn lockonfault_without_locked_is_refused() {
    let mut mm = anon_base();
    let f = driver_file(Misbehave::SetFlags(vma_flags![LockOnFault]));
    let e = mm
        .mmap(page(8), pages(2), Prot::RW, SHARED_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_driver_einval(e);
    assert_maps!(mm, "00000000-00004000 rw-p 00000000");
    mm.munlock(page(0), pages(4)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(4, 0, 4));
}

/// `VM_LOCKED` (with `VM_LOCKONFAULT` or without) is followed, as in the kernel:
/// `locked_vm` counts the VMA, and `munlock` takes exactly that off again.
#[test]
fn setting_locked_is_counted() {
    for lock in [vma_flags![Locked], vma_flags![Locked, LockOnFault]] {
        let mut mm = anon_base();
        let f = driver_file(Misbehave::SetFlags(lock));
        map_file(&mut mm, 8, 10, Prot::RW, SHARED_FIXED, &f, 0);
        assert_eq!(got(&mm), stats(6, 2, 4));
        mm.munlock(page(9), pages(1)).unwrap();
        mm.check_invariants();
        assert_eq!(got(&mm), stats(6, 1, 4));
        mm.munlock(page(8), pages(2)).unwrap();
        mm.check_invariants();
        assert_eq!(got(&mm), stats(6, 0, 4));
        mm.munmap(page(0), pages(16)).unwrap();
        mm.check_invariants();
        assert_eq!(got(&mm), stats(0, 0, 0));
    }
}

/// Clearing `VM_LOCKED` of a `MAP_LOCKED` mapping is followed too: nothing is counted.
#[test]
fn clearing_locked_is_counted() {
    let mut mm = new_mm();
    let f = driver_file(Misbehave::ClearFlags(vma_flags![Locked]));
    let flags = MapFlags(SHARED_FIXED.0 | MapFlags::LOCKED.0);
    mm.mmap(page(0), pages(2), Prot::RW, flags, Some(&f), 0).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(2, 0, 0));
    mm.munlock(page(0), pages(2)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(2, 0, 0));
}

// ---- remap ----

/// A remap from PFN `u64::MAX` over two pages wraps: refused with `EINVAL` when the action
/// completes (x86 `pfnmap_track` → `memtype_reserve`), the new VMA unmapped again: a hole, no
/// page-table entry left. Before, the second page mapped PFN 0 (in release; in debug builds
/// the PFN arithmetic overflowed).
#[test]
fn remap_whose_pfn_range_wraps_is_refused() {
    for (pfn, n) in [
        (u64::MAX, 2),
        (u64::MAX >> 12, 1),
        ((u64::MAX >> 12) - 1, 2),
        (1 << 60, 1),
    ] {
        let mut mm = anon_base();
        let f = driver_file(Misbehave::Remap(pfn));
        let e = mm
            .mmap(page(1), pages(n), Prot::RW, SHARED_FIXED, Some(&f), 0)
            .unwrap_err();
        assert_driver_einval(e);
        let mut want = String::from("00000000-00001000 rw-p 00000000\n");
        if n == 1 {
            want.push_str("00002000-00004000 rw-p 00000000");
        } else {
            want.push_str("00003000-00004000 rw-p 00000000");
        }
        assert_maps!(mm, want);
        assert_eq!(mm.resident_pages(), 4 - n as usize, "pfn {pfn:#x}");
        assert_eq!(got(&mm), stats(4 - n, 0, 4 - n));
    }
}

/// The highest remap that does not wrap still maps.
#[test]
fn remap_up_to_the_top_maps() {
    let mut mm = new_mm();
    let top = (u64::MAX >> 12) - 2;
    let f = driver_file(Misbehave::Remap(top));
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    assert_maps!(mm, "00000000-00002000 rw-s 00000000");
    assert_eq!(mm.resident_pages(), 2);
    mm.munmap(page(0), pages(2)).unwrap();
    mm.check_invariants();
    assert_eq!(got(&mm), stats(0, 0, 0));
}

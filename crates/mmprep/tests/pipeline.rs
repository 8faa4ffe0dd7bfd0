//! One pipeline for every front end: the same remap failure gets the same errno through
//! `mmap_action_remap` and through a legacy `remap_pfn_range`, and the compat layer
//! (`compat_vma_mmap`) completes an action with the steps `mmap(2)` uses, cleaning up as the
//! kernel's `is_compat` says (`driver/pipeline.rs`; `mm/memory.c:remap_pfn_range_prepare`,
//! `mm/util.c:mmap_action_finish`, \[N\]/\[N+\]).

mod common;

use mmprep::file::{LegacyMmap, MmapPrepare};
use std::sync::Arc;

use common::*;
use mmprep::desc::VmAreaDesc;
use mmprep::events::Event;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::legacy::LegacyVma;
use mmprep::{Errno, Error, Mm, Pfn, Result};

/// Remaps two pages at the start of the mapping, whatever its size, either way.
struct Remap2 {
    legacy: bool,
}

impl FileOperations for Remap2 {
    fn name(&self) -> &'static str {
        "remap2"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        (!self.legacy).then_some(self as &dyn MmapPrepare)
    }
    fn mmap(&self) -> Option<&dyn LegacyMmap> {
        self.legacy.then_some(self as &dyn LegacyMmap)
    }
}

impl MmapPrepare for Remap2 {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.mmap_action_remap(desc.start(), Pfn(0x100), pages(2));
        Ok(())
    }
}

impl LegacyMmap for Remap2 {
    fn mmap(&self, vma: &mut LegacyVma<'_>) -> Result<()> {
        let start = vma.vma().start();
        vma.remap_pfn_range(start, Pfn(0x100), pages(2))
    }
}

/// A stacked file whose legacy hook maps `lower` through the compat layer.
struct Upper {
    lower: Arc<File>,
}

impl FileOperations for Upper {
    fn name(&self) -> &'static str {
        "upper"
    }
    fn mmap(&self) -> Option<&dyn LegacyMmap> {
        Some(self)
    }
}

impl LegacyMmap for Upper {
    fn mmap(&self, vma: &mut LegacyVma<'_>) -> Result<()> {
        vma.compat_mmap_prepare(&self.lower)
    }
}

/// The lower file: its success hook fails with `EIO`, its error hook would say `EAGAIN`.
struct Failing;

impl FileOperations for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Failing {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.set_success_hook(Arc::new(|_| Err(Error::new(Errno::EIO, "success hook fails"))));
        desc.set_error_hook(Arc::new(|_| Errno::EAGAIN));
        Ok(())
    }
}

fn open(ops: Arc<dyn FileOperations>, ino: u64) -> Arc<File> {
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 98 }, ino, InodeKind::CharDevice, 0));
    File::new(inode, FileMode::READ_WRITE, ops, "/dev/pipeline".into(), false)
}

fn mm_with_events() -> Mm {
    let mut mm = new_mm();
    mm.set_event_log(true);
    mm
}

/// A remap of two pages into a one-page mapping: `EFAULT` on both paths, and no VMA left.
#[test]
fn a_remap_outside_the_mapping_is_efault_on_both_paths() {
    for legacy in [false, true] {
        let mut mm = mm_with_events();
        let f = open(Arc::new(Remap2 { legacy }), 1);
        let e = mm
            .mmap(page(0), pages(1), mmprep::Prot::RW, SHARED_FIXED, Some(&f), 0)
            .unwrap_err();
        assert_eq!(e.errno, Errno::EFAULT, "legacy={legacy}: {e}");
        assert_maps!(mm, "");
        mm.check_invariants();
        // Inside the mapping both paths succeed with the same VMA.
        map_file(&mut mm, 0, 2, mmprep::Prot::RW, SHARED_FIXED, &f, 0);
        assert_eq!(mm.vmas().count(), 1, "legacy={legacy}");
        mm.check_invariants();
    }
}

/// Through the compat layer a failing success hook is returned as it is: no unmap by the
/// layer and no error hook (`mmap_action_finish` returns early with `is_compat`); the outer
/// `->mmap` failure path leaves the hole.
#[test]
fn compat_completion_skips_the_error_hook() {
    let mut mm = mm_with_events();
    let lower = open(Arc::new(Failing), 2);
    let upper = open(Arc::new(Upper { lower: lower.clone() }), 3);
    let e = mm
        .mmap(page(0), pages(1), mmprep::Prot::RW, SHARED_FIXED, Some(&upper), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EIO, "{e}");
    assert_maps!(mm, "");
    let events = mm.take_events();
    assert!(
        events.iter().any(|ev| matches!(ev, Event::SuccessHook { .. })),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|ev| matches!(ev, Event::ErrorHook { .. })),
        "{events:?}"
    );

    // Mapped directly, the same file's failure goes through its error hook.
    let e = mm
        .mmap(page(0), pages(1), mmprep::Prot::RW, SHARED_FIXED, Some(&lower), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EAGAIN, "{e}");
    assert_maps!(mm, "");
    mm.check_invariants();
}

//! Follow-up work a driver asks for in `mmap_prepare` (`struct mmap_action`).
//!
//! `mmap_prepare` runs before the VMA exists, so a driver that must do something *to* the new
//! mapping (install page-table entries, take a reference, make it anonymous) records it in the
//! descriptor's action through the `mmap_action_*` helpers on
//! [`VmAreaDesc`]. The engine then
//!
//! 1. *prepares* it right after the hook, before the merge decision
//!    (`mm/util.c:mmap_action_prepare`, \[N\]): checks the request and sets the flags it implies
//!    on the descriptor (`VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP` for a remap,
//!    `VM_MIXEDMAP` for kernel pages) - special flags, so such a mapping never merges;
//! 2. *completes* it on the new VMA (`mmap_action_complete`): installs the page-table entries;
//!    then calls `vm_ops->mapped`, then the success hook; if any fails, the VMA is unmapped again
//!    and the errno goes through the error hook (`mmap_action_finish`).
//!
//! | helper | kind | prepare | complete |
//! | --- | --- | --- | --- |
//! | `mmap_action_remap(start, pfn, size)` | [`ActionKind::RemapPfn`] | range inside the desc (`EFAULT`); a private (COW) remap must cover the whole desc (`EINVAL`) and sets `pgoff` to the PFN | a physical range that wraps is refused (`EINVAL`); PFN entries with the page protection recorded at the call |
//! | `mmap_action_ioremap(start, pfn, size)` | [`ActionKind::IoRemapPfn`] | as remap, then becomes a remap | — |
//! | `mmap_action_simple_ioremap(phys, size)` | [`ActionKind::SimpleIoRemap`] | `pgoff` pages into `[phys, phys + size)`, bounds checked (`EINVAL`), then an ioremap of the whole desc | — |
//! | `mmap_action_map_kernel_pages(start, pages)` | [`ActionKind::MapKernelPages`] | range inside the desc (`EFAULT`); adds `VM_MIXEDMAP` | entries for the pages |
//!
//! The `_full` forms cover the whole descriptor.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, Pfn, PgOff, VirtAddr};
use crate::desc::VmAreaDesc;
use crate::errno::{Errno, Result, err};
use crate::flags::{self, VmaBit};
use crate::pagetable::{PageTable, Pte};
use crate::phys::FrameRef;
use crate::vma::{PageProt, VmOps, Vma};
use crate::vma_flags;

/// The page-table work an action asks for (`enum mmap_action_type`).
#[derive(Clone, Default)]
pub enum ActionKind {
    /// `MMAP_NOTHING`.
    #[default]
    Nothing,
    /// `MMAP_REMAP_PFN`: map `size` bytes of physical pages from `pfn` at `start`.
    RemapPfn {
        start: VirtAddr,
        pfn: Pfn,
        size: u64,
        prot: PageProt,
    },
    /// `MMAP_IO_REMAP_PFN`: the same for I/O memory (rewritten to a remap by prepare).
    IoRemapPfn {
        start: VirtAddr,
        pfn: Pfn,
        size: u64,
        prot: PageProt,
    },
    /// `MMAP_SIMPLE_IO_REMAP`: the physical region `[phys, phys + size)`, mapped from the
    /// descriptor's `pgoff` pages in (rewritten to a remap by prepare).
    SimpleIoRemap { phys: u64, size: u64 },
    /// `MMAP_MAP_KERNEL_PAGES`: map `nr` of these kernel pages from `start`.
    MapKernelPages {
        start: VirtAddr,
        pages: Vec<FrameRef>,
        nr: u64,
        pgoff: PgOff,
    },
}

impl ActionKind {
    /// The kernel's name for the type.
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Nothing => "nothing",
            ActionKind::RemapPfn { .. } => "remap_pfn",
            ActionKind::IoRemapPfn { .. } => "io_remap_pfn",
            ActionKind::SimpleIoRemap { .. } => "simple_io_remap",
            ActionKind::MapKernelPages { .. } => "map_kernel_pages",
        }
    }
}

impl fmt::Debug for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKind::Nothing => f.write_str("Nothing"),
            ActionKind::RemapPfn { start, pfn, size, .. } | ActionKind::IoRemapPfn { start, pfn, size, .. } => {
                write!(f, "{}({start:?}, {pfn:?}, {size:#x})", self.name())
            }
            ActionKind::SimpleIoRemap { phys, size } => write!(f, "simple_io_remap({phys:#x}, {size:#x})"),
            ActionKind::MapKernelPages { start, pages, .. } => {
                write!(f, "map_kernel_pages({start:?}, {} pages)", pages.len())
            }
        }
    }
}

/// The new VMA as a success hook sees it.
///
/// The kernel's hook gets a `const` VMA, and the one hook that must change it (private
/// `/dev/zero`, `drivers/char/mem.c:mmap_zero_private_success`) casts the `const` away to make
/// the VMA anonymous. Rust cannot cast it away, so that single change is offered here by name.
pub struct NewVma<'a> {
    pub(crate) vma: &'a mut Vma,
}

impl NewVma<'_> {
    /// The new VMA.
    pub fn vma(&self) -> &Vma {
        self.vma
    }
    /// `vma_set_anonymous`: drop the `vm_ops`, so faults fill zero pages as in anonymous memory.
    /// The file stays (`/proc/PID/maps` still names it).
    pub fn set_anonymous(&mut self) {
        self.vma.set_ops(VmOps::Anonymous);
    }
}

/// `action.success_hook`: runs after a new mapping is complete; an error unmaps it.
pub type SuccessHook = Arc<dyn Fn(&mut NewVma<'_>) -> Result<()> + Send + Sync>;

/// `action.error_hook`: turns the completion error into the errno `mmap` returns (it may not
/// turn it into success).
pub type ErrorHook = Arc<dyn Fn(Errno) -> Errno + Send + Sync>;

/// The action recorded in a descriptor (`struct mmap_action`).
#[derive(Clone, Default)]
pub struct MmapAction {
    /// What to do to the page tables.
    pub kind: ActionKind,
    /// Run after success.
    pub success_hook: Option<SuccessHook>,
    /// Filter the errno after failure.
    pub error_hook: Option<ErrorHook>,
}

impl MmapAction {
    /// Does completing it do anything at all?
    pub fn is_empty(&self) -> bool {
        matches!(self.kind, ActionKind::Nothing) && self.success_hook.is_none() && self.error_hook.is_none()
    }
}

impl fmt::Debug for MmapAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapAction")
            .field("kind", &self.kind)
            .field("success_hook", &self.success_hook.is_some())
            .field("error_hook", &self.error_hook.is_some())
            .finish()
    }
}

/// The range a remap of `size` bytes at `start` covers, if it lies inside `[vm_start, vm_end)`.
///
/// The one range check of a PFN remap, shared by `mmap_action_remap` (through
/// [`prepare`]) and the legacy `remap_pfn_range` ([`crate::legacy::LegacyVma`]). The kernel makes
/// it in `mm/memory.c:remap_pfn_range_prepare` (\[N\]: `range_in_vma_desc`, `EFAULT`). Its
/// legacy `remap_pfn_range` makes none: a driver that remaps past `vm_end` writes entries outside
/// its VMA. The engine refuses that too, with the same `EFAULT`, so one remap failure has one
/// errno on both paths (before this the legacy path said `EINVAL`).
pub(crate) fn remap_range(start: VirtAddr, size: u64, vm_start: VirtAddr, vm_end: VirtAddr) -> Result<VirtAddr> {
    let Some(end) = start.checked_add(size) else {
        return Err(err(Errno::EFAULT, "remap range wraps"));
    };
    if start < vm_start || end > vm_end {
        return Err(err(Errno::EFAULT, "remap range is outside the mapping"));
    }
    Ok(end)
}

/// `mm/memory.c:get_remap_pgoff`: a private (COW) remap must map the whole VMA, whose pgoff then
/// records the PFN (which is how `do_wp_page` finds the original page to copy). Returns the new
/// pgoff of a COW remap, `None` for a shared one.
pub(crate) fn get_remap_pgoff(
    is_cow: bool,
    (start, end): (VirtAddr, VirtAddr),
    (vm_start, vm_end): (VirtAddr, VirtAddr),
    pfn: Pfn,
) -> Result<Option<PgOff>> {
    if !is_cow {
        return Ok(None);
    }
    if start != vm_start || end != vm_end {
        return Err(err(Errno::EINVAL, "a private remap must cover the whole mapping"));
    }
    Ok(Some(PgOff(pfn.get())))
}

/// `remap_pfn_range_prepare`: checks a remap of `[start, start + size)` and sets its flags.
fn remap_prepare(desc: &mut VmAreaDesc<'_>, start: VirtAddr, pfn: Pfn, size: u64) -> Result<()> {
    let end = remap_range(start, size, desc.start(), desc.end())?;
    let range = (desc.start(), desc.end());
    if let Some(pgoff) = get_remap_pgoff(desc.is_cow_mapping(), (start, end), range, pfn)? {
        desc.set_pgoff(pgoff);
    }
    desc.set_flag_bits(flags::REMAP_FLAGS);
    Ok(())
}

/// `mmap_action_prepare` ([N]): validates the action and rewrites the I/O kinds into a remap.
pub(crate) fn prepare(desc: &mut VmAreaDesc<'_>, action: &mut MmapAction) -> Result<()> {
    match core::mem::take(&mut action.kind) {
        ActionKind::Nothing => {}
        ActionKind::RemapPfn { start, pfn, size, prot } => {
            remap_prepare(desc, start, pfn, size)?;
            action.kind = ActionKind::RemapPfn { start, pfn, size, prot };
        }
        ActionKind::IoRemapPfn { start, pfn, size, prot } => {
            // io_remap_pfn_range_prepare: the PFN goes through the arch hook (identity on x86)
            // and the protection is made "decrypted" (no memory encryption here).
            remap_prepare(desc, start, pfn, size)?;
            action.kind = ActionKind::RemapPfn { start, pfn, size, prot };
        }
        ActionKind::SimpleIoRemap { phys, size } => {
            // __simple_ioremap_prep: desc->pgoff pages into the region, widened to whole pages.
            let Some(end) = phys.checked_add(size) else {
                return Err(err(Errno::EINVAL, "physical region wraps"));
            };
            let first = phys & PAGE_MASK;
            let Some(span) = (end - first).checked_add(PAGE_SIZE - 1).map(|v| v & PAGE_MASK) else {
                return Err(err(Errno::EINVAL, "physical region wraps"));
            };
            let region_pages = span >> PAGE_SHIFT;
            let pgoff = desc.pgoff().get();
            if pgoff >= region_pages {
                return Err(err(Errno::EINVAL, "offset is beyond the physical region"));
            }
            if desc.pages() > region_pages - pgoff {
                return Err(err(
                    Errno::EINVAL,
                    "mapping is larger than the rest of the physical region",
                ));
            }
            let pfn = Pfn((first >> PAGE_SHIFT) + pgoff);
            let (start, size, prot) = (desc.start(), desc.size(), desc.page_prot());
            remap_prepare(desc, start, pfn, size)?;
            action.kind = ActionKind::RemapPfn { start, pfn, size, prot };
        }
        ActionKind::MapKernelPages {
            start,
            pages,
            nr,
            pgoff,
        } => {
            // map_kernel_pages_prepare
            if (pages.len() as u64) < nr {
                return Err(err(Errno::EINVAL, "fewer kernel pages than the mapping needs"));
            }
            let len = nr.checked_mul(PAGE_SIZE);
            let end = len.and_then(|l| start.checked_add(l));
            match end {
                Some(end) if desc.range_in(start, end) => {}
                _ => return Err(err(Errno::EFAULT, "kernel pages reach outside the mapping")),
            }
            if !desc.test(VmaBit::MixedMap) {
                desc.set_flag_bits(vma_flags![MixedMap]);
            }
            action.kind = ActionKind::MapKernelPages {
                start,
                pages,
                nr,
                pgoff,
            };
        }
    }
    Ok(())
}

/// The page-table part of `mmap_action_complete` (`remap_pfn_range_complete`,
/// `map_kernel_pages_complete`): installs the entries of a prepared action.
pub(crate) fn install_ptes(ptes: &mut PageTable, kind: &ActionKind) -> Result<()> {
    match kind {
        ActionKind::Nothing => Ok(()),
        ActionKind::RemapPfn { start, pfn, size, .. } => {
            if !start.is_page_aligned() {
                return Err(err(Errno::EINVAL, "remap start is not page aligned"));
            }
            // x86 `pfnmap_track` → `memtype_reserve(paddr, paddr + size)`: a physical range
            // that wraps has `start >= end` and is refused with EINVAL (and a WARN). Without
            // this the entries would wrap too: the page after PFN u64::MAX would map PFN 0.
            if pfn
                .get()
                .checked_mul(PAGE_SIZE)
                .and_then(|p| p.checked_add(*size))
                .is_none()
            {
                return Err(err(Errno::EINVAL, "remap: the physical range wraps"));
            }
            for i in 0..size.div_ceil(PAGE_SIZE) {
                let pte = Pte::pfn(Pfn(pfn.get() + i));
                ptes.set(VirtAddr(start.get() + i * PAGE_SIZE), pte);
            }
            Ok(())
        }
        ActionKind::MapKernelPages { start, pages, nr, .. } => {
            for (i, page) in pages.iter().take(*nr as usize).enumerate() {
                ptes.set(
                    VirtAddr(start.get() + i as u64 * PAGE_SIZE),
                    Pte::frame(page.clone(), false, false),
                );
            }
            Ok(())
        }
        // Prepare rewrote these into a remap.
        ActionKind::IoRemapPfn { .. } | ActionKind::SimpleIoRemap { .. } => {
            Err(err(Errno::EINVAL, "an unprepared I/O remap reached completion"))
        }
    }
}

//! The legacy `f_op->mmap` hook, and the compatibility layer that lets it map a file that only
//! has `mmap_prepare`.
//!
//! Before `mmap_prepare`, a driver's `->mmap(file, vma)` got the VMA itself, after the kernel
//! had already tried to merge the new range *with the values from before the hook*. A hook that
//! changes flags therefore makes mappings that can never merge with each other; if the range
//! merged, the hook is not called at all. mmprep keeps the legacy path so the two can be
//! compared side by side, and so that stacked files work:
//!
//! - [`LegacyVma`]: what a legacy hook may do to the VMA being set up (as Rust-for-Linux's
//!   `VmaNew`): change flags, ops, private data, offset, file, page protection; insert pages or
//!   PFNs into it; or hand it to an inner file with [`LegacyVma::compat_mmap_prepare`].
//! - `compat_mmap_prepare` is `mm/util.c:compat_vma_mmap` (\[N\]): a descriptor is filled from the
//!   VMA, the inner file's `mmap_prepare` and its action run, the permitted fields are written
//!   back (`compat_set_vma_from_desc`: flags overwritten, as 7.0+ does), and the action is
//!   completed. Every step is the one `mmap(2)` runs (`driver/pipeline.rs`); only the cleanup
//!   differs: an error is returned without unmapping and without the error hook (the outer
//!   hook's failure path cleans up: `mmap_action_finish` with `is_compat`, \[N+\]).
//!
//! After a legacy hook returns, the engine refuses ops that have `mapped` (`EINVAL`, as
//! `__vma_check_mmap_hook` does at \[N\]): `mapped` belongs to the mmap_prepare model.

use alloc::sync::Arc;

use crate::action::{self, ActionKind};
use crate::addr::{Pfn, PgOff, VirtAddr};
use crate::desc::VmAreaDesc;
use crate::driver::pipeline::{self, Completion};
use crate::errno::{Errno, Result, err};
use crate::events::EventLog;
use crate::file::File;
use crate::flags::{self, VmaBit, VmaFlags};
use crate::pagetable::{PageTable, Pte};
use crate::phys::{FrameRef, Machine};
use crate::shmem::ShmemFs;
use crate::vma::{PageProt, PrivateData, VmOperations, VmOps, Vma};

/// The VMA a legacy `->mmap` hook sets up (not yet in the tree).
pub struct LegacyVma<'a> {
    pub(crate) vma: &'a mut Vma,
    pub(crate) ptes: &'a mut PageTable,
    pub(crate) machine: &'a Arc<Machine>,
    pub(crate) shmem: &'a ShmemFs,
    pub(crate) events: &'a mut EventLog,
}

impl LegacyVma<'_> {
    /// The VMA as it is now.
    pub fn vma(&self) -> &Vma {
        self.vma
    }
    /// The system's memory.
    pub fn machine(&self) -> &Arc<Machine> {
        self.machine
    }
    /// `vm_flags_set`: sets these flags.
    pub fn set_flags(&mut self, mask: VmaFlags) {
        self.vma.set_flag_bits(mask);
    }
    /// `vm_flags_clear`: clears these flags.
    pub fn clear_flags(&mut self, mask: VmaFlags) {
        self.vma.clear_flag_bits(mask);
    }
    /// `vma->vm_ops = ops`.
    pub fn set_vm_ops(&mut self, ops: Arc<dyn VmOperations>) {
        self.vma.set_ops(VmOps::Driver(ops));
    }
    /// `vma->vm_private_data = data`.
    pub fn set_private_data(&mut self, data: PrivateData) {
        self.vma.set_private_data(Some(data));
    }
    /// `vma->vm_pgoff = pgoff`.
    pub fn set_pgoff(&mut self, pgoff: PgOff) {
        self.vma.set_pgoff(pgoff);
    }
    /// `vma_set_file`: points the VMA at another file (a stacked file's inner one).
    pub fn set_file(&mut self, file: Arc<File>) {
        self.vma.set_file(Some(file));
    }
    /// `vma->vm_page_prot = prot`.
    pub fn set_page_prot(&mut self, prot: PageProt) {
        self.vma.set_page_prot(prot);
    }

    /// `vm_insert_page`: maps a kernel page at `addr` (sets `VM_MIXEDMAP`).
    pub fn vm_insert_page(&mut self, addr: VirtAddr, page: FrameRef) -> Result<()> {
        if addr < self.vma.start() || addr >= self.vma.end() {
            return Err(err(Errno::EFAULT, "address outside the VMA"));
        }
        if self.vma.flags().test(VmaBit::PfnMap) {
            return Err(err(Errno::EINVAL, "vm_insert_page into a PFN mapping"));
        }
        if self.ptes.get(addr).is_some() {
            return Err(err(Errno::EBUSY, "a page is already mapped there"));
        }
        self.vma.set_flag(VmaBit::MixedMap);
        self.ptes.set(addr.page_down(), Pte::frame(page, false, false));
        Ok(())
    }

    /// `remap_pfn_range`: maps `size` bytes of physical memory from `pfn` at `addr`, setting
    /// `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`. A private (COW) remap must cover the
    /// whole VMA, whose pgoff becomes the PFN.
    ///
    /// The kernel's two halves, shared with `mmap_action_remap`: `remap_pfn_range_prepare_vma`
    /// (`remap_range`, `get_remap_pgoff` in `driver/action.rs`) and `remap_pfn_range_complete`
    /// (`install_ptes`: alignment, a physical range that wraps).
    ///
    /// # On failure
    /// `EFAULT` for a range outside the VMA (the kernel does not check it here; see
    /// `remap_range` in `driver/action.rs`), `EINVAL` for a partial private remap, a misaligned start or a
    /// physical range that wraps.
    pub fn remap_pfn_range(&mut self, addr: VirtAddr, pfn: Pfn, size: u64) -> Result<()> {
        let range = (self.vma.start(), self.vma.end());
        let end = action::remap_range(addr, size, range.0, range.1)?;
        let is_cow = flags::is_cow_mapping(self.vma.flags());
        if let Some(pgoff) = action::get_remap_pgoff(is_cow, (addr, end), range, pfn)? {
            self.vma.set_pgoff(pgoff);
        }
        self.vma.set_flag_bits(flags::REMAP_FLAGS);
        let kind = ActionKind::RemapPfn {
            start: addr,
            pfn,
            size,
            prot: self.vma.page_prot(),
        };
        action::install_ptes(self.ptes, &kind)
    }

    /// `compat_vma_mmap(inner, vma)`: maps this VMA with `inner`'s `mmap_prepare`, as a stacked
    /// file (overlayfs, a backing file) does when the file below converted to mmap_prepare.
    pub fn compat_mmap_prepare(&mut self, inner: &Arc<File>) -> Result<()> {
        let v = &*self.vma;
        let mut desc = VmAreaDesc::new(inner.clone(), v.start(), v.end(), v.pgoff(), v.flags(), self.shmem);
        if let Some(f) = v.file() {
            desc.set_vm_file(f.clone());
        }
        desc.set_page_prot(v.page_prot());
        let parts = pipeline::call_mmap_prepare(inner, desc, self.events)?;
        // compat_set_vma_from_desc
        let vma = &mut *self.vma;
        vma.set_pgoff(parts.pgoff);
        vma.set_file(Some(parts.vm_file));
        vma.set_flags(parts.flags);
        vma.set_page_prot(parts.page_prot);
        if let Some(ops) = parts.vm_ops {
            vma.set_ops(VmOps::Driver(ops));
        }
        vma.set_private_data(parts.private_data);
        // mmap_action_complete with is_compat: no unmap, no error hook; the caller's failure
        // path cleans up ([N+]).
        let action = parts.action;
        let driver = inner.ops().name();
        pipeline::mmap_action_complete(vma, self.ptes, self.events, &action, driver)
            .map_err(|e| pipeline::mmap_action_error(self.events, &action, Completion::Compat, e))
    }
}

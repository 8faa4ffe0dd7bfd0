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
//!   completed; an error is returned without unmapping (the outer hook's failure path cleans
//!   up, [N+]).
//!
//! After a legacy hook returns, the engine refuses ops that have `mapped` (`EINVAL`, as
//! `__vma_check_mmap_hook` does at \[N\]): `mapped` belongs to the mmap_prepare model.

use alloc::sync::Arc;

use crate::action::{self, ActionKind, NewVma};
use crate::addr::{PAGE_SIZE, Pfn, PgOff, VirtAddr};
use crate::desc::VmAreaDesc;
use crate::errno::{Errno, Result, err};
use crate::events::{Event, EventLog};
use crate::file::File;
use crate::flags::{self, VmaBit, VmaFlags};
use crate::pagetable::{PageTable, Pte};
use crate::phys::{FrameRef, Machine};
use crate::shmem::ShmemFs;
use crate::vma::{PageProt, PrivateData, VmHooks, VmOperations, VmOps, Vma};

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
        self.vma.flags.set_mask(mask);
    }
    /// `vm_flags_clear`: clears these flags.
    pub fn clear_flags(&mut self, mask: VmaFlags) {
        self.vma.flags.clear_mask(mask);
    }
    /// `vma->vm_ops = ops`.
    pub fn set_vm_ops(&mut self, ops: Arc<dyn VmOperations>) {
        self.vma.ops = VmOps::Driver(ops);
    }
    /// `vma->vm_private_data = data`.
    pub fn set_private_data(&mut self, data: PrivateData) {
        self.vma.private_data = Some(data);
    }
    /// `vma->vm_pgoff = pgoff`.
    pub fn set_pgoff(&mut self, pgoff: PgOff) {
        self.vma.pgoff = pgoff;
    }
    /// `vma_set_file`: points the VMA at another file (a stacked file's inner one).
    pub fn set_file(&mut self, file: Arc<File>) {
        self.vma.file = Some(file);
    }
    /// `vma->vm_page_prot = prot`.
    pub fn set_page_prot(&mut self, prot: PageProt) {
        self.vma.page_prot = prot;
    }

    /// `vm_insert_page`: maps a kernel page at `addr` (sets `VM_MIXEDMAP`).
    pub fn vm_insert_page(&mut self, addr: VirtAddr, page: FrameRef) -> Result<()> {
        if addr < self.vma.start || addr >= self.vma.end {
            return Err(err(Errno::EFAULT, "address outside the VMA"));
        }
        if self.vma.flags.test(VmaBit::PfnMap) {
            return Err(err(Errno::EINVAL, "vm_insert_page into a PFN mapping"));
        }
        if self.ptes.get(addr).is_some() {
            return Err(err(Errno::EBUSY, "a page is already mapped there"));
        }
        self.vma.flags.set(VmaBit::MixedMap);
        self.ptes.set(addr.page_down(), Pte::frame(page, false, false));
        Ok(())
    }

    /// `remap_pfn_range`: maps `size` bytes of physical memory from `pfn` at `addr`, setting
    /// `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`. A private (COW) remap must cover the
    /// whole VMA, whose pgoff becomes the PFN.
    pub fn remap_pfn_range(&mut self, addr: VirtAddr, pfn: Pfn, size: u64) -> Result<()> {
        let Some(end) = addr.checked_add(size) else {
            return Err(err(Errno::EINVAL, "remap range wraps"));
        };
        if !addr.is_page_aligned() || addr < self.vma.start || end > self.vma.end {
            return Err(err(Errno::EINVAL, "remap range is outside the VMA"));
        }
        if flags::is_cow_mapping(self.vma.flags) {
            if addr != self.vma.start || end != self.vma.end {
                return Err(err(Errno::EINVAL, "a private remap must cover the whole VMA"));
            }
            self.vma.pgoff = PgOff(pfn.get());
        }
        self.vma.flags.set_mask(flags::REMAP_FLAGS);
        for i in 0..size.div_ceil(PAGE_SIZE) {
            let pte = Pte::pfn(Pfn(pfn.get() + i));
            self.ptes.set(VirtAddr(addr.get() + i * PAGE_SIZE), pte);
        }
        Ok(())
    }

    /// `compat_vma_mmap(inner, vma)`: maps this VMA with `inner`'s `mmap_prepare`, as a stacked
    /// file (overlayfs, a backing file) does when the file below converted to mmap_prepare.
    pub fn compat_mmap_prepare(&mut self, inner: &Arc<File>) -> Result<()> {
        let v = &*self.vma;
        let mut desc = VmAreaDesc::new(inner.clone(), v.start, v.end, v.pgoff, v.flags, self.shmem);
        if let Some(f) = &v.file {
            desc.set_vm_file(f.clone());
        }
        desc.set_page_prot(v.page_prot);
        let (start, end, pgoff) = (v.start, v.end, v.pgoff);
        let mark = self.events.mark();
        let result = inner.ops().mmap_prepare(&mut desc);
        let (driver, fl) = (inner.ops().name(), desc.flags());
        self.events.insert_at(mark, || Event::MmapPrepare {
            driver,
            start,
            end,
            pgoff,
            flags: fl,
            result: result.map_err(|e| e.errno),
        });
        result?;
        let mut act = desc.take_action();
        if !matches!(act.kind, ActionKind::Nothing) {
            let name = act.kind.name();
            let r = action::prepare(&mut desc, &mut act);
            self.events.push(|| Event::ActionPrepare {
                action: name,
                result: r.map_err(|e| e.errno),
            });
            r?;
        }
        desc.restore_action(act);
        // compat_set_vma_from_desc
        let parts = desc.into_parts();
        let vma = &mut *self.vma;
        vma.pgoff = parts.pgoff;
        vma.file = Some(parts.vm_file);
        vma.flags = parts.flags;
        vma.page_prot = parts.page_prot;
        if let Some(ops) = parts.vm_ops {
            vma.ops = VmOps::Driver(ops);
        }
        vma.private_data = parts.private_data;
        // mmap_action_complete, without the unmap on failure (the caller's path cleans up).
        let act = parts.action;
        if !matches!(act.kind, ActionKind::Nothing) {
            let r = action::install_ptes(self.ptes, &act.kind);
            let name = act.kind.name();
            self.events.push(|| Event::ActionComplete {
                action: name,
                start,
                end,
                result: r.map_err(|e| e.errno),
            });
            r?;
        }
        if let Some(ops) = vma
            .ops
            .driver()
            .filter(|o| o.hooks().contains(VmHooks::MAPPED))
            .cloned()
        {
            let mut private = vma.private_data.clone();
            let mark = self.events.mark();
            let r = ops.mapped(vma.start, vma.end, vma.pgoff, vma.file.as_ref(), &mut private);
            let (name, pg) = (ops.ops_name(), vma.pgoff);
            self.events.insert_at(mark, || Event::Mapped {
                ops: name,
                start,
                end,
                pgoff: pg,
                result: r.map_err(|e| e.errno),
            });
            r?;
            vma.private_data = private;
        }
        if let Some(hook) = &act.success_hook {
            let mark = self.events.mark();
            let r = hook(&mut NewVma { vma: &mut *self.vma });
            self.events.insert_at(mark, || Event::SuccessHook {
                start,
                end,
                result: r.map_err(|e| e.errno),
            });
            if let Err(mut e) = r {
                if let Some(filter) = &act.error_hook {
                    let from = e.errno;
                    e.errno = filter(from);
                    let to = e.errno;
                    self.events.push(|| Event::ErrorHook { from, to });
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

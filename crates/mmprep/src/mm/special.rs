//! Special mappings: the kernel's own pages in a process, `[vvar]`, `[vvar_vclock]` and `[vdso]`.
//!
//! `execve` maps the vDSO (code the kernel provides for `gettimeofday` and friends) and its data
//! pages just below the interpreter, with one `get_unmapped_area(NULL, 0, size)` for all of
//! them. Each part is a *special mapping*: no file, `vm_ops` that name it, refuse splits
//! (`may_split` → `EINVAL`) and have `close`, so no merge ever removes them; every one is
//! `VM_DONTEXPAND`.
//!
//! On the reference host (Linux 6.18.44 x86_64, `/proc/self/smaps`):
//!
//! ```text
//!   7ffff7fc2000-7ffff7fc6000 r--p ... [vvar]         VmFlags: rd mr pf io de dd   (4 pages)
//!   7ffff7fc6000-7ffff7fc8000 r--p ... [vvar_vclock]  VmFlags: rd mr pf io de dd   (2 pages)
//!   7ffff7fc8000-7ffff7fca000 r-xp ... [vdso]         VmFlags: rd ex mr mw me de   (2 pages)
//! ```
//!
//! Mirrors `mm/vma.c:_install_special_mapping`, `__install_special_mapping`, `insert_vm_struct`,
//! `mm/mmap.c:special_mapping_vmops` (`special_mapping_name`, `special_mapping_split`,
//! `special_mapping_mremap`, `special_mapping_close`), `arch/x86/entry/vdso/vma.c:map_vdso`,
//! `lib/vdso/datastore.c:vdso_install_vvar_mapping`.

use crate::vma::{VmClose, VmFaultHandler, VmMaySplit, VmMremap, VmName};
use alloc::sync::Arc;

use crate::addr::{PAGE_SIZE, PageRange, PgOff, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::flags::{self, VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::uapi::MapFlags;
use crate::vma::{FaultResult, PageProt, VmFault, VmOperations, VmOps, Vma};
use crate::vma_flags;

/// The flags `map_vdso` gives the vDSO text.
pub const VDSO_TEXT_FLAGS: VmaFlags = vma_flags![Read, Exec, MayRead, MayWrite, MayExec];
/// The flags of the vDSO data pages (`[vvar]`, `[vvar_vclock]`).
pub const VVAR_FLAGS: VmaFlags = vma_flags![Read, MayRead, Io, DontDump, PfnMap];

/// The sizes of a vDSO image and its data areas, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VdsoLayout {
    /// `VDSO_NR_PAGES`: the `[vvar]` data pages.
    pub vvar_pages: u64,
    /// `VDSO_NR_VCLOCK_PAGES`: the `[vvar_vclock]` pages (0: the kernel has none).
    pub vclock_pages: u64,
    /// `image->size / PAGE_SIZE`: the `[vdso]` text.
    pub text_pages: u64,
}

impl VdsoLayout {
    /// The reference host (6.18.44 x86_64): 4 + 2 + 2 pages.
    pub const HOST_6_18: VdsoLayout = VdsoLayout {
        vvar_pages: 4,
        vclock_pages: 2,
        text_pages: 2,
    };
}

/// The `vm_ops` of one special mapping (`special_mapping_vmops` with its `vm_special_mapping`).
pub struct SpecialMapping {
    name: &'static str,
}

impl SpecialMapping {
    /// A special mapping that `/proc/PID/maps` names `name` (`"[vdso]"`).
    pub fn new(name: &'static str) -> SpecialMapping {
        SpecialMapping { name }
    }
}

impl VmOperations for SpecialMapping {
    fn ops_name(&self) -> &'static str {
        "special_mapping_vmops"
    }
    fn name(&self) -> Option<&dyn VmName> {
        Some(self)
    }
    fn may_split(&self) -> Option<&dyn VmMaySplit> {
        Some(self)
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        Some(self)
    }
    fn mremap(&self) -> Option<&dyn VmMremap> {
        Some(self)
    }
}

impl VmMremap for SpecialMapping {
    /// `special_mapping_mremap`: a moved `[vdso]` is allowed (the kernel then records its new
    /// address for signal return, not modelled).
    fn mremap(&self, _new_vma: &Vma) -> Result<()> {
        Ok(())
    }
}

impl VmClose for SpecialMapping {
    /// `special_mapping_close`: nothing to release here; its presence keeps merges from deleting
    /// the VMA.
    fn close(&self, _vma: &Vma) {}
}

impl VmName for SpecialMapping {
    fn vma_name(&self, _vma: &Vma) -> Option<&'static str> {
        Some(self.name)
    }
}

impl VmMaySplit for SpecialMapping {
    fn may_split(&self, _vma: &Vma, _addr: VirtAddr) -> Result<()> {
        Err(err(Errno::EINVAL, "special mappings cannot be split"))
    }
}

impl VmFaultHandler for SpecialMapping {
    /// The pages' contents are not modelled: each fault gets a zero page.
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let frame = vmf.machine().alloc_frame();
        vmf.set_page(frame);
        FaultResult::Ok
    }
}

impl Mm {
    /// `_install_special_mapping(mm, addr, len, vm_flags, spec)`: maps the kernel's own pages at
    /// `[addr, addr + len)` with `flags | def_flags | VM_DONTEXPAND` (never locked) and a
    /// `/proc/PID/maps` name.
    ///
    /// # Errors
    /// `EINVAL` for an unaligned or empty range or one past `TASK_SIZE`; `ENOMEM` if a VMA is
    /// already there (`insert_vm_struct`), for a refused commit charge (`VM_ACCOUNT` in `flags`),
    /// or an allocation failure.
    pub fn install_special_mapping(
        &mut self,
        addr: VirtAddr,
        len: u64,
        flags: VmaFlags,
        name: &'static str,
    ) -> Result<()> {
        let end = addr.checked_add(len).filter(|e| e.0 <= self.profile.task_size);
        let Some(range) = end.and_then(|e| PageRange::new(addr, e)) else {
            return Err(err(Errno::EINVAL, "the range is unaligned, empty or past TASK_SIZE"));
        };
        let mut vm_flags = flags
            .with(self.def_flags)
            .with(vma_flags![DontExpand])
            .without(flags::LOCKED_MASK);
        if self.profile.soft_dirty {
            vm_flags.set(VmaBit::SoftDirty);
        }
        self.alloc()?;
        if self.tree.find_intersection(range.start(), range.end()).is_some() {
            return Err(err(Errno::ENOMEM, "the range is already mapped (insert_vm_struct)"));
        }
        if vm_flags.test(VmaBit::Account) {
            self.charge(range.pages())?;
        }
        let mut vma = Vma::new(range, PgOff(0), vm_flags);
        vma.set_ops(VmOps::Driver(Arc::new(SpecialMapping::new(name))));
        vma.set_page_prot(PageProt::from_flags(vm_flags));
        self.tree.insert(vma);
        self.vm_stat_account(vm_flags, range.pages() as i64);
        Ok(())
    }

    /// `map_vdso(image, addr)`: places `[vvar]`, `[vvar_vclock]` and `[vdso]` together with one
    /// `get_unmapped_area(NULL, hint, size, 0, 0)`, the data pages first. Returns the start of
    /// `[vdso]` (what `AT_SYSINFO_EHDR` points at).
    pub fn map_vdso(&mut self, hint: VirtAddr, layout: VdsoLayout) -> Result<VirtAddr> {
        let data = (layout.vvar_pages + layout.vclock_pages) * PAGE_SIZE;
        let text = layout.text_pages * PAGE_SIZE;
        if text == 0 {
            return Err(err(Errno::EINVAL, "a vDSO image has at least one page"));
        }
        let addr = self.get_unmapped_area(None, hint, data + text, 0, MapFlags(0), VmaFlags::EMPTY)?;
        let text_start = VirtAddr(addr.0 + data);
        self.install_special_mapping(text_start, text, VDSO_TEXT_FLAGS, "[vdso]")?;
        let mut result = Ok(());
        if layout.vvar_pages != 0 {
            result = self.install_special_mapping(addr, layout.vvar_pages * PAGE_SIZE, VVAR_FLAGS, "[vvar]");
        }
        if result.is_ok() && layout.vclock_pages != 0 {
            let vclock = VirtAddr(addr.0 + layout.vvar_pages * PAGE_SIZE);
            result = self.install_special_mapping(vclock, layout.vclock_pages * PAGE_SIZE, VVAR_FLAGS, "[vvar_vclock]");
        }
        if let Err(e) = result {
            // map_vdso's failure path: unmap what was installed.
            let _ = self.do_munmap(addr, VirtAddr(text_start.0 + text));
            return Err(e);
        }
        Ok(text_start)
    }
}

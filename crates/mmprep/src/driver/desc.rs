//! The descriptor a driver sees in `mmap_prepare`: the mapping as it is proposed, before any
//! merge.
//!
//! Linux's `f_op->mmap_prepare(struct vm_area_desc *desc)` replaces the old `f_op->mmap(file,
//! vma)`: the driver no longer gets the VMA (which might be merged away, or thrown away if a
//! later step fails) but a description of the mapping to be made. The kernel's comment splits the
//! fields into three groups, and this type enforces what C can only document
//! (`include/linux/mm_types.h:struct vm_area_desc`,
//! `Documentation/filesystems/mmap_prepare.rst`, \[N\]):
//!
//! | group | fields | driver may |
//! | --- | --- | --- |
//! | immutable | `file`, `start`, `end` | read |
//! | mutable | `pgoff`, `vm_file`, flags, `page_prot` | read and write |
//! | write-only | `vm_ops`, `private_data` | write |
//! | action | follow-up work | set through the `mmap_action_*` helpers |
//!
//! `mm/vma.c:call_mmap_prepare` copies back only the mutable and write-only fields; here
//! [`crate::mm`] does the same through `VmAreaDesc::into_parts`.
//!
//! A driver can neither read `vm_ops` nor move `start`:
//!
//! ```compile_fail
//! fn peek(desc: &mmprep::desc::VmAreaDesc<'_>) {
//!     let _ops = desc.vm_ops(); // no such method: vm_ops is write-only
//! }
//! ```
//!
//! ```compile_fail
//! fn move_it(desc: &mut mmprep::desc::VmAreaDesc<'_>) {
//!     desc.start = mmprep::addr::VirtAddr(0); // private field: start is immutable
//! }
//! ```

use alloc::sync::Arc;

use alloc::vec::Vec;

use crate::action::{ActionKind, ErrorHook, MmapAction, SuccessHook};
use crate::addr::{PAGE_SHIFT, Pfn, PgOff, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::file::File;
use crate::flags::{VmaBit, VmaFlags};
use crate::phys::FrameRef;
use crate::shmem::ShmemFs;
use crate::vma::{PageProt, PrivateData, VmOperations};

/// The proposed mapping handed to `mmap_prepare` (`struct vm_area_desc`).
pub struct VmAreaDesc<'a> {
    // Immutable.
    file: Arc<File>,
    start: VirtAddr,
    end: VirtAddr,
    // Mutable.
    pgoff: PgOff,
    vm_file: Arc<File>,
    flags: VmaFlags,
    page_prot: PageProt,
    // Write-only.
    vm_ops: Option<Arc<dyn VmOperations>>,
    private_data: Option<PrivateData>,
    // Set through helpers.
    action: MmapAction,
    // The shmem mount, for `shmem_zero_setup_desc`.
    shmem: &'a ShmemFs,
}

/// What `call_mmap_prepare` copies back from a descriptor: everything a driver may change.
pub(crate) struct DescParts {
    pub pgoff: PgOff,
    pub vm_file: Arc<File>,
    pub flags: VmaFlags,
    pub page_prot: PageProt,
    pub vm_ops: Option<Arc<dyn VmOperations>>,
    pub private_data: Option<PrivateData>,
    pub action: MmapAction,
}

impl<'a> VmAreaDesc<'a> {
    /// Builds the descriptor as `call_mmap_prepare` fills it: `vm_file` is the file, `vm_ops`
    /// and `private_data` are empty, the action does nothing.
    pub(crate) fn new(
        file: Arc<File>,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        flags: VmaFlags,
        shmem: &'a ShmemFs,
    ) -> VmAreaDesc<'a> {
        VmAreaDesc {
            vm_file: file.clone(),
            file,
            start,
            end,
            pgoff,
            flags,
            page_prot: PageProt::from_flags(flags),
            vm_ops: None,
            private_data: None,
            action: MmapAction::default(),
            shmem,
        }
    }

    /// Takes the fields the kernel copies back after the hook.
    pub(crate) fn into_parts(self) -> DescParts {
        DescParts {
            pgoff: self.pgoff,
            vm_file: self.vm_file,
            flags: self.flags,
            page_prot: self.page_prot,
            vm_ops: self.vm_ops,
            private_data: self.private_data,
            action: self.action,
        }
    }

    // ---- immutable: read only ----

    /// The file being mapped (for a stacked file, the inner one).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
    /// Start of the range. Final: `mmap_prepare` runs after the address was chosen.
    pub fn start(&self) -> VirtAddr {
        self.start
    }
    /// End of the range.
    pub fn end(&self) -> VirtAddr {
        self.end
    }
    /// `vma_desc_size`: length in bytes.
    pub fn size(&self) -> u64 {
        self.end.0 - self.start.0
    }
    /// `vma_desc_pages`: length in pages.
    pub fn pages(&self) -> u64 {
        self.size() >> PAGE_SHIFT
    }
    /// `range_in_vma_desc`: is `[start, end)` inside the mapping?
    pub fn range_in(&self, start: VirtAddr, end: VirtAddr) -> bool {
        start.0 >= self.start.0 && end.0 <= self.end.0 && start.0 <= end.0
    }

    // ---- mutable: read and write ----

    /// The file page at `start`.
    pub fn pgoff(&self) -> PgOff {
        self.pgoff
    }
    /// Changes the file page at `start`; the merge decision uses the new value.
    pub fn set_pgoff(&mut self, pgoff: PgOff) {
        self.pgoff = pgoff;
    }
    /// The file the VMA will point at.
    pub fn vm_file(&self) -> &Arc<File> {
        &self.vm_file
    }
    /// Points the VMA at another file (shmem replaces `/dev/zero` this way).
    pub fn set_vm_file(&mut self, file: Arc<File>) {
        self.vm_file = file;
    }
    /// The flags (`desc->vma_flags`).
    pub fn flags(&self) -> VmaFlags {
        self.flags
    }
    /// Replaces the flags wholesale. The kernel checks nothing here: a driver that adds
    /// `VM_MAYWRITE` gets it. After the hook the engine refuses the few changes that would
    /// break its counters (`VM_SHARED` without `VM_MAYSHARE`, `VM_LOCKONFAULT` without
    /// `VM_LOCKED`) and charges or releases a changed `VM_ACCOUNT` (`mm/mmap.rs`,
    /// `check_prepared_flags`).
    pub fn set_flags(&mut self, flags: VmaFlags) {
        self.flags = flags;
    }
    /// `vma_desc_test`: is this bit set?
    pub fn test(&self, bit: VmaBit) -> bool {
        self.flags.test(bit)
    }
    /// `vma_desc_test_any`: is any of these bits set?
    pub fn test_any(&self, mask: VmaFlags) -> bool {
        self.flags.test_any(mask)
    }
    /// `vma_desc_test_all`: are all of these bits set?
    pub fn test_all(&self, mask: VmaFlags) -> bool {
        self.flags.test_all(mask)
    }
    /// `vma_desc_set_flags`: sets these bits.
    pub fn set_flag_bits(&mut self, mask: VmaFlags) {
        self.flags.set_mask(mask);
    }
    /// `vma_desc_clear_flags`: clears these bits.
    pub fn clear_flag_bits(&mut self, mask: VmaFlags) {
        self.flags.clear_mask(mask);
    }
    /// `vma_desc_is_cow_mapping`: may be written, privately.
    pub fn is_cow_mapping(&self) -> bool {
        crate::flags::is_cow_mapping(self.flags)
    }
    /// Refuses future write access: clears `VM_MAYWRITE`, so `mprotect` can never add
    /// `PROT_WRITE`. Fails with `EINVAL` while `VM_WRITE` is set (clear it first, or refuse the
    /// mapping). The change is final for the life of the VMA.
    pub fn try_clear_maywrite(&mut self) -> Result<()> {
        if self.flags.test(VmaBit::Write) {
            return Err(err(
                Errno::EINVAL,
                "VM_MAYWRITE cannot be cleared while VM_WRITE is set",
            ));
        }
        self.flags.clear(VmaBit::MayWrite);
        Ok(())
    }
    /// The page protection.
    pub fn page_prot(&self) -> PageProt {
        self.page_prot
    }
    /// Changes the page protection (cache mode and so on).
    pub fn set_page_prot(&mut self, prot: PageProt) {
        self.page_prot = prot;
    }

    // ---- write-only ----

    /// Sets the VMA's operations. Applied after the merge decision; on a merged mapping too.
    pub fn set_vm_ops(&mut self, ops: Arc<dyn VmOperations>) {
        self.vm_ops = Some(ops);
    }
    /// Sets the VMA's private data. Applied always, even on a merged mapping, whose existing
    /// private data it overwrites (`set_vma_user_defined_fields`).
    pub fn set_private_data(&mut self, data: PrivateData) {
        self.private_data = Some(data);
    }

    // ---- action: through helpers ----

    /// `desc->action.success_hook`: run after a new (un-merged) mapping is complete.
    pub fn set_success_hook(&mut self, hook: SuccessHook) {
        self.action.success_hook = Some(hook);
    }
    /// `desc->action.error_hook`: filter the errno if completion fails.
    pub fn set_error_hook(&mut self, hook: ErrorHook) {
        self.action.error_hook = Some(hook);
    }
    /// The action recorded so far (read-only view).
    pub fn action(&self) -> &MmapAction {
        &self.action
    }

    /// `mmap_action_remap`: after the mapping is made, map `size` bytes of physical memory from
    /// frame `pfn` at `start` (`remap_pfn_range`), with the page protection as it is now.
    pub fn mmap_action_remap(&mut self, start: VirtAddr, pfn: Pfn, size: u64) {
        self.action.kind = ActionKind::RemapPfn {
            start,
            pfn,
            size,
            prot: self.page_prot,
        };
    }
    /// `mmap_action_remap_full`: remap the whole mapping from `pfn`.
    pub fn mmap_action_remap_full(&mut self, pfn: Pfn) {
        self.mmap_action_remap(self.start, pfn, self.size());
    }
    /// `mmap_action_ioremap`: as [`Self::mmap_action_remap`], for I/O memory.
    pub fn mmap_action_ioremap(&mut self, start: VirtAddr, pfn: Pfn, size: u64) {
        self.action.kind = ActionKind::IoRemapPfn {
            start,
            pfn,
            size,
            prot: self.page_prot,
        };
    }
    /// `mmap_action_ioremap_full`: I/O-remap the whole mapping from `pfn`.
    pub fn mmap_action_ioremap_full(&mut self, pfn: Pfn) {
        self.mmap_action_ioremap(self.start, pfn, self.size());
    }
    /// `mmap_action_simple_ioremap`: map the physical region `[phys, phys + size)`, starting
    /// `pgoff` pages into it, over the whole mapping. The page protection is taken when the
    /// action is prepared, so changes made after this call still count.
    pub fn mmap_action_simple_ioremap(&mut self, phys: u64, size: u64) {
        self.action.kind = ActionKind::SimpleIoRemap { phys, size };
    }
    /// `mmap_action_map_kernel_pages`: map `pages` (kernel pages the driver owns) from `start`.
    pub fn mmap_action_map_kernel_pages(&mut self, start: VirtAddr, pages: Vec<FrameRef>) {
        let nr = pages.len() as u64;
        self.action.kind = ActionKind::MapKernelPages {
            start,
            pages,
            nr,
            pgoff: self.pgoff,
        };
    }
    /// `mmap_action_map_kernel_pages_full`: map `pages` over the whole mapping (there must be at
    /// least as many as the mapping has pages).
    pub fn mmap_action_map_kernel_pages_full(&mut self, pages: Vec<FrameRef>) {
        let nr = self.pages();
        self.action.kind = ActionKind::MapKernelPages {
            start: self.start,
            pages,
            nr,
            pgoff: self.pgoff,
        };
    }

    /// Takes the action out for `mmap_action_prepare` (which also changes the descriptor).
    pub(crate) fn take_action(&mut self) -> MmapAction {
        core::mem::take(&mut self.action)
    }
    /// Puts the prepared action back.
    pub(crate) fn restore_action(&mut self, action: MmapAction) {
        self.action = action;
    }

    // ---- services ----

    /// `mm/shmem.c:shmem_zero_setup_desc`: back this mapping with a new shmem object as large as
    /// the mapping (what a shared `/dev/zero` or shared anonymous mapping gets). `vm_file` becomes
    /// that object, shown as `/dev/zero (deleted)`, and `vm_ops` its anonymous-shmem ops.
    ///
    /// Returns a `Result` as the kernel's `int` does (its inode allocation may fail with
    /// `ENOMEM`); the engine does not model that failure, so it always succeeds today.
    pub fn shmem_zero_setup(&mut self) -> Result<()> {
        let (file, ops) = self.shmem.zero_setup(self.size());
        self.vm_file = file;
        self.vm_ops = Some(ops);
        Ok(())
    }
}

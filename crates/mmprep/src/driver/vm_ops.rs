//! The driver's per-VMA hooks: `struct vm_operations_struct`.
//!
//! A VMA made by a driver points at its operations table; the kernel calls the members that are
//! not NULL when the VMA is split, copied, moved, faulted, named or goes away. Which members
//! exist is itself behaviour (a VMA with `close` is never deleted by a merge), so presence must
//! follow from what the driver provides.
//!
//! Mirrors `include/linux/mm.h:struct vm_operations_struct` and `struct vm_fault`, \[H\] 6.18 / \[N\].
//!
//! - [`VmOperations`]: the table, one capability method per member, each returning the hook's
//!   trait ([`VmOpen`], [`VmClose`], [`VmMapped`]…) or `None`.
//! - [`VmHooks`]: which members are present, derived from the table.
//! - [`VmFault`], [`FaultResult`]: a page fault as `fault`, `page_mkwrite` and `pfn_mkwrite` see it.
//! - [`filemap_fault`]: the page-cache `fault` most files use.

use alloc::sync::Arc;
use core::any::Any;

use crate::addr::{PgOff, VirtAddr};
use crate::errno::Result;
use crate::file::File;
use crate::phys::{FrameRef, Machine};
use crate::vma::Vma;

/// Driver data attached to a VMA (`vm_private_data`).
pub type PrivateData = Arc<dyn Any + Send + Sync>;

/// Which optional hooks a [`VmOperations`] implementation provides.
///
/// The kernel tests `vma->vm_ops->close` for NULL in merge decisions, so the presence of a hook
/// is itself behaviour: a VMA with `close` may never be deleted by a merge. The set is computed
/// from the [`VmOperations`] members (`hooks()` on `dyn VmOperations`); nothing declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VmHooks(pub u32);

impl VmHooks {
    pub const OPEN: VmHooks = VmHooks(1 << 0);
    pub const CLOSE: VmHooks = VmHooks(1 << 1);
    pub const MAY_SPLIT: VmHooks = VmHooks(1 << 2);
    pub const MAPPED: VmHooks = VmHooks(1 << 3);
    pub const NAME: VmHooks = VmHooks(1 << 4);
    pub const FAULT: VmHooks = VmHooks(1 << 5);
    pub const MREMAP: VmHooks = VmHooks(1 << 6);
    pub const PAGE_MKWRITE: VmHooks = VmHooks(1 << 8);
    pub const PFN_MKWRITE: VmHooks = VmHooks(1 << 9);
    pub const ACCESS: VmHooks = VmHooks(1 << 10);

    /// No hooks (`vma_dummy_vm_ops`).
    pub const NONE: VmHooks = VmHooks(0);

    /// Are all these hooks present?
    pub const fn contains(self, other: VmHooks) -> bool {
        self.0 & other.0 == other.0
    }
    /// Union.
    pub const fn with(self, other: VmHooks) -> VmHooks {
        VmHooks(self.0 | other.0)
    }
}

impl core::ops::BitOr for VmHooks {
    type Output = VmHooks;
    fn bitor(self, rhs: VmHooks) -> VmHooks {
        self.with(rhs)
    }
}

/// What a page fault handler found (`vm_fault_t`, reduced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultResult {
    /// A page is there (or was made).
    Ok,
    /// Nothing can be mapped here: `SIGBUS` (`VM_FAULT_SIGBUS`), e.g. beyond the end of a file.
    Sigbus,
    /// Out of memory (`VM_FAULT_OOM`).
    Oom,
}

/// A page fault as a driver's `fault` hook sees it (`struct vm_fault`).
pub struct VmFault<'a> {
    vma: &'a Vma,
    pgoff: PgOff,
    write: bool,
    machine: &'a Machine,
    page: Option<FrameRef>,
    /// The guest's page size (`PAGE_SIZE`), for the end-of-file test.
    page_size: u64,
}

impl<'a> VmFault<'a> {
    pub(crate) fn new(vma: &'a Vma, pgoff: PgOff, write: bool, machine: &'a Machine) -> VmFault<'a> {
        VmFault {
            vma,
            pgoff,
            write,
            machine,
            page: None,
            page_size: crate::addr::PAGE_SIZE,
        }
    }
    /// The same fault with the guest's page size (the engine's `PgOff` stays in 4 KiB units).
    pub(crate) fn with_page_size(mut self, page_size: u64) -> VmFault<'a> {
        self.page_size = page_size;
        self
    }
    /// The guest's page size: a file's last page reaches this far past its 4 KiB units.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }
    /// The faulting VMA.
    pub fn vma(&self) -> &Vma {
        self.vma
    }
    /// The file page wanted.
    pub fn pgoff(&self) -> PgOff {
        self.pgoff
    }
    /// A write fault (`FAULT_FLAG_WRITE`)?
    pub fn is_write(&self) -> bool {
        self.write
    }
    /// The system's memory, to allocate or look up frames.
    pub fn machine(&self) -> &Machine {
        self.machine
    }
    /// Hands back the page to map (`vmf->page`).
    pub fn set_page(&mut self, frame: FrameRef) {
        self.page = Some(frame);
    }
    pub(crate) fn take_page(&mut self) -> Option<FrameRef> {
        self.page.take()
    }
}

/// `filemap_fault` / `shmem_fault`: the page-cache page at `vmf.pgoff()` of the VMA's file,
/// created zero-filled if the file has none there yet. A page at or past the end of the file
/// (`i_size` rounded up to a page) cannot be had: `SIGBUS`. This is the `fault` hook of most
/// files (ext4, shmem, memfd); drivers backed by a page cache call it too.
pub fn filemap_fault(vmf: &mut VmFault<'_>) -> FaultResult {
    let Some(file) = vmf.vma().file() else {
        return FaultResult::Sigbus;
    };
    let inode = file.inode().clone();
    let index = vmf.pgoff().get();
    // i_size rounded up to a guest page, in the engine's 4 KiB units.
    let page = vmf.page_size();
    let pages = inode.size().div_ceil(page) * (page / crate::addr::PAGE_SIZE);
    if index >= pages {
        return FaultResult::Sigbus;
    }
    let page = inode.find_or_create_page(index, vmf.machine());
    vmf.set_page(page);
    FaultResult::Ok
}

/// A driver's per-VMA hooks (`struct vm_operations_struct`).
///
/// Each member is a capability method: it returns the hook, or `None` for a NULL member (the
/// default). A driver provides a hook by implementing its trait ([`VmOpen`], [`VmClose`]…) and
/// returning itself from the member, for instance `fn close(&self) -> Option<&dyn VmClose> {
/// Some(self) }`. Which hooks exist ([`VmHooks`], `hooks()` on `dyn VmOperations`) is derived
/// from these methods, so a hook cannot be present without a body, nor have a body the engine
/// does not see; the C harness answers them from the non-NULL members of the driver's table.
pub trait VmOperations: Send + Sync {
    /// The name of this ops table, for events and debugging (`"shmem_vm_ops"`).
    fn ops_name(&self) -> &'static str;

    /// `open`, or `None`.
    fn open(&self) -> Option<&dyn VmOpen> {
        None
    }
    /// `close`, or `None`.
    fn close(&self) -> Option<&dyn VmClose> {
        None
    }
    /// `mapped`, or `None`.
    fn mapped(&self) -> Option<&dyn VmMapped> {
        None
    }
    /// `may_split`, or `None`.
    fn may_split(&self) -> Option<&dyn VmMaySplit> {
        None
    }
    /// `mremap`, or `None`.
    fn mremap(&self) -> Option<&dyn VmMremap> {
        None
    }
    /// `name`, or `None`.
    fn name(&self) -> Option<&dyn VmName> {
        None
    }
    /// `fault`, or `None` (a fault is then `SIGBUS`).
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        None
    }
    /// `page_mkwrite`, or `None`.
    fn page_mkwrite(&self) -> Option<&dyn VmPageMkwrite> {
        None
    }
    /// `pfn_mkwrite`, or `None`.
    fn pfn_mkwrite(&self) -> Option<&dyn VmPfnMkwrite> {
        None
    }
    /// `access`, or `None`.
    fn access(&self) -> Option<&dyn VmAccess> {
        None
    }
}

impl dyn VmOperations {
    /// Which hooks are present: one bit per member that is not `None`. Derived, never declared.
    pub fn hooks(&self) -> VmHooks {
        let members = [
            (self.open().is_some(), VmHooks::OPEN),
            (self.close().is_some(), VmHooks::CLOSE),
            (self.may_split().is_some(), VmHooks::MAY_SPLIT),
            (self.mapped().is_some(), VmHooks::MAPPED),
            (self.name().is_some(), VmHooks::NAME),
            (self.fault().is_some(), VmHooks::FAULT),
            (self.mremap().is_some(), VmHooks::MREMAP),
            (self.page_mkwrite().is_some(), VmHooks::PAGE_MKWRITE),
            (self.pfn_mkwrite().is_some(), VmHooks::PFN_MKWRITE),
            (self.access().is_some(), VmHooks::ACCESS),
        ];
        members
            .into_iter()
            .filter(|(present, _)| *present)
            .fold(VmHooks::NONE, |all, (_, bit)| all | bit)
    }
}

/// `open(vma)`: a new VMA was made from an existing one (split, fork, mremap move).
pub trait VmOpen {
    /// The hook.
    fn open(&self, vma: &Vma);
}

/// `close(vma)`: the VMA is going away (munmap, replaced by `MAP_FIXED`, exit). Its presence
/// alone forbids a merge to delete the VMA (`mm/vma.c:can_merge_remove_vma`).
pub trait VmClose {
    /// The hook.
    fn close(&self, vma: &Vma);
}

/// `mapped(start, end, pgoff, file, &private_data)` (\[N\] 7.1): a new, un-merged mapping of an
/// mmap_prepare file is in place. Do per-mapping work here (take a reference); `private` may
/// be replaced and is written back only on success. An error unmaps the new VMA (its `close`
/// runs) and fails the `mmap` (`mm/util.c:call_vma_mapped`).
pub trait VmMapped {
    /// The hook.
    fn mapped(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        file: Option<&Arc<File>>,
        private: &mut Option<PrivateData>,
    ) -> Result<()>;
}

/// `may_split(vma, addr)`: may the VMA be split at `addr`? An error aborts the operation.
pub trait VmMaySplit {
    /// The hook.
    fn may_split(&self, vma: &Vma, addr: VirtAddr) -> Result<()>;
}

/// `mremap(new_vma)`: `mremap(2)` moved this VMA's pages (their page-table entries) to
/// `new_vma`; called on the source VMA's ops (`mm/mremap.c:copy_vma_and_data`). An error moves
/// the entries back, unmaps the new range (its `close` runs if it was a VMA of its own) and
/// fails the call with that error.
pub trait VmMremap {
    /// The hook.
    fn mremap(&self, new_vma: &Vma) -> Result<()>;
}

/// `name(vma)`: the name `/proc/PID/maps` shows for a VMA without a file (`[vdso]`).
pub trait VmName {
    /// The hook.
    fn vma_name(&self, vma: &Vma) -> Option<&'static str>;
}

/// `fault(vmf)`: supply the page at `vmf.pgoff()` with [`VmFault::set_page`] and return
/// [`FaultResult::Ok`].
pub trait VmFaultHandler {
    /// The hook.
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult;
}

/// `page_mkwrite(vmf)`: a shared page is about to be written for the first time (a filesystem
/// reserves blocks here). An error turns the write into `SIGBUS`.
pub trait VmPageMkwrite {
    /// The hook.
    fn page_mkwrite(&self, vmf: &mut VmFault<'_>) -> FaultResult;
}

/// `pfn_mkwrite(vmf)`: a page of a PFN mapping is about to be written for the first time.
pub trait VmPfnMkwrite {
    /// The hook.
    fn pfn_mkwrite(&self, vmf: &mut VmFault<'_>) -> FaultResult;
}

/// `access(vma, addr, buf, len, write)`: another process (ptrace, `/proc/PID/mem`) reads or
/// writes an I/O or PFN mapping, which `get_user_pages` cannot reach. Returns the bytes done.
/// For a write, `buf` holds the data.
pub trait VmAccess {
    /// The hook.
    fn access(&self, vma: &Vma, addr: VirtAddr, buf: &mut [u8], write: bool) -> Result<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Provides `close` and `fault` only.
    struct Two;

    impl VmOperations for Two {
        fn ops_name(&self) -> &'static str {
            "two"
        }
        fn close(&self) -> Option<&dyn VmClose> {
            Some(self)
        }
        fn fault(&self) -> Option<&dyn VmFaultHandler> {
            Some(self)
        }
    }

    impl VmClose for Two {
        fn close(&self, _vma: &Vma) {}
    }

    impl VmFaultHandler for Two {
        fn fault(&self, _vmf: &mut VmFault<'_>) -> FaultResult {
            FaultResult::Sigbus
        }
    }

    /// Provides nothing: `vma_dummy_vm_ops` with a name.
    struct Bare;

    impl VmOperations for Bare {
        fn ops_name(&self) -> &'static str {
            "bare"
        }
    }

    /// Presence is what the table provides: nothing more is declared, nothing less is seen.
    #[test]
    fn hooks_follow_the_members_provided() {
        let two: &dyn VmOperations = &Two;
        assert_eq!(two.hooks(), VmHooks::CLOSE | VmHooks::FAULT);
        assert!(two.close().is_some() && two.open().is_none());
        let bare: &dyn VmOperations = &Bare;
        assert_eq!(bare.hooks(), VmHooks::NONE);
    }
}

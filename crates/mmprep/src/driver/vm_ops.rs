//! The driver's per-VMA hooks: `struct vm_operations_struct`.
//!
//! A VMA made by a driver points at its operations table; the kernel calls the members that are
//! not NULL when the VMA is split, copied, moved, faulted, named or goes away. Which members
//! exist is itself behaviour (a VMA with `close` is never deleted by a merge), so presence must
//! follow from what the driver provides.
//!
//! Mirrors `include/linux/mm.h:struct vm_operations_struct` and `struct vm_fault`, \[H\] 6.18 / \[N\].
//!
//! - [`VmOperations`]: the table, one method per member.
//! - [`VmHooks`]: which members are present.
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
/// is itself behaviour: a VMA with `close` may never be deleted by a merge. Rust cannot see
/// whether a trait method was overridden, so implementations declare it here.
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
    pub const MPROTECT: VmHooks = VmHooks(1 << 7);
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
}

impl<'a> VmFault<'a> {
    pub(crate) fn new(vma: &'a Vma, pgoff: PgOff, write: bool, machine: &'a Machine) -> VmFault<'a> {
        VmFault {
            vma,
            pgoff,
            write,
            machine,
            page: None,
        }
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
    let pages = inode.size().div_ceil(crate::addr::PAGE_SIZE);
    if index >= pages {
        return FaultResult::Sigbus;
    }
    let page = inode.find_or_create_page(index, vmf.machine());
    vmf.set_page(page);
    FaultResult::Ok
}

/// A driver's per-VMA hooks (`struct vm_operations_struct`).
///
/// Every hook has a default that does what a NULL member does in C; [`VmOperations::hooks`]
/// must list the ones an implementation overrides.
pub trait VmOperations: Send + Sync {
    /// The name of this ops table, for events and debugging (`"shmem_vm_ops"`).
    fn ops_name(&self) -> &'static str;

    /// Which hooks are present.
    fn hooks(&self) -> VmHooks;

    /// `open(vma)`: a new VMA was made from an existing one (split, fork, mremap move).
    fn open(&self, vma: &Vma) {
        let _ = vma;
    }

    /// `close(vma)`: the VMA is going away (munmap, replaced by `MAP_FIXED`, exit).
    fn close(&self, vma: &Vma) {
        let _ = vma;
    }

    /// `mapped(start, end, pgoff, file, &private_data)` (\[N\] 7.1): a new, un-merged mapping of an
    /// mmap_prepare file is in place. Do per-mapping work here (take a reference); `private` may
    /// be replaced and is written back only on success. An error unmaps the new VMA (its `close`
    /// runs) and fails the `mmap`.
    fn mapped(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        file: Option<&Arc<File>>,
        private: &mut Option<PrivateData>,
    ) -> Result<()> {
        let _ = (start, end, pgoff, file, private);
        Ok(())
    }

    /// `may_split(vma, addr)`: may the VMA be split at `addr`? An error aborts the operation.
    fn may_split(&self, vma: &Vma, addr: VirtAddr) -> Result<()> {
        let _ = (vma, addr);
        Ok(())
    }

    /// `mremap(new_vma)`: `mremap(2)` moved this VMA's pages (their page-table entries) to
    /// `new_vma`; called on the source VMA's ops (`mm/mremap.c:copy_vma_and_data`). An error
    /// moves the entries back, unmaps the new range (its `close` runs if it was a VMA of its
    /// own) and fails the call with that error. Declare [`VmHooks::MREMAP`] to be called.
    fn mremap(&self, new_vma: &Vma) -> Result<()> {
        let _ = new_vma;
        Ok(())
    }

    /// `name(vma)`: the name `/proc/PID/maps` shows for a VMA without a file (`[vdso]`).
    fn vma_name(&self, vma: &Vma) -> Option<&'static str> {
        let _ = vma;
        None
    }

    /// `fault(vmf)`: supply the page at `vmf.pgoff()` with [`VmFault::set_page`] and return
    /// [`FaultResult::Ok`]. The default (no `fault`) is `SIGBUS`.
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let _ = vmf;
        FaultResult::Sigbus
    }

    /// `page_mkwrite(vmf)`: a shared page is about to be written for the first time (a
    /// filesystem reserves blocks here). An error turns the write into `SIGBUS`.
    fn page_mkwrite(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let _ = vmf;
        FaultResult::Ok
    }

    /// `pfn_mkwrite(vmf)`: a page of a PFN mapping is about to be written for the first time.
    fn pfn_mkwrite(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let _ = vmf;
        FaultResult::Ok
    }

    /// `access(vma, addr, buf, len, write)`: another process (ptrace, `/proc/PID/mem`) reads or
    /// writes an I/O or PFN mapping, which `get_user_pages` cannot reach. Returns the bytes
    /// done. For a write, `buf` holds the data.
    fn access(&self, vma: &Vma, addr: VirtAddr, buf: &mut [u8], write: bool) -> Result<usize> {
        let _ = (vma, addr, buf, write);
        Ok(0)
    }
}

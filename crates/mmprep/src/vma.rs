//! Virtual memory areas: one contiguous run of pages with the same attributes.
//!
//! A process's address space is a sorted set of non-overlapping VMAs (`struct vm_area_struct`).
//! Each has a range, flags, a file page offset, maybe a file, maybe driver operations
//! (`vm_ops`) and, once a private page has been written, an *anon_vma* that its anonymous pages
//! hang off. Most of the kernel's mmap logic is about when two neighbouring VMAs can become one
//! (merge) and when one must become two (split).
//!
//! Mirrors `include/linux/mm_types.h:struct vm_area_struct` and
//! `include/linux/mm.h:struct vm_operations_struct`, \[H\] 6.18 / \[N\].
//!
//! - [`Vma`]: the VMA. Drivers and callers read it; only [`Mm`](crate::mm::Mm) and the merge code
//!   change it, so the mutators are `pub(crate)`.
//! - [`VmOperations`]: the driver's per-VMA hooks, with [`VmHooks`] saying which ones exist
//!   (the C struct's non-NULL members).
//! - [`VmOps`]: what a VMA's `vm_ops` pointer holds: nothing (anonymous), the dummy ops, or a
//!   driver's.
//! - [`AnonVmaRef`]: the VMA's anon_vma, reduced to what merge decisions need.

use alloc::sync::Arc;
use core::any::Any;
use core::fmt;

use crate::addr::{PAGE_SHIFT, PageRange, PgOff, VirtAddr};
use crate::errno::Result;
use crate::file::File;
use crate::flags::{ACCESS_FLAGS, VmaBit, VmaFlags};
use crate::phys::{FrameRef, Machine};

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

/// What a VMA's `vm_ops` holds.
#[derive(Clone)]
pub enum VmOps {
    /// `vm_ops == NULL`: an anonymous VMA (`vma_is_anonymous`). Faults get zero-filled pages.
    Anonymous,
    /// `vma_dummy_vm_ops`: a file VMA whose driver set no operations; every fault is `SIGBUS`.
    Dummy,
    /// A driver's operations.
    Driver(Arc<dyn VmOperations>),
}

impl VmOps {
    /// The hooks present.
    pub fn hooks(&self) -> VmHooks {
        match self {
            VmOps::Driver(ops) => ops.hooks(),
            _ => VmHooks::NONE,
        }
    }
    /// Does it have `close` (`can_merge_remove_vma` refuses to delete such a VMA)?
    pub fn has_close(&self) -> bool {
        self.hooks().contains(VmHooks::CLOSE)
    }
    /// The driver ops, if any.
    pub fn driver(&self) -> Option<&Arc<dyn VmOperations>> {
        match self {
            VmOps::Driver(ops) => Some(ops),
            _ => None,
        }
    }
}

impl fmt::Debug for VmOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmOps::Anonymous => f.write_str("anonymous"),
            VmOps::Dummy => f.write_str("dummy"),
            VmOps::Driver(ops) => f.write_str(ops.ops_name()),
        }
    }
}

/// Identity of an anon_vma (`struct anon_vma *`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnonVmaId(pub u64);

/// A VMA's anon_vma as merge decisions see it.
///
/// The kernel links a VMA to its anon_vma and, after `fork`, to every ancestor's through the
/// `anon_vma_chain`. Merges only ask two things (`mm/vma.c:is_mergeable_anon_vma`): *which*
/// anon_vma (pointer equality), and whether the chain has more than one entry (the VMA is a fork
/// child, `vma_is_fork_child`). `chain` counts the entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnonVmaRef {
    /// The anon_vma itself.
    pub id: AnonVmaId,
    /// Entries in the VMA's `anon_vma_chain` (1 for a VMA that was not inherited).
    pub chain: u32,
}

impl AnonVmaRef {
    /// Was the VMA inherited through `fork` (`!list_is_singular(&vma->anon_vma_chain)`)?
    pub const fn is_fork_child(&self) -> bool {
        self.chain > 1
    }
}

/// Page protection bits (`pgprot_t`), reduced to what the engine distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageProt {
    /// Pages may be read.
    pub read: bool,
    /// Pages may be written without a fault (shared writable only; private ones are CoW).
    pub write: bool,
    /// Pages may be executed.
    pub exec: bool,
    /// Cache mode.
    pub cache: CacheMode,
}

/// The memory type of a mapping's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Write-back (normal memory).
    #[default]
    WriteBack,
    /// Write-combining (`pgprot_writecombine`).
    WriteCombine,
    /// Uncached (`pgprot_noncached`).
    Uncached,
}

impl PageProt {
    /// `vm_get_page_prot(flags)`: the x86 protection map. Private writable pages start
    /// read-only, to be copied on the first write.
    pub fn from_flags(flags: VmaFlags) -> PageProt {
        PageProt {
            read: flags.test_any(ACCESS_FLAGS),
            write: flags.test(VmaBit::Write) && flags.test(VmaBit::Shared),
            exec: flags.test(VmaBit::Exec),
            cache: CacheMode::WriteBack,
        }
    }
    /// `vma_set_page_prot`: recompute from flags, keeping the cache mode a driver chose.
    pub fn recompute(self, flags: VmaFlags) -> PageProt {
        PageProt {
            cache: self.cache,
            ..PageProt::from_flags(flags)
        }
    }
}

/// A virtual memory area (`struct vm_area_struct`).
///
/// # Invariants
/// - `start < end`, both page aligned.
/// - A VMA with `ops == VmOps::Anonymous` has no driver hooks; a VMA with a file has `Dummy` or
///   `Driver` ops, except private `/dev/zero`, which the kernel makes anonymous while it keeps
///   the file.
#[derive(Clone)]
pub struct Vma {
    pub(crate) start: VirtAddr,
    pub(crate) end: VirtAddr,
    pub(crate) pgoff: PgOff,
    pub(crate) flags: VmaFlags,
    pub(crate) page_prot: PageProt,
    pub(crate) file: Option<Arc<File>>,
    pub(crate) ops: VmOps,
    pub(crate) anon: Option<AnonVmaRef>,
    pub(crate) private_data: Option<PrivateData>,
}

// Read access: anyone holding a `&Vma` (drivers in hooks, callers after a lookup).
impl Vma {
    /// First address.
    pub fn start(&self) -> VirtAddr {
        self.start
    }
    /// One past the last address.
    pub fn end(&self) -> VirtAddr {
        self.end
    }
    /// The range.
    pub fn range(&self) -> PageRange {
        PageRange::new(self.start, self.end).expect("a VMA's range is aligned and non-empty")
    }
    /// Size in pages (`vma_pages`).
    pub fn pages(&self) -> u64 {
        (self.end.0 - self.start.0) >> PAGE_SHIFT
    }
    /// The file page (or, for private anonymous memory, the virtual page) at `start`.
    pub fn pgoff(&self) -> PgOff {
        self.pgoff
    }
    /// The file page mapped at `addr` (`linear_page_index`).
    pub fn pgoff_at(&self, addr: VirtAddr) -> PgOff {
        self.pgoff.add((addr.0 - self.start.0) >> PAGE_SHIFT)
    }
    /// The flags.
    pub fn flags(&self) -> VmaFlags {
        self.flags
    }
    /// Is this flag set (`vma_test`)?
    pub fn test(&self, bit: VmaBit) -> bool {
        self.flags.test(bit)
    }
    /// The page protection.
    pub fn page_prot(&self) -> PageProt {
        self.page_prot
    }
    /// The mapped file (`vm_file`).
    pub fn file(&self) -> Option<&Arc<File>> {
        self.file.as_ref()
    }
    /// The operations.
    pub fn ops(&self) -> &VmOps {
        &self.ops
    }
    /// Anonymous (`vma_is_anonymous`: no `vm_ops`)?
    pub fn is_anonymous(&self) -> bool {
        matches!(self.ops, VmOps::Anonymous)
    }
    /// Is any of read, write, exec allowed (`vma_is_accessible`)?
    pub fn is_accessible(&self) -> bool {
        self.flags.test_any(ACCESS_FLAGS)
    }
    /// The anon_vma, if a private page was ever written.
    pub fn anon_vma(&self) -> Option<AnonVmaRef> {
        self.anon
    }
    /// The driver's private data.
    pub fn private_data(&self) -> Option<&PrivateData> {
        self.private_data.as_ref()
    }
    /// Sealed (`vma_is_sealed`)?
    pub fn is_sealed(&self) -> bool {
        self.flags.test(VmaBit::Sealed)
    }
    /// `vm_start_gap`: the lowest address a new mapping below it may reach up to.
    pub fn start_gap(&self, stack_guard_gap: u64) -> VirtAddr {
        if self.flags.test(VmaBit::GrowsDown) {
            VirtAddr(self.start.0.saturating_sub(stack_guard_gap))
        } else if self.flags.test(VmaBit::ShadowStack) {
            VirtAddr(self.start.0.saturating_sub(crate::addr::PAGE_SIZE))
        } else {
            self.start
        }
    }
}

// Changes: only `Mm` and the merge code, which keep the tree's invariants.
impl Vma {
    /// A new VMA with no file, no ops table decided yet (anonymous), no anon_vma.
    pub(crate) fn new(range: PageRange, pgoff: PgOff, flags: VmaFlags) -> Vma {
        Vma {
            start: range.start(),
            end: range.end(),
            pgoff,
            flags,
            page_prot: PageProt::from_flags(flags),
            file: None,
            ops: VmOps::Anonymous,
            anon: None,
            private_data: None,
        }
    }
}

impl fmt::Debug for Vma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vma[{:#x}, {:#x}) {:?} {:?} ops={:?}",
            self.start.0, self.end.0, self.pgoff, self.flags, self.ops
        )?;
        if let Some(file) = &self.file {
            write!(f, " file={}", file.path())?;
        }
        if let Some(a) = self.anon {
            write!(f, " anon={}/{}", a.id.0, a.chain)?;
        }
        Ok(())
    }
}

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
//! - [`Vma`]: the VMA, 64 B so that the index can move it cheaply. Drivers and callers read it;
//!   its fields are private and the engine changes them only through `pub(crate)` setters named
//!   after the kernel's helpers (`vm_flags_reset`, `vma_set_page_prot`, ...).
//! - `VmaAttrs` (private): file, `vm_ops` and private data, which only file and driver mappings
//!   have, behind one shared handle in the `Vma`.
//! - [`VmOperations`]: the driver's per-VMA hooks, with [`VmHooks`] saying which ones exist
//!   (the C struct's non-NULL members).
//! - [`VmOps`]: what a VMA's `vm_ops` pointer holds: nothing (anonymous), the dummy ops, or a
//!   driver's.
//! - [`AnonVmaRef`]: the VMA's anon_vma, reduced to what merge decisions need.

use alloc::sync::Arc;
use core::fmt;

use crate::addr::{PAGE_SHIFT, PageRange, PgOff, VirtAddr};
use crate::file::File;
use crate::flags::{ACCESS_FLAGS, VmaBit, VmaFlags};

pub use crate::driver::vm_ops::{
    FaultResult, PrivateData, VmAccess, VmClose, VmFault, VmFaultHandler, VmHooks, VmMapped, VmMaySplit, VmMremap,
    VmName, VmOpen, VmOperations, VmPageMkwrite, VmPfnMkwrite, filemap_fault,
};

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

/// What only file and driver mappings have (`vm_file`, `vm_ops`, `vm_private_data`), kept
/// behind one shared handle so that the index holds small [`Vma`]s.
///
/// A split clones the handle (a reference count bump); a change to one VMA's file, ops or
/// private data copies it first (`Arc::make_mut`), so the other halves keep theirs.
#[derive(Clone)]
struct VmaAttrs {
    file: Option<Arc<File>>,
    ops: VmOps,
    private_data: Option<PrivateData>,
}

impl VmaAttrs {
    /// No file, anonymous ops, no private data: what `Vma::attrs == None` stands for.
    fn is_plain(&self) -> bool {
        self.file.is_none() && matches!(self.ops, VmOps::Anonymous) && self.private_data.is_none()
    }
}

/// The ops of every VMA without attributes (`vm_ops == NULL`).
static ANONYMOUS_OPS: VmOps = VmOps::Anonymous;

/// A virtual memory area (`struct vm_area_struct`).
///
/// Kept to one cache line (64 B and 64-byte aligned, asserted in a test): the index keeps whole
/// `Vma`s in its leaves, and at a million VMAs reading one is a trip to memory, so it should be
/// one line, not two halves of two. What every operation touches is inline; the file, ops and
/// private data sit behind one shared handle that is `None` for plain anonymous memory.
///
/// # Invariants
/// - `start < end`, both page aligned. A VMA in the tree changes its range only through
///   `VmaTree::set_range` (which keeps the tree's keys true); `Vma::set_bounds` is for a VMA
///   that is not in the tree (a split's new half, a moved copy) and for the tree itself.
/// - A VMA with `ops == VmOps::Anonymous` has no driver hooks; a VMA with a file has `Dummy` or
///   `Driver` ops, except private `/dev/zero`, which the kernel makes anonymous while it keeps
///   the file.
/// - `attrs` is `None` exactly when there is no file, the ops are `Anonymous` and there is no
///   private data: every setter of those three restores this, so anonymous VMAs never allocate.
/// - `page_prot` follows `flags` only where the kernel calls `vma_set_page_prot`: the setter of
///   the flags leaves it alone (`Vma::set_flags`, `vm_flags_reset`), and
///   `Vma::set_page_prot_from_flags` recomputes it.
#[derive(Clone)]
#[repr(align(64))]
pub struct Vma {
    start: VirtAddr,
    end: VirtAddr,
    pgoff: PgOff,
    flags: VmaFlags,
    // The anon_vma, unpacked so that its absence costs no tag: `anon_chain == 0` means none
    // (a real one has at least itself in its chain). 4 B of chain and 4 B of page_prot share a word.
    anon_id: AnonVmaId,
    anon_chain: u32,
    page_prot: PageProt,
    attrs: Option<Arc<VmaAttrs>>,
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
        self.attrs.as_deref().and_then(|a| a.file.as_ref())
    }
    /// The operations.
    pub fn ops(&self) -> &VmOps {
        self.attrs.as_deref().map_or(&ANONYMOUS_OPS, |a| &a.ops)
    }
    /// Anonymous (`vma_is_anonymous`: no `vm_ops`)?
    pub fn is_anonymous(&self) -> bool {
        matches!(self.ops(), VmOps::Anonymous)
    }
    /// Is any of read, write, exec allowed (`vma_is_accessible`)?
    pub fn is_accessible(&self) -> bool {
        self.flags.test_any(ACCESS_FLAGS)
    }
    /// The anon_vma, if a private page was ever written.
    pub fn anon_vma(&self) -> Option<AnonVmaRef> {
        (self.anon_chain != 0).then_some(AnonVmaRef {
            id: self.anon_id,
            chain: self.anon_chain,
        })
    }
    /// The driver's private data.
    pub fn private_data(&self) -> Option<&PrivateData> {
        self.attrs.as_deref().and_then(|a| a.private_data.as_ref())
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

// Changes: only `Mm`, the tree and the merge code, which keep the tree's invariants.
impl Vma {
    /// A new VMA with no file, no ops table decided yet (anonymous), no anon_vma
    /// (`vm_area_alloc` + `vma_set_range`, page_prot from the flags).
    pub(crate) fn new(range: PageRange, pgoff: PgOff, flags: VmaFlags) -> Vma {
        Vma {
            start: range.start(),
            end: range.end(),
            pgoff,
            flags,
            page_prot: PageProt::from_flags(flags),
            anon_id: AnonVmaId(0),
            anon_chain: 0,
            attrs: None,
        }
    }

    /// A value for a leaf's unused storage slot (`tree.rs`), never in the tree: an empty range
    /// at 0, no flags, nothing behind it (so it costs no allocation and its drop does nothing).
    pub(crate) const fn vacant() -> Vma {
        Vma {
            start: VirtAddr(0),
            end: VirtAddr(0),
            pgoff: PgOff(0),
            flags: VmaFlags::EMPTY,
            page_prot: PageProt {
                read: false,
                write: false,
                exec: false,
                cache: CacheMode::WriteBack,
            },
            anon_id: AnonVmaId(0),
            anon_chain: 0,
            attrs: None,
        }
    }

    /// `vma_set_range`: new bounds and file offset. Only for a VMA outside the tree (a split's
    /// new half, mremap's copy, a VMA between `remove` and `insert`) and for `VmaTree::set_range`,
    /// which keeps its keys in step.
    pub(crate) fn set_bounds(&mut self, start: VirtAddr, end: VirtAddr, pgoff: PgOff) {
        debug_assert!(start < end, "a VMA's range is non-empty");
        self.start = start;
        self.end = end;
        self.pgoff = pgoff;
    }

    /// `vm_flags_reset`: new flags; the page protection stays until
    /// `Vma::set_page_prot_from_flags` (the kernel's `vma_set_page_prot`).
    pub(crate) fn set_flags(&mut self, flags: VmaFlags) {
        self.flags = flags;
    }

    /// `vm_flags_set`: add the flags of `mask`; the page protection stays.
    pub(crate) fn set_flag_bits(&mut self, mask: VmaFlags) {
        self.flags.set_mask(mask);
    }

    /// `vm_flags_set` of one flag.
    pub(crate) fn set_flag(&mut self, bit: VmaBit) {
        self.flags.set(bit);
    }

    /// `vm_flags_clear` of one flag.
    pub(crate) fn clear_flag(&mut self, bit: VmaBit) {
        self.flags.clear(bit);
    }

    /// `vm_flags_clear`: remove the flags of `mask`; the page protection stays.
    pub(crate) fn clear_flag_bits(&mut self, mask: VmaFlags) {
        self.flags.clear_mask(mask);
    }

    /// `vma_set_page_prot`: recompute the protection from the flags, keeping the cache mode.
    pub(crate) fn set_page_prot_from_flags(&mut self) {
        self.page_prot = self.page_prot.recompute(self.flags);
    }

    /// Set the page protection as a driver or the mmap path chose it (`vma->vm_page_prot = ...`).
    pub(crate) fn set_page_prot(&mut self, prot: PageProt) {
        self.page_prot = prot;
    }

    /// Set the file offset of a VMA whose start does not move (a driver's `mmap` hook may).
    pub(crate) fn set_pgoff(&mut self, pgoff: PgOff) {
        self.pgoff = pgoff;
    }

    /// Attach, replace or drop the anon_vma (`anon_vma_prepare`, `dup_anon_vma`, fork).
    pub(crate) fn set_anon(&mut self, anon: Option<AnonVmaRef>) {
        match anon {
            Some(a) => {
                debug_assert!(a.chain >= 1, "an anon_vma chain holds at least its own anon_vma");
                self.anon_id = a.id;
                self.anon_chain = a.chain;
            }
            None => {
                self.anon_id = AnonVmaId(0);
                self.anon_chain = 0;
            }
        }
    }

    /// Set `vm_file`.
    pub(crate) fn set_file(&mut self, file: Option<Arc<File>>) {
        self.change_attrs(|a| a.file = file);
    }

    /// Set `vm_ops`.
    pub(crate) fn set_ops(&mut self, ops: VmOps) {
        self.change_attrs(|a| a.ops = ops);
    }

    /// Set `vm_private_data`.
    pub(crate) fn set_private_data(&mut self, data: Option<PrivateData>) {
        self.change_attrs(|a| a.private_data = data);
    }

    /// Asserts the representation invariants (see `# Invariants`): a handle only for non-plain
    /// attributes, no stray anon_vma id without a chain. Run by `Mm::check_invariants`.
    pub(crate) fn check_representation(&self) {
        assert!(
            self.attrs.as_deref().is_none_or(|a| !a.is_plain()),
            "VMA {self:?} keeps a handle to plain attributes"
        );
        assert!(
            self.anon_chain != 0 || self.anon_id == AnonVmaId(0),
            "VMA {self:?} has an anon_vma id but no chain"
        );
    }

    /// Copy-on-write change of the shared attributes, then back to `None` if they are plain.
    fn change_attrs(&mut self, change: impl FnOnce(&mut VmaAttrs)) {
        let attrs = self.attrs.get_or_insert_with(|| {
            Arc::new(VmaAttrs {
                file: None,
                ops: VmOps::Anonymous,
                private_data: None,
            })
        });
        change(Arc::make_mut(attrs));
        if attrs.is_plain() {
            self.attrs = None;
        }
    }
}

impl fmt::Debug for Vma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vma[{:#x}, {:#x}) {:?} {:?} ops={:?}",
            self.start.0,
            self.end.0,
            self.pgoff,
            self.flags,
            self.ops()
        )?;
        if let Some(file) = self.file() {
            write!(f, " file={}", file.path())?;
        }
        if let Some(a) = self.anon_vma() {
            write!(f, " anon={}/{}", a.id.0, a.chain)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index keeps whole `Vma`s in its leaves: one cache line each.
    #[test]
    fn vma_is_one_cache_line() {
        // Range, pgoff, flags, anon_vma, page_prot and one handle.
        assert_eq!(core::mem::size_of::<Vma>(), 64);
        assert_eq!(core::mem::align_of::<Vma>(), 64);
    }

    /// The unpacked anon_vma reads back as it was set.
    #[test]
    fn anon_vma_round_trips() {
        let range = PageRange::new(VirtAddr(0x1000), VirtAddr(0x2000)).unwrap();
        let mut v = Vma::new(range, PgOff(1), VmaFlags::EMPTY);
        assert_eq!(v.anon_vma(), None);
        let a = AnonVmaRef {
            id: AnonVmaId(0),
            chain: 2,
        };
        v.set_anon(Some(a));
        assert_eq!(v.anon_vma(), Some(a));
        v.set_anon(None);
        assert_eq!(v.anon_vma(), None);
    }

    /// Setting and clearing the file, ops and private data keeps plain VMAs without a handle,
    /// and a change to one clone leaves the other's attributes alone.
    #[test]
    fn attrs_are_shared_and_copied_on_write() {
        let range = PageRange::new(VirtAddr(0x1000), VirtAddr(0x3000)).unwrap();
        let mut a = Vma::new(range, PgOff(0), VmaFlags::EMPTY);
        assert!(a.attrs.is_none() && a.is_anonymous());
        a.set_ops(VmOps::Dummy);
        let mut b = a.clone();
        assert!(Arc::ptr_eq(a.attrs.as_ref().unwrap(), b.attrs.as_ref().unwrap()));
        b.set_ops(VmOps::Anonymous);
        assert!(b.attrs.is_none() && b.is_anonymous());
        assert!(matches!(a.ops(), VmOps::Dummy));
        a.check_representation();
        b.check_representation();
    }
}

//! The ordered index of an address space's VMAs (the maple tree's job).
//!
//! The kernel keeps VMAs in a maple tree keyed by range (`mm->mm_mt`), with iterators that find
//! the VMA containing an address, the first one ending above it, or every one overlapping a
//! range. Here a B+-tree keyed by end address does the same in O(log n): the VMA containing
//! `addr` is the first one ending above it, if it also starts at or below it, so one descent
//! answers `find_vma` and `vma_lookup` alike (as `lib/maple_tree.c:mas_walk` does).
//!
//! Mirrors the lookups of `include/linux/mm.h` (`find_vma`, `find_vma_intersection`,
//! `vma_lookup`, `vma_prev`, `vma_next`), \[H\] 6.18.
//!
//! The tree lives in two arenas, of leaves and of branches, named by `u32` ids, with a free list
//! each, so it needs no pointers and no `unsafe` (`docs/core-design.md` section 3):
//! - a leaf holds up to `B` (16) VMAs, with their end addresses in address order in an array of
//!   their own (a search scans eight-byte keys, not whole VMAs), the VMAs themselves in the leaf
//!   in slots of any order with a byte per position naming the slot (an insert or a removal
//!   moves bytes, never another VMA), and links to the leaves beside it;
//! - a branch holds up to `B` children and, for every child but the last, the highest end
//!   address in that child's subtree (its pivot).
//!
//! A VMA's range may change in place (`VmaTree::set_range`) as long as it stays between its
//! neighbours, which a merge or a split always keeps: no re-insert, no move of the VMA.
//! Insertion never merges: merging is `mm/merge.rs`'s job, and the names say so.
//!
//! `Cursor` is the kernel's `vma_iterator`: one descent to a position, then the neighbours and
//! the changes a merge or split makes (move a range, insert after, remove) at that position
//! without descending again. Merge and split work through it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::addr::{PgOff, VirtAddr};
use crate::vma::Vma;

/// Most VMAs in a leaf, and most children of a branch.
const B: usize = 16;
/// A leaf left with fewer VMAs than this by a removal is folded into a sibling...
const UNDERFLOW: usize = B / 4;
/// ...when the two then hold at most this many, so that the next few inserts do not split the
/// leaf again at once.
const FOLD_FILL: usize = 3 * B / 4;
/// No node.
const NIL: u32 = u32::MAX;
/// Most levels of branches. A level is added only when the root splits, which takes `B`
/// children below it, so 32 levels would need far more VMAs than an address space can hold.
const MAX_HEIGHT: usize = 32;

/// Up to [`B`] VMAs; position `i` is the `i`-th lowest.
///
/// The VMAs live in the leaf itself, next to their keys, in storage slots of any order, and
/// `order` names the slot of each position: an insert takes a free slot and a removal frees
/// one, so a split or a merge writes a few bytes of `order` and the VMAs it changes, never
/// moving the others. In a large tree a leaf is rarely in cache: its keys and its VMAs in one
/// block (mostly the same page, so one TLB entry), one cache line per VMA and no VMA moved keep
/// what an operation at a million VMAs pays to about two trips to memory (issue 8,
/// `docs/performance.md`).
///
/// # Invariants
/// `len <= B`; `order[..len]` are distinct slots below `B`; `ends[i] == vmas[order[i]].end`
/// for `i < len` and `u64::MAX` beyond; a slot not named by `order[..len]` holds
/// [`Vma::vacant`]; a leaf that is not the root and not on the free list is not empty; a
/// freed leaf is empty.
#[derive(Clone)]
struct Leaf {
    ends: [u64; B],
    order: [u8; B],
    len: u8,
    prev: u32,
    next: u32,
    vmas: [Vma; B],
}

impl Leaf {
    #[inline]
    fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The VMA at position `i`.
    #[inline]
    fn vma(&self, i: usize) -> &Vma {
        debug_assert!(i < self.len());
        &self.vmas[usize::from(self.order[i])]
    }

    #[inline]
    fn vma_mut(&mut self, i: usize) -> &mut Vma {
        debug_assert!(i < self.len());
        &mut self.vmas[usize::from(self.order[i])]
    }

    /// The VMA at position `i`, if the leaf has one there.
    #[inline]
    fn get(&self, i: usize) -> Option<&Vma> {
        (i < self.len()).then(|| self.vma(i))
    }

    /// Reads one word of every slot, so that the VMA the caller is about to look for is on its
    /// way from memory while the keys are: in a large tree a descent ends at a leaf that is not
    /// in cache, and its VMA's line would otherwise be fetched only after its keys had arrived
    /// and been searched (two trips to memory instead of one; `docs/performance.md`). All
    /// slots, because which one is not known before the keys are.
    #[inline]
    fn prefetch_slots(&self) {
        let sum = self.vmas.iter().fold(0u64, |s, v| s ^ v.end().0);
        core::hint::black_box(sum);
    }

    /// The highest end in the leaf.
    #[inline]
    fn max(&self) -> Option<u64> {
        self.len().checked_sub(1).map(|i| self.ends[i])
    }

    /// Puts `vma` at position `i` in the lowest free slot; the VMAs from `i` on move one
    /// position up (they stay in their slots).
    ///
    /// # Preconditions
    /// The leaf is not full; `vma` lies between the VMAs at `i - 1` and `i`.
    fn insert(&mut self, i: usize, vma: Vma) {
        let n = self.len();
        debug_assert!(n < B && i <= n);
        let used = self.order[..n].iter().fold(0u32, |m, &o| m | 1 << o);
        let slot = (!used).trailing_zeros() as usize;
        self.ends.copy_within(i..n, i + 1);
        self.ends[i] = vma.end().0;
        self.order.copy_within(i..n, i + 1);
        self.order[i] = slot_byte(slot);
        self.vmas[slot] = vma;
        self.len += 1;
    }

    /// Takes out the VMA at position `i`; the later ones move one position down.
    fn remove(&mut self, i: usize) -> Vma {
        let n = self.len();
        debug_assert!(i < n);
        let slot = usize::from(self.order[i]);
        self.ends.copy_within(i + 1..n, i);
        self.ends[n - 1] = u64::MAX;
        self.order.copy_within(i + 1..n, i);
        self.len -= 1;
        core::mem::replace(&mut self.vmas[slot], Vma::vacant())
    }

    /// Takes out every VMA into `right`, before its own (all of them lie below `right`'s): a
    /// leaf folded into its next sibling. The leaf is left empty.
    fn move_all_to_front(&mut self, right: &mut Leaf) {
        for i in 0..self.len() {
            let v = core::mem::replace(&mut self.vmas[usize::from(self.order[i])], Vma::vacant());
            right.insert(i, v);
            self.ends[i] = u64::MAX;
        }
        self.len = 0;
    }

    /// Takes out the VMAs from position `from` on, lowest first, into `right` (which takes
    /// them after its own): the upper part of a leaf that splits.
    fn move_tail(&mut self, from: usize, right: &mut Leaf) {
        for i in from..self.len() {
            let v = core::mem::replace(&mut self.vmas[usize::from(self.order[i])], Vma::vacant());
            right.insert(right.len(), v);
            self.ends[i] = u64::MAX;
        }
        self.len = slot_byte(from);
    }
}

/// A slot or a count of a leaf as a byte (at most `B`).
#[inline]
fn slot_byte(i: usize) -> u8 {
    debug_assert!(i <= B);
    i as u8
}

/// Up to [`B`] children.
///
/// # Invariants
/// `1 <= len <= B`; `pivots[i]` (`i < len - 1`) is the highest end in child `i`'s subtree, and
/// every end in child `i + 1`'s subtree is above it; the other pivots are `u64::MAX`.
#[derive(Clone)]
struct Branch {
    pivots: [u64; B],
    children: [u32; B],
    len: usize,
}

/// The branches from the root down to a leaf: each branch and the child taken.
type Path = [(u32, usize); MAX_HEIGHT];

/// A position in a [`VmaTree`]: a leaf and a slot in it, as a [`Cursor`] holds it, kept across
/// a change that needs all of `Mm` (the cursor borrows only the tree) and turned back into a
/// cursor by [`VmaTree::cursor_at`] without a descent. The kernel keeps its `vma_iterator` across
/// such steps; here the position is a plain value instead of a borrow.
///
/// # Invariants
/// Valid until the tree's next insert or removal (a range change in place keeps it); the one
/// who made it uses it before then, and [`VmaTree::cursor_at`] checks that a VMA is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VmaPos(u32, usize);

/// The VMAs of one address space, sorted by address.
///
/// # Invariants
/// VMAs do not overlap; every leaf is `height` branches below the root; leaves are linked in
/// address order from `first`; `len` counts the VMAs. `hint` is any node id (it is checked
/// before use).
pub struct VmaTree {
    leaves: Vec<Leaf>,
    branches: Vec<Branch>,
    free_leaves: Vec<u32>,
    free_branches: Vec<u32>,
    root: u32,
    height: usize,
    first: u32,
    len: usize,
    /// The leaf the last descent ended in. One system call looks at the same few VMAs again
    /// and again, as the kernel's `vma_iterator` keeps its maple state between steps; a look-up
    /// first tries this leaf and descends only when the answer is not in it. An atomic (read
    /// and written `Relaxed`, plain moves on x86) so that look-ups through `&self` can update
    /// it and the tree stays `Sync`.
    hint: AtomicU32,
}

impl Clone for VmaTree {
    fn clone(&self) -> VmaTree {
        VmaTree {
            leaves: self.leaves.clone(),
            branches: self.branches.clone(),
            free_leaves: self.free_leaves.clone(),
            free_branches: self.free_branches.clone(),
            root: self.root,
            height: self.height,
            first: self.first,
            len: self.len,
            hint: AtomicU32::new(self.hint.load(Relaxed)),
        }
    }
}

impl Default for VmaTree {
    fn default() -> VmaTree {
        VmaTree::new()
    }
}

fn new_leaf() -> Leaf {
    Leaf {
        ends: [u64::MAX; B],
        order: [0; B],
        len: 0,
        prev: NIL,
        next: NIL,
        vmas: [const { Vma::vacant() }; B],
    }
}

/// The index of the first key above `addr` among the sorted `keys`; unused slots hold
/// `u64::MAX`, so the scan needs no length and stops at the first of them (measured against a
/// branch-free count of all sixteen: the early stop runs a third of the instructions).
#[inline]
fn first_above(keys: &[u64; B], addr: u64) -> usize {
    keys.iter().position(|&k| k > addr).unwrap_or(B)
}

/// How many of the `B + 1` items of a full node that takes a new one at `idx` stay on its left.
/// An append or a prepend leaves the old node full (a layout built in address order, as a
/// process's is, packs its leaves); anywhere else the node splits in half.
fn split_point(idx: usize) -> usize {
    if idx >= B - 1 {
        B
    } else if idx <= 1 {
        idx + 1
    } else {
        B.div_ceil(2)
    }
}

/// The child of branch `b` whose subtree holds the first end above `addr`.
#[inline]
fn child_for(b: &Branch, addr: u64) -> usize {
    // The padding pivots are `u64::MAX` and no end is, so below `u64::MAX` the scan stops at
    // child `len - 1` at the latest without reading `len` (a line of its own at the end of the
    // branch); `u64::MAX` itself goes to the last child as the address below it does.
    first_above(&b.pivots, addr.min(u64::MAX - 1))
}

impl VmaTree {
    /// An empty tree.
    pub fn new() -> VmaTree {
        VmaTree {
            leaves: alloc::vec![new_leaf()],
            branches: Vec::new(),
            free_leaves: Vec::new(),
            free_branches: Vec::new(),
            root: 0,
            height: 0,
            first: 0,
            len: 0,
            hint: AtomicU32::new(0),
        }
    }

    /// Makes room for as many leaves and branches as `other` has, for a tree about to be built
    /// from `other`'s VMAs (`dup_mmap`): built in address order it needs no more, and its arenas
    /// then grow once instead of doubling (a `Vec` of over-aligned leaves grows by copying).
    pub(crate) fn reserve_like(&mut self, other: &VmaTree) {
        self.leaves
            .reserve(other.leaves.len().saturating_sub(self.leaves.len()));
        self.branches
            .reserve(other.branches.len().saturating_sub(self.branches.len()));
    }

    /// Number of VMAs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No VMAs?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn leaf(&self, id: u32) -> &Leaf {
        &self.leaves[id as usize]
    }

    #[inline]
    fn leaf_mut(&mut self, id: u32) -> &mut Leaf {
        &mut self.leaves[id as usize]
    }

    #[inline]
    fn branch(&self, id: u32) -> &Branch {
        &self.branches[id as usize]
    }

    #[inline]
    fn branch_mut(&mut self, id: u32) -> &mut Branch {
        &mut self.branches[id as usize]
    }

    /// An empty leaf, linked to nothing: a freed one (freeing leaves it so) or a new one.
    fn alloc_empty_leaf(&mut self) -> u32 {
        if let Some(id) = self.free_leaves.pop() {
            debug_assert!({
                let l = self.leaf(id);
                l.len == 0 && l.prev == NIL && l.next == NIL && l.ends[0] == u64::MAX
            });
            id
        } else {
            self.leaves.push(new_leaf());
            u32::try_from(self.leaves.len() - 1).expect("fewer than 2^32 leaves")
        }
    }

    fn alloc_branch(&mut self, branch: Branch) -> u32 {
        if let Some(id) = self.free_branches.pop() {
            self.branches[id as usize] = branch;
            id
        } else {
            self.branches.push(branch);
            u32::try_from(self.branches.len() - 1).expect("fewer than 2^32 branches")
        }
    }

    /// Puts the emptied leaf `id` on the free list.
    fn free_leaf(&mut self, id: u32) {
        let l = self.leaf_mut(id);
        debug_assert!(l.len == 0);
        (l.prev, l.next) = (NIL, NIL);
        // Room for every leaf, taken only when the arena has grown: freeing never allocates.
        self.free_leaves
            .reserve(self.leaves.len().saturating_sub(self.free_leaves.len()));
        self.free_leaves.push(id);
    }

    fn free_branch(&mut self, id: u32) {
        self.free_branches
            .reserve(self.branches.len().saturating_sub(self.free_branches.len()));
        self.free_branches.push(id);
    }

    /// One descent to the first VMA ending above `addr`: the branches passed and the child
    /// taken in each. Only a leaf that splits or goes away needs this; a pivot fix does not
    /// ([`VmaTree::fix_pivot`]).
    fn descend(&self, addr: u64) -> Path {
        let mut path = [(NIL, 0); MAX_HEIGHT];
        let mut id = self.root;
        for step in path.iter_mut().take(self.height) {
            let b = self.branch(id);
            let i = child_for(b, addr);
            *step = (id, i);
            id = b.children[i];
        }
        path
    }

    /// [`VmaTree::descend`] without the path: the hinted leaf when it holds the answer, else a
    /// descent (which becomes the hint).
    #[inline]
    fn seek(&self, addr: u64) -> (u32, usize) {
        let hint = self.hint.load(Relaxed);
        if let Some(l) = self.leaves.get(hint as usize) {
            let n = l.len();
            let slot = first_above(&l.ends, addr).min(n);
            // The first end above `addr` is in this leaf when one is, and no VMA of an earlier
            // leaf ends above `addr`; none is anywhere when this is the last leaf. (A freed
            // leaf is empty, so it is never taken.) At position 0 the leaf's own first VMA
            // answers that: when it starts at or below `addr`, every earlier VMA ends at or
            // below its start. Reading the previous leaf's highest end instead was two
            // dependent trips to memory whenever a random address fell below the hinted leaf
            // (`docs/performance.md`); an address in the gap before the first VMA descends.
            let earlier_below = || l.prev == NIL || l.vma(0).start().0 <= addr;
            if n > 0 && ((slot < n && (slot > 0 || earlier_below())) || (slot == n && l.next == NIL)) {
                return (hint, slot);
            }
        }
        let mut id = self.root;
        for _ in 0..self.height {
            let b = self.branch(id);
            id = b.children[child_for(b, addr)];
        }
        self.hint.store(id, Relaxed);
        let l = self.leaf(id);
        let slot = first_above(&l.ends, addr).min(l.len());
        l.prefetch_slots();
        (id, slot)
    }

    /// The VMA at a position, or at the next one when the slot is past its leaf's end.
    #[inline]
    fn at(&self, (id, slot): (u32, usize)) -> Option<(u32, usize)> {
        let l = self.leaf(id);
        if slot < l.len() {
            return Some((id, slot));
        }
        // Only the last leaf has no VMA ending above an address its subtree was chosen for,
        // and a non-root leaf is never empty.
        (l.next != NIL).then_some((l.next, 0))
    }

    /// The position before `(id, slot)`.
    #[inline]
    fn before(&self, (id, slot): (u32, usize)) -> Option<(u32, usize)> {
        if slot > 0 {
            return Some((id, slot - 1));
        }
        let prev = self.leaf(id).prev;
        (prev != NIL).then(|| (prev, self.leaf(prev).len() - 1))
    }

    /// The position after `(id, slot)`.
    #[inline]
    fn after(&self, (id, slot): (u32, usize)) -> Option<(u32, usize)> {
        self.at((id, slot + 1))
    }

    #[inline]
    fn vma(&self, (id, slot): (u32, usize)) -> &Vma {
        self.leaf(id).vma(slot)
    }

    /// [`VmaTree::at`] and [`VmaTree::vma`] in one look at the leaf, when the VMA is in it.
    #[inline]
    fn vma_or_next(&self, (id, slot): (u32, usize)) -> Option<&Vma> {
        let l = self.leaf(id);
        match l.get(slot) {
            Some(v) => Some(v),
            None => self.at((id, slot)).map(|p| self.vma(p)),
        }
    }

    /// Every VMA, lowest first.
    pub fn iter(&self) -> Iter<'_> {
        let mut id = self.root;
        for _ in 0..self.height {
            let b = self.branch(id);
            id = b.children[b.len - 1];
        }
        let last = self.leaf(id).len().checked_sub(1).map(|s| (id, s));
        Iter {
            tree: self,
            front: (self.first, 0),
            back: last.unwrap_or((self.first, 0)),
            remaining: self.len,
        }
    }

    /// `vma_lookup`: the VMA containing `addr`.
    pub fn lookup(&self, addr: VirtAddr) -> Option<&Vma> {
        let v = self.find_vma(addr)?;
        (v.start() <= addr).then_some(v)
    }

    /// `find_vma`: the first VMA ending above `addr` (it may start above it too).
    pub fn find_vma(&self, addr: VirtAddr) -> Option<&Vma> {
        self.at(self.seek(addr.0)).map(|p| self.vma(p))
    }

    /// `find_vma_prev`: the first VMA ending above `addr` and the VMA before it (the last VMA
    /// when none ends above `addr`), in one look-up.
    pub fn find_vma_prev(&self, addr: VirtAddr) -> (Option<&Vma>, Option<&Vma>) {
        let pos = self.seek(addr.0);
        match self.at(pos) {
            Some(p) => (Some(self.vma(p)), self.before(p).map(|b| self.vma(b))),
            None => (None, self.before(pos).map(|b| self.vma(b))),
        }
    }

    /// `find_vma_intersection` / `vma_find(vmi, end)` from `start`: the first VMA overlapping
    /// `[start, end)`. An empty or inverted range (`end <= start`) overlaps nothing.
    pub fn find_intersection(&self, start: VirtAddr, end: VirtAddr) -> Option<&Vma> {
        self.overlap_or_prev(start, end).err()
    }

    /// One look at `[start, end)`: `Err(first)`, the first VMA overlapping it, or `Ok(prev)`, the
    /// last VMA ending at or below `start` (what `vma_iter_next_rewind` gives `mmap_region` for a
    /// gap). One descent: the first VMA ending above `start` either starts below `end` (it is
    /// the first overlap) or not (nothing overlaps, and the VMA before it is `prev`).
    ///
    /// An empty or inverted range (`end <= start`) overlaps nothing, even inside a VMA: the
    /// answer is `Ok` with the last VMA ending at or below `start`. (The kernel's
    /// `find_vma_intersection` gets only non-empty ranges from its callers; here the range is
    /// caller input of a public function, so it is answered, never asserted.)
    pub fn overlap_or_prev(&self, start: VirtAddr, end: VirtAddr) -> Result<Option<&Vma>, &Vma> {
        let pos = self.seek(start.0);
        if end > start
            && let Some(p) = self.at(pos)
            && self.vma(p).start() < end
        {
            return Err(self.vma(p));
        }
        Ok(self.before(pos).map(|p| self.vma(p)))
    }

    /// The last VMA starting below `addr` (`vma_prev` from a position at `addr`).
    pub fn prev_before(&self, addr: VirtAddr) -> Option<&Vma> {
        let pos = self.seek(addr.0);
        match self.at(pos) {
            Some(p) if self.vma(p).start() < addr => Some(self.vma(p)),
            Some(p) => self.before(p).map(|p| self.vma(p)),
            None => self.before(pos).map(|p| self.vma(p)),
        }
    }

    /// The first VMA starting at or above `addr` (`vma_next` from a gap at `addr`).
    pub fn next_from(&self, addr: VirtAddr) -> Option<&Vma> {
        let p = self.at(self.seek(addr.0))?;
        if self.vma(p).start() >= addr {
            return Some(self.vma(p));
        }
        self.after(p).map(|p| self.vma(p))
    }

    /// The position of the VMA starting exactly at `start`.
    fn find_start(&self, start: VirtAddr) -> Option<(u32, usize)> {
        let (id, slot) = self.seek(start.0);
        let l = self.leaf(id);
        l.get(slot).is_some_and(|v| v.start() == start).then_some((id, slot))
    }

    /// The VMA starting exactly at `start`.
    pub fn get(&self, start: VirtAddr) -> Option<&Vma> {
        self.find_start(start).map(|p| self.vma(p))
    }

    /// The VMA starting exactly at `start`, to change in place (not its range: use
    /// [`VmaTree::set_range`] for that).
    pub(crate) fn get_mut(&mut self, start: VirtAddr) -> Option<&mut Vma> {
        let (id, slot) = self.find_start(start)?;
        Some(self.leaf_mut(id).vma_mut(slot))
    }

    /// The VMAs overlapping `[start, end)`, lowest first; none for an empty or inverted range.
    pub fn range(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = &Vma> {
        let mut pos = if end > start { self.at(self.seek(start.0)) } else { None };
        core::iter::from_fn(move || {
            let p = pos?;
            pos = self.after(p);
            Some(self.vma(p))
        })
        .take_while(move |v| v.start() < end)
    }

    /// Moves the VMA starting at `key` to `[start, end)` with file offset `pgoff`, in place,
    /// and returns it: one descent, and the pivot above it is fixed when its end was its leaf's
    /// highest.
    ///
    /// # Preconditions
    /// A VMA starts at `key`; `start < end`; the new range overlaps no other VMA (it stays
    /// between its neighbours, as every merge and split keeps it).
    #[cfg(test)]
    fn set_range(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr, pgoff: PgOff) -> &mut Vma {
        let pos = self.seek(key.0);
        debug_assert!(
            self.leaf(pos.0).get(pos.1).is_some_and(|v| v.start() == key),
            "set_range of {key:?}, which is not in the tree"
        );
        self.set_range_at(pos, start, end, pgoff)
    }

    /// [`VmaTree::set_range`] of the VMA at position `(leaf, slot)`.
    fn set_range_at(&mut self, (leaf, slot): (u32, usize), start: VirtAddr, end: VirtAddr, pgoff: PgOff) -> &mut Vma {
        debug_assert!(start < end);
        let key = self.leaf(leaf).vma(slot).start();
        debug_assert!(
            self.before((leaf, slot)).is_none_or(|p| self.vma(p).end() <= start)
                && self.after((leaf, slot)).is_none_or(|p| self.vma(p).start() >= end),
            "set_range of {key:?} to [{start:?}, {end:?}) overlaps a neighbour"
        );
        let l = self.leaf(leaf);
        if slot + 1 == l.len() && l.ends[slot] != end.0 {
            // The leaf's highest end moves: fix the pivot naming it, found while the tree
            // still routes `key` here.
            self.fix_pivot(key.0, end.0);
        }
        let l = self.leaf_mut(leaf);
        l.ends[slot] = end.0;
        let v = l.vma_mut(slot);
        v.set_bounds(start, end, pgoff);
        v
    }

    /// The highest end of the leaf the tree routes `key` to is now `max`: set the one pivot
    /// that names it, in the deepest branch where the way down does not take the last child
    /// (none on the way to the last leaf). One descent that remembers a single branch, so it
    /// needs no path.
    fn fix_pivot(&mut self, key: u64, max: u64) {
        let mut id = self.root;
        let mut naming = None;
        for _ in 0..self.height {
            let b = self.branch(id);
            let i = child_for(b, key);
            if i + 1 < b.len {
                naming = Some((id, i));
            }
            id = b.children[i];
        }
        if let Some((bid, i)) = naming {
            self.branch_mut(bid).pivots[i] = max;
        }
    }

    /// Inserts a VMA that overlaps none. Never merges.
    pub(crate) fn insert(&mut self, vma: Vma) {
        debug_assert!(
            self.find_intersection(vma.start(), vma.end()).is_none(),
            "insert of {vma:?} overlaps {:?}",
            self.find_intersection(vma.start(), vma.end())
        );
        let (leaf, idx) = self.seek(vma.start().0);
        self.insert_at((leaf, idx), vma);
    }

    /// Inserts `vma` at position `(leaf, idx)` (where [`VmaTree::seek`] of its start ends) and
    /// returns its position: a descent only when the leaf splits or gets a new highest end.
    fn insert_at(&mut self, (leaf, idx): (u32, usize), vma: Vma) -> (u32, usize) {
        let n = self.leaf(leaf).len();
        debug_assert!(idx <= n && self.leaf(leaf).get(idx).is_none_or(|v| v.start() >= vma.end()));
        // INVARIANT: a new highest end comes only to the last leaf (a descent past every end
        // leads there, and `Cursor::insert_after` goes to the next leaf's slot 0), whose
        // highest end no pivot names: nothing above changes unless the leaf splits.
        debug_assert!(idx < n || self.leaf(leaf).next == NIL);
        self.len += 1;
        if n < B {
            self.leaf_mut(leaf).insert(idx, vma);
            return (leaf, idx);
        }
        // The path is needed only when the leaf splits.
        let path = self.descend(vma.start().0);
        // The leaf is full: split it. Of the B + 1 VMAs (the old ones with the new one at
        // `idx`), the first `keep` stay. The right half is filled where it will live (a leaf is
        // over a kilobyte: no copy through the stack).
        let keep = split_point(idx);
        let right_id = self.alloc_empty_leaf();
        let [l, right] = self
            .leaves
            .get_disjoint_mut([leaf as usize, right_id as usize])
            .expect("a new leaf is another leaf");
        if idx < keep {
            l.move_tail(keep - 1, right);
            l.insert(idx, vma);
        } else {
            l.move_tail(keep, right);
            right.insert(idx - keep, vma);
        }
        let left_max = l.ends[keep - 1];
        let old_next = l.next;
        right.prev = leaf;
        right.next = old_next;
        l.next = right_id;
        if old_next != NIL {
            self.leaf_mut(old_next).prev = right_id;
        }
        self.insert_child(&path, self.height, left_max, right_id);
        if idx < keep {
            (leaf, idx)
        } else {
            (right_id, idx - keep)
        }
    }

    /// The node at `path[depth]` (or the root, at `depth == 0`) split: its left half keeps
    /// the id and has `left_max` as highest end, its right half is `right`. Puts `right` into
    /// the branch above, splitting that one in turn when it is full.
    fn insert_child(&mut self, path: &Path, depth: usize, left_max: u64, right: u32) {
        if depth == 0 {
            // The root split: a new root above the two halves.
            let mut b = Branch {
                pivots: [u64::MAX; B],
                children: [NIL; B],
                len: 2,
            };
            b.pivots[0] = left_max;
            b.children[0] = self.root;
            b.children[1] = right;
            self.root = self.alloc_branch(b);
            self.height += 1;
            assert!(self.height < MAX_HEIGHT, "the VMA tree is too deep");
            return;
        }
        let (bid, i) = path[depth - 1];
        let b = self.branch_mut(bid);
        let len = b.len;
        // The children with the right half beside the left, and each child's highest end (the
        // old pivot of the split child moves to its right half; the last child has none, and
        // its slot holds a placeholder).
        let mut children = [NIL; B + 1];
        let mut maxes = [0u64; B + 1];
        children[..len].copy_from_slice(&b.children[..len]);
        maxes[..len - 1].copy_from_slice(&b.pivots[..len - 1]);
        children.copy_within(i + 1..len, i + 2);
        maxes.copy_within(i..len, i + 1);
        children[i + 1] = right;
        maxes[i] = left_max;
        if len < B {
            b.children[..=len].copy_from_slice(&children[..=len]);
            b.pivots[..len].copy_from_slice(&maxes[..len]);
            b.len = len + 1;
            return;
        }
        let keep = split_point(i + 1);
        b.children[..keep].copy_from_slice(&children[..keep]);
        b.pivots[..keep - 1].copy_from_slice(&maxes[..keep - 1]);
        b.pivots[keep - 1..].fill(u64::MAX);
        b.len = keep;
        let mut r = Branch {
            pivots: [u64::MAX; B],
            children: [NIL; B],
            len: B + 1 - keep,
        };
        r.children[..B + 1 - keep].copy_from_slice(&children[keep..]);
        r.pivots[..B - keep].copy_from_slice(&maxes[keep..B]);
        let right_id = self.alloc_branch(r);
        self.insert_child(path, depth - 1, maxes[keep - 1], right_id);
    }

    /// Every VMA, lowest first, taken out of the tree.
    pub(crate) fn into_vmas(self) -> impl Iterator<Item = Vma> {
        let VmaTree { mut leaves, first, .. } = self;
        let (mut id, mut i) = (first, 0);
        // Each VMA is taken out of its slot; the leaves themselves stay where they are until
        // the arena goes (a leaf is over a kilobyte: no copy of one per step).
        core::iter::from_fn(move || {
            loop {
                if id == NIL {
                    return None;
                }
                let l = &mut leaves[id as usize];
                if i < l.len() {
                    let slot = usize::from(l.order[i]);
                    i += 1;
                    return Some(core::mem::replace(&mut l.vmas[slot], Vma::vacant()));
                }
                (id, i) = (l.next, 0);
            }
        })
    }

    /// Removes and returns the VMA starting at `start`.
    pub(crate) fn remove(&mut self, start: VirtAddr) -> Option<Vma> {
        let (leaf, slot) = self.seek(start.0);
        if self.leaf(leaf).get(slot).is_none_or(|v| v.start() != start) {
            return None;
        }
        Some(self.remove_at((leaf, slot)).0)
    }

    /// Removes the VMA at position `(leaf, slot)`; returns it and whether its leaf is gone (else
    /// the same position now holds the VMA after it, or is past the leaf's end).
    fn remove_at(&mut self, (leaf, slot): (u32, usize)) -> (Vma, bool) {
        let n = self.leaf(leaf).len();
        let start = self.leaf(leaf).vma(slot).start();
        // The path is needed only when the leaf empties.
        let path = if n == 1 && self.height > 0 {
            Some(self.descend(start.0))
        } else {
            None
        };
        let v = self.leaf_mut(leaf).remove(slot);
        self.len -= 1;
        let mut gone = false;
        if let Some(path) = path {
            self.remove_leaf(&path, leaf);
            gone = true;
        } else if n > 1 {
            if slot == n - 1 {
                // The pivots still route `start` here.
                let max = self.leaf(leaf).ends[n - 2];
                self.fix_pivot(start.0, max);
            }
            gone = self.fold_underflow(leaf);
        }
        (v, gone)
    }

    /// After a removal left `leaf` (not empty) with fewer than [`UNDERFLOW`] VMAs: folds it and
    /// a sibling under the same branch into one leaf when they fit in [`FOLD_FILL`], as the
    /// maple tree rebalances a node left below its minimum (`mas_rebalance`). Of the pair, the
    /// lower leaf goes: its VMAs move to the front of the higher one, whose pivot already
    /// bounds them both, so no pivot but the gone leaf's changes. Returns whether leaves changed
    /// (positions in them are then stale).
    ///
    /// Without it a tree keeps the leaves of its peak size: remove fifteen VMAs of every
    /// sixteen and each leaf holds one.
    fn fold_underflow(&mut self, leaf: u32) -> bool {
        let n = self.leaf(leaf).len();
        if n == 0 || n >= UNDERFLOW || self.height == 0 {
            return false;
        }
        // The first VMA's start routes to this leaf: every VMA before it ends at or below it.
        let mut path = self.descend(self.leaf(leaf).vma(0).start().0);
        let (bid, i) = path[self.height - 1];
        let b = self.branch(bid);
        debug_assert_eq!(b.children[i], leaf);
        let (li, left, right) = if i + 1 < b.len {
            (i, leaf, b.children[i + 1])
        } else if i > 0 {
            (i - 1, b.children[i - 1], leaf)
        } else {
            return false;
        };
        if self.leaf(left).len() + self.leaf(right).len() > FOLD_FILL {
            return false;
        }
        let [l, r] = self
            .leaves
            .get_disjoint_mut([left as usize, right as usize])
            .expect("two distinct leaves");
        l.move_all_to_front(r);
        path[self.height - 1] = (bid, li);
        // Not the last child, so its pivot simply goes.
        self.remove_leaf(&path, left);
        true
    }

    /// Takes the empty leaf at the end of `path` out of the tree, with every branch above it
    /// that it leaves empty, and lowers the root while it has a single child.
    fn remove_leaf(&mut self, path: &Path, leaf: u32) {
        let (prev, next) = {
            let l = self.leaf(leaf);
            (l.prev, l.next)
        };
        if prev == NIL {
            self.first = next;
        } else {
            self.leaf_mut(prev).next = next;
        }
        if next != NIL {
            self.leaf_mut(next).prev = prev;
        }
        self.free_leaf(leaf);
        for depth in (0..self.height).rev() {
            let (bid, i) = path[depth];
            let b = self.branch_mut(bid);
            let len = b.len;
            b.children.copy_within(i + 1..len, i);
            b.len = len - 1;
            if i + 1 < len {
                // Child i's pivot goes with it.
                b.pivots.copy_within(i + 1..len, i);
            } else if len > 1 {
                // The last child went: the one before it is now last, and its pivot is this
                // subtree's new highest end.
                let max = core::mem::replace(&mut b.pivots[len - 2], u64::MAX);
                self.fix_pivot_above(path, depth, max);
            }
            if len > 1 {
                break;
            }
            // The branch emptied (only a root can reach here with one child left to lose, since
            // a lone child is folded into its parent below).
            self.free_branch(bid);
            if depth == 0 {
                self.root = self.alloc_empty_leaf();
                self.first = self.root;
                self.height = 0;
                return;
            }
        }
        while self.height > 0 && self.branch(self.root).len == 1 {
            let old = self.root;
            self.root = self.branch(old).children[0];
            self.free_branch(old);
            self.height -= 1;
        }
    }

    /// The pivot naming the subtree at `path[depth]` is now `max`.
    fn fix_pivot_above(&mut self, path: &Path, depth: usize, max: u64) {
        for &(bid, i) in path[..depth].iter().rev() {
            let b = self.branch_mut(bid);
            if i + 1 < b.len {
                b.pivots[i] = max;
                return;
            }
        }
    }

    /// Checks the tree's own invariants: sorted, non-overlapping VMAs; `ends` and pivots that
    /// match; leaves linked in order; the count. Panics with what is wrong.
    pub(crate) fn check(&self) {
        let mut leaves = Vec::new();
        let max = self.check_node(self.root, self.height, &mut leaves);
        let mut id = self.first;
        let mut prev = NIL;
        let mut linked = Vec::new();
        while id != NIL {
            let l = self.leaf(id);
            assert_eq!(l.prev, prev, "leaf {id}'s back link");
            linked.push(id);
            prev = id;
            id = l.next;
        }
        assert_eq!(linked, leaves, "the leaf list is not the leaves in order");
        let vmas: Vec<&Vma> = self.iter().collect();
        assert_eq!(vmas.len(), self.len, "len");
        for w in vmas.windows(2) {
            assert!(
                w[0].end() <= w[1].start(),
                "{:?} and {:?} overlap or are out of order",
                w[0],
                w[1]
            );
        }
        assert_eq!(max, vmas.last().map(|v| v.end().0), "the root's highest end");
    }

    fn check_node(&self, id: u32, depth: usize, leaves: &mut Vec<u32>) -> Option<u64> {
        if depth == 0 {
            let l = self.leaf(id);
            let n = l.len();
            assert!(n <= B);
            assert!(id == self.root || n > 0, "empty leaf {id}");
            let mut seen = [false; B];
            for (k, &o) in l.order[..n].iter().enumerate() {
                assert!(
                    usize::from(o) < B && !seen[usize::from(o)],
                    "leaf {id} position {k}: slot {o}"
                );
                seen[usize::from(o)] = true;
                assert_eq!(l.ends[k], l.vma(k).end().0, "leaf {id} position {k}: end key");
            }
            for (slot, v) in l.vmas.iter().enumerate() {
                assert!(
                    seen[slot] || v.end().0 == 0,
                    "leaf {id}: slot {slot} is free but not vacant"
                );
            }
            assert!(l.ends[n..].iter().all(|&k| k == u64::MAX), "leaf {id}: padding");
            // `child_for` tells padding from a real pivot by its value alone.
            assert!(
                l.ends[..n].iter().all(|&k| k < u64::MAX),
                "leaf {id}: an end at u64::MAX"
            );
            leaves.push(id);
            return l.max();
        }
        let b = self.branch(id);
        assert!(b.len >= 1 && b.len <= B, "branch {id} has {} children", b.len);
        assert!(id != self.root || b.len >= 2, "a root branch with one child");
        assert!(
            b.pivots[b.len - 1..].iter().all(|&k| k == u64::MAX),
            "branch {id}: padding"
        );
        let mut max = None;
        for k in 0..b.len {
            let m = self.check_node(b.children[k], depth - 1, leaves);
            if k + 1 < b.len {
                assert_eq!(m, Some(b.pivots[k]), "branch {id} pivot {k}");
            }
            max = m;
        }
        max
    }
}

/// A position in a [`VmaTree`], worked at without a new descent: the kernel's `vma_iterator`
/// (its `ma_state`). [`VmaTree::cursor`] descends once; `prev`/`next` step to the VMAs beside
/// it (through the leaf links), and `get_mut`, `set_range`, `insert_after` (a split's new upper
/// piece) and `remove` (munmap's detach, a merge's deleted VMA) change the tree there.
///
/// # Invariants
/// `pos` is a position as [`VmaTree::seek`] gives it: a leaf and a slot in it, the slot at most
/// the leaf's length (past the last VMA of the leaf means the first VMA of the next leaf, or
/// the end of the tree). Changes that keep the leaves (`get_mut`, `set_range`) keep the
/// position; `insert_after` and `remove` may split or empty a leaf, and return with `pos`
/// recomputed by the insert itself or, when a leaf went away, by one descent.
pub(crate) struct Cursor<'a> {
    tree: &'a mut VmaTree,
    pos: (u32, usize),
}

impl VmaTree {
    /// A cursor at the first VMA ending above `addr` (`vma_iter_init` + `vma_find`).
    #[inline]
    pub(crate) fn cursor(&mut self, addr: VirtAddr) -> Cursor<'_> {
        let pos = self.seek(addr.0);
        Cursor { tree: self, pos }
    }

    /// A cursor at `pos`, which a cursor gave out since the last insert or removal: no
    /// descent.
    #[inline]
    pub(crate) fn cursor_at(&mut self, pos: VmaPos) -> Cursor<'_> {
        debug_assert!(
            self.leaves.get(pos.0 as usize).is_some_and(|l| pos.1 < l.len()),
            "stale position {pos:?}"
        );
        Cursor {
            tree: self,
            pos: (pos.0, pos.1),
        }
    }

    /// The VMA at `pos` (see [`VmaTree::cursor_at`]).
    #[inline]
    pub(crate) fn vma_at(&self, pos: VmaPos) -> &Vma {
        self.vma((pos.0, pos.1))
    }

    /// The position of the VMA after the one at `pos`, if any.
    #[inline]
    pub(crate) fn pos_after(&self, pos: VmaPos) -> Option<VmaPos> {
        self.after((pos.0, pos.1)).map(|(l, s)| VmaPos(l, s))
    }

    /// The position of the VMA starting exactly at `start` (one look-up).
    pub(crate) fn pos_of(&self, start: VirtAddr) -> Option<VmaPos> {
        self.find_start(start).map(|(l, s)| VmaPos(l, s))
    }
}

impl Cursor<'_> {
    /// The position of the VMA the cursor is at, to come back to it with
    /// [`VmaTree::cursor_at`]; `None` past the last VMA.
    #[inline]
    pub(crate) fn pos(&self) -> Option<VmaPos> {
        self.tree.at(self.pos).map(|(l, s)| VmaPos(l, s))
    }

    /// The VMA at the position.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Vma> {
        self.tree.vma_or_next(self.pos)
    }

    /// The VMA at the position, to change in place (not its range: [`Cursor::set_range`]).
    #[inline]
    pub(crate) fn get_mut(&mut self) -> Option<&mut Vma> {
        let (id, slot) = self.pos;
        if slot < self.tree.leaf(id).len() {
            return Some(self.tree.leaf_mut(id).vma_mut(slot));
        }
        let (id, slot) = self.tree.at(self.pos)?;
        Some(self.tree.leaf_mut(id).vma_mut(slot))
    }

    /// The VMA before the position, without moving.
    #[inline]
    pub(crate) fn peek_prev(&self) -> Option<&Vma> {
        let (id, slot) = self.pos;
        if slot > 0 {
            // Whether the position is at a VMA of this leaf or just past its last one (then
            // at the next leaf's first), the VMA before it is this leaf's `slot - 1`.
            return Some(self.tree.leaf(id).vma(slot - 1));
        }
        self.tree.before(self.pos).map(|p| self.tree.vma(p))
    }

    /// The VMA after the VMA at the position, without moving.
    #[inline]
    pub(crate) fn peek_next(&self) -> Option<&Vma> {
        let p = self.tree.at(self.pos)?;
        self.tree.vma_or_next((p.0, p.1 + 1))
    }

    /// Steps back to the VMA before the position (`vma_prev`); stays put when there is none.
    #[inline]
    pub(crate) fn prev(&mut self) -> Option<&Vma> {
        let p = self.tree.at(self.pos).unwrap_or(self.pos);
        let b = self.tree.before(p)?;
        self.pos = b;
        Some(self.tree.vma(b))
    }

    /// Steps on to the VMA after the position (`vma_next`); at the end of the tree, stays past
    /// the last VMA.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<&Vma> {
        let p = self.tree.at(self.pos)?;
        self.pos = (p.0, p.1 + 1);
        self.get()
    }

    /// Moves the VMA at the position to `[start, end)` with `pgoff`, in place
    /// ([`VmaTree::set_range`] without its descent).
    ///
    /// # Preconditions
    /// A VMA is at the position; the new range stays between its neighbours.
    pub(crate) fn set_range(&mut self, start: VirtAddr, end: VirtAddr, pgoff: PgOff) -> &mut Vma {
        let p = self.tree.at(self.pos).expect("set_range past the last VMA");
        self.pos = p;
        debug_assert!(
            self.tree.before(p).is_none_or(|b| self.tree.vma(b).end() <= start)
                && self.tree.after(p).is_none_or(|a| self.tree.vma(a).start() >= end),
            "set_range to [{start:?}, {end:?}) overlaps a neighbour"
        );
        self.tree.set_range_at(p, start, end, pgoff)
    }

    /// Inserts `vma` right after the VMA at the position (a split's upper piece) and moves to
    /// it.
    ///
    /// # Preconditions
    /// `vma` lies between the VMA at the position and the one after it.
    pub(crate) fn insert_after(&mut self, vma: Vma) -> &mut Vma {
        let p = self.tree.at(self.pos).expect("insert_after past the last VMA");
        debug_assert!(self.tree.vma(p).end() <= vma.start());
        debug_assert!(self.tree.after(p).is_none_or(|a| self.tree.vma(a).start() >= vma.end()));
        // After the last VMA of a leaf, the slot is the next leaf's first (where a descent of
        // `vma.start` leads, so the insert's path matches), unless this is the last leaf.
        let l = self.tree.leaf(p.0);
        let at = if p.1 + 1 == l.len() && l.next != NIL {
            (l.next, 0)
        } else {
            (p.0, p.1 + 1)
        };
        self.pos = self.tree.insert_at(at, vma);
        let (id, slot) = self.pos;
        self.tree.leaf_mut(id).vma_mut(slot)
    }

    /// Splits the VMA at the position in two (`__split_vma`'s commit): it keeps its start and
    /// now ends where `upper` starts, and `upper`, its tail, goes in right after it. Moves to
    /// `upper`. Unless the leaf is full, one move of the leaf's tail and no descent: the leaf's
    /// highest end stays what it was, so no pivot changes.
    ///
    /// # Preconditions
    /// A VMA is at the position; `upper` ends where it ends and starts strictly inside it.
    pub(crate) fn split_off(&mut self, upper: Vma) -> &mut Vma {
        let (leaf, slot) = self.tree.at(self.pos).expect("split_off past the last VMA");
        let l = self.tree.leaf_mut(leaf);
        let n = l.len();
        let v = l.vma_mut(slot);
        debug_assert!(
            v.start() < upper.start() && upper.end() == v.end(),
            "split {v:?} into {upper:?}"
        );
        let (start, pgoff) = (v.start(), v.pgoff());
        if n == B {
            // A full leaf splits: the general way.
            self.pos = (leaf, slot);
            self.set_range(start, upper.start(), pgoff);
            return self.insert_after(upper);
        }
        // INVARIANT: the two pieces cover the old range, so the leaf's ends stay sorted and its
        // highest end is unchanged.
        v.set_bounds(start, upper.start(), pgoff);
        l.ends[slot] = upper.start().0;
        l.insert(slot + 1, upper);
        self.tree.len += 1;
        self.pos = (leaf, slot + 1);
        self.tree.leaf_mut(leaf).vma_mut(slot + 1)
    }

    /// Splits the VMA at the position in three (`vma_modify`'s two `__split_vma` commits for a
    /// range strictly inside it): it keeps its start and now ends where `mid` starts; `mid` and
    /// `upper`, which cover the rest, go in after it. Moves to `mid`. Unless the leaf lacks room
    /// for two more, one move of the leaf's tail and no descent (the leaf's highest end stays).
    ///
    /// # Preconditions
    /// A VMA is at the position; `mid` starts strictly inside it, `upper` starts where `mid`
    /// ends, strictly inside it, and ends where it ends.
    pub(crate) fn split_off_two(&mut self, mid: Vma, upper: Vma) -> &mut Vma {
        let (leaf, slot) = self.tree.at(self.pos).expect("split_off_two past the last VMA");
        let l = self.tree.leaf_mut(leaf);
        let n = l.len();
        let v = l.vma_mut(slot);
        debug_assert!(
            v.start() < mid.start() && mid.end() == upper.start() && upper.start() < v.end() && upper.end() == v.end(),
            "split {v:?} into {mid:?} and {upper:?}"
        );
        if n + 2 > B {
            // Too full for both: one piece at a time, the upper first.
            self.pos = (leaf, slot);
            self.split_off(upper);
            self.prev();
            return self.split_off(mid);
        }
        // INVARIANT: the three pieces cover the old range in order, so the leaf's ends stay
        // sorted and its highest end is unchanged.
        let (start, pgoff) = (v.start(), v.pgoff());
        v.set_bounds(start, mid.start(), pgoff);
        l.ends[slot] = mid.start().0;
        l.insert(slot + 1, upper);
        l.insert(slot + 1, mid);
        self.tree.len += 2;
        self.pos = (leaf, slot + 1);
        self.tree.leaf_mut(leaf).vma_mut(slot + 1)
    }

    /// Removes the VMA at the position and the one after it (a merge that deletes middle and
    /// next) and returns both; the position moves to the VMA after them. When both are in one
    /// leaf that keeps a VMA, one move of the leaf's tail.
    ///
    /// # Preconditions
    /// A VMA is at the position, and another after it.
    pub(crate) fn remove_two(&mut self) -> (Vma, Vma) {
        let (leaf, slot) = self.tree.at(self.pos).expect("remove_two past the last VMA");
        let n = self.tree.leaf(leaf).len();
        if slot + 1 >= n || (slot == 0 && n == 2) {
            // In two leaves, or the leaf empties: one at a time.
            let a = self.remove();
            let b = self.remove();
            return (a, b);
        }
        let l = self.tree.leaf_mut(leaf);
        let a = l.remove(slot);
        let b = l.remove(slot);
        let start = a.start();
        // The leaf's highest end, if it lost it (then it keeps the VMAs before `slot`, as
        // `slot > 0`).
        let lost_max = (slot + 2 == n).then(|| l.ends[slot - 1]);
        self.tree.len -= 2;
        if let Some(max) = lost_max {
            // The pivots still route `start` here.
            self.tree.fix_pivot(start.0, max);
        }
        // INVARIANT: a fold moves the VMAs; find the one after the removed pair anew.
        self.pos = if self.tree.fold_underflow(leaf) {
            self.tree.seek(start.0)
        } else {
            (leaf, slot)
        };
        (a, b)
    }

    /// Removes the VMA at the position and returns it; the position moves to the VMA after it.
    pub(crate) fn remove(&mut self) -> Vma {
        let p = self.tree.at(self.pos).expect("remove past the last VMA");
        let (v, gone) = self.tree.remove_at(p);
        // INVARIANT: a leaf that went away takes its position with it; find the next VMA anew.
        self.pos = if gone { self.tree.seek(v.start().0) } else { p };
        v
    }
}

/// The VMAs of a [`VmaTree`] in address order, from either end.
pub struct Iter<'a> {
    tree: &'a VmaTree,
    front: (u32, usize),
    back: (u32, usize),
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Vma;

    fn next(&mut self) -> Option<&'a Vma> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let p = self.tree.at(self.front)?;
        self.front = (p.0, p.1 + 1);
        Some(self.tree.vma(p))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a Vma> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let p = self.back;
        if let Some(b) = self.tree.before(p) {
            self.back = b;
        }
        Some(self.tree.vma(p))
    }
}

impl ExactSizeIterator for Iter<'_> {}

// Used by munmap and mmap_region.
impl Cursor<'_> {
    /// Inserts `vma` right before the VMA at the position (a split's lower piece, when the
    /// upper one keeps the slot) and stays at that VMA. Unlike [`Cursor::insert_after`] with
    /// the upper piece, the leaf's highest end does not move, so no pivot changes and, unless
    /// the leaf is full, nothing descends.
    ///
    /// # Preconditions
    /// `vma` lies between the VMA before the position and the one at it.
    pub(crate) fn insert_before(&mut self, vma: Vma) {
        let p = self.tree.at(self.pos).expect("insert_before past the last VMA");
        debug_assert!(self.tree.vma(p).start() >= vma.end());
        debug_assert!(
            self.tree
                .before(p)
                .is_none_or(|b| self.tree.vma(b).end() <= vma.start())
        );
        // A look-up of `vma.start` ends at `p`: the first VMA ending above it.
        let new = self.tree.insert_at(p, vma);
        self.pos = self.tree.after(new).expect("the VMA the insert went before");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PageRange, PgOff};
    use crate::flags::VmaFlags;
    use alloc::vec::Vec;

    fn vma(start: u64, end: u64) -> Vma {
        Vma::new(
            PageRange::new(VirtAddr(start << 12), VirtAddr(end << 12)).unwrap(),
            PgOff(0),
            VmaFlags::EMPTY,
        )
    }

    fn starts(it: impl Iterator<Item = VirtAddr>) -> Vec<u64> {
        it.map(|a| a.0 >> 12).collect()
    }

    /// The highest addresses in a tree of several levels: the descent's last-child rule
    /// (`child_for`, which reads no `len`) sends them past the last VMA, from any hint.
    #[test]
    fn lookups_at_the_top_of_the_address_space() {
        let mut t = VmaTree::new();
        for i in 0..2_000 {
            t.insert(vma(2 * i, 2 * i + 1));
        }
        assert!(t.height >= 2, "height {}", t.height);
        for addr in [u64::MAX, u64::MAX - 1, 3999 << 12] {
            assert!(t.lookup(VirtAddr(0)).is_some(), "the hint goes to the first leaf");
            assert!(t.find_vma(VirtAddr(addr)).is_none(), "{addr:#x}");
            assert!(t.find_vma(VirtAddr(addr)).is_none(), "{addr:#x}, hinted");
        }
        assert_eq!(t.find_vma(VirtAddr(3997 << 12)).unwrap().start().0, 3998 << 12);
        let (next, prev) = t.find_vma_prev(VirtAddr(u64::MAX));
        assert_eq!((next.is_none(), prev.map(|v| v.start().0)), (true, Some(3998 << 12)));
    }

    /// A hinted leaf answers for an address below its keys only from its own first VMA:
    /// inside that VMA it does; in the gap before it, or in the previous leaf, the descent
    /// does. Every page of a tree of several leaves (VMAs of two pages with one-page gaps),
    /// looked up with the hint on each leaf in turn, against a plain scan.
    ///
    /// ```text
    /// | prev leaf ... A | gap | B (first of the hinted leaf) ...
    /// ```
    #[test]
    fn hinted_lookups_below_the_hinted_leaf() {
        let mut t = VmaTree::new();
        let vmas: Vec<(u64, u64)> = (0..200).map(|i| (3 * i + 1, 3 * i + 3)).collect();
        for &(s, e) in &vmas {
            t.insert(vma(s, e));
        }
        assert!(t.height >= 1, "several leaves");
        for &(hs, _) in &vmas {
            for page in 0..3 * 200 + 2 {
                assert!(t.lookup(VirtAddr(hs << 12)).is_some(), "hint on the leaf of {hs}");
                let want = vmas.iter().find(|&&(_, e)| e > page).map(|&(s, _)| s << 12);
                let got = t.find_vma(VirtAddr(page << 12)).map(|v| v.start().0);
                assert_eq!(got, want, "page {page}, hint on the leaf of {hs}");
            }
        }
    }

    #[test]
    fn lookups() {
        // 0123456789
        //  AA  BBB C
        let mut t = VmaTree::new();
        t.insert(vma(1, 3));
        t.insert(vma(5, 8));
        t.insert(vma(9, 10));
        assert!(t.lookup(VirtAddr(0)).is_none());
        assert_eq!(t.lookup(VirtAddr(2 << 12)).unwrap().start().0, 1 << 12);
        assert!(t.lookup(VirtAddr(3 << 12)).is_none());
        assert_eq!(t.find_vma(VirtAddr(3 << 12)).unwrap().start().0, 5 << 12);
        assert!(t.find_vma(VirtAddr(10 << 12)).is_none());
        assert!(t.find_intersection(VirtAddr(3 << 12), VirtAddr(5 << 12)).is_none());
        assert_eq!(
            starts(t.range(VirtAddr(2 << 12), VirtAddr(10 << 12)).map(|v| v.start())),
            [1, 5, 9]
        );
        assert_eq!(
            starts(t.range(VirtAddr(3 << 12), VirtAddr(6 << 12)).map(|v| v.start())),
            [5]
        );
        assert_eq!(
            starts(t.range(VirtAddr(10 << 12), VirtAddr(20 << 12)).map(|v| v.start())),
            Vec::<u64>::new()
        );
        assert_eq!(t.prev_before(VirtAddr(5 << 12)).unwrap().start().0, 1 << 12);
        assert_eq!(t.next_from(VirtAddr(8 << 12)).unwrap().start().0, 9 << 12);
    }

    /// A leaf's positions against a plain sorted `Vec`: inserts take free slots, removals free
    /// them (the slot becomes vacant), a split moves the tail in order, and no VMA is ever
    /// moved by a change at another position.
    #[test]
    fn leaf_positions_and_slots() {
        let mut l = new_leaf();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let check = |l: &Leaf, model: &[(u64, u64)]| {
            assert_eq!(l.len(), model.len());
            for (i, &(s, e)) in model.iter().enumerate() {
                assert_eq!(
                    (l.vma(i).start().0 >> 12, l.vma(i).end().0 >> 12),
                    (s, e),
                    "position {i}"
                );
                assert_eq!(l.ends[i], e << 12);
            }
            assert!(l.ends[model.len()..].iter().all(|&k| k == u64::MAX));
            let used = l.order[..l.len()].iter().fold(0u32, |m, &o| m | 1 << o);
            assert_eq!(used.count_ones() as usize, l.len(), "distinct slots");
            for (slot, v) in l.vmas.iter().enumerate() {
                assert!(used & (1 << slot) != 0 || v.end().0 == 0, "slot {slot} not vacant");
            }
        };
        // | 0 | 2 | 4 | ... | 30 |: a full leaf, built out of order.
        for k in [8u64, 0, 30, 4, 16, 2, 28, 6, 10, 26, 12, 24, 14, 22, 18, 20] {
            let i = model.partition_point(|&(s, _)| s < k);
            l.insert(i, vma(k, k + 1));
            model.insert(i, (k, k + 1));
            check(&l, &model);
        }
        // Removing position 3 frees its slot and leaves every other VMA where it was stored.
        let slots_before: Vec<u8> = l.order[..16].to_vec();
        let freed = l.order[3];
        let v = l.remove(3);
        assert_eq!(v.start().0 >> 12, 6);
        model.remove(3);
        check(&l, &model);
        let mut expect = slots_before.clone();
        expect.remove(3);
        assert_eq!(&l.order[..15], &expect[..]);
        // The next insert takes the freed slot.
        l.insert(3, vma(6, 7));
        model.insert(3, (6, 7));
        assert_eq!(l.order[3], freed);
        check(&l, &model);
        // A split moves positions 9.. to the right leaf, in order.
        let mut right = new_leaf();
        l.move_tail(9, &mut right);
        let tail = model.split_off(9);
        check(&l, &model);
        check(&right, &tail);
    }

    /// Issue 12 finding 4: an empty or inverted range overlaps nothing. Before, the lookup hit
    /// `debug_assert!(start < end)` (a panic in debug builds) and in release answered with the
    /// VMA around an empty range.
    #[test]
    fn empty_and_inverted_ranges_overlap_nothing() {
        // 0123456789
        //  AA  BBB C
        let mut t = VmaTree::new();
        t.insert(vma(1, 3));
        t.insert(vma(5, 8));
        t.insert(vma(9, 10));
        let a = |p: u64| VirtAddr(p << 12);
        for (s, e) in [(6, 6), (5, 5), (2, 1), (7, 5), (10, 0), (u64::MAX >> 12, 0)] {
            assert!(t.find_intersection(a(s), a(e)).is_none(), "[{s}, {e})");
            assert_eq!(t.range(a(s), a(e)).count(), 0, "[{s}, {e})");
        }
        assert!(t.range(VirtAddr(u64::MAX), VirtAddr(0)).next().is_none());
        // `prev` of an empty range is the last VMA ending at or below its start.
        let prev = |s: u64, e: u64| {
            t.overlap_or_prev(a(s), a(e))
                .map(|p| p.map(|v| v.start().0 >> 12))
                .map_err(|v| v.start().0 >> 12)
        };
        assert_eq!(prev(6, 6), Ok(Some(1)), "inside B: the VMA before B");
        assert_eq!(prev(5, 5), Ok(Some(1)), "at B's start");
        assert_eq!(prev(8, 8), Ok(Some(5)), "at B's end");
        assert_eq!(prev(2, 2), Ok(None), "inside A, nothing below");
        assert_eq!(prev(7, 3), Ok(Some(1)), "inverted, from inside B");
    }
}

/// The tree against `BTreeMap<start, end>` under random inserts, removals and range changes,
/// with every lookup compared after each step and the tree's own invariants checked.
#[cfg(test)]
mod model {
    use super::*;
    use crate::addr::PageRange;
    use crate::flags::VmaFlags;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    fn vma(start: u64, end: u64) -> Vma {
        Vma::new(
            PageRange::new(VirtAddr(start << 12), VirtAddr(end << 12)).unwrap(),
            PgOff(0),
            VmaFlags::EMPTY,
        )
    }

    /// One step: 0 insert `[a, a + len)` if free, 1 remove the VMA around `a`, 2 grow or shrink
    /// the VMA around `a` within its gap; through a [`Cursor`]: 3 split the VMA around `a` at
    /// `a`, 4 remove it (the cursor then stands at the next VMA), 5 walk back and forth, 6 split
    /// it at `a` with `split_off`, 7 remove it and the next with `remove_two`, 8 split it at `a`
    /// and `a + 1` with `split_off_two`.
    fn step(t: &mut VmaTree, m: &mut BTreeMap<u64, u64>, op: u8, a: u64, len: u64) {
        let containing = m
            .range(..=a)
            .next_back()
            .filter(|(_, e)| **e > a)
            .map(|(s, e)| (*s, *e));
        match op {
            0 => {
                let end = a + len;
                if m.range(..end).next_back().is_none_or(|(_, e)| *e <= a) {
                    t.insert(vma(a, end));
                    m.insert(a, end);
                }
            }
            1 => {
                if let Some((s, e)) = containing {
                    let v = t.remove(VirtAddr(s << 12)).expect("in the tree");
                    assert_eq!(v.end().0, e << 12);
                    m.remove(&s);
                }
            }
            3 => {
                if let Some((s, e)) = containing.filter(|(s, _)| *s < a) {
                    let mut c = t.cursor(VirtAddr(a << 12));
                    assert_eq!(c.get().map(|v| v.start().0 >> 12), Some(s));
                    c.set_range(VirtAddr(s << 12), VirtAddr(a << 12), PgOff(0));
                    let up = c.insert_after(vma(a, e));
                    assert_eq!(up.start().0 >> 12, a);
                    assert_eq!(c.get().map(|v| v.start().0 >> 12), Some(a));
                    assert_eq!(c.peek_prev().map(|v| v.start().0 >> 12), Some(s));
                    m.insert(s, a);
                    m.insert(a, e);
                }
            }
            6 => {
                // split_off: the tail from `a` as a VMA of its own, at the cursor.
                if let Some((s, e)) = containing.filter(|(s, _)| *s < a) {
                    let mut c = t.cursor(VirtAddr(a << 12));
                    let up = c.split_off(vma(a, e));
                    assert_eq!(up.start().0 >> 12, a);
                    assert_eq!(c.get().map(|v| (v.start().0 >> 12, v.end().0 >> 12)), Some((a, e)));
                    assert_eq!(
                        c.peek_prev().map(|v| (v.start().0 >> 12, v.end().0 >> 12)),
                        Some((s, a))
                    );
                    m.insert(s, a);
                    m.insert(a, e);
                }
            }
            7 => {
                // remove_two: the VMA around `a` and the one after it.
                if let Some((s, e)) = containing
                    && let Some((ns, ne)) = m.range(e..).next().map(|(s, e)| (*s, *e))
                {
                    let mut c = t.cursor(VirtAddr(a << 12));
                    let (x, y) = c.remove_two();
                    assert_eq!((x.start().0 >> 12, y.start().0 >> 12), (s, ns));
                    assert_eq!((x.end().0 >> 12, y.end().0 >> 12), (e, ne));
                    m.remove(&s);
                    m.remove(&ns);
                    let next = m.range(ns..).next().map(|(s, _)| *s);
                    assert_eq!(c.get().map(|v| v.start().0 >> 12), next, "after remove_two");
                }
            }
            8 => {
                // split_off_two: the VMA around `a` in three, at `a` and `a + 1`.
                if let Some((s, e)) = containing.filter(|(s, e)| *s < a && a + 1 < *e) {
                    let mut c = t.cursor(VirtAddr(a << 12));
                    let mid = c.split_off_two(vma(a, a + 1), vma(a + 1, e));
                    assert_eq!(mid.start().0 >> 12, a);
                    assert_eq!(
                        c.peek_prev().map(|v| (v.start().0 >> 12, v.end().0 >> 12)),
                        Some((s, a))
                    );
                    assert_eq!(
                        c.peek_next().map(|v| (v.start().0 >> 12, v.end().0 >> 12)),
                        Some((a + 1, e))
                    );
                    m.insert(s, a);
                    m.insert(a, a + 1);
                    m.insert(a + 1, e);
                }
            }
            4 => {
                if let Some((s, e)) = containing {
                    let mut c = t.cursor(VirtAddr(a << 12));
                    let v = c.remove();
                    assert_eq!((v.start().0 >> 12, v.end().0 >> 12), (s, e));
                    m.remove(&s);
                    let next = m.range(s..).next().map(|(s, _)| *s);
                    assert_eq!(c.get().map(|v| v.start().0 >> 12), next, "after remove");
                }
            }
            5 => {
                let mut c = t.cursor(VirtAddr(a << 12));
                let here = m.iter().find(|(_, e)| **e > a).map(|(s, _)| *s);
                assert_eq!(c.get().map(|v| v.start().0 >> 12), here);
                let before = here.map_or_else(
                    || m.keys().next_back().copied(),
                    |h| m.range(..h).next_back().map(|(s, _)| *s),
                );
                assert_eq!(c.peek_prev().map(|v| v.start().0 >> 12), before);
                if let Some(h) = here {
                    let after = m.range(h + 1..).next().map(|(s, _)| *s);
                    assert_eq!(c.peek_next().map(|v| v.start().0 >> 12), after);
                    assert_eq!(c.next().map(|v| v.start().0 >> 12), after);
                    if after.is_some() {
                        assert_eq!(c.prev().map(|v| v.start().0 >> 12), Some(h));
                    }
                }
            }
            _ => {
                if let Some((s, e)) = containing {
                    let lo = m.range(..s).next_back().map_or(0, |(_, e)| *e);
                    let hi = m.range(e..).next().map_or(e + 64, |(s, _)| *s);
                    let (ns, ne) = if len.is_multiple_of(2) {
                        (lo.max(s.saturating_sub(len)), hi.min(e + len))
                    } else {
                        (s, (s + 1).max(e.saturating_sub(len)))
                    };
                    t.set_range(VirtAddr(s << 12), VirtAddr(ns << 12), VirtAddr(ne << 12), PgOff(0));
                    m.remove(&s);
                    m.insert(ns, ne);
                }
            }
        }
    }

    fn compare(t: &VmaTree, m: &BTreeMap<u64, u64>, probes: &[u64]) {
        t.check();
        let got: Vec<(u64, u64)> = t.iter().map(|v| (v.start().0 >> 12, v.end().0 >> 12)).collect();
        let want: Vec<(u64, u64)> = m.iter().map(|(s, e)| (*s, *e)).collect();
        assert_eq!(got, want);
        let back: Vec<(u64, u64)> = t.iter().rev().map(|v| (v.start().0 >> 12, v.end().0 >> 12)).collect();
        assert!(back.iter().rev().eq(want.iter()), "reverse iteration");
        let pages = |v: Option<&Vma>| v.map(|v| (v.start().0 >> 12, v.end().0 >> 12));
        for &p in probes {
            let a = VirtAddr(p << 12);
            let lookup = m
                .range(..=p)
                .next_back()
                .filter(|(_, e)| **e > p)
                .map(|(s, e)| (*s, *e));
            assert_eq!(pages(t.lookup(a)), lookup, "lookup {p}");
            let find = m.iter().find(|(_, e)| **e > p).map(|(s, e)| (*s, *e));
            assert_eq!(pages(t.find_vma(a)), find, "find_vma {p}");
            let (fv, fp) = t.find_vma_prev(a);
            assert_eq!(pages(fv), find, "find_vma_prev {p}");
            let before = find.map_or_else(
                || m.iter().next_back().map(|(s, e)| (*s, *e)),
                |(fs, _)| m.range(..fs).next_back().map(|(s, e)| (*s, *e)),
            );
            assert_eq!(pages(fp), before, "find_vma_prev {p}: prev");
            let prev = m.range(..p).next_back().map(|(s, e)| (*s, *e));
            assert_eq!(pages(t.prev_before(a)), prev, "prev_before {p}");
            let next = m.range(p..).next().map(|(s, e)| (*s, *e));
            assert_eq!(pages(t.next_from(a)), next, "next_from {p}");
            assert_eq!(pages(t.get(a)), m.get(&p).map(|e| (p, *e)), "get {p}");
            let q = p + 5;
            let overlap: Vec<(u64, u64)> = m
                .iter()
                .filter(|(s, e)| **e > p && **s < q)
                .map(|(s, e)| (*s, *e))
                .collect();
            let got: Vec<(u64, u64)> = t
                .range(a, VirtAddr(q << 12))
                .map(|v| (v.start().0 >> 12, v.end().0 >> 12))
                .collect();
            assert_eq!(got, overlap, "range [{p}, {q})");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec((0u8..9, 0u64..600, 1u64..6), 1..700)) {
            let mut t = VmaTree::new();
            let mut m = BTreeMap::new();
            for (k, &(op, a, len)) in ops.iter().enumerate() {
                step(&mut t, &mut m, op, a, len);
                if k % 50 == 0 {
                    compare(&t, &m, &[0, a, a + 1, a + len, 300, 599, 700, u64::MAX >> 12]);
                }
            }
            compare(&t, &m, &(0..610).step_by(7).collect::<Vec<_>>());
            let all: Vec<(u64, u64)> = t.into_vmas().map(|v| (v.start().0 >> 12, v.end().0 >> 12)).collect();
            prop_assert_eq!(all, m.into_iter().collect::<Vec<_>>());
        }
    }

    /// The next number of a xorshift sequence (a fixed seed gives the same steps every run).
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// The model test at a size of thousands of leaves: 30 000 VMAs, then random steps over them
    /// (inserts in gaps, removals, splits, merges), so leaves split, empty, go on the free list
    /// and come back.
    #[test]
    fn matches_btreemap_with_thousands_of_leaves() {
        let mut t = VmaTree::new();
        let mut m = BTreeMap::new();
        for k in 0..30_000u64 {
            step(&mut t, &mut m, 0, 4 * k, 2);
        }
        assert!(t.leaves.len() > 1_000, "{} leaves", t.leaves.len());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for k in 0..60_000u32 {
            let x = xorshift(&mut x);
            let (op, a, len) = ((x % 9) as u8, (x >> 8) % 120_010, 1 + (x >> 40) % 5);
            step(&mut t, &mut m, op, a, len);
            if k % 10_000 == 0 {
                t.check();
            }
        }
        t.check();
        compare(&t, &m, &(0..120_020).step_by(97).collect::<Vec<_>>());
        let all: Vec<(u64, u64)> = t.into_vmas().map(|v| (v.start().0 >> 12, v.end().0 >> 12)).collect();
        assert_eq!(all, m.into_iter().collect::<Vec<_>>());
    }

    /// Removing most VMAs at random folds the leaves they leave nearly empty: the tree shrinks
    /// with the address space instead of keeping the leaves of its peak. 30 000 VMAs in packed
    /// leaves, then 15 of every 16 removed in a random order, one by one and in pairs (the
    /// cursor's `remove_two`, a merge deleting middle and next): without folding the 1 875 left
    /// sit one per leaf.
    #[test]
    fn removals_fold_underflowing_leaves() {
        let mut t = VmaTree::new();
        for k in 0..30_000u64 {
            t.insert(vma(2 * k, 2 * k + 1));
        }
        let mut doomed: Vec<u64> = (0..30_000u64).filter(|k| k % 16 != 0).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in (1..doomed.len()).rev() {
            doomed.swap(i, (xorshift(&mut x) % (i as u64 + 1)) as usize);
        }
        for (n, &k) in doomed.iter().enumerate() {
            let addr = VirtAddr((2 * k) << 12);
            let here = t.lookup(addr).is_some();
            if here && n % 2 == 0 && k % 16 != 15 && t.lookup(VirtAddr((2 * k + 2) << 12)).is_some() {
                // This VMA and the next one, at one cursor.
                let mut c = t.cursor(addr);
                let (a, b) = c.remove_two();
                assert_eq!((a.start(), b.start()), (addr, VirtAddr((2 * k + 2) << 12)));
                // The cursor stands at the VMA after the pair.
                let after = c.get().map(|v| v.start());
                assert_eq!(after, t.find_vma(addr).map(|v| v.start()));
            } else if here {
                let mut c = t.cursor(addr);
                let v = c.remove();
                assert_eq!(v.start(), addr);
                let after = c.get().map(|v| v.start());
                assert_eq!(after, t.find_vma(addr).map(|v| v.start()));
            }
            if n % 1_000 == 0 {
                t.check();
            }
        }
        t.check();
        let starts: Vec<u64> = t.iter().map(|v| v.start().0 >> 12).collect();
        assert_eq!(starts, (0..30_000u64).step_by(16).map(|k| 2 * k).collect::<Vec<_>>());
        let leaves = t.leaves.len() - t.free_leaves.len();
        assert!(leaves <= t.len() / 3, "{leaves} leaves for {} VMAs", t.len());
    }

    /// A layout built in address order (as the perf stream's mprotect of every other page builds
    /// it) packs its leaves, and emptying it from either end leaves an empty tree.
    #[test]
    fn sequential_build_packs_leaves() {
        let mut t = VmaTree::new();
        for k in 0..10_000u64 {
            t.insert(vma(2 * k, 2 * k + 1));
        }
        t.check();
        let leaves = t.leaves.len() - t.free_leaves.len();
        assert!(leaves <= 10_000 / (B - 1) + 1, "{leaves} leaves for 10 000 VMAs");
        for k in 0..5_000u64 {
            t.remove(VirtAddr((2 * k) << 12)).unwrap();
            t.remove(VirtAddr((2 * (9_999 - k)) << 12)).unwrap();
        }
        t.check();
        assert!(t.is_empty() && t.height == 0);
        assert!(t.iter().next().is_none());
    }
}

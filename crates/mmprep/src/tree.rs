//! The ordered index of an address space's VMAs (the maple tree's job).
//!
//! The kernel keeps VMAs in a maple tree keyed by range (`mm->mm_mt`), with iterators that find
//! the VMA containing an address, the first one ending above it, or every one overlapping a
//! range. Here a B-tree keyed by start address does the same in O(log n): since VMAs never
//! overlap, the VMA containing `addr` is the last one starting at or below it.
//!
//! Mirrors the lookups of `include/linux/mm.h` (`find_vma`, `find_vma_intersection`,
//! `vma_lookup`, `vma_prev`, `vma_next`), \[H\] 6.18.
//!
//! Insertion never merges: merging is [`crate::merge`]'s job, and the names say so.

use alloc::collections::BTreeMap;
use core::ops::Bound::{Excluded, Unbounded};

use crate::addr::VirtAddr;
use crate::vma::Vma;

/// The VMAs of one address space, sorted by address.
///
/// # Invariants
/// Every entry's key is its VMA's start; VMAs do not overlap.
#[derive(Clone, Default)]
pub struct VmaTree {
    map: BTreeMap<u64, Vma>,
}

impl VmaTree {
    /// An empty tree.
    pub fn new() -> VmaTree {
        VmaTree { map: BTreeMap::new() }
    }

    /// Number of VMAs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No VMAs?
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every VMA, lowest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Vma> {
        self.map.values()
    }

    /// `vma_lookup`: the VMA containing `addr`.
    pub fn lookup(&self, addr: VirtAddr) -> Option<&Vma> {
        let (_, v) = self.map.range(..=addr.0).next_back()?;
        (addr.0 < v.end.0).then_some(v)
    }

    /// `find_vma`: the first VMA ending above `addr` (it may start above it too).
    pub fn find_vma(&self, addr: VirtAddr) -> Option<&Vma> {
        if let Some(v) = self.lookup(addr) {
            return Some(v);
        }
        self.map.range((Excluded(addr.0), Unbounded)).next().map(|(_, v)| v)
    }

    /// `find_vma_intersection` / `vma_find(vmi, end)` from `start`: the first VMA overlapping
    /// `[start, end)`. An empty or inverted range (`end <= start`) overlaps nothing.
    pub fn find_intersection(&self, start: VirtAddr, end: VirtAddr) -> Option<&Vma> {
        self.overlap_or_prev(start, end).err()
    }

    /// One look at `[start, end)`: `Err(first)`, the first VMA overlapping it, or `Ok(prev)`, the
    /// last VMA ending at or below `start` (what `vma_iter_next_rewind` gives `mmap_region` for a
    /// gap). Usually a single descent: the last VMA starting below `end` either ends before
    /// `start` (nothing overlaps; it is `prev`) or covers `start` (it is the first overlap).
    ///
    /// An empty or inverted range (`end <= start`) overlaps nothing, even inside a VMA: the
    /// answer is `Ok` with the last VMA ending at or below `start`. (The kernel's
    /// `find_vma_intersection` gets only non-empty ranges from its callers; here the range is
    /// caller input of a public function, so it is answered, never asserted.)
    pub fn overlap_or_prev(&self, start: VirtAddr, end: VirtAddr) -> Result<Option<&Vma>, &Vma> {
        if end <= start {
            return Ok(match self.prev_before(start) {
                // `start` is inside this VMA: the one before it ends at or below its start.
                Some(v) if v.end > start => self.prev_before(v.start),
                other => other,
            });
        }
        match self.map.range(..end.0).next_back() {
            None => Ok(None),
            Some((_, last)) if last.end.0 <= start.0 => Ok(Some(last)),
            Some((_, last)) if last.start.0 <= start.0 => Err(last),
            // Several VMAs overlap; the first contains `start` or is the first after it.
            Some((_, last)) => Err(self.find_vma(start).unwrap_or(last)),
        }
    }

    /// The last VMA starting below `addr` (`vma_prev` from a position at `addr`).
    pub fn prev_before(&self, addr: VirtAddr) -> Option<&Vma> {
        self.map.range(..addr.0).next_back().map(|(_, v)| v)
    }

    /// The first VMA starting at or above `addr` (`vma_next` from a gap at `addr`).
    pub fn next_from(&self, addr: VirtAddr) -> Option<&Vma> {
        self.map.range(addr.0..).next().map(|(_, v)| v)
    }

    /// The VMA starting exactly at `start`.
    pub fn get(&self, start: VirtAddr) -> Option<&Vma> {
        self.map.get(&start.0)
    }

    /// The VMA starting exactly at `start`, to change in place (not its range: use
    /// [`VmaTree::remove`] and [`VmaTree::insert`] for that).
    pub(crate) fn get_mut(&mut self, start: VirtAddr) -> Option<&mut Vma> {
        self.map.get_mut(&start.0)
    }

    /// The VMAs overlapping `[start, end)`, lowest first; none for an empty or inverted range.
    pub fn range(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = &Vma> {
        let first = self.find_intersection(start, end).map(|v| v.start.0);
        // No VMA starts at u64::MAX (a VMA is non-empty), so an empty answer ranges over nothing.
        let from = first.unwrap_or(u64::MAX);
        self.map
            .range(from..)
            .map(|(_, v)| v)
            .take_while(move |v| first.is_some() && v.start.0 < end.0)
    }

    /// Inserts a VMA that overlaps none. Never merges.
    pub(crate) fn insert(&mut self, vma: Vma) {
        debug_assert!(
            self.find_intersection(vma.start, vma.end).is_none(),
            "insert of {vma:?} overlaps {:?}",
            self.find_intersection(vma.start, vma.end)
        );
        self.map.insert(vma.start.0, vma);
    }

    /// Every VMA, lowest first, taken out of the tree.
    pub(crate) fn into_vmas(self) -> impl Iterator<Item = Vma> {
        self.map.into_values()
    }

    /// Removes and returns the VMA starting at `start`.
    pub(crate) fn remove(&mut self, start: VirtAddr) -> Option<Vma> {
        self.map.remove(&start.0)
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

    #[test]
    fn lookups() {
        // 0123456789
        //  AA  BBB C
        let mut t = VmaTree::new();
        t.insert(vma(1, 3));
        t.insert(vma(5, 8));
        t.insert(vma(9, 10));
        assert!(t.lookup(VirtAddr(0)).is_none());
        assert_eq!(t.lookup(VirtAddr(2 << 12)).unwrap().start.0, 1 << 12);
        assert!(t.lookup(VirtAddr(3 << 12)).is_none());
        assert_eq!(t.find_vma(VirtAddr(3 << 12)).unwrap().start.0, 5 << 12);
        assert!(t.find_vma(VirtAddr(10 << 12)).is_none());
        assert!(t.find_intersection(VirtAddr(3 << 12), VirtAddr(5 << 12)).is_none());
        assert_eq!(
            starts(t.range(VirtAddr(2 << 12), VirtAddr(10 << 12)).map(|v| v.start)),
            [1, 5, 9]
        );
        assert_eq!(
            starts(t.range(VirtAddr(3 << 12), VirtAddr(6 << 12)).map(|v| v.start)),
            [5]
        );
        assert_eq!(
            starts(t.range(VirtAddr(10 << 12), VirtAddr(20 << 12)).map(|v| v.start)),
            Vec::<u64>::new()
        );
        assert_eq!(t.prev_before(VirtAddr(5 << 12)).unwrap().start.0, 1 << 12);
        assert_eq!(t.next_from(VirtAddr(8 << 12)).unwrap().start.0, 9 << 12);
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
                .map(|p| p.map(|v| v.start.0 >> 12))
                .map_err(|v| v.start.0 >> 12)
        };
        assert_eq!(prev(6, 6), Ok(Some(1)), "inside B: the VMA before B");
        assert_eq!(prev(5, 5), Ok(Some(1)), "at B's start");
        assert_eq!(prev(8, 8), Ok(Some(5)), "at B's end");
        assert_eq!(prev(2, 2), Ok(None), "inside A, nothing below");
        assert_eq!(prev(7, 3), Ok(Some(1)), "inverted, from inside B");
    }
}

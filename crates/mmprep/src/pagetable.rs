//! Page tables: which frame each virtual page of an address space maps, if any.
//!
//! A page-table entry appears when a page is faulted in and goes when its range is unmapped.
//! Each entry says what it maps (a [`Frame`](crate::phys::Frame), or a raw frame number of a
//! PFN mapping) and whether that frame is an *anonymous* page of this mapping (zero-filled
//! memory, or a private copy made by a copy-on-write fault) rather than a page of a file's page
//! cache or a driver's.
//!
//! Mirrors what `mm/memory.c` keeps in PTEs, reduced to what behaviour depends on. The write
//! bit is not stored: whether a write may go straight to the frame is decided at the access
//! (`do_wp_page`'s question), from the VMA and from whether anybody else maps the frame, which
//! is exactly what `fork` changes. So `fork` never has to write-protect the parent's entries.
//!
//! Besides entries, a page may hold a *guard marker* (`PTE_MARKER_GUARD`, installed by
//! `MADV_GUARD_INSTALL`): no page, and every access to it raises `SIGSEGV`. `MADV_DONTNEED`
//! drops entries but keeps markers; unmapping drops both; `fork` copies both. Guard markers are
//! kept as runs of pages (`[first, end)` page numbers), so a guard region costs the same
//! whatever its size: one `MADV_GUARD_INSTALL` over 2^45 bytes is one run, not 2^33 markers
//! (`docs/core-design.md`, section 2).
//!
//! The in-place write decision lives here, under the page-table lock, with the entry it acts
//! on ([`PageTable::wp_anon`]): an anonymous entry is *exclusive* (`PageAnonExclusive`) when no
//! other entry maps its frame, and only an exclusive frame is ever written in place.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::addr::{PAGE_SHIFT, Pfn, VirtAddr};
use crate::phys::{FrameRef, Machine};

/// What an entry maps.
#[derive(Clone, Debug)]
pub(crate) enum PteTarget {
    /// A page with a `struct page`: anonymous, page cache, or a driver's kernel page
    /// (`vm_insert_page`, `map_kernel_pages`).
    Frame(FrameRef),
    /// A raw page frame number (`remap_pfn_range`): device memory or memory the kernel does not
    /// manage as pages (a "special" entry of a `VM_PFNMAP` mapping).
    Pfn(Pfn),
}

/// One page-table entry.
///
/// # Invariants
/// `exclusive` only with `anon` and a frame; a frame that one entry maps exclusively is mapped
/// by no other entry, in this or any other address space.
#[derive(Clone, Debug)]
pub(crate) struct Pte {
    /// What it maps.
    pub target: PteTarget,
    /// An anonymous page (private to the mapping and its fork relatives) rather than a
    /// page-cache or driver page.
    pub anon: bool,
    /// `PageAnonExclusive`: this entry is the only one that maps the anonymous frame, so a
    /// write may go straight to it. Set on a page a fault made for this address space (a fresh
    /// page or a copy); cleared on both sides by `fork`.
    pub exclusive: bool,
    /// Written through this entry since it was installed (the first write of a shared page
    /// calls `page_mkwrite` / `pfn_mkwrite`).
    pub dirty: bool,
}

impl Pte {
    /// An entry for a frame that others may map too (page cache, kernel pages).
    pub fn frame(frame: FrameRef, anon: bool, dirty: bool) -> Pte {
        Pte {
            target: PteTarget::Frame(frame),
            anon,
            exclusive: false,
            dirty,
        }
    }

    /// An entry for an anonymous frame a fault has just made for this address space alone (a
    /// zero-filled page or a copy-on-write copy), written.
    pub fn new_anon(frame: FrameRef) -> Pte {
        Pte {
            target: PteTarget::Frame(frame),
            anon: true,
            exclusive: true,
            dirty: true,
        }
    }

    /// An entry for a raw frame number.
    pub fn pfn(pfn: Pfn) -> Pte {
        Pte {
            target: PteTarget::Pfn(pfn),
            anon: false,
            exclusive: false,
            dirty: false,
        }
    }
}

/// What [`PageTable::wp_anon`] found.
pub(crate) enum WpAnon {
    /// The frame the write goes to: the entry's own (reused) or its fresh copy.
    Frame(FrameRef),
    /// The page holds no anonymous frame entry (any more): look again.
    NotAnon,
    /// A copy is needed and the caller said it may not make one yet (no anon_vma).
    NeedsCopy,
}

/// Runs of pages with one uniform state: first page number → one past the last.
///
/// # Invariants
/// Runs are non-empty, do not overlap and do not touch (adjacent runs are one run).
#[derive(Clone, Debug, Default)]
struct Runs(BTreeMap<u64, u64>);

impl Runs {
    /// The run holding page `vpn`.
    fn containing(&self, vpn: u64) -> Option<(u64, u64)> {
        let (&first, &end) = self.0.range(..=vpn).next_back()?;
        (vpn < end).then_some((first, end))
    }

    /// The lowest run overlapping `[s, e)`, whole.
    fn first_overlap(&self, s: u64, e: u64) -> Option<(u64, u64)> {
        self.containing(s)
            .or_else(|| self.0.range(s..e).next().map(|(&a, &b)| (a, b)))
    }

    /// The runs overlapping `[s, e)`, clipped to it, lowest first.
    fn clipped(&self, s: u64, e: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let from = self.containing(s).map_or(s, |(first, _)| first);
        self.0
            .range(from..e.max(from))
            .map(move |(&a, &b)| (a.max(s), b.min(e)))
            .filter(|(a, b)| a < b)
    }

    /// Adds `[s, e)`, joining the runs it overlaps or touches.
    fn insert(&mut self, mut s: u64, mut e: u64) {
        if s >= e {
            return;
        }
        // A run ending at or after `s` that starts at or before `e` overlaps or touches.
        loop {
            let before = self.0.range(..=s).next_back().filter(|(_, b)| **b >= s);
            let found = before.or_else(|| self.0.range(s..=e).next());
            let Some((&a, &b)) = found else { break };
            self.0.remove(&a);
            s = s.min(a);
            e = e.max(b);
        }
        // INVARIANT: every run that overlapped or touched [s, e) is now part of it.
        self.0.insert(s, e);
    }

    /// Removes `[s, e)`, cutting the runs that stick out of it.
    fn remove(&mut self, s: u64, e: u64) {
        if s >= e {
            return;
        }
        while let Some((a, b)) = self.first_overlap(s, e) {
            self.0.remove(&a);
            if a < s {
                self.0.insert(a, s);
            }
            if b > e {
                self.0.insert(e, b);
            }
        }
    }

    /// Number of runs.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The page tables of one address space: virtual page number → entry.
#[derive(Clone, Debug, Default)]
struct Inner {
    ptes: BTreeMap<u64, Pte>,
    /// Guard markers: runs of pages where any access is `SIGSEGV`.
    ///
    /// # Invariants
    /// A page holds an entry or a guard marker, never both.
    guards: Runs,
}

/// The page number of `addr`.
fn vpn(addr: VirtAddr) -> u64 {
    addr.0 >> PAGE_SHIFT
}

/// The address of page `vpn`.
fn addr_of(vpn: u64) -> VirtAddr {
    VirtAddr(vpn << PAGE_SHIFT)
}

impl Inner {
    /// Installs an entry for the page containing `addr`.
    fn set(&mut self, addr: VirtAddr, pte: Pte) {
        debug_assert!(
            self.guards.containing(vpn(addr)).is_none(),
            "a page installed over the guard marker at {addr:?}"
        );
        self.ptes.insert(vpn(addr), pte);
    }

    /// `zap_page_range_single` (`MADV_DONTNEED`, `MADV_GUARD_INSTALL`): drops every entry in
    /// `[start, end)`; guard markers stay. Costs one step per entry dropped, and allocates
    /// nothing.
    fn zap_pages(&mut self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (vpn(start), vpn(end));
        while let Some((&k, _)) = self.ptes.range(s..e.max(s)).next() {
            self.ptes.remove(&k);
        }
    }

    /// `move_page_tables` (mremap): the entries and guard markers of `[start, end)` move to the
    /// same offsets from `to`; whatever the destination held is dropped first.
    fn move_range(&mut self, start: VirtAddr, end: VirtAddr, to: VirtAddr) {
        let (s, e, t) = (vpn(start), vpn(end), vpn(to));
        let shift = |p: u64| t.wrapping_add(p - s);
        let mut entries = Vec::new();
        while let Some((&k, _)) = self.ptes.range(s..e.max(s)).next() {
            let pte = self.ptes.remove(&k).expect("just found");
            entries.push((shift(k), pte));
        }
        let guards: Vec<(u64, u64)> = self.guards.clipped(s, e).collect();
        self.guards.remove(s, e);
        let dest_end = t.wrapping_add(e - s);
        self.zap_pages(addr_of(t), addr_of(dest_end));
        self.guards.remove(t, dest_end);
        for (k, pte) in entries {
            self.ptes.insert(k, pte);
        }
        for (a, b) in guards {
            self.guards.insert(shift(a), shift(b));
        }
    }
}

/// The page tables of one address space: virtual page number → entry, and guard markers.
///
/// They take their own lock (the kernel's page-table lock), so faults that hold the address
/// space only shared (the per-VMA lock path, [`crate::mm::Mm::try_access`]) can install
/// entries side by side; callers that hold it exclusively pay an uncontended lock. Every method
/// copies out what it returns, and every decision that depends on an entry is made under the
/// lock together with the change it leads to.
#[derive(Debug, Default)]
pub(crate) struct PageTable {
    inner: crate::sync::Mutex<Inner>,
}

impl PageTable {
    /// The entry for the page containing `addr`.
    pub fn get(&self, addr: VirtAddr) -> Option<Pte> {
        self.inner.lock().ptes.get(&vpn(addr)).cloned()
    }
    /// Installs an entry for the page containing `addr`.
    pub fn set(&self, addr: VirtAddr, pte: Pte) {
        self.inner.lock().set(addr, pte)
    }
    /// Installs `pte` unless the page already has an entry; returns the entry now there (a
    /// fault racing another fault of the same page keeps the first one, as `pte_same` does).
    pub fn set_if_none(&self, addr: VirtAddr, pte: Pte) -> Pte {
        let mut t = self.inner.lock();
        match t.ptes.get(&vpn(addr)) {
            Some(existing) => existing.clone(),
            None => {
                t.set(addr, pte.clone());
                pte
            }
        }
    }
    /// Replaces the entry at `addr` with `new` if it still maps what `old` maps (a copy-on-write
    /// racing another fault of the page: the loser retries). Returns whether it did.
    pub fn replace_if_same(&self, addr: VirtAddr, old: &PteTarget, new: Pte) -> bool {
        let mut t = self.inner.lock();
        let same = match (t.ptes.get(&vpn(addr)).map(|p| &p.target), old) {
            (Some(PteTarget::Frame(a)), PteTarget::Frame(b)) => FrameRef::ptr_eq(a, b),
            (Some(PteTarget::Pfn(a)), PteTarget::Pfn(b)) => a == b,
            _ => false,
        };
        if same {
            t.set(addr, new);
        }
        same
    }
    /// `do_wp_page` for an anonymous page, decided and done in one step under the lock
    /// (`mm/memory.c:do_wp_page`, `wp_can_reuse_anon_folio`, `wp_page_copy`):
    /// - an exclusive entry's frame is written in place;
    /// - so is a shared one's whose only reference is this entry (the other side of a fork has
    ///   copied or unmapped it meanwhile); the entry becomes exclusive;
    /// - otherwise the frame is copied and the copy installed as exclusive (if `may_copy`).
    ///
    /// The caller must hold no clone of the entry or its frame: a clone would count as another
    /// user and force a copy.
    pub fn wp_anon(&self, addr: VirtAddr, machine: &Machine, may_copy: bool) -> WpAnon {
        let mut t = self.inner.lock();
        let Some(pte) = t.ptes.get_mut(&vpn(addr)) else {
            return WpAnon::NotAnon;
        };
        let PteTarget::Frame(frame) = &pte.target else {
            return WpAnon::NotAnon;
        };
        if !pte.anon {
            return WpAnon::NotAnon;
        }
        if pte.exclusive || FrameRef::strong_count(frame) == 1 {
            // INVARIANT: nobody else maps the frame (a count of one under the lock means no
            // other entry holds it and no fault can clone it from here meanwhile).
            pte.exclusive = true;
            pte.dirty = true;
            return WpAnon::Frame(frame.clone());
        }
        if !may_copy {
            return WpAnon::NeedsCopy;
        }
        // The frame is not exclusive, so no writer writes it in place while it is copied.
        let copy = machine.copy_frame(frame);
        *pte = Pte::new_anon(copy.clone());
        WpAnon::Frame(copy)
    }
    /// Marks the entry at `addr` written, if it is still there.
    pub fn mark_dirty(&self, addr: VirtAddr) {
        if let Some(p) = self.inner.lock().ptes.get_mut(&vpn(addr)) {
            p.dirty = true;
        }
    }
    /// `unmap_page_range` with `ZAP_FLAG_DROP_MARKER` (munmap, `MAP_FIXED`): drops every entry
    /// and every guard marker in `[start, end)`.
    pub fn zap(&self, start: VirtAddr, end: VirtAddr) {
        let mut t = self.inner.lock();
        t.zap_pages(start, end);
        t.guards.remove(vpn(start), vpn(end));
    }
    /// Drops every entry in `[start, end)`; guard markers stay (`MADV_DONTNEED`).
    pub fn zap_pages(&self, start: VirtAddr, end: VirtAddr) {
        self.inner.lock().zap_pages(start, end)
    }
    /// Is the page containing `addr` a guard page?
    pub fn is_guard(&self, addr: VirtAddr) -> bool {
        self.inner.lock().guards.containing(vpn(addr)).is_some()
    }
    /// The lowest guard page in `[start, end)`.
    pub fn first_guard(&self, start: VirtAddr, end: VirtAddr) -> Option<VirtAddr> {
        let t = self.inner.lock();
        t.guards.clipped(vpn(start), vpn(end)).next().map(|(a, _)| addr_of(a))
    }
    /// `madvise_guard_install`'s walk: every page of `[start, end)` becomes a guard page; the
    /// entries there are dropped first (`zap_page_range_single`). Costs one step per entry
    /// dropped and per guard run joined, whatever the size of the range.
    pub fn install_guards(&self, start: VirtAddr, end: VirtAddr) {
        let mut t = self.inner.lock();
        t.zap_pages(start, end);
        // INVARIANT: no entry is left in the range, so no page is both mapped and guarded.
        t.guards.insert(vpn(start), vpn(end));
    }
    /// `madvise_guard_remove`'s walk: the guard pages of `[start, end)` become empty pages.
    pub fn remove_guards(&self, start: VirtAddr, end: VirtAddr) {
        self.inner.lock().guards.remove(vpn(start), vpn(end))
    }
    /// Moves the entries and guard markers of `[start, end)` to `to` (mremap).
    pub fn move_range(&self, start: VirtAddr, end: VirtAddr, to: VirtAddr) {
        self.inner.lock().move_range(start, end, to)
    }
    /// `copy_page_range` for `fork`: the entries and guard markers of `[start, end)` are copied
    /// into `child`, which maps the same frames. Anonymous entries stop being exclusive on both
    /// sides (`folio_try_dup_anon_rmap_pte`): from now on a write on either side copies the
    /// page, unless the other side has let go of it.
    pub fn fork_into(&self, child: &PageTable, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (vpn(start), vpn(end));
        let mut parent = self.inner.lock();
        let mut c = child.inner.lock();
        for (&k, pte) in parent.ptes.range_mut(s..e.max(s)) {
            pte.exclusive = false;
            c.ptes.insert(k, pte.clone());
        }
        let runs: Vec<(u64, u64)> = parent.guards.clipped(s, e).collect();
        for (a, b) in runs {
            c.guards.insert(a, b);
        }
    }
    /// Is there any entry in `[start, end)`?
    pub fn any_in(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let (s, e) = (vpn(start), vpn(end));
        self.inner.lock().ptes.range(s..e.max(s)).next().is_some()
    }
    /// Number of entries (guard markers are not entries).
    pub fn len(&self) -> usize {
        self.inner.lock().ptes.len()
    }
    /// Number of guard runs: what guard markers cost, whatever the pages they cover.
    #[cfg(test)]
    pub fn guard_run_count(&self) -> usize {
        self.inner.lock().guards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(r: &Runs) -> Vec<(u64, u64)> {
        r.0.iter().map(|(&a, &b)| (a, b)).collect()
    }

    #[test]
    fn runs_join_and_cut() {
        // 0123456789abcdef
        //  GG  GGG
        let mut r = Runs::default();
        r.insert(1, 3);
        r.insert(5, 8);
        assert_eq!(runs(&r), [(1, 3), (5, 8)]);
        // Touching on the left joins.
        r.insert(3, 4);
        assert_eq!(runs(&r), [(1, 4), (5, 8)]);
        // Bridging joins all three.
        r.insert(4, 5);
        assert_eq!(runs(&r), [(1, 8)]);
        // Cutting the middle leaves two.
        r.remove(3, 6);
        assert_eq!(runs(&r), [(1, 3), (6, 8)]);
        assert_eq!(r.clipped(2, 7).collect::<Vec<_>>(), [(2, 3), (6, 7)]);
        assert_eq!(r.first_overlap(3, 6), None);
        assert_eq!(r.containing(6), Some((6, 8)));
        // Covering everything joins, removing everything empties.
        r.insert(0, 16);
        assert_eq!(runs(&r), [(0, 16)]);
        r.remove(0, 16);
        assert!(r.0.is_empty());
        // Empty ranges change nothing.
        r.insert(4, 4);
        r.remove(9, 2);
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_huge_guard_region_is_one_run() {
        let pt = PageTable::default();
        let (s, e) = (VirtAddr(1 << 20), VirtAddr((1 << 20) + (1 << 45)));
        pt.install_guards(s, e);
        assert_eq!(pt.guard_run_count(), 1);
        assert!(pt.is_guard(VirtAddr(e.0 - 4096)));
        assert!(!pt.is_guard(e));
        pt.remove_guards(VirtAddr(s.0 + (1 << 40)), VirtAddr(s.0 + (1 << 40) + 4096));
        assert_eq!(pt.guard_run_count(), 2);
        let child = PageTable::default();
        pt.fork_into(&child, s, e);
        assert_eq!(child.guard_run_count(), 2);
        pt.zap(s, e);
        assert_eq!(pt.guard_run_count(), 0);
    }
}

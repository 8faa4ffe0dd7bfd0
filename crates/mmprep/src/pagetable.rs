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
//! Huge pages (`docs/core-design.md` section 2, `mm/huge_memory.c`): a 2 MiB-aligned *block* of
//! 512 pages is mapped either by a page table (a PMD pointing at 512 PTEs: the per-page state
//! above) or by one huge PMD entry, or by nothing at all (`pmd_none`: the block has no page
//! table, and a fault there may take the huge path). Three more sets of runs say which:
//! - `tables`: blocks that have a page table, whether or not any entry in it is present. The
//!   page path allocates one (`pte_alloc`), a guard install too; `MADV_DONTNEED` frees an emptied
//!   one only over a whole block with `CONFIG_PT_RECLAIM`, munmap frees those no VMA reaches
//!   into any more (`free_pgtables`);
//! - `huge_zero`: blocks mapped by the huge zero page (a read fault on the huge path); reads
//!   are zeros and nothing is stored per page;
//! - `huge_anon`: blocks mapped by a huge anonymous page (a write fault on the huge path). The
//!   pages written so far have frames in the per-page entries; the others read as zeros. (The
//!   kernel allocates all 512 subpages at once; their contents are zeros, so allocating them
//!   at their first write is indistinguishable.)
//!
//! A block is in at most one of the three. Whatever cuts a huge block - a VMA boundary, a range
//! that covers part of it - splits it first ([`PageTable::split_huge_at`],
//! `__split_huge_pmd`): it becomes a page table whose entries are what the huge entry mapped
//! (small zero-page entries, which read as zeros and are not stored, or the huge page's
//! subpages). Huge runs join like other runs; each block in them is its own PMD entry.
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

/// Pages in a 2 MiB block (`HPAGE_PMD_NR`).
pub(crate) const BLOCK_PAGES: u64 = 512;

/// What maps a 2 MiB block (the PMD entry's state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pmd {
    /// `pmd_none`: no page table and no huge entry.
    None,
    /// A page table of per-page entries (possibly all empty).
    Table,
    /// The huge zero page.
    HugeZero,
    /// A huge anonymous page.
    HugeAnon,
}

/// The block holding page `vpn`.
fn block(vpn: u64) -> u64 {
    vpn / BLOCK_PAGES
}

/// The first block that starts at or after page `vpn`.
fn block_up(vpn: u64) -> u64 {
    vpn.div_ceil(BLOCK_PAGES)
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
pub(crate) struct Runs(BTreeMap<u64, u64>);

impl Runs {
    /// The run holding page `vpn`.
    pub(crate) fn containing(&self, vpn: u64) -> Option<(u64, u64)> {
        let (&first, &end) = self.0.range(..=vpn).next_back()?;
        (vpn < end).then_some((first, end))
    }

    /// The lowest run overlapping `[s, e)`, whole.
    pub(crate) fn first_overlap(&self, s: u64, e: u64) -> Option<(u64, u64)> {
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
    pub(crate) fn insert(&mut self, mut s: u64, mut e: u64) {
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
    pub(crate) fn remove(&mut self, s: u64, e: u64) {
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
    /// Blocks (page number / 512) that have a page table.
    ///
    /// # Invariants
    /// A block with a guard marker has one; a block with an entry has one or is in `huge_anon`
    /// (except in a fork child's VMAs whose tables `fork` did not copy, see
    /// [`PageTable::fork_into`]).
    tables: Runs,
    /// Pages mapped by the huge zero page: whole aligned blocks, without entries or markers.
    huge_zero: Runs,
    /// Pages mapped by huge anonymous pages: whole aligned blocks, without markers.
    huge_anon: Runs,
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
    /// Installs an entry for the page containing `addr`. In a block of the huge zero page the
    /// block becomes a huge anonymous page first (a write to it: `do_huge_zero_wp_pmd`); outside
    /// huge blocks the block gets a page table (`pte_alloc`).
    fn set(&mut self, addr: VirtAddr, pte: Pte) {
        let v = vpn(addr);
        debug_assert!(
            self.guards.containing(v).is_none(),
            "a page installed over the guard marker at {addr:?}"
        );
        let b = block(v);
        let (bs, be) = (b * BLOCK_PAGES, (b + 1) * BLOCK_PAGES);
        if self.huge_zero.containing(v).is_some() {
            self.huge_zero.remove(bs, be);
            self.huge_anon.insert(bs, be);
        } else if self.huge_anon.containing(v).is_none() {
            self.tables.insert(b, b + 1);
        }
        self.ptes.insert(v, pte);
    }

    /// What maps the block holding page `v`.
    fn pmd(&self, v: u64) -> Pmd {
        if self.huge_zero.containing(v).is_some() {
            Pmd::HugeZero
        } else if self.huge_anon.containing(v).is_some() {
            Pmd::HugeAnon
        } else if self.tables.containing(block(v)).is_some() {
            Pmd::Table
        } else {
            Pmd::None
        }
    }

    /// `__split_huge_pmd` of block `b`: a huge entry becomes a page table of small entries
    /// (the huge zero page's are small zero-page entries, which are not stored; a huge page's
    /// are its subpages, whose written ones already have entries).
    fn split_block(&mut self, b: u64) {
        let (bs, be) = (b * BLOCK_PAGES, (b + 1) * BLOCK_PAGES);
        if self.huge_zero.containing(bs).is_some() {
            self.huge_zero.remove(bs, be);
        } else if self.huge_anon.containing(bs).is_some() {
            self.huge_anon.remove(bs, be);
        } else {
            return;
        }
        self.tables.insert(b, b + 1);
    }

    /// The `pmd_none` blocks of the block-aligned page range `[s, e)`, as block runs, lowest
    /// first. Costs one step per run met.
    fn none_blocks(&self, s: u64, e: u64) -> Vec<(u64, u64)> {
        let (bs, be) = (block(s), block(e));
        if bs >= be {
            return Vec::new();
        }
        let mut taken: Vec<(u64, u64)> = self.tables.clipped(bs, be).collect();
        taken.extend(self.huge_zero.clipped(s, e).map(|(a, b)| (block(a), block_up(b))));
        taken.extend(self.huge_anon.clipped(s, e).map(|(a, b)| (block(a), block_up(b))));
        taken.sort_unstable();
        let mut at = bs;
        let mut none = Vec::new();
        for (a, b) in taken {
            if at < a {
                none.push((at, a));
            }
            at = at.max(b);
        }
        if at < be {
            none.push((at, be));
        }
        none
    }

    /// No entry, guard marker or huge block anywhere (page tables may be left).
    fn maps_nothing(&self) -> bool {
        self.ptes.is_empty() && self.guards.0.is_empty() && self.huge_zero.0.is_empty() && self.huge_anon.0.is_empty()
    }

    /// Splits the huge block that page boundary `v` cuts, if any.
    fn split_at(&mut self, v: u64) {
        if !v.is_multiple_of(BLOCK_PAGES) {
            self.split_block(block(v));
        }
    }

    /// `zap_page_range_single` (`MADV_DONTNEED`, `MADV_GUARD_INSTALL`): drops every entry in
    /// `[start, end)`; guard markers stay. A huge block the range covers only in part is split
    /// first; one it covers whole loses its huge entry (`zap_huge_pmd`: the block is `pmd_none`
    /// again). With `reclaim` (`MADV_DONTNEED` under `CONFIG_PT_RECLAIM`,
    /// `mm/pt_reclaim.c:try_get_and_clear_pmd`), the page table of a block the range covers
    /// whole is freed if nothing is left in it (a guard marker keeps it). Costs one step per
    /// entry dropped and per run cut.
    fn zap_pages(&mut self, start: VirtAddr, end: VirtAddr, reclaim: bool) {
        let (s, e) = (vpn(start), vpn(end));
        if s >= e {
            return;
        }
        self.split_at(s);
        self.split_at(e);
        self.huge_zero.remove(s, e);
        self.huge_anon.remove(s, e);
        while let Some((&k, _)) = self.ptes.range(s..e).next() {
            self.ptes.remove(&k);
        }
        let (bs, be) = (block_up(s), block(e));
        if reclaim && bs < be {
            self.tables.remove(bs, be);
            let kept: Vec<(u64, u64)> = self.guards.clipped(bs * BLOCK_PAGES, be * BLOCK_PAGES).collect();
            for (a, b) in kept {
                self.tables.insert(block(a), block_up(b));
            }
        }
    }

    /// `move_page_tables` (mremap): the entries and guard markers of `[start, end)` move to the
    /// same offsets from `to`; whatever the destination held is dropped first.
    ///
    /// Page tables go along (`move_page_tables`): a destination block gets one where a source
    /// block it receives pages from had one. A huge block moves whole (`move_huge_pmd`) when
    /// the range covers it and the destination is 2 MiB-aligned like the source; otherwise it is
    /// split first and its pages move one by one.
    fn move_range(&mut self, start: VirtAddr, end: VirtAddr, to: VirtAddr) {
        let (s, e, t) = (vpn(start), vpn(end), vpn(to));
        if s >= e {
            return;
        }
        let shift = |p: u64| t.wrapping_add(p - s);
        self.split_at(s);
        self.split_at(e);
        let aligned = t.wrapping_sub(s).is_multiple_of(BLOCK_PAGES);
        if !aligned {
            let huge: Vec<(u64, u64)> = self
                .huge_zero
                .clipped(s, e)
                .chain(self.huge_anon.clipped(s, e))
                .collect();
            for (a, b) in huge {
                self.huge_zero.remove(a, b);
                self.huge_anon.remove(a, b);
                self.tables.insert(block(a), block_up(b));
            }
        }
        let huge_zero: Vec<(u64, u64)> = self.huge_zero.clipped(s, e).collect();
        let huge_anon: Vec<(u64, u64)> = self.huge_anon.clipped(s, e).collect();
        self.huge_zero.remove(s, e);
        self.huge_anon.remove(s, e);
        let tables: Vec<(u64, u64)> = self
            .tables
            .clipped(block(s), block_up(e))
            .map(|(a, b)| (shift((a * BLOCK_PAGES).max(s)), shift((b * BLOCK_PAGES).min(e))))
            .collect();
        let mut entries = Vec::new();
        while let Some((&k, _)) = self.ptes.range(s..e).next() {
            let pte = self.ptes.remove(&k).expect("just found");
            entries.push((shift(k), pte));
        }
        let guards: Vec<(u64, u64)> = self.guards.clipped(s, e).collect();
        self.guards.remove(s, e);
        let dest_end = t.wrapping_add(e - s);
        self.zap_pages(addr_of(t), addr_of(dest_end), false);
        self.guards.remove(t, dest_end);
        for (a, b) in huge_zero {
            self.huge_zero.insert(shift(a), shift(b));
        }
        for (a, b) in huge_anon {
            self.huge_anon.insert(shift(a), shift(b));
        }
        for (a, b) in tables {
            self.tables.insert(block(a), block_up(b));
        }
        for (k, pte) in entries {
            self.set(addr_of(k), pte);
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
    /// Page tables stay until [`PageTable::free_tables`].
    pub fn zap(&self, start: VirtAddr, end: VirtAddr) {
        let mut t = self.inner.lock();
        if t.maps_nothing() {
            // unmap_page_range skips the levels without a table; with no entry, marker or huge
            // block anywhere there is nothing to walk.
            return;
        }
        t.zap_pages(start, end, false);
        t.guards.remove(vpn(start), vpn(end));
    }
    /// Drops every entry in `[start, end)`; guard markers stay (`MADV_DONTNEED`). With
    /// `reclaim`, frees the emptied page tables of blocks the range covers whole.
    pub fn zap_pages(&self, start: VirtAddr, end: VirtAddr, reclaim: bool) {
        self.inner.lock().zap_pages(start, end, reclaim)
    }
    /// `free_pgtables` after an unmap of `[start, end)` (already zapped): frees the page tables
    /// of the blocks that meet the range and lie wholly inside `[floor, ceiling)`, the gap
    /// between the VMAs left on either side (`free_pgd_range`'s floor and ceiling: a block that
    /// a remaining VMA reaches into keeps its table).
    pub fn free_tables(&self, start: VirtAddr, end: VirtAddr, floor: VirtAddr, ceiling: VirtAddr) {
        let lo = block_up(vpn(floor)).max(block(vpn(start)));
        let hi = block(vpn(ceiling)).min(block_up(vpn(end)));
        if lo < hi {
            self.inner.lock().tables.remove(lo, hi);
        }
    }
    /// What maps the 2 MiB block holding `addr`.
    pub fn pmd(&self, addr: VirtAddr) -> Pmd {
        self.inner.lock().pmd(vpn(addr))
    }
    /// `do_huge_pmd_anonymous_page`'s install: maps the block holding `addr` by the huge zero
    /// page (`zero`) or a huge anonymous page, if it is still `pmd_none` (a racing fault may
    /// have set it up meanwhile: `pmd_none` is checked again under the lock). Returns whether
    /// it did.
    pub fn install_huge(&self, addr: VirtAddr, zero: bool) -> bool {
        let mut t = self.inner.lock();
        let v = vpn(addr);
        if t.pmd(v) != Pmd::None {
            return false;
        }
        let bs = block(v) * BLOCK_PAGES;
        debug_assert!(t.ptes.range(bs..bs + BLOCK_PAGES).next().is_none());
        if zero {
            t.huge_zero.insert(bs, bs + BLOCK_PAGES);
        } else {
            t.huge_anon.insert(bs, bs + BLOCK_PAGES);
        }
        true
    }
    /// Populate's huge faults over the whole blocks of `[start, end)` in one step: every block
    /// there that is `pmd_none` gets the huge zero page (`zero`) or a huge page, as
    /// `do_huge_pmd_anonymous_page` would give it at its first page; with `write`, blocks of the
    /// huge zero page become huge pages (`do_huge_zero_wp_pmd`). Blocks with a page table keep
    /// it. Costs one step per run met, whatever the number of blocks.
    ///
    /// # Preconditions
    /// `start` and `end` are block-aligned, and the range lies in one VMA that may hold huge
    /// pages and has an anon_vma.
    pub fn populate_huge(&self, start: VirtAddr, end: VirtAddr, write: bool, zero: bool) {
        let (s, e) = (vpn(start), vpn(end));
        debug_assert!(s.is_multiple_of(BLOCK_PAGES) && e.is_multiple_of(BLOCK_PAGES));
        if s >= e {
            return;
        }
        let mut t = self.inner.lock();
        for (a, b) in t.none_blocks(s, e) {
            // INVARIANT: these blocks have no table, no huge entry and so no entry or marker.
            if zero {
                t.huge_zero.insert(a * BLOCK_PAGES, b * BLOCK_PAGES);
            } else {
                t.huge_anon.insert(a * BLOCK_PAGES, b * BLOCK_PAGES);
            }
        }
        if write {
            let zeros: Vec<(u64, u64)> = t.huge_zero.clipped(s, e).collect();
            for (a, b) in zeros {
                t.huge_zero.remove(a, b);
                t.huge_anon.insert(a, b);
            }
        }
    }
    /// Is any whole block of the block-aligned `[start, end)` `pmd_none`?
    pub fn any_pmd_none(&self, start: VirtAddr, end: VirtAddr) -> bool {
        !self.inner.lock().none_blocks(vpn(start), vpn(end)).is_empty()
    }
    /// `pte_alloc` for `[start, end)`: the blocks it meets get page tables, as faults by the page
    /// path in them would give them (small zero-page entries are not stored; the table is).
    /// Blocks mapped huge stay so: a fault there finds the huge entry.
    pub fn alloc_tables(&self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (vpn(start), vpn(end));
        if s < e {
            let mut t = self.inner.lock();
            t.tables.insert(block(s), block_up(e));
            let huge: Vec<(u64, u64)> = t.huge_zero.clipped(s, e).chain(t.huge_anon.clipped(s, e)).collect();
            for (a, b) in huge {
                // INVARIANT: a block is a table or huge, not both.
                t.tables.remove(block(a), block_up(b));
            }
        }
    }
    /// `hpage_collapse_scan_pmd` and `collapse_huge_page` for the anonymous block `[start,
    /// start + 2 MiB)` (`MADV_COLLAPSE`): a block without a page table fails (`SCAN_PMD_NULL`);
    /// one already mapped huge, the huge zero page included, is done (`SCAN_PMD_MAPPED`); a
    /// guard marker fails it (`SCAN_PTE_NON_PRESENT`); otherwise its page table, whatever it
    /// holds (empty or small zero-page entries too), becomes a huge page whose written subpages
    /// keep their data. Returns whether the block is mapped huge now.
    pub fn collapse_anon_block(&self, start: VirtAddr) -> bool {
        let mut t = self.inner.lock();
        let v = vpn(start);
        debug_assert!(v.is_multiple_of(BLOCK_PAGES));
        match t.pmd(v) {
            Pmd::None => false,
            Pmd::HugeZero | Pmd::HugeAnon => true,
            Pmd::Table => {
                if t.guards.first_overlap(v, v + BLOCK_PAGES).is_some() {
                    return false;
                }
                t.tables.remove(block(v), block(v) + 1);
                t.huge_anon.insert(v, v + BLOCK_PAGES);
                true
            }
        }
    }
    /// `split_huge_pmd_address`: a VMA boundary is about to be at `addr`; a huge block it cuts
    /// becomes a page table of small entries.
    pub fn split_huge_at(&self, addr: VirtAddr) {
        self.inner.lock().split_at(vpn(addr))
    }
    /// The huge blocks, as runs of whole blocks `[start, end)` with whether it is the huge zero
    /// page, lowest first.
    pub fn huge_runs(&self) -> Vec<(VirtAddr, VirtAddr, bool)> {
        let t = self.inner.lock();
        let zero = t.huge_zero.0.iter().map(|(&a, &b)| (addr_of(a), addr_of(b), true));
        let anon = t.huge_anon.0.iter().map(|(&a, &b)| (addr_of(a), addr_of(b), false));
        let mut all: Vec<_> = zero.chain(anon).collect();
        all.sort_by_key(|r| r.0);
        all
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
    /// Huge blocks in the range are split or dropped first, and every block the range meets
    /// gets a page table: markers are page-table entries.
    pub fn install_guards(&self, start: VirtAddr, end: VirtAddr) {
        let mut t = self.inner.lock();
        t.zap_pages(start, end, false);
        // INVARIANT: no entry is left in the range, so no page is both mapped and guarded.
        let (s, e) = (vpn(start), vpn(end));
        t.guards.insert(s, e);
        if s < e {
            t.tables.insert(block(s), block_up(e));
        }
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
    /// page, unless the other side has let go of it. Huge entries are copied as they are
    /// (`copy_huge_pmd`).
    ///
    /// `copy_tables` is `vma_needs_copy`: the kernel copies nothing of a VMA without an
    /// anon_vma, PFN entries or guard markers, and the child faults its pages in again; the
    /// engine still copies the entries (the child would fault in the same pages) but not the
    /// page tables, so the child's blocks there are `pmd_none`.
    pub fn fork_into(&self, child: &PageTable, start: VirtAddr, end: VirtAddr, copy_tables: bool) {
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
        let runs: Vec<(u64, u64)> = parent.huge_zero.clipped(s, e).collect();
        for (a, b) in runs {
            c.huge_zero.insert(a, b);
        }
        let runs: Vec<(u64, u64)> = parent.huge_anon.clipped(s, e).collect();
        for (a, b) in runs {
            c.huge_anon.insert(a, b);
        }
        if copy_tables && s < e {
            let runs: Vec<(u64, u64)> = parent.tables.clipped(block(s), block_up(e)).collect();
            for (a, b) in runs {
                c.tables.insert(a, b);
            }
        }
    }
    /// Is there any entry in `[start, end)`? (Pages of a huge mapping count: see
    /// [`PageTable::huge_runs`] for those.)
    pub fn any_in(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let (s, e) = (vpn(start), vpn(end));
        s < e && self.inner.lock().ptes.range(s..e).next().is_some()
    }
    /// Is there an anonymous entry (a private copy) in `[start, end)`?
    pub fn any_anon_in(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let (s, e) = (vpn(start), vpn(end));
        s < e && self.inner.lock().ptes.range(s..e).any(|(_, p)| p.anon)
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

    /// Block state through the operations that cut, drop and move blocks.
    #[test]
    fn huge_blocks_split_zap_and_move() {
        const MB2: u64 = 2 << 20;
        let pt = PageTable::default();
        let a = |blocks: u64| VirtAddr((1 << 30) + blocks * MB2);
        let page = |blocks: u64, pages: u64| VirtAddr(a(blocks).0 + pages * 4096);
        assert!(pt.install_huge(a(0), true));
        assert!(pt.install_huge(a(1), true));
        assert!(!pt.install_huge(page(1, 7), false), "the block is mapped already");
        assert_eq!(pt.huge_runs(), [(a(0), a(2), true)]);
        // A boundary inside block 1 splits it into a page table; block 0 stays huge.
        pt.split_huge_at(page(1, 3));
        assert_eq!(pt.pmd(a(1)), Pmd::Table);
        assert_eq!(pt.huge_runs(), [(a(0), a(1), true)]);
        // A write into the huge zero page makes it a huge page with one written subpage.
        pt.set(page(0, 5), Pte::pfn(Pfn(9)));
        assert_eq!(pt.pmd(a(0)), Pmd::HugeAnon);
        assert_eq!(pt.len(), 1);
        // A zap of part of it splits it; a zap of a whole huge block leaves it pmd_none.
        assert!(pt.install_huge(a(2), false));
        pt.zap_pages(page(0, 5), page(0, 6), true);
        assert_eq!((pt.pmd(a(0)), pt.len()), (Pmd::Table, 0));
        pt.zap_pages(a(2), a(3), false);
        assert_eq!(pt.pmd(a(2)), Pmd::None);
        // With reclaim, a whole-block zap frees an emptied table unless a guard marker is left.
        pt.install_guards(page(1, 1), page(1, 2));
        pt.zap_pages(a(0), a(2), true);
        assert_eq!((pt.pmd(a(0)), pt.pmd(a(1))), (Pmd::None, Pmd::Table));
        // An aligned move carries a huge block; a misaligned one splits it.
        assert!(pt.install_huge(a(4), true));
        pt.move_range(a(4), a(5), a(8));
        assert_eq!((pt.pmd(a(4)), pt.pmd(a(8))), (Pmd::None, Pmd::HugeZero));
        pt.move_range(a(8), a(9), page(16, 1));
        assert_eq!((pt.pmd(a(16)), pt.pmd(a(17))), (Pmd::Table, Pmd::Table));
        assert_eq!(pt.huge_runs(), []);
        // free_tables frees the tables of blocks inside [floor, ceiling) only.
        pt.free_tables(a(16), a(18), page(16, 1), a(20));
        assert_eq!((pt.pmd(a(16)), pt.pmd(a(17))), (Pmd::Table, Pmd::None));
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
        pt.fork_into(&child, s, e, true);
        assert_eq!(child.guard_run_count(), 2);
        pt.zap(s, e);
        assert_eq!(pt.guard_run_count(), 0);
    }
}

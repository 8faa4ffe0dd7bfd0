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
//! drops entries but keeps markers; unmapping drops both; `fork` copies both.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::addr::{PAGE_SHIFT, Pfn, VirtAddr};
use crate::phys::FrameRef;

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
#[derive(Clone, Debug)]
pub(crate) struct Pte {
    /// What it maps.
    pub target: PteTarget,
    /// An anonymous page (private to the mapping and its fork relatives) rather than a
    /// page-cache or driver page.
    pub anon: bool,
    /// Written through this entry since it was installed (the first write of a shared page
    /// calls `page_mkwrite` / `pfn_mkwrite`).
    pub dirty: bool,
}

impl Pte {
    /// An entry for a frame.
    pub fn frame(frame: FrameRef, anon: bool, dirty: bool) -> Pte {
        Pte {
            target: PteTarget::Frame(frame),
            anon,
            dirty,
        }
    }
}

/// The page tables of one address space: virtual page number → entry.
#[derive(Clone, Debug, Default)]
struct Inner {
    ptes: BTreeMap<u64, Pte>,
    /// Guard markers: virtual page numbers where any access is `SIGSEGV`.
    ///
    /// # Invariants
    /// A page holds an entry or a guard marker, never both.
    guards: BTreeSet<u64>,
}

impl Inner {
    /// The entry for the page containing `addr`.
    fn get(&self, addr: VirtAddr) -> Option<&Pte> {
        self.ptes.get(&(addr.0 >> PAGE_SHIFT))
    }

    /// Installs an entry for the page containing `addr`.
    fn set(&mut self, addr: VirtAddr, pte: Pte) {
        debug_assert!(
            !self.is_guard(addr),
            "a page installed over the guard marker at {addr:?}"
        );
        self.ptes.insert(addr.0 >> PAGE_SHIFT, pte);
    }

    /// `unmap_page_range` with `ZAP_FLAG_DROP_MARKER` (munmap, `MAP_FIXED`): drops every entry
    /// and every guard marker in `[start, end)`.
    fn zap(&mut self, start: VirtAddr, end: VirtAddr) {
        self.zap_pages(start, end);
        self.remove_guards(start, end);
    }

    /// `zap_page_range_single` (`MADV_DONTNEED`, `MADV_GUARD_INSTALL`): drops every entry in
    /// `[start, end)`; guard markers stay.
    fn zap_pages(&mut self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (start.0 >> PAGE_SHIFT, end.0 >> PAGE_SHIFT);
        let keys: Vec<u64> = self.ptes.range(s..e).map(|(k, _)| *k).collect();
        for k in keys {
            self.ptes.remove(&k);
        }
    }

    /// Is the page containing `addr` a guard page?
    fn is_guard(&self, addr: VirtAddr) -> bool {
        self.guards.contains(&(addr.0 >> PAGE_SHIFT))
    }

    /// The lowest guard page in `[start, end)`.
    fn first_guard(&self, start: VirtAddr, end: VirtAddr) -> Option<VirtAddr> {
        self.guards(start, end).next()
    }

    /// The guard pages in `[start, end)`, lowest first.
    fn guards(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = VirtAddr> + '_ {
        self.guards
            .range(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT)
            .map(|k| VirtAddr(k << PAGE_SHIFT))
    }

    /// `madvise_guard_install`'s walk: every page of `[start, end)` becomes a guard page; the
    /// entries there are dropped first (`zap_page_range_single`).
    fn install_guards(&mut self, start: VirtAddr, end: VirtAddr) {
        self.zap_pages(start, end);
        // INVARIANT: no entry is left in the range, so no page is both mapped and guarded.
        self.guards.extend(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT);
    }

    /// Installs one guard marker (`fork` copying the parent's); the page must hold no entry.
    fn set_guard(&mut self, addr: VirtAddr) {
        debug_assert!(
            self.get(addr).is_none(),
            "a guard marker installed over the entry at {addr:?}"
        );
        self.guards.insert(addr.0 >> PAGE_SHIFT);
    }

    /// `move_page_tables` (mremap): the entries and guard markers of `[start, end)` move to the
    /// same offsets from `to`; whatever the destination held is dropped first.
    fn move_range(&mut self, start: VirtAddr, end: VirtAddr, to: VirtAddr) {
        let shift = |a: VirtAddr| VirtAddr(to.0.wrapping_add(a.0 - start.0));
        let entries: Vec<(VirtAddr, Pte)> = self.range(start, end).map(|(a, p)| (shift(a), p.clone())).collect();
        let guards: Vec<VirtAddr> = self.guards(start, end).map(shift).collect();
        self.zap(start, end);
        let dest_end = VirtAddr(to.0.wrapping_add(end.0 - start.0));
        self.zap(to, dest_end);
        for (a, pte) in entries {
            self.ptes.insert(a.0 >> PAGE_SHIFT, pte);
        }
        self.guards.extend(guards.iter().map(|a| a.0 >> PAGE_SHIFT));
    }

    /// `madvise_guard_remove`'s walk: the guard pages of `[start, end)` become empty pages.
    fn remove_guards(&mut self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (start.0 >> PAGE_SHIFT, end.0 >> PAGE_SHIFT);
        let keys: Vec<u64> = self.guards.range(s..e).copied().collect();
        for k in keys {
            self.guards.remove(&k);
        }
    }

    /// The entries in `[start, end)`, as (address, entry).
    fn range(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = (VirtAddr, &Pte)> {
        self.ptes
            .range(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT)
            .map(|(k, p)| (VirtAddr(k << PAGE_SHIFT), p))
    }

    /// Number of entries (guard markers are not entries).
    fn len(&self) -> usize {
        self.ptes.len()
    }
}

/// The page tables of one address space: virtual page number → entry, and guard markers.
///
/// They take their own lock, so faults that hold the address space only shared (the per-VMA
/// lock path, [`crate::mm::Mm::try_access`]) can install entries side by side; callers that
/// hold it exclusively pay an uncontended lock. Every method copies out what it returns.
#[derive(Debug, Default)]
pub(crate) struct PageTable {
    inner: spin::Mutex<Inner>,
}

impl Clone for PageTable {
    fn clone(&self) -> PageTable {
        PageTable {
            inner: spin::Mutex::new(self.inner.lock().clone()),
        }
    }
}

impl PageTable {
    /// The entry for the page containing `addr`.
    pub fn get(&self, addr: VirtAddr) -> Option<Pte> {
        self.inner.lock().get(addr).cloned()
    }
    /// Installs an entry for the page containing `addr`.
    pub fn set(&self, addr: VirtAddr, pte: Pte) {
        self.inner.lock().set(addr, pte)
    }
    /// Installs `pte` unless the page already has an entry; returns the entry now there (a
    /// fault racing another fault of the same page keeps the first one, as `pte_same` does).
    pub fn set_if_none(&self, addr: VirtAddr, pte: Pte) -> Pte {
        let mut t = self.inner.lock();
        match t.get(addr) {
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
        let same = match (t.get(addr).map(|p| &p.target), old) {
            (Some(PteTarget::Frame(a)), PteTarget::Frame(b)) => alloc::sync::Arc::ptr_eq(a, b),
            (Some(PteTarget::Pfn(a)), PteTarget::Pfn(b)) => a == b,
            _ => false,
        };
        if same {
            t.set(addr, new);
        }
        same
    }
    /// Marks the entry at `addr` written, if it is still there.
    pub fn mark_dirty(&self, addr: VirtAddr) {
        let mut t = self.inner.lock();
        if let Some(p) = t.get(addr) {
            let p = Pte {
                dirty: true,
                ..p.clone()
            };
            t.set(addr, p);
        }
    }
    /// Drops every entry and guard marker in `[start, end)` (munmap, `MAP_FIXED`).
    pub fn zap(&self, start: VirtAddr, end: VirtAddr) {
        self.inner.lock().zap(start, end)
    }
    /// Drops every entry in `[start, end)`; guard markers stay (`MADV_DONTNEED`).
    pub fn zap_pages(&self, start: VirtAddr, end: VirtAddr) {
        self.inner.lock().zap_pages(start, end)
    }
    /// Is the page containing `addr` a guard page?
    pub fn is_guard(&self, addr: VirtAddr) -> bool {
        self.inner.lock().is_guard(addr)
    }
    /// The lowest guard page in `[start, end)`.
    pub fn first_guard(&self, start: VirtAddr, end: VirtAddr) -> Option<VirtAddr> {
        self.inner.lock().first_guard(start, end)
    }
    /// The guard pages in `[start, end)`, lowest first.
    pub fn guards(&self, start: VirtAddr, end: VirtAddr) -> Vec<VirtAddr> {
        self.inner.lock().guards(start, end).collect()
    }
    /// Every page of `[start, end)` becomes a guard page.
    pub fn install_guards(&self, start: VirtAddr, end: VirtAddr) {
        self.inner.lock().install_guards(start, end)
    }
    /// Installs one guard marker.
    pub fn set_guard(&self, addr: VirtAddr) {
        self.inner.lock().set_guard(addr)
    }
    /// Moves the entries and guard markers of `[start, end)` to `to` (mremap).
    pub fn move_range(&self, start: VirtAddr, end: VirtAddr, to: VirtAddr) {
        self.inner.lock().move_range(start, end, to)
    }
    /// The guard pages of `[start, end)` become empty pages.
    pub fn remove_guards(&self, start: VirtAddr, end: VirtAddr) {
        self.inner.lock().remove_guards(start, end)
    }
    /// The entries in `[start, end)`, as (address, entry).
    pub fn range(&self, start: VirtAddr, end: VirtAddr) -> Vec<(VirtAddr, Pte)> {
        self.inner
            .lock()
            .range(start, end)
            .map(|(a, p)| (a, p.clone()))
            .collect()
    }
    /// Number of entries (guard markers are not entries).
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }
}

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
pub(crate) struct PageTable {
    ptes: BTreeMap<u64, Pte>,
    /// Guard markers: virtual page numbers where any access is `SIGSEGV`.
    ///
    /// # Invariants
    /// A page holds an entry or a guard marker, never both.
    guards: BTreeSet<u64>,
}

impl PageTable {
    /// The entry for the page containing `addr`.
    pub fn get(&self, addr: VirtAddr) -> Option<&Pte> {
        self.ptes.get(&(addr.0 >> PAGE_SHIFT))
    }

    /// Installs an entry for the page containing `addr`.
    pub fn set(&mut self, addr: VirtAddr, pte: Pte) {
        debug_assert!(
            !self.is_guard(addr),
            "a page installed over the guard marker at {addr:?}"
        );
        self.ptes.insert(addr.0 >> PAGE_SHIFT, pte);
    }

    /// `unmap_page_range` with `ZAP_FLAG_DROP_MARKER` (munmap, `MAP_FIXED`): drops every entry
    /// and every guard marker in `[start, end)`.
    pub fn zap(&mut self, start: VirtAddr, end: VirtAddr) {
        self.zap_pages(start, end);
        self.remove_guards(start, end);
    }

    /// `zap_page_range_single` (`MADV_DONTNEED`, `MADV_GUARD_INSTALL`): drops every entry in
    /// `[start, end)`; guard markers stay.
    pub fn zap_pages(&mut self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (start.0 >> PAGE_SHIFT, end.0 >> PAGE_SHIFT);
        let keys: Vec<u64> = self.ptes.range(s..e).map(|(k, _)| *k).collect();
        for k in keys {
            self.ptes.remove(&k);
        }
    }

    /// Is the page containing `addr` a guard page?
    pub fn is_guard(&self, addr: VirtAddr) -> bool {
        self.guards.contains(&(addr.0 >> PAGE_SHIFT))
    }

    /// The lowest guard page in `[start, end)`.
    pub fn first_guard(&self, start: VirtAddr, end: VirtAddr) -> Option<VirtAddr> {
        self.guards(start, end).next()
    }

    /// The guard pages in `[start, end)`, lowest first.
    pub fn guards(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = VirtAddr> + '_ {
        self.guards
            .range(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT)
            .map(|k| VirtAddr(k << PAGE_SHIFT))
    }

    /// `madvise_guard_install`'s walk: every page of `[start, end)` becomes a guard page; the
    /// entries there are dropped first (`zap_page_range_single`).
    pub fn install_guards(&mut self, start: VirtAddr, end: VirtAddr) {
        self.zap_pages(start, end);
        // INVARIANT: no entry is left in the range, so no page is both mapped and guarded.
        self.guards.extend(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT);
    }

    /// Installs one guard marker (`fork` copying the parent's); the page must hold no entry.
    pub fn set_guard(&mut self, addr: VirtAddr) {
        debug_assert!(
            self.get(addr).is_none(),
            "a guard marker installed over the entry at {addr:?}"
        );
        self.guards.insert(addr.0 >> PAGE_SHIFT);
    }

    /// `move_page_tables` (mremap): the entries and guard markers of `[start, end)` move to the
    /// same offsets from `to`; whatever the destination held is dropped first.
    pub fn move_range(&mut self, start: VirtAddr, end: VirtAddr, to: VirtAddr) {
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
    pub fn remove_guards(&mut self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (start.0 >> PAGE_SHIFT, end.0 >> PAGE_SHIFT);
        let keys: Vec<u64> = self.guards.range(s..e).copied().collect();
        for k in keys {
            self.guards.remove(&k);
        }
    }

    /// The entries in `[start, end)`, as (address, entry).
    pub fn range(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = (VirtAddr, &Pte)> {
        self.ptes
            .range(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT)
            .map(|(k, p)| (VirtAddr(k << PAGE_SHIFT), p))
    }

    /// Number of entries (guard markers are not entries).
    pub fn len(&self) -> usize {
        self.ptes.len()
    }
}

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

use alloc::collections::BTreeMap;
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
}

impl PageTable {
    /// The entry for the page containing `addr`.
    pub fn get(&self, addr: VirtAddr) -> Option<&Pte> {
        self.ptes.get(&(addr.0 >> PAGE_SHIFT))
    }

    /// Installs an entry for the page containing `addr`.
    pub fn set(&mut self, addr: VirtAddr, pte: Pte) {
        self.ptes.insert(addr.0 >> PAGE_SHIFT, pte);
    }

    /// `zap_page_range`: drops every entry in `[start, end)`.
    pub fn zap(&mut self, start: VirtAddr, end: VirtAddr) {
        let (s, e) = (start.0 >> PAGE_SHIFT, end.0 >> PAGE_SHIFT);
        let keys: Vec<u64> = self.ptes.range(s..e).map(|(k, _)| *k).collect();
        for k in keys {
            self.ptes.remove(&k);
        }
    }

    /// The entries in `[start, end)`, as (address, entry).
    pub fn range(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = (VirtAddr, &Pte)> {
        self.ptes
            .range(start.0 >> PAGE_SHIFT..end.0 >> PAGE_SHIFT)
            .map(|(k, p)| (VirtAddr(k << PAGE_SHIFT), p))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ptes.len()
    }
}

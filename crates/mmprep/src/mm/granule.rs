//! The guest page: the unit of every user-visible rule, read from the profile's architecture.
//!
//! The kernel aligns, rounds and places in `PAGE_SIZE`, which is 4 KiB on x86 and 4, 16 or
//! 64 KiB on arm64 (`arch/arm64/include/asm/page-def.h`, `CONFIG_PAGE_SHIFT`). Here the page
//! size is [`Mm::page_size`], from [`crate::Profile::arch`], never a constant: alignment checks
//! (`EINVAL`), length rounding, placement, `mmap_base`, brk, `mremap`, fault granularity and
//! the transparent-hugepage size ([`Mm::pmd_size`]) all read it.
//!
//! Below the rules the engine keeps its own bookkeeping unit of 4 KiB
//! ([`crate::addr::PAGE_SIZE`]): page-table entries, `vm_pgoff` values and page counters
//! (`total_vm`, `locked_vm`...) are counted in it. Since every guest page is a whole number of
//! those units, the maps text (offsets are printed in bytes) and every merge decision come out
//! as the kernel's; `docs/profiles.md` lists what this leaves approximate.

use crate::addr::{PAGE_SHIFT, VirtAddr};
use crate::mm::Mm;

impl Mm {
    /// The guest's `PAGE_SIZE` in bytes (`Profile::arch`).
    pub fn page_size(&self) -> u64 {
        self.profile.arch.page_size()
    }

    /// The guest's `PAGE_MASK`: the bits of an address above the in-page offset.
    pub fn page_mask(&self) -> u64 {
        !(self.page_size() - 1)
    }

    /// `HPAGE_PMD_SIZE` of the guest: 2 MiB with 4K pages, 32 MiB with 16K, 512 MiB with 64K.
    pub fn pmd_size(&self) -> u64 {
        self.profile.arch.pmd_size()
    }

    /// `PAGE_ALIGN(len)` in guest pages, or `None` where the kernel's would wrap to 0 (a
    /// non-zero `len` within a page of the top).
    pub(crate) fn page_align(&self, len: u64) -> Option<u64> {
        len.checked_add(self.page_size() - 1).map(|v| v & self.page_mask())
    }

    /// `PAGE_ALIGN(len)` exactly as the kernel computes it: wrapping.
    pub(crate) fn page_align_wrapping(&self, len: u64) -> u64 {
        len.wrapping_add(self.page_size() - 1) & self.page_mask()
    }

    /// Is `addr` on a guest page boundary (`offset_in_page(addr) == 0`)?
    pub(crate) fn is_page_aligned(&self, addr: VirtAddr) -> bool {
        addr.0 & !self.page_mask() == 0
    }

    /// How many engine units (4 KiB) one guest page holds, as a shift: 0, 2 or 4.
    pub(crate) fn unit_shift(&self) -> u32 {
        self.profile.arch.page_shift() - PAGE_SHIFT
    }
}

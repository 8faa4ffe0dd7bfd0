//! Typed addresses: virtual addresses, file page offsets and page frame numbers.
//!
//! The kernel passes all three around as `unsigned long`, and mixing them up is a classic bug
//! (a byte offset where a page offset was meant). Here each has its own type: [`VirtAddr`] is a
//! byte address in the process's address space, [`PgOff`] a page index into a file (the VMA's
//! `vm_pgoff`), and [`Pfn`] a physical page frame number. Page size is 4 KiB, as on x86_64
//! (`arch/x86/include/asm/page_types.h`).

use core::fmt;

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// The page size in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Mask of the in-page offset bits.
pub const PAGE_MASK: u64 = !(PAGE_SIZE - 1);
/// A PMD-sized (transparent huge) page: 2 MiB.
pub const PMD_SIZE: u64 = 2 << 20;

/// Rounds `len` up to a whole number of pages; `None` if that wraps (the kernel's `PAGE_ALIGN`
/// would give 0).
pub const fn page_align(len: u64) -> Option<u64> {
    match len.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & PAGE_MASK),
        None => None,
    }
}

/// `PAGE_ALIGN` exactly as the kernel computes it: wrapping, so a huge length becomes 0.
pub const fn page_align_wrapping(len: u64) -> u64 {
    len.wrapping_add(PAGE_SIZE - 1) & PAGE_MASK
}

/// Number of pages in `bytes` (which should be page aligned).
pub const fn pages(bytes: u64) -> u64 {
    bytes >> PAGE_SHIFT
}

/// A virtual address in the modelled address space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(pub u64);

impl VirtAddr {
    /// The address 0.
    pub const NULL: VirtAddr = VirtAddr(0);

    /// Raw value.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// Is it on a page boundary?
    pub const fn is_page_aligned(self) -> bool {
        self.0 & !PAGE_MASK == 0
    }
    /// The start of the page containing it.
    pub const fn page_down(self) -> VirtAddr {
        VirtAddr(self.0 & PAGE_MASK)
    }
    /// The page number (`addr >> PAGE_SHIFT`), which is also the `vm_pgoff` of a fresh private
    /// anonymous mapping starting here (`mm/mmap.c:do_mmap`).
    pub const fn page_index(self) -> u64 {
        self.0 >> PAGE_SHIFT
    }
    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<VirtAddr> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(VirtAddr(v)),
            None => None,
        }
    }
    /// `self + bytes`, wrapping as the kernel's unsigned arithmetic does.
    pub const fn wrapping_add(self, bytes: u64) -> VirtAddr {
        VirtAddr(self.0.wrapping_add(bytes))
    }
    /// Bytes from `other` up to `self` (`self >= other` expected).
    pub const fn bytes_from(self, other: VirtAddr) -> u64 {
        self.0 - other.0
    }
    /// Pages from `other` up to `self` (both page aligned, `self >= other`).
    pub const fn pages_from(self, other: VirtAddr) -> u64 {
        (self.0 - other.0) >> PAGE_SHIFT
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A page offset into a file (`vm_pgoff`): the file page mapped at a VMA's start.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgOff(pub u64);

impl PgOff {
    /// Raw value.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// The page offset `pages` further on, wrapping as the kernel's `pgoff_t` does.
    pub const fn add(self, pages: u64) -> PgOff {
        PgOff(self.0.wrapping_add(pages))
    }
    /// The page offset `pages` earlier, wrapping.
    pub const fn sub(self, pages: u64) -> PgOff {
        PgOff(self.0.wrapping_sub(pages))
    }
    /// The offset in bytes, as `/proc/PID/maps` prints it (`vm_pgoff << PAGE_SHIFT`, wrapping).
    pub const fn bytes(self) -> u64 {
        self.0.wrapping_shl(PAGE_SHIFT)
    }
}

impl fmt::Debug for PgOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pgoff {:#x}", self.0)
    }
}

/// A physical page frame number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

impl Pfn {
    /// Raw value.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// The physical address of the frame's first byte.
    pub const fn phys_addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

/// A non-empty, page-aligned range of virtual addresses `[start, end)`.
///
/// # Invariants
/// `start < end`, both page aligned.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRange {
    start: VirtAddr,
    end: VirtAddr,
}

impl PageRange {
    /// The range `[start, end)`, if it is non-empty and page aligned.
    pub const fn new(start: VirtAddr, end: VirtAddr) -> Option<PageRange> {
        if start.0 < end.0 && start.is_page_aligned() && end.is_page_aligned() {
            // INVARIANT: checked just above.
            Some(PageRange { start, end })
        } else {
            None
        }
    }
    /// First address.
    pub const fn start(&self) -> VirtAddr {
        self.start
    }
    /// One past the last address.
    pub const fn end(&self) -> VirtAddr {
        self.end
    }
    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end.0 - self.start.0
    }
    /// Never empty (kept for clippy's `len_without_is_empty`).
    pub const fn is_empty(&self) -> bool {
        false
    }
    /// Length in pages.
    pub const fn pages(&self) -> u64 {
        self.len() >> PAGE_SHIFT
    }
    /// Does it contain `addr`?
    pub const fn contains(&self, addr: VirtAddr) -> bool {
        self.start.0 <= addr.0 && addr.0 < self.end.0
    }
}

impl fmt::Debug for PageRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start.0, self.end.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_align_matches_the_kernel() {
        assert_eq!(page_align(0), Some(0));
        assert_eq!(page_align(1), Some(4096));
        assert_eq!(page_align(4096), Some(4096));
        assert_eq!(page_align(u64::MAX), None);
        assert_eq!(page_align_wrapping(u64::MAX), 0);
        assert_eq!(page_align_wrapping(u64::MAX - 4095), u64::MAX - 4095);
    }

    #[test]
    fn ranges_are_aligned_and_non_empty() {
        assert!(PageRange::new(VirtAddr(0), VirtAddr(0)).is_none());
        assert!(PageRange::new(VirtAddr(1), VirtAddr(4096)).is_none());
        let r = PageRange::new(VirtAddr(4096), VirtAddr(3 * 4096)).unwrap();
        assert_eq!(r.pages(), 2);
        assert!(r.contains(VirtAddr(4096)) && !r.contains(VirtAddr(3 * 4096)));
    }
}

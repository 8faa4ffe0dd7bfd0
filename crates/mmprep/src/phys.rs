//! Simulated physical memory: page frames whose bytes are really stored.
//!
//! Below the VMAs, Linux maps virtual pages to physical page frames. mmprep keeps real bytes for
//! every frame, so a read shows what was written, a private mapping keeps its copy after a
//! copy-on-write fault, and two shared mappings of one file see each other's writes.
//!
//! - [`Frame`]: one 4 KiB page of RAM (`struct page` / a folio of one page): a frame number and
//!   the bytes. Frames are shared by reference ([`FrameRef`]): the page cache, page tables of
//!   parent and child after `fork`, and the PTEs of shared mappings hold the same frame.
//! - [`Machine`]: what every address space of one simulated system shares: the frame allocator
//!   and the shared zero page (`ZERO_PAGE`).
//!
//! Frames are reached from several address spaces, which callers may drive from different
//! threads, so each frame guards its bytes with a lock.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::{PAGE_SIZE, Pfn};

/// The bytes of one page.
pub type PageBytes = [u8; PAGE_SIZE as usize];

/// One page frame of simulated RAM.
pub struct Frame {
    pfn: Pfn,
    bytes: spin::Mutex<Box<PageBytes>>,
}

/// A shared reference to a frame.
pub type FrameRef = Arc<Frame>;

impl Frame {
    /// The frame number.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }
    /// Reads `buf.len()` bytes at `offset` in the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        let b = self.bytes.lock();
        buf.copy_from_slice(&b[offset..offset + buf.len()]);
    }
    /// Writes `data` at `offset` in the page.
    pub fn write(&self, offset: usize, data: &[u8]) {
        let mut b = self.bytes.lock();
        b[offset..offset + data.len()].copy_from_slice(data);
    }
    /// Fills `len` bytes at `offset` with `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        let mut b = self.bytes.lock();
        b[offset..offset + len].fill(byte);
    }
    /// A copy of the whole page.
    pub fn snapshot(&self) -> Box<PageBytes> {
        self.bytes.lock().clone()
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:?})", self.pfn)
    }
}

/// What all address spaces of one simulated system share.
pub struct Machine {
    next_pfn: AtomicU64,
    zero: FrameRef,
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Machine(next pfn {:#x})", self.next_pfn.load(Ordering::Relaxed))
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

/// The first frame number handed out for RAM (below it: the zero page and room for devices).
const FIRST_RAM_PFN: u64 = 0x1000;

impl Machine {
    /// A system with no memory in use.
    pub fn new() -> Machine {
        let zero = Arc::new(Frame {
            pfn: Pfn(FIRST_RAM_PFN - 1),
            bytes: spin::Mutex::new(zeroed()),
        });
        Machine {
            next_pfn: AtomicU64::new(FIRST_RAM_PFN),
            zero,
        }
    }

    /// A new, zero-filled frame (`alloc_page(__GFP_ZERO)`).
    pub fn alloc_frame(&self) -> FrameRef {
        let pfn = Pfn(self.next_pfn.fetch_add(1, Ordering::Relaxed));
        Arc::new(Frame {
            pfn,
            bytes: spin::Mutex::new(zeroed()),
        })
    }

    /// A new frame with a copy of `src`'s bytes (copy-on-write).
    pub fn copy_frame(&self, src: &Frame) -> FrameRef {
        let pfn = Pfn(self.next_pfn.fetch_add(1, Ordering::Relaxed));
        Arc::new(Frame {
            pfn,
            bytes: spin::Mutex::new(src.snapshot()),
        })
    }

    /// The shared zero page: what a read of never-written private anonymous memory maps.
    pub fn zero_frame(&self) -> &FrameRef {
        &self.zero
    }

    /// Is `f` the shared zero page?
    pub fn is_zero_frame(&self, f: &FrameRef) -> bool {
        Arc::ptr_eq(f, &self.zero)
    }
}

fn zeroed() -> Box<PageBytes> {
    Box::new([0u8; PAGE_SIZE as usize])
}

//! Simulated physical memory: page frames whose bytes are really stored.
//!
//! Below the VMAs, Linux maps virtual pages to physical page frames. mmprep keeps real bytes for
//! every frame, so a read shows what was written, a private mapping keeps its copy after a
//! copy-on-write fault, and two shared mappings of one file see each other's writes.
//!
//! - [`Frame`]: one 4 KiB page of RAM (`struct page` / a folio of one page): a frame number and
//!   the bytes. Frames are shared by reference ([`FrameRef`]): the page cache, page tables of
//!   parent and child after `fork`, and the PTEs of shared mappings hold the same frame.
//! - [`Machine`]: what every address space of one simulated system shares: the frame allocator,
//!   the shared zero page (`ZERO_PAGE`), and the physical address map drivers remap: device
//!   regions ([`DeviceMemory`], whose reads and writes reach the driver) and kernel pages a
//!   driver owns (what `map_kernel_pages` and `remap_pfn_range` of RAM hand to user space).
//!   A physical page that nothing backs reads as all ones, as unclaimed MMIO does on x86.
//!
//! Frames are reached from several address spaces, which callers may drive from different
//! threads, so each frame guards its bytes with a lock.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::{PAGE_SIZE, Pfn};

/// The bytes of one page.
pub type PageBytes = [u8; PAGE_SIZE as usize];

/// One page frame of simulated RAM.
pub struct Frame {
    pfn: Pfn,
    bytes: crate::sync::Mutex<Box<PageBytes>>,
}

/// A shared reference to a frame.
pub type FrameRef = crate::sync::FrameArc<Frame>;

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

/// Memory-mapped device registers or device memory: what a PFN mapping of a device reaches.
///
/// Offsets are bytes from the start of the region. Reads and writes may have side effects (a
/// counter register that advances on every read).
pub trait DeviceMemory: Send + Sync {
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]);
    /// Writes `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]);
}

/// What one physical page is.
#[derive(Clone)]
pub enum PhysPage {
    /// A kernel page a driver owns.
    Ram(FrameRef),
    /// Page `index` of a device region.
    Device { mem: Arc<dyn DeviceMemory>, index: u64 },
}

/// A registered range of the physical address map.
#[derive(Clone)]
enum PhysRange {
    Kernel(FrameRef),
    Device { pages: u64, mem: Arc<dyn DeviceMemory> },
}

/// What all address spaces of one simulated system share.
pub struct Machine {
    next_pfn: AtomicU64,
    next_device_pfn: AtomicU64,
    zero: FrameRef,
    /// Start pfn → what is there (kernel pages, device regions).
    phys: spin::Mutex<BTreeMap<u64, PhysRange>>,
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

/// The first frame number handed out for RAM (16 TiB up; below it: the zero page, and the low
/// physical range where drivers claim fixed device addresses).
const FIRST_RAM_PFN: u64 = 0x1_0000_0000;
/// Where device regions without a fixed address are placed (32 TiB up).
const FIRST_DEVICE_PFN: u64 = 0x2_0000_0000;

impl Machine {
    /// A system with no memory in use.
    pub fn new() -> Machine {
        let zero = FrameRef::new(Frame {
            pfn: Pfn(FIRST_RAM_PFN - 1),
            bytes: crate::sync::Mutex::new(zeroed()),
        });
        Machine {
            next_pfn: AtomicU64::new(FIRST_RAM_PFN),
            next_device_pfn: AtomicU64::new(FIRST_DEVICE_PFN),
            zero,
            phys: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// Kernel pages for a driver (`alloc_pages` kept by the driver): zero-filled frames that
    /// can be found again by frame number, so a driver may hand them to user space with
    /// `map_kernel_pages` or `remap_pfn_range`.
    pub fn alloc_kernel_pages(&self, n: usize) -> Vec<FrameRef> {
        let frames: Vec<FrameRef> = (0..n).map(|_| self.alloc_frame()).collect();
        let mut phys = self.phys.lock();
        for f in &frames {
            phys.insert(f.pfn.0, PhysRange::Kernel(f.clone()));
        }
        frames
    }

    /// Places a device region of `pages` pages in the physical address map and returns its
    /// first frame number (a `struct resource` claimed by a driver).
    pub fn add_device(&self, pages: u64, mem: Arc<dyn DeviceMemory>) -> Pfn {
        let start = self.next_device_pfn.fetch_add(pages.max(1) + 1, Ordering::Relaxed);
        self.phys.lock().insert(start, PhysRange::Device { pages, mem });
        Pfn(start)
    }

    /// Places a device region of `pages` pages at frame `pfn` (a driver claiming a fixed
    /// physical range, as HPET at `0xfed00000`). `None` if that range overlaps anything.
    pub fn add_device_at(&self, pfn: Pfn, pages: u64, mem: Arc<dyn DeviceMemory>) -> Option<Pfn> {
        let end = pfn.0.checked_add(pages)?;
        let mut phys = self.phys.lock();
        let overlaps = phys.range(..end).next_back().is_some_and(|(&start, r)| {
            let len = match r {
                PhysRange::Kernel(_) => 1,
                PhysRange::Device { pages, .. } => *pages,
            };
            start + len > pfn.0
        });
        if overlaps || end > FIRST_RAM_PFN - 1 {
            return None;
        }
        phys.insert(pfn.0, PhysRange::Device { pages, mem });
        Some(pfn)
    }

    /// What physical page `pfn` is, if anything backs it.
    pub fn phys_page(&self, pfn: Pfn) -> Option<PhysPage> {
        let phys = self.phys.lock();
        let (&start, range) = phys.range(..=pfn.0).next_back()?;
        match range {
            PhysRange::Kernel(f) if start == pfn.0 => Some(PhysPage::Ram(f.clone())),
            PhysRange::Device { pages, mem } if pfn.0 - start < *pages => Some(PhysPage::Device {
                mem: mem.clone(),
                index: pfn.0 - start,
            }),
            _ => None,
        }
    }

    /// Reads from physical page `pfn` at `offset`. Nothing there reads as `0xff` bytes.
    pub fn read_phys(&self, pfn: Pfn, offset: usize, buf: &mut [u8]) {
        match self.phys_page(pfn) {
            Some(PhysPage::Ram(f)) => f.read(offset, buf),
            Some(PhysPage::Device { mem, index }) => mem.read(index * PAGE_SIZE + offset as u64, buf),
            None => buf.fill(0xff),
        }
    }

    /// Writes to physical page `pfn` at `offset`. Writes to nothing are dropped.
    pub fn write_phys(&self, pfn: Pfn, offset: usize, data: &[u8]) {
        match self.phys_page(pfn) {
            Some(PhysPage::Ram(f)) => f.write(offset, data),
            Some(PhysPage::Device { mem, index }) => mem.write(index * PAGE_SIZE + offset as u64, data),
            None => {}
        }
    }

    /// A new frame holding a copy of physical page `pfn` (copy-on-write of a PFN mapping).
    pub fn copy_phys(&self, pfn: Pfn) -> FrameRef {
        let frame = self.alloc_frame();
        let mut buf = [0u8; PAGE_SIZE as usize];
        self.read_phys(pfn, 0, &mut buf);
        frame.write(0, &buf);
        frame
    }

    /// A new, zero-filled frame (`alloc_page(__GFP_ZERO)`).
    pub fn alloc_frame(&self) -> FrameRef {
        let pfn = Pfn(self.next_pfn.fetch_add(1, Ordering::Relaxed));
        FrameRef::new(Frame {
            pfn,
            bytes: crate::sync::Mutex::new(zeroed()),
        })
    }

    /// A new frame with a copy of `src`'s bytes (copy-on-write).
    pub fn copy_frame(&self, src: &Frame) -> FrameRef {
        let pfn = Pfn(self.next_pfn.fetch_add(1, Ordering::Relaxed));
        FrameRef::new(Frame {
            pfn,
            bytes: crate::sync::Mutex::new(src.snapshot()),
        })
    }

    /// The shared zero page: what a read of never-written private anonymous memory maps.
    pub fn zero_frame(&self) -> &FrameRef {
        &self.zero
    }

    /// Is `f` the shared zero page?
    pub fn is_zero_frame(&self, f: &FrameRef) -> bool {
        FrameRef::ptr_eq(f, &self.zero)
    }
}

fn zeroed() -> Box<PageBytes> {
    Box::new([0u8; PAGE_SIZE as usize])
}

//! Plain device memory: bytes that read back what was written (video memory, a physical RAM
//! window), for drivers that put such a region in the physical address map.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mmprep::PAGE_SIZE;
use mmprep::phys::DeviceMemory;

/// A region of device memory holding `size` bytes, all `fill` at first. A read past its end
/// returns `0xff` bytes, as unclaimed memory-mapped I/O does; a write there is dropped.
///
/// Pages are stored only once written, so a region costs host memory for what was written, not
/// for its size: `file d driver mem size=1T` must not allocate a terabyte (and abort the
/// process) when it is opened.
pub struct MemoryRegion {
    size: u64,
    fill: u8,
    /// Page index → its bytes, for the pages written so far.
    pages: Mutex<BTreeMap<u64, Box<[u8]>>>,
}

impl MemoryRegion {
    /// A region of `size` bytes of `fill`.
    pub fn new(size: u64, fill: u8) -> MemoryRegion {
        MemoryRegion {
            size,
            fill,
            pages: Mutex::new(BTreeMap::new()),
        }
    }
}

impl DeviceMemory for MemoryRegion {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        if let Ok(pages) = self.pages.lock() {
            for (i, out) in buf.iter_mut().enumerate() {
                let at = offset.saturating_add(i as u64);
                *out = if at >= self.size {
                    0xff
                } else {
                    pages
                        .get(&(at / PAGE_SIZE))
                        .map_or(self.fill, |p| p[(at % PAGE_SIZE) as usize])
                };
            }
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        if let Ok(mut pages) = self.pages.lock() {
            for (i, v) in data.iter().enumerate() {
                let at = offset.saturating_add(i as u64);
                if at >= self.size {
                    continue;
                }
                let fill = self.fill;
                let page = pages
                    .entry(at / PAGE_SIZE)
                    .or_insert_with(|| vec![fill; PAGE_SIZE as usize].into_boxed_slice());
                page[(at % PAGE_SIZE) as usize] = *v;
            }
        }
    }
}

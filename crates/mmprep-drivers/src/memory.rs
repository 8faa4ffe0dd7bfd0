//! Plain device memory: bytes that read back what was written (video memory, a physical RAM
//! window), for drivers that put such a region in the physical address map.

use std::sync::Mutex;

use mmprep::phys::DeviceMemory;

/// A region of device memory holding `size` bytes, all `fill` at first. A read past its end
/// returns `0xff` bytes, as unclaimed memory-mapped I/O does; a write there is dropped.
pub struct MemoryRegion {
    bytes: Mutex<Vec<u8>>,
}

impl MemoryRegion {
    /// A region of `size` bytes of `fill`.
    pub fn new(size: usize, fill: u8) -> MemoryRegion {
        MemoryRegion {
            bytes: Mutex::new(vec![fill; size]),
        }
    }
}

impl DeviceMemory for MemoryRegion {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        if let Ok(b) = self.bytes.lock() {
            for (i, out) in buf.iter_mut().enumerate() {
                *out = b.get(offset as usize + i).copied().unwrap_or(0xff);
            }
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        if let Ok(mut b) = self.bytes.lock() {
            for (i, v) in data.iter().enumerate() {
                if let Some(slot) = b.get_mut(offset as usize + i) {
                    *slot = *v;
                }
            }
        }
    }
}

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
            let mut done = 0;
            while done < buf.len() {
                let at = offset.saturating_add(done as u64);
                let in_page = (at % PAGE_SIZE) as usize;
                let n = (PAGE_SIZE as usize - in_page).min(buf.len() - done);
                let out = &mut buf[done..done + n];
                match pages.get(&(at / PAGE_SIZE)) {
                    _ if at >= self.size => out.fill(0xff),
                    Some(page) => out.copy_from_slice(&page[in_page..in_page + n]),
                    None => out.fill(self.fill),
                }
                // The end of the region inside this page reads as 0xff too.
                let valid = self.size.saturating_sub(at).min(n as u64) as usize;
                out[valid..].fill(0xff);
                done += n;
            }
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        if let Ok(mut pages) = self.pages.lock() {
            let mut done = 0;
            while done < data.len() {
                let at = offset.saturating_add(done as u64);
                let in_page = (at % PAGE_SIZE) as usize;
                let n = (PAGE_SIZE as usize - in_page).min(data.len() - done);
                // Bytes past the end of the region are dropped.
                let valid = self.size.saturating_sub(at).min(n as u64) as usize;
                if valid > 0 {
                    let fill = self.fill;
                    let page = pages
                        .entry(at / PAGE_SIZE)
                        .or_insert_with(|| vec![fill; PAGE_SIZE as usize].into_boxed_slice());
                    page[in_page..in_page + valid].copy_from_slice(&data[done..done + valid]);
                }
                done += n;
            }
        }
    }
}

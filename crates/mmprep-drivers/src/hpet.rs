//! `hpet`: the High Precision Event Timer's register page, mapped uncached.
//!
//! Models `drivers/char/hpet.c:hpet_mmap_prepare` (7.1 series): the device must have a page
//! aligned register block (`ENOSYS` otherwise), the mapping is made uncached
//! (`pgprot_noncached`) and handed to `mmap_action_simple_ioremap(desc, addr, PAGE_SIZE)`,
//! which maps the page and sets `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`. So the
//! mapping never merges, is never copied on fork into anything but the same registers, and a
//! read of the main counter (offset `0xf0`) sees it advance: every read reaches the device.

use mmprep::file::MmapPrepare;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mmprep::addr::{PAGE_SIZE, Pfn};
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::phys::DeviceMemory;
use mmprep::vma::{CacheMode, PageProt};
use mmprep::{Errno, Error, Result};

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "hpet",
    summary: "HPET register page (hpet_mmap_prepare): simple_ioremap, uncached; the counter advances on every read",
    params: &["addr=0xfed00000: physical address of the register block (must be page aligned)"],
    open,
};

/// Offset of the main counter register.
const MAIN_COUNTER: u64 = 0xf0;

/// The register block: the main counter, and bytes that read back what was written.
pub struct Registers {
    counter: AtomicU64,
    other: Mutex<Vec<u8>>,
}

impl Registers {
    /// A fresh register block (the counter at 0), one page.
    pub fn new() -> Registers {
        Registers {
            counter: AtomicU64::new(0),
            other: Mutex::new(vec![0; PAGE_SIZE as usize]),
        }
    }
}

impl Default for Registers {
    fn default() -> Registers {
        Registers::new()
    }
}

impl DeviceMemory for Registers {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = if (MAIN_COUNTER..MAIN_COUNTER + 8).contains(&at) {
                // Each read of the counter's low byte is a tick.
                let v = if at == MAIN_COUNTER {
                    self.counter.fetch_add(1, Ordering::Relaxed) + 1
                } else {
                    self.counter.load(Ordering::Relaxed)
                };
                (v >> ((at - MAIN_COUNTER) * 8)) as u8
            } else {
                self.other
                    .lock()
                    .map(|o| o.get(at as usize).copied().unwrap_or(0))
                    .unwrap_or(0)
            };
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if let Ok(mut o) = self.other.lock() {
            for (i, b) in data.iter().enumerate() {
                if let Some(slot) = o.get_mut(offset as usize + i) {
                    *slot = *b;
                }
            }
        }
    }
}

struct Hpet {
    addr: u64,
}

impl FileOperations for Hpet {
    fn name(&self) -> &'static str {
        "hpet"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Hpet {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        if !self.addr.is_multiple_of(PAGE_SIZE) {
            return Err(Error::new(Errno::ENOSYS, "the HPET block is not page aligned"));
        }
        let prot = desc.page_prot();
        desc.set_page_prot(PageProt {
            cache: CacheMode::Uncached,
            ..prot
        });
        desc.mmap_action_simple_ioremap(self.addr, PAGE_SIZE);
        Ok(())
    }
}

fn open(params: &Params, env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let addr = params.number("addr", 0xfed0_0000)?;
    let regs = Arc::new(Registers::new());
    if addr.is_multiple_of(PAGE_SIZE) && env.machine.add_device_at(Pfn(addr / PAGE_SIZE), 1, regs).is_none() {
        return Err(format!("physical page {addr:#x} is already claimed"));
    }
    let dev = DevId { major: 10, minor: 228 };
    Ok(crate::registry::open_file(
        dev,
        InodeKind::CharDevice,
        0,
        FileMode::READ_ONLY,
        Arc::new(Hpet { addr }),
        "/dev/hpet",
    ))
}

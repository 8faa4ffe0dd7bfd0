//! `fb`: a framebuffer's video memory, mapped write-combining.
//!
//! Models `drivers/video/fbdev/core/fb_defio.c`-less fbdev drivers converted to
//! `mmap_prepare`: the whole mapping is `mmap_action_ioremap_full` of the video memory from the
//! page `pgoff` of the framebuffer, with `pgprot_writecombine`. A mapping larger than the
//! memory left after `pgoff` is refused with `EINVAL`. Two mappings see the same pixels; a
//! private mapping gets a private copy on write (the remap must then cover the whole VMA, and
//! its `pgoff` becomes the PFN).

use mmprep::file::MmapPrepare;
use std::sync::Arc;

use mmprep::addr::{PAGE_SIZE, Pfn};
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::vma::{CacheMode, PageProt};
use mmprep::{Errno, Error, Result};

use crate::memory::MemoryRegion;
use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "fb",
    summary: "framebuffer video memory (fbdev): ioremap_full, write-combining; refuses maps past the end",
    params: &["size=64K: video memory size"],
    open,
};

struct Framebuffer {
    start: Pfn,
    pages: u64,
}

impl FileOperations for Framebuffer {
    fn name(&self) -> &'static str {
        "fb"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Framebuffer {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        let pgoff = desc.pgoff().get();
        if pgoff >= self.pages || desc.pages() > self.pages - pgoff {
            return Err(Error::new(
                Errno::EINVAL,
                "mapping reaches past the end of video memory",
            ));
        }
        let prot = desc.page_prot();
        desc.set_page_prot(PageProt {
            cache: CacheMode::WriteCombine,
            ..prot
        });
        desc.mmap_action_ioremap_full(Pfn(self.start.get() + pgoff));
        Ok(())
    }
}

fn open(params: &Params, env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let size = params.number("size", 64 << 10)?;
    if size == 0 || !size.is_multiple_of(PAGE_SIZE) {
        return Err("size must be a non-zero multiple of 4K".into());
    }
    let pages = size / PAGE_SIZE;
    let start = env.machine.add_device(pages, Arc::new(MemoryRegion::new(size, 0)));
    Ok(crate::registry::open_file(
        DevId { major: 29, minor: 0 },
        InodeKind::CharDevice,
        0,
        FileMode::READ_WRITE,
        Arc::new(Framebuffer { start, pages }),
        "/dev/fb0",
    ))
}

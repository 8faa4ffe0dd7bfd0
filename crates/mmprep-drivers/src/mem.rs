//! `mem`: a `/dev/mem`-style window onto physical memory.
//!
//! Models `drivers/char/mem.c:mmap_mem_prepare` (\[N\], 6.19+): the file offset is a physical
//! address. The hook rejects an offset that overflows when shifted or wraps with the length
//! (`EINVAL`), and a range outside what the system lets user space map (`EPERM`, standing in
//! for `devmem_is_allowed`); it installs VM ops with only `access` (so ptrace can read the
//! mapping through `generic_access_phys`), asks for `mmap_action_remap_full(desc, pgoff)`, and
//! sets an `error_hook` that turns any remap failure into `EAGAIN`. Result: `io pf de dd`
//! mappings that never merge.
//!
//! The driver claims one window of physical memory, `size` bytes at `base`, filled with the
//! byte `fill`; only that window is allowed.

use mmprep::file::MmapPrepare;
use mmprep::vma::VmAccess;
use std::sync::Arc;

use mmprep::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn};
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, FopFlags, InodeKind};
use mmprep::phys::Machine;
use mmprep::vma::{VmOperations, Vma};
use mmprep::{Errno, Error, Result, VirtAddr};

use crate::memory::MemoryRegion;
use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "mem",
    summary: "/dev/mem-style physical window (mmap_mem_prepare): remap_full with range checks, access hook, error_hook -> EAGAIN",
    params: &[
        "base=0xe0000: physical address of the window",
        "size=64K: window size",
        "fill=0x4d: the byte the window holds at first",
    ],
    open,
};

struct DevMem {
    base: u64,
    size: u64,
    machine: Arc<Machine>,
}

/// `mem_vm_ops` with only `access` (`generic_access_phys`).
struct MemVmOps {
    machine: Arc<Machine>,
}

impl FileOperations for DevMem {
    fn name(&self) -> &'static str {
        "mem"
    }
    fn fop_flags(&self) -> FopFlags {
        FopFlags::UNSIGNED_OFFSET
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for DevMem {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        let pgoff = desc.pgoff().get();
        let len = desc.size();
        // The offset is a physical address: it must not overflow or wrap.
        let Some(phys) = pgoff
            .checked_shl(PAGE_SHIFT)
            .filter(|_| pgoff >> (64 - PAGE_SHIFT) == 0)
        else {
            return Err(Error::new(Errno::EINVAL, "offset overflows a physical address"));
        };
        let Some(end) = phys.checked_add(len) else {
            return Err(Error::new(Errno::EINVAL, "range wraps"));
        };
        // devmem_is_allowed: only the claimed window.
        if phys < self.base || end > self.base + self.size {
            return Err(Error::new(Errno::EPERM, "range is not allowed"));
        }
        desc.set_vm_ops(Arc::new(MemVmOps {
            machine: self.machine.clone(),
        }));
        desc.mmap_action_remap_full(Pfn(pgoff));
        desc.set_error_hook(Arc::new(|_| Errno::EAGAIN));
        Ok(())
    }
}

impl VmOperations for MemVmOps {
    fn ops_name(&self) -> &'static str {
        "mmap_mem_ops"
    }
    fn access(&self) -> Option<&dyn VmAccess> {
        Some(self)
    }
}

impl VmAccess for MemVmOps {
    fn access(&self, vma: &Vma, addr: VirtAddr, buf: &mut [u8], write: bool) -> Result<usize> {
        // generic_access_phys: the physical page behind addr, from the VMA's pgoff.
        let page = vma.pgoff_at(addr).get();
        let offset = (addr.get() % PAGE_SIZE) as usize;
        let n = buf.len().min(PAGE_SIZE as usize - offset);
        if write {
            self.machine.write_phys(Pfn(page), offset, &buf[..n]);
        } else {
            self.machine.read_phys(Pfn(page), offset, &mut buf[..n]);
        }
        Ok(n)
    }
}

fn open(params: &Params, env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let base = params.number("base", 0xe0000)?;
    let size = params.number("size", 64 << 10)?;
    let fill = u8::try_from(params.number("fill", 0x4d)?).map_err(|_| "fill must be a byte".to_string())?;
    if !base.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) || size == 0 {
        return Err("base and size must be non-zero multiples of 4K".into());
    }
    let window = Arc::new(MemoryRegion::new(size, fill));
    if env
        .machine
        .add_device_at(Pfn(base / PAGE_SIZE), size / PAGE_SIZE, window)
        .is_none()
    {
        return Err(format!("physical range {base:#x}+{size:#x} is already claimed"));
    }
    let ops = Arc::new(DevMem {
        base,
        size,
        machine: env.machine.clone(),
    });
    let dev = DevId { major: 1, minor: 1 };
    Ok(crate::registry::open_file(
        dev,
        InodeKind::CharDevice,
        0,
        FileMode::READ_WRITE,
        ops,
        "/dev/mem",
    ))
}

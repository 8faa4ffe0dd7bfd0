//! `ring`: a ring buffer of kernel pages shared with user space.
//!
//! Models perf/io_uring-style ring buffers converted to `mmap_prepare`: the driver owns `pages`
//! kernel pages (the first holds a header the "kernel side" fills in), and a mapping must be
//! shared and exactly the buffer's size (`EINVAL` otherwise). The hook asks for
//! `mmap_action_map_kernel_pages_full` (which adds `VM_MIXEDMAP`, a special flag: no merging);
//! `vm_ops->mapped` takes a reference on the buffer and `open`/`close` follow each VMA, so the
//! buffer knows how many mappings use it. Every mapping sees the same bytes.

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmMapped, VmOpen};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::flags::VmaBit;
use mmprep::phys::FrameRef;
use mmprep::vma::{PrivateData, VmOperations, Vma};
use mmprep::{Errno, Error, Result, VirtAddr};

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "ring",
    summary: "ring buffer of kernel pages (perf-style): map_kernel_pages_full, shared only, reference per mapping",
    params: &["pages=4: buffer size in pages (the first is a header: bytes 'RING', then the page count)"],
    open,
};

struct Buffer {
    pages: Vec<FrameRef>,
    users: AtomicU64,
}

struct Ring {
    buf: Arc<Buffer>,
}

struct RingVmOps {
    buf: Arc<Buffer>,
}

impl FileOperations for Ring {
    fn name(&self) -> &'static str {
        "ring"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Ring {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        if !desc.test(VmaBit::MayShare) {
            return Err(Error::new(Errno::EINVAL, "the ring buffer can only be mapped shared"));
        }
        if desc.pgoff().get() != 0 || desc.pages() != self.buf.pages.len() as u64 {
            return Err(Error::new(
                Errno::EINVAL,
                "a mapping must cover exactly the whole buffer",
            ));
        }
        desc.set_vm_ops(Arc::new(RingVmOps { buf: self.buf.clone() }));
        desc.mmap_action_map_kernel_pages_full(self.buf.pages.clone());
        Ok(())
    }
}

impl VmOperations for RingVmOps {
    fn ops_name(&self) -> &'static str {
        "ring_vm_ops"
    }
    fn mapped(&self) -> Option<&dyn VmMapped> {
        Some(self)
    }
    fn open(&self) -> Option<&dyn VmOpen> {
        Some(self)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        Some(self)
    }
}

impl VmMapped for RingVmOps {
    fn mapped(
        &self,
        _start: VirtAddr,
        _end: VirtAddr,
        _pgoff: PgOff,
        _file: Option<&Arc<File>>,
        _private: &mut Option<PrivateData>,
    ) -> Result<()> {
        self.buf.users.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl VmOpen for RingVmOps {
    fn open(&self, _vma: &Vma) {
        self.buf.users.fetch_add(1, Ordering::AcqRel);
    }
}

impl VmClose for RingVmOps {
    fn close(&self, _vma: &Vma) {
        self.buf.users.fetch_sub(1, Ordering::AcqRel);
    }
}

fn open(params: &Params, env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let n = params.number("pages", 4)?;
    if n == 0 || n > 1024 {
        return Err("pages must be 1 to 1024".into());
    }
    let pages = env.machine.alloc_kernel_pages(n as usize);
    pages[0].write(0, b"RING");
    pages[0].write(4, &(n as u32).to_le_bytes());
    let buf = Arc::new(Buffer {
        pages,
        users: AtomicU64::new(0),
    });
    Ok(crate::registry::open_file(
        DevId { major: 0x10, minor: 7 },
        InodeKind::CharDevice,
        0,
        FileMode::READ_WRITE,
        Arc::new(Ring { buf }),
        "/dev/mmprep-ring",
    ))
}

//! `ro`: a device that may be mapped shared only read-only, and never made writable later.
//!
//! Models drivers that expose read-only data (firmware tables, relay buffers read by user
//! space) and `mm/filemap.c:generic_file_readonly_mmap_prepare`: a shared mapping that may
//! write is refused with `EINVAL`; a shared read-only one loses `VM_MAYWRITE` with
//! [`VmAreaDesc::try_clear_maywrite`], so a later `mprotect(PROT_WRITE)` fails with `EACCES`.
//! Private mappings are copy-on-write and allowed. Pages read as the byte `fill` (default 0x52,
//! 'R').

use mmprep::file::MmapPrepare;
use mmprep::vma::VmFaultHandler;
use std::sync::Arc;

use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::flags::{VmaBit, is_shared_maywrite};
use mmprep::vma::{FaultResult, VmFault, VmOperations};
use mmprep::{Errno, Error, Result};

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "ro",
    summary: "read-only device (generic_file_readonly_mmap_prepare): refuses shared writable maps, clears VM_MAYWRITE",
    params: &["fill=0x52: the byte every page reads as"],
    open,
};

struct RoDevice {
    fill: u8,
}

struct RoVmOps {
    fill: u8,
}

impl FileOperations for RoDevice {
    fn name(&self) -> &'static str {
        "ro"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for RoDevice {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        if is_shared_maywrite(desc.flags()) && desc.test(VmaBit::Write) {
            return Err(Error::new(
                Errno::EINVAL,
                "the device cannot be mapped shared and writable",
            ));
        }
        if desc.test(VmaBit::MayShare) {
            desc.try_clear_maywrite()?;
        }
        desc.set_vm_ops(Arc::new(RoVmOps { fill: self.fill }));
        Ok(())
    }
}

impl VmOperations for RoVmOps {
    fn ops_name(&self) -> &'static str {
        "ro_vm_ops"
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
}

impl VmFaultHandler for RoVmOps {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let page = vmf.machine().alloc_frame();
        page.fill(0, mmprep::PAGE_SIZE as usize, self.fill);
        vmf.set_page(page);
        FaultResult::Ok
    }
}

fn open(params: &Params, _env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let fill = u8::try_from(params.number("fill", 0x52)?).map_err(|_| "fill must be a byte".to_string())?;
    Ok(crate::registry::open_file(
        DevId { major: 0x10, minor: 1 },
        InodeKind::CharDevice,
        0,
        FileMode::READ_WRITE,
        Arc::new(RoDevice { fill }),
        "/dev/mmprep-ro",
    ))
}

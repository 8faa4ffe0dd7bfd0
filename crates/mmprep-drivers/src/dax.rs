//! `dax`: a file on a DAX filesystem: mappable memory with huge pages asked for.
//!
//! Models `fs/ext4/file.c:ext4_file_mmap_prepare` on a DAX inode (and `drivers/dax/device.c`):
//! the hook sets `VM_HUGEPAGE` on the descriptor (smaps `hg`) and installs the DAX VM ops;
//! `MAP_SYNC` is accepted (the file sets `FOP_MMAP_SYNC` and a DAX device is synchronous).
//! Pages come from the file's page cache (standing in for persistent memory), so shared
//! mappings see each other's writes; a page past `size` is `SIGBUS`.

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmFaultHandler, VmPageMkwrite, VmPfnMkwrite};
use std::sync::Arc;

use mmprep::desc::VmAreaDesc;
use mmprep::file::{AreaPolicy, DevId, File, FileMode, FileOperations, FopFlags, InodeKind};
use mmprep::uapi::MapFlags;
use mmprep::vma::{FaultResult, VmFault, VmOperations, filemap_fault};
use mmprep::{Result, vma_flags};

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "dax",
    summary: "file on a DAX filesystem (ext4 -o dax): mmap_prepare sets VM_HUGEPAGE; MAP_SYNC allowed",
    params: &["size=2M: file size in bytes"],
    open,
};

struct DaxFile;
struct DaxVmOps;

impl FileOperations for DaxFile {
    fn name(&self) -> &'static str {
        "dax"
    }
    fn area_policy(&self, _flags: MapFlags) -> AreaPolicy {
        AreaPolicy::Thp
    }
    fn fop_flags(&self) -> FopFlags {
        FopFlags::MMAP_SYNC
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for DaxFile {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.set_flag_bits(vma_flags![HugePage]);
        desc.set_vm_ops(Arc::new(DaxVmOps));
        Ok(())
    }
}

impl VmOperations for DaxVmOps {
    fn ops_name(&self) -> &'static str {
        "ext4_dax_vm_ops"
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
    fn page_mkwrite(&self) -> Option<&dyn VmPageMkwrite> {
        Some(self)
    }
    fn pfn_mkwrite(&self) -> Option<&dyn VmPfnMkwrite> {
        Some(self)
    }
}

impl VmPfnMkwrite for DaxVmOps {
    /// As `page_mkwrite`, for the PFN entries.
    fn pfn_mkwrite(&self, _vmf: &mut VmFault<'_>) -> FaultResult {
        FaultResult::Ok
    }
}

impl VmPageMkwrite for DaxVmOps {
    /// `ext4_dax_fault` handles write faults too: nothing to reserve.
    fn page_mkwrite(&self, _vmf: &mut VmFault<'_>) -> FaultResult {
        FaultResult::Ok
    }
}

impl VmFaultHandler for DaxVmOps {
    /// DAX pages stand in as the file's page cache (`filemap_fault`).
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        filemap_fault(vmf)
    }
}

fn open(params: &Params, _env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let size = params.number("size", 2 << 20)?;
    Ok(crate::registry::open_file(
        DevId { major: 0x103, minor: 0 },
        InodeKind::Regular,
        size,
        FileMode::READ_WRITE,
        Arc::new(DaxFile),
        "/mnt/pmem/dax-file",
    ))
}

//! `dumpless`: the same device twice, once with `mmap_prepare` and once with the legacy `mmap`,
//! to show what converting a driver changes.
//!
//! The device's memory is left out of core dumps: its hook sets `VM_DONTDUMP`. With
//! `mmap_prepare` (`legacy=0`) the flag is set before the merge decision, so a second mapping
//! that continues the first (same file, next offset) merges with it. With the legacy `->mmap`
//! (`legacy=1`) the kernel tries the merge first, with the flags from before the hook - without
//! `VM_DONTDUMP` - so the new range never matches its neighbour, and every mapping stays a VMA
//! of its own (`mm/vma.c:__mmap_region`; `docs/reference/mmap-prepare-pipeline.md` 11.1).
//! Pages come from the device's page cache, so all mappings of one offset share them.

use mmprep::file::{LegacyMmap, MmapPrepare};
use mmprep::vma::VmFaultHandler;
use std::sync::Arc;

use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::legacy::LegacyVma;
use mmprep::vma::{FaultResult, VmFault, VmOperations, filemap_fault};
use mmprep::{Result, vma_flags};

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "dumpless",
    summary: "device memory left out of core dumps; legacy=1 uses ->mmap (merge tried before the hook: never merges)",
    params: &["legacy=0: 1 for the legacy ->mmap hook", "size=64K: device memory size"],
    open,
};

struct Dumpless {
    legacy: bool,
}

struct DumplessVmOps;

impl FileOperations for Dumpless {
    fn name(&self) -> &'static str {
        if self.legacy { "dumpless_legacy" } else { "dumpless" }
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        (!self.legacy).then_some(self as &dyn MmapPrepare)
    }
    fn mmap(&self) -> Option<&dyn LegacyMmap> {
        self.legacy.then_some(self as &dyn LegacyMmap)
    }
}

impl MmapPrepare for Dumpless {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.set_flag_bits(vma_flags![DontDump]);
        desc.set_vm_ops(Arc::new(DumplessVmOps));
        Ok(())
    }
}

impl LegacyMmap for Dumpless {
    fn mmap(&self, vma: &mut LegacyVma<'_>) -> Result<()> {
        vma.set_flags(vma_flags![DontDump]);
        vma.set_vm_ops(Arc::new(DumplessVmOps));
        Ok(())
    }
}

impl VmOperations for DumplessVmOps {
    fn ops_name(&self) -> &'static str {
        "dumpless_vm_ops"
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
}

impl VmFaultHandler for DumplessVmOps {
    /// The device's memory is its page cache (`filemap_fault`).
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        filemap_fault(vmf)
    }
}

fn open(params: &Params, _env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let legacy = params.number("legacy", 0)? != 0;
    let size = params.number("size", 64 << 10)?;
    Ok(crate::registry::open_file(
        DevId { major: 0x10, minor: 8 },
        InodeKind::CharDevice,
        size,
        FileMode::READ_WRITE,
        Arc::new(Dumpless { legacy }),
        "/dev/mmprep-dumpless",
    ))
}

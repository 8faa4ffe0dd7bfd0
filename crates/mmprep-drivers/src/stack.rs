//! `stack`: a stacked file whose legacy `mmap` maps the file below it, which only has
//! `mmap_prepare`.
//!
//! Models overlayfs and `fs/backing-file.c:backing_file_mmap`: the upper file's `->mmap` points
//! the VMA at the lower file (`vma_set_file`) and maps it with the lower file's hook. Since the
//! lower file (a memfd here) has only `mmap_prepare`, the call goes through the compatibility
//! layer (`mm/util.c:compat_vma_mmap`, [`LegacyVma::compat_mmap_prepare`]): a descriptor is
//! made from the VMA, the lower hook runs, its fields are written back and its action completes.
//! The VMA then shows the lower file in `/proc/PID/maps`; and because the merge attempt saw the
//! upper file, two mappings through the upper file never merge.

use mmprep::file::LegacyMmap;
use std::sync::Arc;

use mmprep::Result;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::legacy::LegacyVma;

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "stack",
    summary: "stacked file (overlayfs/backing file): legacy ->mmap maps the lower memfd through the mmap_prepare compat layer",
    params: &["size=64K: size of the lower file"],
    open,
};

struct Upper {
    lower: Arc<File>,
}

impl FileOperations for Upper {
    fn name(&self) -> &'static str {
        "stack_upper"
    }
    fn mmap(&self) -> Option<&dyn LegacyMmap> {
        Some(self)
    }
}

impl LegacyMmap for Upper {
    fn mmap(&self, vma: &mut LegacyVma<'_>) -> Result<()> {
        vma.set_file(self.lower.clone());
        vma.compat_mmap_prepare(&self.lower)
    }
}

fn open(params: &Params, env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let size = params.number("size", 64 << 10)?;
    let lower = env.shmem.memfd_create("stack-lower", size);
    Ok(crate::registry::open_file(
        DevId { major: 0, minor: 0x30 },
        InodeKind::Regular,
        size,
        FileMode::READ_WRITE,
        Arc::new(Upper { lower }),
        "/merged/stacked-file",
    ))
}

//! `/dev/zero`: reads as zeros, and maps as fresh zeroed memory.
//!
//! Mirrors `drivers/char/mem.c:mmap_zero_prepare` and `get_unmapped_area_zero` (\[N\]; the host
//! \[H\] 6.18 still has the legacy `mmap_zero`, with the same visible result):
//!
//! - a shared mapping becomes a new shmem object as large as the mapping
//!   ([`VmAreaDesc::shmem_zero_setup`]): `/proc/PID/maps` shows `/dev/zero (deleted)`, and no two
//!   such mappings ever merge;
//! - a private mapping keeps `/dev/zero` as its file (so maps names it, with the file offset) but
//!   is made anonymous once it exists, by a success hook: its faults fill zero pages like
//!   anonymous memory.

use mmprep::file::MmapPrepare;
use std::sync::{Arc, OnceLock};

use mmprep::Result;
use mmprep::action::NewVma;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{AreaPolicy, DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::flags::VmaBit;
use mmprep::uapi::MapFlags;

/// The device and inode of `/dev/zero` on the reference host (devtmpfs `00:06`, inode 4).
pub const DEV_ZERO_DEV: DevId = DevId { major: 0, minor: 6 };
/// The inode number of `/dev/zero` on the reference host.
pub const DEV_ZERO_INO: u64 = 4;

/// The file operations of `/dev/zero`.
#[derive(Debug, Default)]
pub struct DevZero;

impl FileOperations for DevZero {
    fn name(&self) -> &'static str {
        "dev_zero"
    }
    /// Shared mappings are placed as shmem places them; private ones THP-aligned where possible.
    fn area_policy(&self, flags: MapFlags) -> AreaPolicy {
        if flags.map_type() == MapFlags::SHARED || flags.map_type() == MapFlags::SHARED_VALIDATE {
            AreaPolicy::Shmem
        } else {
            AreaPolicy::Thp
        }
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for DevZero {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        if desc.test(VmaBit::Shared) {
            return desc.shmem_zero_setup();
        }
        desc.set_success_hook(Arc::new(|vma: &mut NewVma<'_>| {
            vma.set_anonymous();
            Ok(())
        }));
        Ok(())
    }
}

/// The one inode of `/dev/zero`: every open shares it, as in the kernel.
fn inode() -> Arc<Inode> {
    static INODE: OnceLock<Arc<Inode>> = OnceLock::new();
    INODE
        .get_or_init(|| Arc::new(Inode::new(DEV_ZERO_DEV, DEV_ZERO_INO, InodeKind::CharDevice, 0)))
        .clone()
}

/// Opens `/dev/zero` with `mode`: a new open file on the one `/dev/zero` inode.
pub fn open(mode: FileMode) -> Arc<File> {
    File::new(inode(), mode, Arc::new(DevZero), "/dev/zero".into(), false)
}

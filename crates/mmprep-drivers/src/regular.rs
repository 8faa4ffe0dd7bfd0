//! A regular file in the page cache, as ext4 maps it (the filesystem behind `/tmp` on the
//! reference host).
//!
//! Mirrors `fs/ext4/file.c:ext4_file_mmap_prepare` and `mm/filemap.c:generic_file_mmap_prepare`
//! (\[H\] 6.18, where page-cache filesystems already use `mmap_prepare`):
//!
//! - `MAP_SYNC` is refused with `EOPNOTSUPP` (`daxdev_mapping_supported`: the file is not on
//!   DAX). ext4 sets `FOP_MMAP_SYNC`, so `MAP_SHARED_VALIDATE|MAP_SYNC` passes `do_mmap`'s own
//!   check and is refused here, after any `MAP_FIXED` range was already unmapped;
//! - the VMA gets the page-cache ops: a fault inside `i_size` finds the page, past it `SIGBUS`;
//!   there is no `close`, so mappings merge freely;
//! - placement is `thp_get_unmapped_area`.

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmFaultHandler, VmPageMkwrite};
use std::sync::Arc;

use mmprep::desc::VmAreaDesc;
use mmprep::file::{AreaPolicy, DevId, File, FileMode, FileOperations, FopFlags, Inode, InodeKind};
use mmprep::flags::VmaBit;
use mmprep::uapi::MapFlags;
use mmprep::vma::{FaultResult, VmFault, VmOperations, filemap_fault};
use mmprep::{Errno, Error, Result};

/// The device of `/` on the reference host (`fe:00`).
pub const ROOT_DEV: DevId = DevId { major: 0xfe, minor: 0 };

/// ext4's file operations, as far as mapping goes.
#[derive(Debug, Default)]
pub struct Ext4File;

impl FileOperations for Ext4File {
    fn name(&self) -> &'static str {
        "ext4"
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

impl MmapPrepare for Ext4File {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        if desc.test(VmaBit::Sync) {
            return Err(Error::new(Errno::EOPNOTSUPP, "MAP_SYNC needs a DAX file"));
        }
        desc.set_vm_ops(Arc::new(PageCacheVmOps));
        Ok(())
    }
}

/// `generic_file_vm_ops` / `ext4_file_vm_ops`: fault and page_mkwrite, no close.
#[derive(Debug, Default)]
pub struct PageCacheVmOps;

impl VmOperations for PageCacheVmOps {
    fn ops_name(&self) -> &'static str {
        "ext4_file_vm_ops"
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
    fn page_mkwrite(&self) -> Option<&dyn VmPageMkwrite> {
        Some(self)
    }
}

impl VmPageMkwrite for PageCacheVmOps {
    /// `filemap_page_mkwrite`: the page is in the page cache and stays writable.
    fn page_mkwrite(&self, _vmf: &mut VmFault<'_>) -> FaultResult {
        FaultResult::Ok
    }
}

impl VmFaultHandler for PageCacheVmOps {
    /// `filemap_fault`: the page cache page; a page at or past the end of the file is `SIGBUS`.
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        filemap_fault(vmf)
    }
}

/// Creates and opens a regular file of `size` bytes on ext4. `path` is what maps prints.
pub fn open_ext4(ino: u64, size: u64, mode: FileMode, path: String) -> Arc<File> {
    let inode = Arc::new(Inode::new(ROOT_DEV, ino, InodeKind::Regular, size));
    File::new(inode, mode, Arc::new(Ext4File), path, false)
}

/// Opens another descriptor on an existing inode (a second `open()` of the same file).
pub fn reopen(inode: &Arc<Inode>, mode: FileMode, path: String) -> Arc<File> {
    File::new(inode.clone(), mode, Arc::new(Ext4File), path, false)
}

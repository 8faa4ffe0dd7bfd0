//! shmem: the in-memory filesystem behind shared anonymous memory and memfds.
//!
//! Linux has no such thing as "shared anonymous memory" internally: `MAP_SHARED|MAP_ANONYMOUS`
//! and a `MAP_SHARED` mapping of `/dev/zero` each get a fresh, unlinked shmem file as large as
//! the mapping, which `/proc/PID/maps` names `/dev/zero (deleted)`. `memfd_create` makes a shmem
//! file too (`/memfd:NAME (deleted)`). Because every such mapping has its own file, two shared
//! anonymous mappings never merge.
//!
//! Mirrors `mm/shmem.c` (`shmem_zero_setup`, `shmem_zero_setup_desc`, `shmem_mmap_prepare`,
//! `shmem_fault`'s end-of-file check) and `mm/memfd.c:memfd_create`, \[H\] 6.18 / \[N\].
//!
//! - [`ShmemFs`]: the shm mount (device `00:01`), which numbers its inodes.
//! - [`ShmemFileOps`]: the file operations of every shmem file (`mmap_prepare` installs the VM
//!   ops; placement via `shmem_get_unmapped_area`).
//! - [`ShmemVmOps`]: faults within `i_size` succeed, beyond it `SIGBUS`.

use crate::file::MmapPrepare;
use crate::vma::VmFaultHandler;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::desc::VmAreaDesc;
use crate::errno::Result;
use crate::file::{AreaPolicy, DevId, File, FileMode, FileOperations, Inode, InodeKind};
use crate::vma::{FaultResult, VmFault, VmOperations, filemap_fault};

/// The device of the internal shm mount, as `/proc/PID/maps` prints it (`00:01`).
pub const SHMEM_DEV: DevId = DevId { major: 0, minor: 1 };

/// The shm mount: where shmem files live. One per modelled system; an [`crate::mm::Mm`] and its
/// fork children share it.
#[derive(Debug)]
pub struct ShmemFs {
    next_ino: AtomicU64,
}

impl Default for ShmemFs {
    fn default() -> Self {
        ShmemFs::new()
    }
}

impl ShmemFs {
    /// A fresh mount. Inode numbers start at 1000 (any value works; the host's differ).
    pub fn new() -> ShmemFs {
        ShmemFs {
            next_ino: AtomicU64::new(1000),
        }
    }

    fn new_inode(&self, size: u64) -> Arc<Inode> {
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        Arc::new(Inode::new(SHMEM_DEV, ino, InodeKind::Regular, size))
    }

    /// `memfd_create(name)` followed by `ftruncate(size)`: an open, read-write, unlinked shmem
    /// file named `/memfd:NAME (deleted)`.
    pub fn memfd_create(&self, name: &str, size: u64) -> Arc<File> {
        let inode = self.new_inode(size);
        File::new(
            inode,
            FileMode::READ_WRITE,
            Arc::new(ShmemFileOps),
            format!("/memfd:{name} (deleted)"),
            false,
        )
    }

    /// `shmem_zero_setup`: the object behind a shared anonymous mapping of `size` bytes, and the
    /// VM ops its VMA gets. The kernel's inode allocation may fail; the engine's cannot, so this
    /// returns no `Result`.
    pub fn zero_setup(&self, size: u64) -> (Arc<File>, Arc<dyn VmOperations>) {
        let inode = self.new_inode(size);
        let file = File::new(
            inode,
            FileMode::READ_WRITE,
            Arc::new(ShmemFileOps),
            String::from("/dev/zero (deleted)"),
            false,
        );
        (file, Arc::new(ShmemVmOps { anon: true }))
    }
}

/// The file operations of every shmem file (`shmem_file_operations`).
#[derive(Debug, Default)]
pub struct ShmemFileOps;

impl FileOperations for ShmemFileOps {
    fn name(&self) -> &'static str {
        "shmem"
    }
    fn area_policy(&self, _flags: crate::uapi::MapFlags) -> AreaPolicy {
        AreaPolicy::Shmem
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for ShmemFileOps {
    /// `shmem_mmap_prepare`: installs the shmem VM ops; nothing else about the mapping changes.
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.set_vm_ops(Arc::new(ShmemVmOps { anon: false }));
        Ok(())
    }
}

/// `shmem_vm_ops` / `shmem_anon_vm_ops`: a fault hook, no `close`.
#[derive(Debug)]
pub struct ShmemVmOps {
    anon: bool,
}

impl VmOperations for ShmemVmOps {
    fn ops_name(&self) -> &'static str {
        if self.anon { "shmem_anon_vm_ops" } else { "shmem_vm_ops" }
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
}

impl VmFaultHandler for ShmemVmOps {
    /// `shmem_fault`: the page cache page; a page at or past `i_size` is `SIGBUS`.
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        filemap_fault(vmf)
    }
}

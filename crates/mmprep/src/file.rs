//! Open files and what a driver or filesystem provides for mapping them.
//!
//! `mmap` of a file goes through the *open file* (`struct file`): its open mode decides which
//! `VM_MAY*` flags the mapping gets, and two mappings merge only if they come from the same open
//! file object (a second `open()` of the same inode never merges). The file's operations
//! (`struct file_operations`) say how it is mapped: newer drivers provide `mmap_prepare`, which
//! sees a [`VmAreaDesc`](crate::desc::VmAreaDesc) before any merge; older ones a legacy `mmap`
//! that sees the finished VMA.
//!
//! Mirrors `include/linux/fs.h` (`struct file`, `f_op->mmap_prepare`, `can_mmap_file`,
//! `file_mmap_ok`) and `mm/mmap.c:do_mmap`'s use of them, \[H\] 6.18 / \[N\].
//!
//! - [`Inode`]: identity (device, inode number), type, size: shared by every open of it.
//! - [`File`]: one open of an inode: mode, path as `/proc/PID/maps` prints it, mount flags, and
//!   the operations. Compared by identity (`Arc::ptr_eq`), as the kernel compares pointers.
//! - [`FileOperations`]: the driver's side (in [`crate::driver::file_ops`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::pagetable::Runs;
use crate::phys::{FrameRef, Machine};

/// A device number, printed `MAJ:MIN` in hex in `/proc/PID/maps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DevId {
    pub major: u32,
    pub minor: u32,
}

/// The inode types that matter to `mmap` (`file_mmap_size_max` looks at them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeKind {
    /// A regular file (page cache, shmem, memfd): mappable up to `MAX_LFS_FILESIZE`.
    Regular,
    /// A character device (`/dev/zero`, drivers): mappable up to `ULONG_MAX`.
    CharDevice,
    /// A block device.
    BlockDevice,
}

/// `MAX_LFS_FILESIZE` on 64-bit: the largest offset a regular file may have.
pub const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// An inode: what every open of one file shares, including its page cache.
pub struct Inode {
    ino: u64,
    dev: DevId,
    kind: InodeKind,
    size: AtomicU64,
    append_only: bool,
    /// The page cache (`i_mapping`): file page index → frame.
    pages: spin::Mutex<BTreeMap<u64, FrameRef>>,
    /// File pages a populate brought into the page cache without the engine making frames for
    /// them (runs of page indexes; see [`Inode::populated`]).
    populated: spin::Mutex<Runs>,
    /// File pages a hole punch removed from the page cache while mappings may still reach
    /// their (zeroed) frames; a page leaves this set when it is looked up again.
    punched: spin::Mutex<Runs>,
}

impl Inode {
    /// A new inode.
    pub fn new(dev: DevId, ino: u64, kind: InodeKind, size: u64) -> Inode {
        Inode {
            ino,
            dev,
            kind,
            size: AtomicU64::new(size),
            append_only: false,
            pages: spin::Mutex::new(BTreeMap::new()),
            populated: spin::Mutex::new(Runs::default()),
            punched: spin::Mutex::new(Runs::default()),
        }
    }
    /// An append-only inode (`IS_APPEND`): shared writable mappings are refused.
    pub fn new_append_only(dev: DevId, ino: u64, size: u64) -> Inode {
        Inode {
            ino,
            dev,
            kind: InodeKind::Regular,
            size: AtomicU64::new(size),
            append_only: true,
            pages: spin::Mutex::new(BTreeMap::new()),
            populated: spin::Mutex::new(Runs::default()),
            punched: spin::Mutex::new(Runs::default()),
        }
    }
    /// The page cache page at file page `index`, created zero-filled if the file has none there
    /// yet (`filemap_get_folio` / `shmem_get_folio` with creation; new files read as zeros).
    pub fn find_or_create_page(&self, index: u64, machine: &Machine) -> FrameRef {
        self.punched.lock().remove(index, index + 1);
        self.pages
            .lock()
            .entry(index)
            .or_insert_with(|| machine.alloc_frame())
            .clone()
    }
    /// Does the page cache hold any page of file pages `[first, end)`?
    pub fn has_pages_in(&self, first: u64, end: u64) -> bool {
        if first >= end {
            return false;
        }
        let punched = self.punched.lock();
        self.populated.lock().first_overlap(first, end).is_some()
            || self
                .pages
                .lock()
                .range(first..end)
                .any(|(&i, _)| punched.containing(i).is_none())
    }
    /// A populate faulted file pages `[first, end)` in (`__mm_populate`, `MADV_POPULATE_*`):
    /// they are in the page cache now. The engine makes no frames for them until they are
    /// accessed (each reads as the file does, and a shmem page is created zero-filled), so a
    /// populate of a large range costs one run; only [`Inode::has_pages_in`] (what
    /// `MADV_COLLAPSE` of shmem asks) sees the difference.
    pub fn populated(&self, first: u64, end: u64) {
        self.populated.lock().insert(first, end)
    }
    /// Number of pages in the page cache.
    pub fn cached_pages(&self) -> usize {
        self.pages.lock().len()
    }
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` over file pages `[first, end)`: the data
    /// there is gone and reads as zeros, through every mapping and every process. The kernel
    /// frees the pages and unmaps them everywhere (`unmap_mapping_range`, private copies
    /// excepted), so the next access finds a hole; here the cached frames are zeroed in place,
    /// which every page-table entry still pointing at them sees at once; the page cache counts
    /// them as gone ([`Inode::has_pages_in`]) until they are looked up again.
    pub fn punch_hole(&self, first: u64, end: u64) {
        if first >= end {
            return;
        }
        self.populated.lock().remove(first, end);
        self.punched.lock().insert(first, end);
        for frame in self.pages.lock().range(first..end).map(|(_, f)| f) {
            frame.fill(0, crate::addr::PAGE_SIZE as usize, 0);
        }
    }
    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }
    /// The device of its filesystem.
    pub fn dev(&self) -> DevId {
        self.dev
    }
    /// Its type.
    pub fn kind(&self) -> InodeKind {
        self.kind
    }
    /// `i_size` in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
    /// Sets `i_size` (`ftruncate`).
    pub fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Relaxed)
    }
    /// `IS_APPEND`.
    pub fn is_append_only(&self) -> bool {
        self.append_only
    }
    /// `file_mmap_size_max`: how far a mapping of it may reach (0 = unlimited).
    fn mmap_size_max(&self, fop_flags: FopFlags) -> u64 {
        match self.kind {
            InodeKind::Regular | InodeKind::BlockDevice => MAX_LFS_FILESIZE,
            InodeKind::CharDevice if fop_flags.contains(FopFlags::UNSIGNED_OFFSET) => 0,
            InodeKind::CharDevice => u64::MAX,
        }
    }
}

impl fmt::Debug for Inode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Inode({:x}:{:x} #{} {:?} size {})",
            self.dev.major,
            self.dev.minor,
            self.ino,
            self.kind,
            self.size()
        )
    }
}

/// The open mode (`FMODE_READ`, `FMODE_WRITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode {
    pub read: bool,
    pub write: bool,
}

impl FileMode {
    /// `O_RDWR`.
    pub const READ_WRITE: FileMode = FileMode {
        read: true,
        write: true,
    };
    /// `O_RDONLY`.
    pub const READ_ONLY: FileMode = FileMode {
        read: true,
        write: false,
    };
    /// `O_WRONLY`.
    pub const WRITE_ONLY: FileMode = FileMode {
        read: false,
        write: true,
    };
}

pub use crate::driver::file_ops::{AreaPolicy, FileOperations, FopFlags, LegacyMmap, MmapHook, MmapPrepare};

/// An open file (`struct file`).
pub struct File {
    inode: Arc<Inode>,
    mode: FileMode,
    ops: Arc<dyn FileOperations>,
    path: String,
    noexec: bool,
}

impl File {
    /// Opens `inode` with `mode`; `path` is what `/proc/PID/maps` prints for it (including any
    /// ` (deleted)` suffix), `noexec` whether its mount is `noexec`.
    pub fn new(
        inode: Arc<Inode>,
        mode: FileMode,
        ops: Arc<dyn FileOperations>,
        path: String,
        noexec: bool,
    ) -> Arc<File> {
        Arc::new(File {
            inode,
            mode,
            ops,
            path,
            noexec,
        })
    }

    /// The inode.
    pub fn inode(&self) -> &Arc<Inode> {
        &self.inode
    }
    /// The open mode.
    pub fn mode(&self) -> FileMode {
        self.mode
    }
    /// The operations.
    pub fn ops(&self) -> &Arc<dyn FileOperations> {
        &self.ops
    }
    /// The path as `/proc/PID/maps` prints it.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Is the mount `noexec` (`path_noexec`)?
    pub fn is_noexec(&self) -> bool {
        self.noexec
    }
    /// `file_mmap_ok`: may `[pgoff, pgoff + len)` of this file be mapped at all?
    pub(crate) fn mmap_ok(&self, pgoff: u64, len: u64) -> bool {
        let max = self.inode.mmap_size_max(self.ops.fop_flags());
        if max == 0 {
            return true;
        }
        if len > max {
            return false;
        }
        pgoff <= (max - len) >> crate::addr::PAGE_SHIFT
    }
    /// Same open file (the kernel's `vm_file` pointer comparison)?
    pub fn same(a: &Arc<File>, b: &Arc<File>) -> bool {
        Arc::ptr_eq(a, b)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "File({} {:?} {:?})", self.path, self.mode, self.inode)
    }
}

/// Compares two optional files by identity.
pub(crate) fn same_file(a: Option<&Arc<File>>, b: Option<&Arc<File>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

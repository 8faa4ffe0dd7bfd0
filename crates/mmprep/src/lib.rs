//! mmprep: the Linux mmap layer, rebuilt in userspace, with the `mmap_prepare` driver model as
//! its API.
//!
//! One [`Mm`] is one process's address space, kept exactly as Linux keeps it: the same VMAs,
//! merges, splits, errno values and `/proc/PID/maps` text. Drivers and filesystems map through
//! [`file::FileOperations::mmap_prepare`], which sees a [`desc::VmAreaDesc`] before any merge.
//!
//! | kernel | mmprep |
//! | --- | --- |
//! | `struct mm_struct` | [`Mm`] |
//! | `struct vm_area_struct` | [`vma::Vma`] |
//! | maple tree | [`tree::VmaTree`] |
//! | `struct vm_area_desc` | [`desc::VmAreaDesc`] |
//! | `struct mmap_action` | [`action::MmapAction`] |
//! | (none: the embedder's host memory) | [`backend::Planner`], [`backend::Backend`] |
//! | `vma_flags_t`, `VMA_*_BIT` | [`flags::VmaFlags`], [`flags::VmaBit`] |
//! | `struct vma_merge_struct` | `mm::merge::MergeState` (internal) |
//! | `struct file`, `file_operations` | [`file::File`], [`file::FileOperations`] |
//! | `vm_operations_struct` | [`vma::VmOperations`] |
//! | the syscall ABI (`syscall_64.tbl`, `syscall_32.tbl`, `asm-generic/unistd.h`) | [`abi::syscall`], [`abi::FdTable`] |
//! | `PAGE_SIZE`, `TASK_SIZE`, `arch_pick_mmap_layout` of an architecture | [`arch::Arch`], [`Profile::for_arch`] |
//!
//! The crate is `no_std` (with `alloc`), does no I/O and contains no `unsafe`. Facts about the
//! host (limits, privileges, sysctls) come in as a [`Profile`].
//!
//! # Example
//!
//! Two anonymous mappings side by side become one VMA; a protection change in the middle
//! splits it in three, and changing it back merges them again, as on Linux:
//!
//! ```
//! use mmprep::{Errno, MapFlags, Mm, Profile, Prot, VirtAddr};
//!
//! let mut mm = Mm::new(Profile::reference_host());
//! let base = VirtAddr(0x7000_0000_0000);
//! let anon = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED.0);
//! mm.mmap(base, 0x4000, Prot::RW, anon, None, 0)?;
//! mm.mmap(VirtAddr(base.get() + 0x4000), 0x4000, Prot::RW, anon, None, 0)?;
//! assert_eq!(mm.vmas().count(), 1);
//!
//! mm.mprotect(VirtAddr(base.get() + 0x2000), 0x2000, Prot::READ)?;
//! assert_eq!(
//!     mm.maps(),
//!     "700000000000-700000002000 rw-p 00000000 00:00 0 \n\
//!      700000002000-700000004000 r--p 00000000 00:00 0 \n\
//!      700000004000-700000008000 rw-p 00000000 00:00 0 \n"
//! );
//! mm.mprotect(VirtAddr(base.get() + 0x2000), 0x2000, Prot::RW)?;
//! assert_eq!(mm.vmas().count(), 1);
//!
//! // Bad input is the kernel's errno, with the reason, and changes nothing.
//! let e = mm.munmap(VirtAddr(base.get() + 1), 0x1000).unwrap_err();
//! assert_eq!(e.errno, Errno::EINVAL);
//! assert_eq!(mm.vmas().count(), 1);
//! # Ok::<(), mmprep::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
// The loom model checker (src/sync.rs) needs the standard library.
#[cfg(loom)]
extern crate std;

pub mod abi;
pub mod addr;
pub mod arch;
pub mod backend;
pub mod driver;
pub mod errno;
pub mod events;
pub mod exec;
pub mod file;
pub mod flags;
pub mod mm;
pub mod mmap_layout;
mod pagetable;
pub mod phys;
pub mod procfs;
pub mod profile;
pub mod shmem;
pub mod site;
mod sync;
pub mod tree;
pub mod uapi;
pub mod vma;

pub use driver::{action, desc, legacy};

pub use addr::{PAGE_SIZE, Pfn, PgOff, VirtAddr};
pub use errno::{Errno, Error, Result};
pub use mm::{Access, AccessFault, Mm, NeedsExclusive, Signal};
pub use profile::Profile;
pub use uapi::{MapFlags, Prot};

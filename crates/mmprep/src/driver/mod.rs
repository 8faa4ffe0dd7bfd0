//! The driver model: what a driver or filesystem provides, what it sees, and the one pipeline
//! that runs it.
//!
//! A driver maps its files in two steps the kernel keeps apart: `mmap_prepare` describes the
//! mapping before it exists (and before any merge), and hooks on the VMA (`mapped`, `open`,
//! `close`, `fault`…) follow the VMA afterwards. Rust drivers (`mmprep-drivers`), C drivers
//! (`mmprep-c`) and the legacy `->mmap` compatibility path all go through the same functions
//! here.
//!
//! Mirrors `Documentation/filesystems/mmap_prepare.rst`, `include/linux/mm_types.h` (`struct
//! vm_area_desc`, `struct mmap_action`), `include/linux/fs.h` (`struct file_operations`),
//! `include/linux/mm.h` (`struct vm_operations_struct`) and `mm/util.c` (the action steps and
//! `compat_vma_mmap`), \[H\] 6.18 / \[N\].
//!
//! - [`desc`]: [`desc::VmAreaDesc`], the proposed mapping the hook sees.
//! - [`action`]: [`action::MmapAction`], follow-up work the hook asks for.
//! - [`file_ops`]: [`file_ops::FileOperations`], the file's side.
//! - [`vm_ops`]: [`vm_ops::VmOperations`], the VMA's side.
//! - [`legacy`]: [`legacy::LegacyVma`], the old `->mmap` hook and `compat_vma_mmap`.
//!
//! The old paths (`mmprep::desc`, `mmprep::action`, `mmprep::legacy`, the driver traits in
//! `mmprep::file` and `mmprep::vma`) re-export these.

pub mod action;
pub mod desc;
pub mod file_ops;
pub mod legacy;
pub(crate) mod pipeline;
pub mod vm_ops;

//! Files and drivers for mmprep, written only against its public `mmap_prepare` API.
//!
//! Each module models one real kernel file type or driver, converted to `f_op->mmap_prepare`,
//! and cites the kernel code it follows. They serve two purposes: the scenario runner maps them
//! (`file NAME memfd|tmpfile|zero` lines), and they show a driver author what a converted hook
//! looks like.
//!
//! | module | models | kernel |
//! | --- | --- | --- |
//! | [`zero`] | `/dev/zero` | `drivers/char/mem.c:mmap_zero_prepare` |
//! | [`regular`] | a regular file in the page cache (ext4) | `fs/ext4/file.c:ext4_file_mmap_prepare`, `mm/filemap.c:generic_file_mmap_prepare` |
//! | [`ro`] | a read-only device | `mm/filemap.c:generic_file_readonly_mmap_prepare` |
//! | [`slots`] | a device with a reference per mapping | `drivers/target/target_core_user.c:tcmu_mmap_prepare` |
//! | [`dax`] | a file on a DAX filesystem | `fs/ext4/file.c:ext4_file_mmap_prepare` (DAX branch) |
//! | [`hpet`] | HPET registers | `drivers/char/hpet.c:hpet_mmap_prepare` |
//! | [`mem`] | `/dev/mem` | `drivers/char/mem.c:mmap_mem_prepare` |
//! | [`fb`] | framebuffer video memory | fbdev drivers' `fb_mmap` with `vm_iomap_memory` |
//! | [`ring`] | a ring buffer of kernel pages | perf / io_uring ring mappings |
//! | [`dumpless`] | one device, `mmap_prepare` or legacy `mmap` | the conversion's effect on merging |
//! | [`stack`] | a stacked file over a memfd | `fs/backing-file.c:backing_file_mmap`, `mm/util.c:compat_vma_mmap` |
//!
//! [`registry`] lists the example drivers by the names scenario `driver` files use.
//!
//! memfds are shmem files and come from the engine itself
//! ([`mmprep::shmem::ShmemFs::memfd_create`]), as shared anonymous memory needs shmem too.
#![forbid(unsafe_code)]

pub mod dax;
pub mod dumpless;
pub mod fb;
pub mod hpet;
pub mod mem;
pub mod memory;
pub mod registry;
pub mod regular;
pub mod ring;
pub mod ro;
pub mod slots;
pub mod stack;
pub mod zero;

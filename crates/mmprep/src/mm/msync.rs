//! `msync`: the argument checks and the walk over the range (`mm/msync.c:SYSCALL_DEFINE3(msync)`,
//! \[H\] 6.18).
//!
//! Checks, in the kernel's order:
//! 1. unknown flags, an unaligned `start`, `MS_ASYNC` with `MS_SYNC` → `EINVAL`
//! 2. the rounded-up range wraps → `ENOMEM`; an empty range → `0`
//! 3. the walk: no VMA at or above the current point → `ENOMEM`; a hole before a VMA → plain
//!    `MS_ASYNC` stops with `ENOMEM`, any other flags skip it and remember `ENOMEM` for the end;
//!    `MS_INVALIDATE` on a `VM_LOCKED` VMA → `EBUSY`.
//!
//! Writeback itself (`vfs_fsync_range` for `MS_SYNC` on a shared file VMA) always succeeds
//! here: the engine's page cache has no backing store to fail.

use crate::addr::VirtAddr;
use crate::errno::{Errno, Result, err};
use crate::flags::VmaBit;
use crate::mm::Mm;

/// `MS_ASYNC`, `MS_INVALIDATE`, `MS_SYNC` (`include/uapi/asm-generic/mman-common.h`).
pub const MS_ASYNC: i32 = 1;
pub const MS_INVALIDATE: i32 = 2;
pub const MS_SYNC: i32 = 4;

impl Mm {
    /// `msync(start, len, flags)`. Changes nothing in the address space.
    pub fn msync(&self, start: VirtAddr, len: u64, flags: i32) -> Result<()> {
        if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 {
            return Err(err(Errno::EINVAL, "unknown msync flags"));
        }
        if !self.is_page_aligned(start) {
            return Err(err(Errno::EINVAL, "address is not page aligned"));
        }
        if flags & MS_ASYNC != 0 && flags & MS_SYNC != 0 {
            return Err(err(Errno::EINVAL, "MS_ASYNC and MS_SYNC together"));
        }
        let end = start.0.wrapping_add(self.page_align_wrapping(len));
        if end < start.0 {
            return Err(err(Errno::ENOMEM, "range wraps around the end of the address space"));
        }
        if end == start.0 {
            return Ok(());
        }
        let mut start = start.0;
        let mut unmapped = false;
        loop {
            let Some(vma) = self.tree.find_vma(VirtAddr(start)) else {
                return Err(err(Errno::ENOMEM, "no mapping at or after the range's rest"));
            };
            if start < vma.start().0 {
                if flags == MS_ASYNC {
                    return Err(err(Errno::ENOMEM, "a hole in the range"));
                }
                start = vma.start().0;
                if start >= end {
                    return Err(err(Errno::ENOMEM, "a hole at the end of the range"));
                }
                unmapped = true;
            }
            if flags & MS_INVALIDATE != 0 && vma.test(VmaBit::Locked) {
                return Err(err(Errno::EBUSY, "MS_INVALIDATE on a locked mapping"));
            }
            start = vma.end().0;
            if start >= end {
                return if unmapped {
                    Err(err(Errno::ENOMEM, "a hole in the range"))
                } else {
                    Ok(())
                };
            }
        }
    }
}

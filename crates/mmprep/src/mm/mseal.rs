//! `mseal(2)`: seal every VMA in `[start, start + len)`, so that its mapping can no longer change.
//!
//! A sealed VMA (`VM_SEALED`, `sl` in smaps) refuses everything that would replace, move, resize
//! or reprotect it: `munmap`, `mmap(MAP_FIXED)` over it, `mprotect`, `mremap`, and the madvise
//! advices that discard the data of read-only private anonymous memory. Sealing is one-way: no
//! call removes it, and fork children inherit it. The pages themselves stay readable and
//! writable as their protection says.
//!
//! Mirrors `mm/mseal.c:do_mseal` (argument checks), `range_contains_unmapped` (the up-front hole
//! check) and `mseal_apply` (the walk), host kernel [H] 6.18. Splitting and merging go through
//! [`Mm::vma_modify`] (the kernel's `vma_modify_flags`), so sealing the two halves of a VMA in
//! two calls leaves one sealed VMA.
//!
//! ```text
//!   before   |--------- A rw- ---------|
//!   call           <-- mseal -->
//!   after    |- A -|--- A' sl --|-- A -|     split at both ends; the middle is sealed
//!   call                         <-->        seal the neighbour piece as well
//!   after    |- A -|---- A' sl ------|-A-|   it merges with the sealed piece before it
//! ```
//!
//! Where the refusals live (all [H]): [`Mm::munmap`] and `MAP_FIXED` in the munmap gather,
//! `mprotect_fixup`, and madvise's `can_madvise_modify` (`mm/madvise.rs`). `mlock` and
//! `munlock` ignore seals.
//!
//! # Checks, in the kernel's order (the first failure decides the errno)
//! 1. `flags != 0` → `EINVAL`
//! 2. `start` not page aligned → `EINVAL`
//! 3. `len` rounds up to 0 from a non-zero value, or `start + len` wraps → `EINVAL`
//! 4. `len == 0` → success, nothing changes (even on unmapped memory)
//! 5. any hole in the range, at its start, inside or at its end → `ENOMEM`, nothing sealed
//!
//! Then, VMA by VMA: a split at `max_map_count` → `ENOMEM`.
//!
//! # On failure
//! A hole is found before anything changes. A split refused at the limit stops the walk: the
//! VMAs before it stay sealed (the kernel does not roll back, and neither do we).

use crate::addr::VirtAddr;
use crate::errno::{Errno, Result, err};
use crate::flags::VmaBit;
use crate::mm::Mm;

impl Mm {
    /// `mseal(start, len, flags)`: `flags` must be 0 (no flag is defined).
    pub fn mseal(&mut self, start: VirtAddr, len: u64, flags: u64) -> Result<()> {
        if flags != 0 {
            return Err(err(Errno::EINVAL, "no mseal flags are defined"));
        }
        let end = super::checked_range_end(self, start, len)?;
        if end == start {
            return Ok(());
        }
        if self.range_contains_unmapped(start, end) {
            return Err(err(Errno::ENOMEM, "the range has a hole"));
        }
        self.mseal_apply(start, end)
    }

    /// `range_contains_unmapped`: does any part of `[start, end)` lie outside every VMA?
    fn range_contains_unmapped(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let mut prev_end = start;
        for v in self.tree.range(start, end) {
            if v.start() > prev_end {
                return true;
            }
            prev_end = v.end();
        }
        prev_end < end
    }

    /// `mseal_apply`: set `VM_SEALED` on every VMA of `[start, end)`, splitting at the edges and
    /// merging with sealed neighbours.
    ///
    /// # Preconditions
    /// `[start, end)` is non-empty, page aligned and has no hole.
    fn mseal_apply(&mut self, start: VirtAddr, end: VirtAddr) -> Result<()> {
        debug_assert!(start < end && !self.range_contains_unmapped(start, end));
        let first = self.tree.lookup(start).expect("a range without holes starts in a VMA");
        let mut key = first.start();
        let mut prev = if start > first.start() {
            Some(first.start())
        } else {
            self.tree.prev_before(first.start()).map(|v| v.start())
        };
        loop {
            let vma = self.tree.get(key).expect("VMA in tree");
            // After a merge with the next VMA the walk resumes past it: the range of each VMA
            // is its own part of `[start, end)` (the host merges such a following VMA on its
            // left too, which a stale `curr_start` would prevent).
            let curr_start = vma.start().max(start);
            let curr_end = vma.end().min(end);
            if !vma.is_sealed() {
                let flags = vma.flags();
                let mut sealed = flags;
                sealed.set(VmaBit::Sealed);
                let pos = self.tree.pos_of(key).expect("VMA in tree");
                let mut c = self.vma_modify(prev, pos, curr_start, curr_end, sealed)?;
                // vm_flags_set(vma, VM_SEALED): whatever the merge brought (sticky bits) stays.
                let v = c.get_mut().expect("the VMA covering the range");
                v.set_flag(VmaBit::Sealed);
                key = v.start();
            }
            prev = Some(key);
            let vma_end = self.tree.get(key).expect("VMA in tree").end();
            if vma_end >= end {
                return Ok(());
            }
            // No holes: the next VMA starts where this one ends.
            key = vma_end;
        }
    }
}

//! `munmap(2)`: remove every mapping in `[addr, addr + len)`, splitting VMAs at the edges.
//!
//! Mirrors `mm/vma.c:do_vmi_munmap`, `vms_gather_munmap_vmas`, `vms_complete_munmap_vmas`,
//! `reattach_vmas` ([H] 6.18). The work is done in two steps, which `mmap(MAP_FIXED)` shares:
//! *gather* splits the edge VMAs and detaches everything in the range (and can still be undone),
//! *complete* calls `close`, drops the counters and frees them.
//!
//! ```text
//!   before   |---- A ----|  |-- B --|  |---- C ----|
//!   munmap         <------------------------->
//!   gather   |-A-|^A'----|  |-- B --|  |-C'-|^C----|    split A at start, C at end
//!   after    |-A-|                            |-C-|     A', B, C' detached and freed
//! ```
//!
//! # Checks, in the kernel's order
//! 1. `addr` unaligned, `addr > TASK_SIZE` or `len > TASK_SIZE - addr` → `EINVAL`
//! 2. `len` rounds to 0 → `EINVAL`
//! 3. no VMA in the range → success, nothing changes
//! 4. the first VMA must be split at `addr` *and* also ends after the range (two splits of one
//!    VMA) while `map_count >= max_map_count` → `ENOMEM`; a single edge split is not checked
//! 5. the first VMA is sealed and needs a split → `EPERM`
//! 6. any VMA in the range sealed → `EPERM`
//! 7. `may_split` refuses → its error
//!
//! # On failure
//! Detached VMAs are put back, but a split at `addr` that already happened stays: the kernel
//! leaves that VMA in two pieces with identical attributes, and so does the engine.

use alloc::vec::Vec;

use crate::addr::VirtAddr;
use crate::errno::{Errno, Result, err};
use crate::flags::VmaBit;
use crate::mm::Mm;
use crate::vma::Vma;

/// The VMAs an unmap has detached, and what they held (`struct vma_munmap_struct`).
#[derive(Default)]
pub(crate) struct MunmapGather {
    /// Detached VMAs, lowest first.
    pub detached: Vec<Vma>,
    /// Pages detached.
    pub nr_pages: u64,
    /// Pages of them that were `VM_LOCKED`.
    pub locked_vm: u64,
    /// Pages of them that were `VM_ACCOUNT` (charged).
    pub nr_accounted: u64,
    /// `close` already ran (`vms_clean_up_area`): the VMAs can no longer be put back.
    pub closed: bool,
}

impl Mm {
    /// `munmap(addr, len)`.
    pub fn munmap(&mut self, addr: VirtAddr, len: u64) -> Result<()> {
        let task_size = self.profile.task_size;
        if !self.is_page_aligned(addr) {
            return Err(err(Errno::EINVAL, "address is not page aligned"));
        }
        if addr.0 > task_size || len > task_size - addr.0 {
            return Err(err(Errno::EINVAL, "range reaches past TASK_SIZE"));
        }
        let end = VirtAddr(addr.0 + self.page_align_wrapping(len));
        if end == addr {
            return Err(err(Errno::EINVAL, "length is zero"));
        }
        self.do_munmap(addr, end)
    }

    /// `do_vmi_align_munmap` for an aligned, non-empty, valid range.
    pub(crate) fn do_munmap(&mut self, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let Some(first) = self.tree.find_intersection(start, end) else {
            return Ok(());
        };
        let gather = self.gather_munmap_vmas(first.start(), start, end)?;
        self.complete_munmap_vmas(gather);
        Ok(())
    }

    /// `vms_gather_munmap_vmas`: split the edges and detach every VMA in `[start, end)`.
    ///
    /// # Preconditions
    /// `first` is the start of the first VMA intersecting the range.
    pub(crate) fn gather_munmap_vmas(
        &mut self,
        first: VirtAddr,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Result<MunmapGather> {
        let vma = self.tree.get(first).expect("gather starts at a VMA in the tree");
        debug_assert!(vma.start() < end && vma.end() > start);
        let (f_start, f_end, f_sealed) = (vma.start(), vma.end(), vma.is_sealed());
        if start > f_start {
            // Two splits of one VMA would leave map_count higher than it started.
            if end < f_end && self.map_count() >= self.profile.max_map_count {
                return Err(err(Errno::ENOMEM, "splitting would exceed vm.max_map_count"));
            }
            if f_sealed {
                return Err(err(Errno::EPERM, "the VMA is sealed"));
            }
            // `__split_vma`, unchecked: the munmap lowers the count again.
            self.split_vma_unchecked(f_start, start, true)?;
        }
        let mut g = MunmapGather {
            detached: core::mem::take(&mut self.spare_detached),
            ..MunmapGather::default()
        };
        // The first VMA in the range; after a split at `start` it starts there.
        let mut key = f_start.max(start);
        loop {
            let vma = self.tree.get(key).expect("VMA in tree");
            if vma.is_sealed() {
                self.reattach(g);
                return Err(err(Errno::EPERM, "a VMA in the range is sealed"));
            }
            if vma.end() > end
                && let Err(e) = self.split_vma_unchecked(key, end, false)
            {
                self.reattach(g);
                return Err(e);
            }
            if let Err(e) = self.alloc() {
                // mas_store_gfp into the detached tree.
                self.reattach(g);
                return Err(e);
            }
            let vma = self.tree.remove(key).expect("VMA in tree");
            let vma_end = vma.end();
            let n = vma.pages();
            g.nr_pages += n;
            if vma.test(VmaBit::Locked) {
                g.locked_vm += n;
            }
            if vma.test(VmaBit::Account) {
                g.nr_accounted += n;
            }
            g.detached.push(vma);
            if vma_end >= end {
                break;
            }
            match self.tree.next_from(vma_end) {
                Some(n) if n.start() < end => key = n.start(),
                _ => break,
            }
        }
        Ok(g)
    }

    /// `reattach_vmas`: undo the detaching of a failed gather (its splits stay).
    pub(crate) fn reattach(&mut self, mut g: MunmapGather) {
        debug_assert!(!g.closed, "reattaching VMAs whose close() already ran");
        for v in g.detached.drain(..) {
            self.tree.insert(v);
        }
        self.give_back(g.detached);
    }

    /// Keeps an emptied `detached` vector for the next gather, unless a huge unmap made it big
    /// or it has less room than the spare already kept (mmap completes a gather that never
    /// borrowed the spare: its vector has none).
    fn give_back(&mut self, detached: Vec<Vma>) {
        debug_assert!(detached.is_empty());
        if detached.capacity() <= 64 && detached.capacity() > self.spare_detached.capacity() {
            self.spare_detached = detached;
        }
    }

    /// `vms_clean_up_area`: the page tables of the detached VMAs are cleared (their pages are
    /// gone) and `close` runs on each. From here on they cannot be put back.
    pub(crate) fn clean_up_area(&mut self, g: &mut MunmapGather) {
        if g.closed {
            return;
        }
        for v in &g.detached {
            self.ptes.zap(v.start(), v.end());
            // free_pgtables: the floor and ceiling are the VMAs left on either side.
            // With `v` detached, the first VMA ending above its start is the one after it.
            let (next, prev) = self.tree.find_vma_prev(v.start());
            let floor = prev.map_or(VirtAddr(0), |p| p.end());
            let ceiling = next.map_or(VirtAddr(u64::MAX), |n| n.start());
            self.ptes.free_tables(v.start(), v.end(), floor, ceiling);
        }
        for v in &g.detached {
            self.hook_close(v);
        }
        g.closed = true;
    }

    /// `vms_complete_munmap_vmas`: close (if not yet done), account and free the detached VMAs.
    pub(crate) fn complete_munmap_vmas(&mut self, mut g: MunmapGather) {
        self.clean_up_area(&mut g);
        self.locked_vm -= g.locked_vm;
        for v in &g.detached {
            self.vm_stat_account(v.flags(), -(v.pages() as i64));
        }
        self.uncharge(g.nr_accounted);
        debug_assert_eq!(g.nr_pages, super::total_pages(&g.detached));
        // Dropping the VMAs drops their file references (`remove_vma`); the emptied vector
        // goes back for the next gather.
        g.detached.clear();
        self.give_back(g.detached);
    }
}

//! `munmap(2)`: remove every mapping in `[addr, addr + len)`, splitting VMAs at the edges.
//!
//! Mirrors `mm/vma.c:do_vmi_munmap`, `vms_gather_munmap_vmas`, `vms_complete_munmap_vmas`,
//! `reattach_vmas` ([H] 6.18). The work is done in two steps, which `mmap(MAP_FIXED)` shares:
//! *gather* splits the edge VMAs and detaches everything in the range (and can still be undone),
//! *complete* calls `close`, drops the counters and frees them.
//!
//! The gather works each VMA at one cursor position (`gather_one`): an anonymous VMA the range
//! cuts keeps its outside part in place and only a copy of the inside part is detached, so
//! nothing is inserted into the tree to be taken out again, and the walk notes the neighbours
//! and the page-table floor and ceiling that `clean_up_area` and `mmap` need (issue 8).
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
use crate::mm::split::split_prepare;
use crate::mm::{Mm, alloc_from};
use crate::tree::Cursor;
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
    /// The VMA before the range (`vms->prev`): the start of the last VMA ending at or below
    /// the range's start, once the edges are split.
    pub prev: Option<VirtAddr>,
    /// The end of the VMA before the range, 0 when none (`unmap_start`): page tables below it
    /// stay.
    pub floor: VirtAddr,
    /// The start of the VMA after the range, `u64::MAX` when none (`unmap_end`): page tables
    /// above it stay.
    pub ceiling: VirtAddr,
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

    /// `do_vmi_align_munmap` for an aligned, non-empty, valid range (`do_vmi_munmap` returns
    /// early when no VMA ends above `start`; one that starts at or above `end` leaves nothing
    /// to detach either).
    pub(crate) fn do_munmap(&mut self, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let gather = self.gather_munmap_vmas(start, end)?;
        self.complete_munmap_vmas(gather);
        Ok(())
    }

    /// `vms_gather_munmap_vmas`: split the edges and detach every VMA in `[start, end)`, one VMA
    /// at a time at one cursor position ([`Mm::gather_one`]), and note the addresses the page
    /// tables may be freed between (the end of the VMA before the range, the start of the one
    /// after it: the kernel's `unmap_start`/`unmap_end`).
    ///
    /// When no VMA intersects `[start, end)` nothing changes and the gather is empty.
    ///
    /// # On failure
    /// The detached VMAs are put back; a split that already happened stays (see the module doc).
    pub(crate) fn gather_munmap_vmas(&mut self, start: VirtAddr, end: VirtAddr) -> Result<MunmapGather> {
        let mut g = MunmapGather {
            detached: core::mem::take(&mut self.spare_detached),
            ..MunmapGather::default()
        };
        // The first VMA in the range is the first one ending above `start`; each next one is the
        // first ending above the end of the one just detached.
        let mut key = start;
        loop {
            match self.gather_one(&mut g, key, start, end) {
                Ok(Some(next)) if next < end => key = next,
                Ok(next) => {
                    g.ceiling = next.unwrap_or(VirtAddr(u64::MAX));
                    return Ok(g);
                }
                Err(e) => {
                    self.reattach(g);
                    return Err(e);
                }
            }
        }
    }

    /// One step of `vms_gather_munmap_vmas`' walk: the VMA at the first position ending above
    /// `key` is split where the range cuts it (at `start` below, `end` above) and its part in the
    /// range detached into `g`. Returns the start of the VMA after it (none at the end of the
    /// tree).
    ///
    /// An anonymous VMA (no driver, so no `may_split` or `open` to call) is split and detached
    /// at one cursor without inserting the piece that goes: the piece that stays is moved in
    /// place and a copy of the other is detached (the two `__split_vma` and the detach of the
    /// kernel, in one tree change). The allocations the kernel makes on the way
    /// (`vm_area_dup` and `vma_iter_prealloc` per split, `mas_store_gfp` per detach) are taken
    /// from the test switch in the kernel's order; when one fails, the splits the kernel has
    /// done by then are made for real, so the address space is left as the kernel leaves it.
    ///
    /// ```text
    ///  cut below and above    |AAAA|dd|AAAA|   A moves up to start at `end`; the piece below
    ///                                          is inserted before it
    ///  cut below              |AAAA|dddddd|    A shrinks to below `start`
    ///  cut above              |dddd|AAAAAA|    A moves up to start at `end`
    ///  whole                  |dddddddd|       A is removed at the cursor
    /// ```
    ///
    /// A VMA with a driver is split by `__split_vma` ([`Mm::split_vma_unchecked`], which calls
    /// the hooks) and the step starts again on the piece that is left.
    ///
    /// Returns `None` and changes nothing when no VMA ending above `key` starts below `end`
    /// (which only the first step can meet).
    ///
    /// # Preconditions
    /// `key <= start`, or the VMAs before `key` in the range are already detached.
    fn gather_one(
        &mut self,
        g: &mut MunmapGather,
        key: VirtAddr,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Result<Option<VirtAddr>> {
        let map_count = self.map_count();
        let max_map_count = self.profile.max_map_count;
        let fail_alloc_in = &mut self.fail_alloc_in;
        let ptes = &self.ptes;
        let mut c = self.tree.cursor(key);
        let Some(v) = c.get().filter(|v| v.start() < end) else {
            // Nothing (more) in the range: only the first step can get here.
            debug_assert!(g.detached.is_empty());
            return Ok(None);
        };
        let (vs, ve, pgoff) = (v.start(), v.end(), v.pgoff());
        debug_assert!(ve > start, "{v:?} is not in [{start:?}, {end:?})");
        let cut_below = vs < start;
        let cut_above = ve > end;
        // Two splits of one VMA would leave map_count higher than it started.
        if cut_below && cut_above && map_count >= max_map_count {
            return Err(err(Errno::ENOMEM, "splitting would exceed vm.max_map_count"));
        }
        if v.is_sealed() {
            return Err(err(Errno::EPERM, "a VMA in the range is sealed"));
        }
        if (cut_below || cut_above) && v.ops().driver().is_some() {
            // `__split_vma` with its hooks, then the step again on what is left in the range.
            let (addr, new_below) = if cut_below { (start, true) } else { (end, false) };
            self.split_vma_unchecked(vs, addr, new_below)?;
            return self.gather_one(g, if cut_below { start } else { key }, start, end);
        }
        let mut detached = v.clone();
        if g.detached.is_empty() {
            // vms->prev and unmap_start: the VMA before the range (after a split at `start`, the
            // piece below it) and its end.
            (g.prev, g.floor) = if cut_below {
                (Some(vs), start)
            } else {
                c.peek_prev()
                    .map_or((None, VirtAddr(0)), |p| (Some(p.start()), p.end()))
            };
        }
        let (lo, hi) = (vs.max(start), ve.min(end));
        detached.set_bounds(lo, hi, pgoff.add(lo.pages_from(vs)));
        // The allocations of the kernel's path, in its order; `split` says how far it got.
        let mut split = (false, false);
        let mut step = || -> Result<()> {
            if cut_below {
                split_prepare(fail_alloc_in, ptes, start)?;
                split.0 = true;
            }
            if cut_above {
                split_prepare(fail_alloc_in, ptes, end)?;
                split.1 = true;
            }
            alloc_from(fail_alloc_in) // mas_store_gfp into the detached tree
        };
        if let Err(e) = step() {
            // Leave the splits that happened, as the kernel does.
            if split.0 {
                split_at(&mut c, start);
            }
            if split.1 {
                // After a split at `start` the cursor is at the piece above it.
                split_at(&mut c, end);
            }
            return Err(e);
        }
        // INVARIANT: what stays of the VMA covers its range outside `[start, end)`, and only that.
        let next = match (cut_below, cut_above) {
            (false, false) => {
                c.remove();
                c.get().map(Vma::start)
            }
            (true, false) => {
                c.set_range(vs, start, pgoff);
                c.next().map(Vma::start)
            }
            (false, true) => {
                c.set_range(end, ve, pgoff.add(end.pages_from(vs)));
                Some(end)
            }
            (true, true) => {
                // The lower piece is the new VMA and the upper one keeps the slot, so the
                // leaf's highest end stays (the kernel makes the upper piece the new one; the
                // two are the same VMA but for their ranges).
                let mut lower = detached.clone();
                lower.set_bounds(vs, start, pgoff);
                c.set_range(end, ve, pgoff.add(end.pages_from(vs)));
                c.insert_before(lower);
                Some(end)
            }
        };
        let n = detached.pages();
        g.nr_pages += n;
        if detached.test(VmaBit::Locked) {
            g.locked_vm += n;
        }
        if detached.test(VmaBit::Account) {
            g.nr_accounted += n;
        }
        g.detached.push(detached);
        Ok(next)
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
    #[inline]
    fn give_back(&mut self, detached: Vec<Vma>) {
        debug_assert!(detached.is_empty());
        if detached.capacity() <= 64 && detached.capacity() > self.spare_detached.capacity() {
            self.spare_detached = detached;
        }
    }

    /// `vms_clean_up_area`: the page tables of the detached VMAs are cleared (their pages are
    /// gone) and `close` runs on each. From here on they cannot be put back.
    #[inline]
    pub(crate) fn clean_up_area(&mut self, g: &mut MunmapGather) {
        if g.closed {
            return;
        }
        for v in &g.detached {
            self.ptes.zap(v.start(), v.end());
            // free_pgtables: the floor and ceiling are the VMAs left on either side, as the
            // gather found them.
            self.ptes.free_tables(v.start(), v.end(), g.floor, g.ceiling);
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

/// `__split_vma`'s commit at the cursor's VMA, for a gather that fails after the split (the
/// kernel keeps the split): the lower piece is moved in place and the upper one inserted after
/// it, and the cursor moves to the upper one.
fn split_at(c: &mut Cursor<'_>, addr: VirtAddr) {
    let (start, end, pgoff) = {
        let v = c.get().expect("VMA in tree");
        (v.start(), v.end(), v.pgoff())
    };
    debug_assert!(start < addr && addr < end);
    let mut upper = c.set_range(start, addr, pgoff).clone();
    upper.set_bounds(addr, end, pgoff.add(addr.pages_from(start)));
    c.insert_after(upper);
}

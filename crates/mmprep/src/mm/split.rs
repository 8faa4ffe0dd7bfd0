//! Splitting a VMA in two, and the driver hooks that go with VMAs coming and going.
//!
//! Any operation on part of a VMA (unmapping a page in the middle, changing the protection of a
//! prefix) first splits it, so that the part becomes a VMA of its own. The new piece is a copy
//! with the same file, anon_vma and driver data; the driver may refuse the split (`may_split`)
//! and is told about the new piece (`open`).
//!
//! Mirrors `mm/vma.c:__split_vma` and `split_vma` ([H] 6.18):
//!
//! ```text
//!   new_below = true           new_below = false
//!   |nnnn|vvvvvvv|             |vvvv|nnnnnnn|
//!        ^ addr                     ^ addr
//! ```
//!
//! The upper piece's file offset moves up by the pages below `addr`. `split_vma` refuses with
//! `ENOMEM` once `map_count >= max_map_count`; `__split_vma` (used where the operation will lower
//! the count again, such as munmap of a head or tail) does not check.

use crate::addr::VirtAddr;
use crate::errno::{Errno, Result, err};
use crate::events::Event;
use crate::mm::{Mm, alloc_from};
use crate::pagetable::PageTable;
use crate::tree::{Cursor, VmaPos};
use crate::vma::{VmHooks, Vma};

impl Mm {
    /// `split_vma` of the VMA at `pos`: `__split_vma` after the `map_count` check. Returns the
    /// position of the upper piece; the lower one is right before it.
    ///
    /// # Preconditions
    /// As [`Mm::split_vma_unchecked`].
    ///
    /// # On failure
    /// `ENOMEM` at `max_map_count`, or `__split_vma`'s error; nothing changed.
    pub(crate) fn split_vma(&mut self, pos: VmaPos, addr: VirtAddr, new_below: bool) -> Result<VmaPos> {
        if self.map_count() >= self.profile.max_map_count {
            return Err(err(Errno::ENOMEM, "splitting would exceed vm.max_map_count"));
        }
        self.split_vma_unchecked_at(pos, addr, new_below)
    }

    /// `vma_modify`'s `split_vma(start)` then `split_vma(end)` for `[start, end)` strictly inside
    /// the VMA at `pos`, the range ending up a VMA of its own between the two others. Returns a
    /// cursor at it.
    ///
    /// An anonymous VMA (no driver hooks) is cut in three at once, when nothing can fail
    /// between the two splits (the `map_count` check passes for both, and the test switch is
    /// off): one move in the leaf. Otherwise the two splits run one after the other, so a
    /// failure of the second leaves the first in place, as in the kernel.
    ///
    /// # Preconditions
    /// `pos` is current; its VMA contains `[start, end)` with room on both sides.
    ///
    /// # On failure
    /// As two [`Mm::split_vma`] calls: `ENOMEM` from the second keeps the first split.
    pub(crate) fn split_vma_twice(&mut self, pos: VmaPos, start: VirtAddr, end: VirtAddr) -> Result<Cursor<'_>> {
        let v = self.tree.vma_at(pos);
        debug_assert!(v.start() < start && start < end && end < v.end());
        if v.ops().driver().is_some()
            || self.fail_alloc_in.is_some()
            || self.map_count() + 1 >= self.profile.max_map_count
        {
            let upper = self.split_vma(pos, start, true)?;
            let upper = self.split_vma(upper, end, false)?;
            let mut c = self.tree.cursor_at(upper);
            c.prev();
            return Ok(c);
        }
        // vma_adjust_trans_huge at both new boundaries.
        self.ptes.split_huge_at(start);
        self.ptes.split_huge_at(end);
        let mut c = self.tree.cursor_at(pos);
        let v = c.get().expect("VMA in tree");
        let (v_start, v_end, v_pgoff) = (v.start(), v.end(), v.pgoff());
        let mut mid = v.clone();
        mid.set_bounds(start, end, v_pgoff.add(start.pages_from(v_start)));
        let mut upper = v.clone();
        upper.set_bounds(end, v_end, v_pgoff.add(end.pages_from(v_start)));
        // INVARIANT: the three pieces cover exactly the old range and do not overlap.
        c.split_off_two(mid, upper);
        Ok(c)
    }

    /// `__split_vma`: splits the VMA starting at `key` at `addr`. With `new_below` the new VMA is
    /// the part below `addr` (the original keeps the upper part), otherwise the part above.
    ///
    /// # Preconditions
    /// The VMA at `key` contains `addr`, strictly after its start.
    ///
    /// # On failure
    /// `may_split`'s error or `ENOMEM` (allocation); nothing changed.
    pub(crate) fn split_vma_unchecked(&mut self, key: VirtAddr, addr: VirtAddr, new_below: bool) -> Result<()> {
        let pos = self.tree.pos_of(key).expect("split of a VMA that is not in the tree");
        self.split_vma_unchecked_at(pos, addr, new_below).map(|_| ())
    }

    /// [`Mm::split_vma_unchecked`] of the VMA at `pos`, without a look-up when the VMA has no
    /// driver. Returns the position of the upper piece (the lower one is right before it).
    ///
    /// # Preconditions
    /// `pos` is current; its VMA contains `addr`, strictly after its start.
    ///
    /// # On failure
    /// `may_split`'s error or `ENOMEM` (allocation); nothing changed.
    pub(crate) fn split_vma_unchecked_at(&mut self, pos: VmaPos, addr: VirtAddr, new_below: bool) -> Result<VmaPos> {
        let fail_alloc_in = &mut self.fail_alloc_in;
        let mut c = self.tree.cursor_at(pos);
        let vma = c.get().expect("split of a VMA that is not in the tree");
        let key = vma.start();
        debug_assert!(
            vma.start() < addr && addr < vma.end() && addr.is_page_aligned(),
            "split {vma:?} at {addr:?}"
        );
        // Anonymous memory has no driver: no hook to call, and the cursor stays where it is.
        let Some(hooks) = vma.ops().driver().map(|o| o.hooks()) else {
            split_prepare(fail_alloc_in, &self.ptes, addr)?;
            return Ok(split_at(&mut c, addr));
        };
        if hooks.contains(VmHooks::MAY_SPLIT) {
            self.hook_may_split(key, addr)?;
        }
        split_prepare(&mut self.fail_alloc_in, &self.ptes, addr)?;
        // The hooks need all of `Mm`, so the driver's case looks its VMA up by start.
        split_at(&mut self.tree.cursor(key), addr);
        let new_key = if new_below { key } else { addr };
        if hooks.contains(VmHooks::OPEN) {
            self.hook_open(new_key);
        }
        Ok(self.tree.pos_of(addr).expect("the upper piece"))
    }

    /// Calls `may_split` if the VMA's driver has it.
    pub(crate) fn hook_may_split(&mut self, key: VirtAddr, addr: VirtAddr) -> Result<()> {
        let vma = self.tree.get(key).expect("VMA in tree");
        let Some(ops) = vma.ops().driver() else {
            return Ok(());
        };
        let Some(hook) = ops.may_split() else {
            return Ok(());
        };
        let result = hook.may_split(vma, addr);
        let (name, start, end) = (ops.ops_name(), vma.start(), vma.end());
        self.events.push(|| Event::MaySplit {
            ops: name,
            start,
            end,
            addr,
            result: result.map_err(|e| e.errno),
        });
        result
    }

    /// Calls `open` on the VMA at `key` if its driver has it.
    pub(crate) fn hook_open(&mut self, key: VirtAddr) {
        let vma = self.tree.get(key).expect("VMA in tree");
        if let Some(ops) = vma.ops().driver()
            && let Some(hook) = ops.open()
        {
            let mark = self.events.mark();
            hook.open(vma);
            let (name, start, end) = (ops.ops_name(), vma.start(), vma.end());
            self.events.insert_at(mark, || Event::Open { ops: name, start, end });
        }
    }

    /// `mm/internal.h:vma_close`: calls `close` once on a VMA that is going away. The kernel then
    /// swaps in dummy ops so it cannot run twice; here the VMA is consumed by the caller.
    pub(crate) fn hook_close(&mut self, vma: &Vma) {
        if let Some(ops) = vma.ops().driver()
            && let Some(hook) = ops.close()
        {
            let mark = self.events.mark();
            hook.close(vma);
            let (name, start, end) = (ops.ops_name(), vma.start(), vma.end());
            self.events.insert_at(mark, || Event::Close { ops: name, start, end });
        }
    }
}

/// What `__split_vma` does before it changes the tree, in its order: `vm_area_dup` and
/// `vma_iter_prealloc` (each may fail with `ENOMEM`, here through the test switch), then
/// `vma_adjust_trans_huge`, which splits a huge block the new boundary at `addr` cuts. Every
/// split path (a split at a cursor, the munmap gather's cuts) goes through it.
pub(crate) fn split_prepare(fail_alloc_in: &mut Option<u32>, ptes: &PageTable, addr: VirtAddr) -> Result<()> {
    alloc_from(fail_alloc_in)?; // vm_area_dup
    alloc_from(fail_alloc_in)?; // vma_iter_prealloc
    ptes.split_huge_at(addr);
    Ok(())
}

/// The commit of `__split_vma` at the cursor's VMA: the piece that keeps its start is changed in
/// place, the other is a copy inserted after it, both at one position (no look-up by start).
/// Both pieces are the same VMA but for their ranges, so which one "is" the original only
/// decides where `open` is called. Returns the upper piece's position (the cursor stays there).
fn split_at(c: &mut Cursor<'_>, addr: VirtAddr) -> VmaPos {
    let v = c.get().expect("VMA in tree");
    let mut upper = v.clone();
    upper.set_bounds(addr, v.end(), v.pgoff().add(addr.pages_from(v.start())));
    // INVARIANT: the two pieces cover exactly the old range and do not overlap.
    c.split_off(upper);
    c.pos().expect("the upper piece")
}

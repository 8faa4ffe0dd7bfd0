//! Merging VMAs: when a new or changed range can join its neighbours instead of standing alone.
//!
//! The kernel keeps the number of VMAs low by merging: a new mapping that continues its
//! neighbour (same flags, same file, contiguous file offset, compatible anon_vma) extends that
//! neighbour instead of adding a VMA, and a range whose flags change (mprotect, mlock, madvise)
//! is folded into a neighbour whose flags it now matches. Everything about merging is decided
//! here, in one place, for every system call.
//!
//! Mirrors `mm/vma.c` (\[H\] 6.18 with the 6.17 anon_vma rules; `docs/reference/vma-rules.md`
//! section 2): `is_mergeable_vma`, `is_mergeable_anon_vma`, `can_vma_merge_before` / `_after`,
//! `can_vma_merge_left` / `_right`, `can_merge_remove_vma`, `vma_merge_new_range`,
//! `vma_merge_existing_range`, `vma_modify`.
//!
//! One `MergeState` (the kernel's `struct vma_merge_struct`) carries an operation from start to
//! outcome: the proposed range and attributes, its neighbourhood (prev | middle | next) and the
//! result. Only two entry points use it: `Mm::merge_new_range` and `Mm::vma_modify`.
//!
//! Not modelled, because nothing can set them yet and they are therefore always equal: memory
//! policy, userfaultfd context, anonymous VMA name.

use alloc::sync::Arc;

use crate::addr::{PgOff, VirtAddr};
use crate::errno::Result;
use crate::file::{File, same_file};
use crate::flags::{self, VmaFlags};
use crate::mm::Mm;
use crate::tree::{Cursor, VmaPos};
use crate::vma::{AnonVmaRef, Vma};

/// How a merge attempt ended (`enum vma_merge_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Not tried yet.
    Start,
    /// Tried; nothing merged.
    NoMerge,
    /// Merged: the surviving VMA now starts here.
    Success(VirtAddr),
    /// An allocation failed part-way (`VMA_MERGE_ERROR_NOMEM`).
    ErrorNoMem,
}

/// One merge operation (`struct vma_merge_struct`).
///
/// # Invariants
/// `start < end`, page aligned; `prev` ends at or below `start` unless it is `middle` itself;
/// `next` (when set by the merge code) starts at or above `end`.
#[derive(Clone, Debug)]
pub(crate) struct MergeState {
    /// The proposed range.
    pub start: VirtAddr,
    pub end: VirtAddr,
    /// Its file page offset.
    pub pgoff: PgOff,
    /// Its flags (for a modification: the new flags).
    pub flags: VmaFlags,
    /// Its file.
    pub file: Option<Arc<File>>,
    /// Its anon_vma: none for a new mapping; the middle VMA's for a modification; the source
    /// VMA's for an mremap copy ([`MergeState::copied_range`]).
    pub anon: Option<AnonVmaRef>,
    /// The VMA before the range (for a modification starting inside `middle`: `middle`).
    pub prev: Option<VirtAddr>,
    /// The VMA being modified (none for a new range).
    pub middle: Option<VirtAddr>,
    /// The VMA after the range.
    pub next: Option<VirtAddr>,
    /// brk-style: only try to extend `prev` (`vmg->just_expand`, set by `mm/vma.c:do_brk_flags`
    /// alone, as here by `Mm::brk`).
    pub just_expand: bool,
    /// The result.
    pub outcome: MergeOutcome,
}

impl MergeState {
    /// The state for a new range between `prev` and `next` (`VMG_MMAP_STATE`).
    pub fn new_range(
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        flags: VmaFlags,
        file: Option<Arc<File>>,
        prev: Option<VirtAddr>,
        next: Option<VirtAddr>,
    ) -> MergeState {
        MergeState {
            start,
            end,
            pgoff,
            flags,
            file,
            anon: None,
            prev,
            middle: None,
            next,
            just_expand: false,
            outcome: MergeOutcome::Start,
        }
    }

    /// The state for `mremap`'s copy of `src` to the new range `[start, end)` between `prev` and
    /// `next` (`mm/vma.c:copy_vma`, `VMG_VMA_STATE` with no middle; newer kernels name it
    /// `vma_merge_copied_range`): the proposal has the source's flags and file and carries its
    /// anon_vma, so a neighbour is judged against the copied-from VMA (a fork child's anon_vma
    /// never moves into an unfaulted neighbour) and the survivor of a merge adopts it.
    pub fn copied_range(
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        src: &Vma,
        prev: Option<VirtAddr>,
        next: Option<VirtAddr>,
    ) -> MergeState {
        MergeState {
            anon: src.anon_vma(),
            ..MergeState::new_range(start, end, pgoff, src.flags(), src.file().cloned(), prev, next)
        }
    }

    fn pglen(&self) -> u64 {
        self.end.pages_from(self.start)
    }
}

/// Do the attributes of neighbour `v` match the proposal (`is_mergeable_vma`)? Compared, in the
/// kernel's order: memory policy (not modelled), flags ignoring the sticky ones, the file (same
/// open file object), userfaultfd context and anon name (not modelled).
fn attrs_compatible(v: &Vma, vmg: &MergeState, sticky: VmaFlags) -> bool {
    v.flags().diff(vmg.flags).without(sticky).is_empty() && same_file(v.file(), vmg.file.as_ref())
}

/// `is_mergeable_anon_vma` (6.17+): may the proposal's anon_vma and neighbour `tgt`'s live in one
/// VMA? The proposal's anon_vma comes from the VMA being modified, or copied by mremap, so a
/// forked source is recognised by its chain (for a copy: the copied-from check, H on 6.18.44).
///
/// | proposal | neighbour | mergeable |
/// | --- | --- | --- |
/// | none | none | yes |
/// | `a` | none | unless the source VMA is a fork child (the neighbour would adopt `a`) |
/// | none | `b` | unless the neighbour is a fork child |
/// | `a` | `b` | only if `a == b` |
fn anon_compatible(src: Option<AnonVmaRef>, tgt: Option<AnonVmaRef>) -> bool {
    match (src, tgt) {
        (None, None) => true,
        (Some(a), None) => !a.is_fork_child(),
        (None, Some(b)) => !b.is_fork_child(),
        (Some(a), Some(b)) => a.id == b.id,
    }
}

/// `are_anon_vmas_compatible(prev, next)`: when both sides merge, prev's and next's anon_vmas
/// must agree with each other too.
fn anon_pair_compatible(a: Option<AnonVmaRef>, b: Option<AnonVmaRef>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.id == b.id,
        _ => true,
    }
}

/// `can_vma_merge_after` + `can_vma_merge_left`: may the proposal join `prev` on its left?
/// The callers look `prev` and `next` up once and pass them to both checks.
fn can_merge_left(prev: Option<&Vma>, vmg: &MergeState, sticky: VmaFlags) -> bool {
    let Some(prev) = prev else {
        return false;
    };
    prev.end() == vmg.start
        && attrs_compatible(prev, vmg, sticky)
        && anon_compatible(vmg.anon, prev.anon_vma())
        && prev.pgoff().add(prev.pages()) == vmg.pgoff
}

/// `can_vma_merge_before` + `can_vma_merge_right`: may the proposal join `next` on its right?
/// When it also joins `prev`, prev and next must be anon-compatible with each other.
fn can_merge_right(
    next: Option<&Vma>,
    prev: Option<&Vma>,
    vmg: &MergeState,
    merge_left: bool,
    sticky: VmaFlags,
) -> bool {
    let Some(next) = next else {
        return false;
    };
    if next.start() != vmg.end
        || !attrs_compatible(next, vmg, sticky)
        || !anon_compatible(vmg.anon, next.anon_vma())
        || next.pgoff() != vmg.pgoff.add(vmg.pglen())
    {
        return false;
    }
    if !merge_left {
        return true;
    }
    anon_pair_compatible(prev.and_then(|p| p.anon_vma()), next.anon_vma())
}

/// `can_merge_remove_vma`: a VMA whose driver has `close` may not be deleted by a merge.
fn can_remove(v: &Vma) -> bool {
    !v.ops().has_close()
}

impl Mm {
    fn sticky(&self) -> VmaFlags {
        flags::sticky_flags(self.profile.soft_dirty)
    }

    /// `mm/vma.c:vma_merge_new_range`: try to place the new range `[start, end)` into `prev`
    /// and/or `next` instead of a VMA of its own.
    ///
    /// ```text
    ///  (a) left only      PPPP|rrrr|          -> PPPPPPPPP         prev grows
    ///  (b) right only         |rrrr|NNNN      -> NNNNNNNNN         next grows down
    ///  (c) both           PPPP|rrrr|NNNN      -> PPPPPPPPPPPPPP    prev grows over r and N
    ///  (d) both, but N has close() -> (a)
    /// ```
    ///
    /// Returns the surviving VMA's start, or `None` (then `vmg.outcome` says why).
    ///
    /// # Preconditions
    /// No VMA overlaps `[start, end)`; `prev`/`next` are the VMAs around that gap.
    pub(crate) fn merge_new_range(&mut self, vmg: &mut MergeState) -> Option<VirtAddr> {
        debug_assert!(vmg.middle.is_none() && vmg.start < vmg.end);
        debug_assert!(self.tree.find_intersection(vmg.start, vmg.end).is_none());
        vmg.outcome = MergeOutcome::NoMerge;
        if vmg.flags.test_any(flags::SPECIAL) || (vmg.prev.is_none() && vmg.next.is_none()) {
            return None;
        }
        let sticky = self.sticky();
        // One cursor at the gap: the first VMA ending above `start` is the one after the gap,
        // the one before it is before the gap. Only the caller's neighbours may merge.
        let ptes = &mut self.ptes;
        let fail_alloc_in = &mut self.fail_alloc_in;
        let mut c = self.tree.cursor(vmg.start);
        let next_vma = c.get().filter(|n| Some(n.start()) == vmg.next);
        let prev_vma = c.peek_prev().filter(|p| Some(p.start()) == vmg.prev);
        let merge_left = can_merge_left(prev_vma, vmg, sticky);
        let mut merge_right = !vmg.just_expand && can_merge_right(next_vma, prev_vma, vmg, merge_left, sticky);
        if merge_left && merge_right && !next_vma.is_some_and(can_remove) {
            merge_right = false;
        }
        if !merge_left && !merge_right {
            return None;
        }
        // vma_expand may need a tree node; when it cannot have one the merge fails with
        // VMA_MERGE_ERROR_NOMEM, which each caller judges (brk fails with ENOMEM, mmap_region
        // and copy_vma go on to allocate a VMA of their own).
        if super::alloc_from(fail_alloc_in).is_err() {
            vmg.outcome = MergeOutcome::ErrorNoMem;
            return None;
        }
        let survivor = if merge_left {
            let mut end = vmg.end;
            let mut extra_sticky = vmg.flags.and(sticky);
            let mut next_anon = None;
            if merge_right {
                // (c): prev absorbs the range and next; next's anon_vma and sticky bits move over.
                let next = c.remove();
                debug_assert!(can_remove(&next), "a merge deleted {next:?}, which has close()");
                end = next.end();
                extra_sticky = extra_sticky.with(next.flags().and(sticky));
                next_anon = next.anon_vma();
            }
            let p = c.prev().expect("left merge has a prev");
            let (p_start, p_pgoff) = (p.start(), p.pgoff());
            // INVARIANT: prev grows over the gap (and the next VMA it swallowed) only.
            let p = c.set_range(p_start, end, p_pgoff);
            dup_anon_vma(p, next_anon);
            p.set_flag_bits(extra_sticky);
            p_start
        } else {
            // (b): next grows down over the range and takes its pgoff.
            let n_end = c.get().expect("right merge has a next").end();
            // vma_adjust_trans_huge at the new boundary.
            ptes.split_huge_at(vmg.start);
            ptes.split_huge_at(n_end);
            // INVARIANT: next grows down over the gap only.
            let n = c.set_range(vmg.start, n_end, vmg.pgoff);
            n.set_flag_bits(vmg.flags.and(sticky));
            vmg.start
        };
        // vma_expand: dup_anon_vma(target, vmg->copied_from). A copied range brings the anon_vma
        // of the VMA it was copied from, and the survivor must own it to keep the moved pages
        // reachable (H: a written page moved next to an unwritten VMA makes the merged VMA keep
        // `ac` through mprotect(r--)). A new mmap range carries none, so this is a no-op there.
        // The cursor is at the survivor in both branches.
        dup_anon_vma(c.get_mut().expect("the survivor"), vmg.anon);
        vmg.outcome = MergeOutcome::Success(survivor);
        Some(survivor)
    }

    /// `mm/vma.c:vma_merge_existing_range`: `[start, end)` of the VMA `middle` is getting
    /// `vmg.flags`; fold it into `prev` and/or `next` if they now match.
    ///
    /// ```text
    ///  whole M, both      PPPP|****|NNNN   -> PPPPPPPPPPPP        P extends to N.end; M, N deleted
    ///  whole M, left      PPPP|****|xxxx   -> PPPPPPPP|xxxx       P extends to M.end; M deleted
    ///  whole M, right     xxxx|****|NNNN   -> xxxx|NNNNNNNN       N extends down; M deleted
    ///  left part, left    PPPP|**MM|xxxx   -> PPPPPP|MM|xxxx      P grows to e; M starts at e
    ///  right part, right      |MM**|NNNN   ->     |MM|NNNNNN      N starts at s; M ends at s
    ///  inner part             |M**M|       ->     never merges
    /// ```
    ///
    /// Decides and commits at one cursor at `middle` (prev and next are the VMAs beside it),
    /// with no look-up at all: the caller's position of `middle` is where it starts. Returns
    /// the position of the VMA now covering `[start, end)` (with its flags *not yet* rewritten:
    /// the caller does that), or, when nothing merged, `middle`'s (then `vmg.outcome` says why:
    /// `NoMerge`, or `ErrorNoMem` when the tree node could not be had); and `middle`'s end.
    ///
    /// # Preconditions
    /// `vmg.middle` is the VMA at `pos`, which contains `[vmg.start, vmg.end)`.
    fn merge_existing_range(&mut self, vmg: &mut MergeState, pos: VmaPos) -> (VmaPos, VirtAddr) {
        let middle_key = vmg.middle.expect("a modification has a middle VMA");
        let sticky = self.sticky();
        vmg.outcome = MergeOutcome::NoMerge;
        let ptes = &mut self.ptes;
        let fail_alloc_in = &mut self.fail_alloc_in;
        let mut c = self.tree.cursor_at(pos);
        let m = c.get().expect("vma_modify of a VMA that is not in the tree");
        let (m_start, m_end, m_pgoff, m_anon, m_close) =
            (m.start(), m.end(), m.pgoff(), m.anon_vma(), m.ops().has_close());
        debug_assert!(m_start == middle_key, "the position of {middle_key:?} holds {m:?}");
        debug_assert!(m_start <= vmg.start && vmg.end <= m_end && vmg.start < vmg.end);
        // The proposal is the middle VMA's part with the new flags.
        vmg.pgoff = m_pgoff.add(vmg.start.pages_from(m_start));
        vmg.file = m.file().cloned();
        vmg.anon = m_anon;
        let left_side = vmg.start == m_start;
        let right_side = vmg.end == m_end;
        if vmg.flags.test_any(flags::SPECIAL) || (!left_side && !right_side) {
            return (pos, m_end);
        }
        // prev matters only when the range starts at middle's start, and only the caller's prev
        // (the VMA just before middle) can merge.
        let prev_vma = if left_side {
            c.peek_prev().filter(|p| Some(p.start()) == vmg.prev)
        } else {
            None
        };
        let merge_left = left_side && can_merge_left(prev_vma, vmg, sticky);
        let mut merge_right = false;
        let mut next_removable = false;
        if right_side {
            // Only a VMA starting right at the end can merge.
            let next_vma = c.peek_next().filter(|n| n.start() == m_end);
            vmg.next = next_vma.map(|v| v.start());
            merge_right = can_merge_right(next_vma, prev_vma, vmg, merge_left, sticky);
            next_removable = next_vma.is_some_and(can_remove);
        }
        if !merge_left && !merge_right {
            return (pos, m_end);
        }
        let remove_middle = left_side && right_side;
        if remove_middle && m_close {
            return (pos, m_end);
        }
        let mut merge_both = merge_left && merge_right;
        if merge_both && !next_removable {
            merge_both = false;
            merge_right = false;
        }
        // The tree node the commit may need (vma_iter_prealloc), taken while the cursor stays.
        if super::alloc_from(fail_alloc_in).is_err() {
            vmg.outcome = MergeOutcome::ErrorNoMem;
            return (pos, m_end);
        }
        let mut sticky_bits = vmg.flags.and(sticky);
        // vma_adjust_trans_huge: the boundary the merge moves may cut a huge block (an old one
        // cannot: no huge block straddles a VMA boundary).
        let boundary = |a: VirtAddr| ptes.split_huge_at(a);
        let target = if merge_both {
            //  |<------------------>|
            //  | prev | middle | next |   prev extends; middle and next are deleted
            let (m, next) = c.remove_two();
            debug_assert!(can_remove(&m) && can_remove(&next));
            let p = c.prev().expect("prev");
            let (p_start, p_pgoff) = (p.start(), p.pgoff());
            sticky_bits = sticky_bits.with(p.flags().and(sticky)).with(next.flags().and(sticky));
            let p = c.set_range(p_start, next.end(), p_pgoff);
            dup_anon_vma(
                p,
                if next.anon_vma().is_some() {
                    next.anon_vma()
                } else {
                    m_anon
                },
            );
            p_start
        } else if merge_left {
            //  |<--------->|           or  |<------------->|
            //  | prev |****MM|             | prev |********|
            //   extend shrink               extend  delete
            if remove_middle {
                debug_assert!(can_remove(c.get().expect("middle")));
                c.remove();
            } else {
                boundary(vmg.end);
                c.set_range(vmg.end, m_end, m_pgoff.add(vmg.end.pages_from(m_start)));
            }
            let p = c.prev().expect("prev");
            let (p_start, p_pgoff) = (p.start(), p.pgoff());
            sticky_bits = sticky_bits.with(p.flags().and(sticky));
            let p = c.set_range(p_start, vmg.end, p_pgoff);
            dup_anon_vma(p, m_anon);
            p_start
        } else {
            debug_assert!(merge_right);
            //      |<--------->|       or  |<------------->|
            //  |MM****| next |             |********| next |
            //   shrink extend                delete   extend
            if remove_middle {
                debug_assert!(can_remove(c.get().expect("middle")));
                c.remove();
            } else {
                boundary(vmg.start);
                c.set_range(m_start, vmg.start, m_pgoff);
                c.next();
            }
            let n = c.get().expect("next");
            debug_assert!(Some(n.start()) == vmg.next);
            let (n_end, n_pgoff) = (n.end(), n.pgoff());
            sticky_bits = sticky_bits.with(n.flags().and(sticky));
            let n = c.set_range(vmg.start, n_end, n_pgoff.sub(vmg.pglen()));
            dup_anon_vma(n, m_anon);
            vmg.start
        };
        // INVARIANT: the survivor covers the range and what it absorbed; nothing else moved.
        c.get_mut().expect("target in tree").set_flag_bits(sticky_bits);
        vmg.outcome = MergeOutcome::Success(target);
        (c.pos().expect("target in tree"), m_end)
    }

    /// `mm/vma.c:vma_modify`: make `[start, end)` of VMA `middle` ready to take new flags: merge
    /// it into a neighbour if they will match, otherwise split it off (first at `start`, then at
    /// `end`). Returns a cursor at the VMA covering exactly the range (merged: possibly more),
    /// for the caller to write the new flags through, as the kernel's callers write into the
    /// `vma` that `vma_modify_flags` returns.
    ///
    /// `middle` is the position of the VMA being changed, from the caller's walk: the merge,
    /// both splits and the caller's write all happen there, with no look-up by start (a driver's
    /// split hooks aside). `prev` is the VMA before `middle`, or `middle` itself when `start`
    /// lies inside it.
    ///
    /// ```text
    ///   no merge, range inside M     |MMMM|rrrr|MMMM|   split at start, then at end
    ///                                      ^ the cursor
    /// ```
    ///
    /// # Preconditions
    /// `middle` is current and its VMA contains `[start, end)`.
    ///
    /// # On failure
    /// `ENOMEM` when the merge's tree node cannot be had (`VMA_MERGE_ERROR_NOMEM`: the kernel
    /// returns the error, it does not fall back to a split). A split at `start` that succeeded
    /// stays when the split at `end` fails, as in the kernel.
    pub(crate) fn vma_modify(
        &mut self,
        prev: Option<VirtAddr>,
        middle: VmaPos,
        start: VirtAddr,
        end: VirtAddr,
        new_flags: VmaFlags,
    ) -> Result<Cursor<'_>> {
        let m_start = self.tree.vma_at(middle).start();
        // The proposal's offset, file and anon_vma are the middle VMA's: the merge reads them
        // at its cursor.
        let mut vmg = MergeState {
            start,
            end,
            pgoff: PgOff(0),
            flags: new_flags,
            file: None,
            anon: None,
            prev,
            middle: Some(m_start),
            next: None,
            just_expand: false,
            outcome: MergeOutcome::Start,
        };
        let (mut pos, m_end) = self.merge_existing_range(&mut vmg, middle);
        match vmg.outcome {
            MergeOutcome::Success(_) => return Ok(self.tree.cursor_at(pos)),
            MergeOutcome::ErrorNoMem => {
                return Err(crate::errno::err(crate::Errno::ENOMEM, "merge ran out of memory"));
            }
            MergeOutcome::NoMerge | MergeOutcome::Start => {}
        }
        if m_start < start && end < m_end {
            // Inside: the middle of three pieces.
            return self.split_vma_twice(pos, start, end);
        }
        if m_start < start {
            // The range is the upper piece.
            pos = self.split_vma(pos, start, true)?;
        }
        if m_end > end {
            // The range is the lower piece, right before the upper one.
            let upper = self.split_vma(pos, end, false)?;
            let mut c = self.tree.cursor_at(upper);
            c.prev();
            return Ok(c);
        }
        Ok(self.tree.cursor_at(pos))
    }
}

/// `dup_anon_vma(dst, src)`: a survivor without an anon_vma adopts the one of the VMA whose
/// pages it takes over.
fn dup_anon_vma(dst: &mut Vma, src: Option<AnonVmaRef>) {
    if src.is_some() && dst.anon_vma().is_none() {
        dst.set_anon(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vma::AnonVmaId;

    fn a(id: u64, chain: u32) -> Option<AnonVmaRef> {
        Some(AnonVmaRef {
            id: AnonVmaId(id),
            chain,
        })
    }

    #[test]
    fn anon_vma_table() {
        // vma-rules.md 2.2
        assert!(anon_compatible(None, None));
        assert!(anon_compatible(a(1, 1), None));
        assert!(!anon_compatible(a(1, 2), None), "forked source");
        assert!(anon_compatible(None, a(1, 1)));
        assert!(!anon_compatible(None, a(1, 2)), "forked neighbour");
        assert!(anon_compatible(a(1, 1), a(1, 1)));
        assert!(!anon_compatible(a(1, 1), a(2, 1)));
        assert!(anon_pair_compatible(None, a(2, 2)));
        assert!(!anon_pair_compatible(a(1, 1), a(2, 1)));
    }
}

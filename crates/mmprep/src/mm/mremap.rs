//! `mremap(2)`: grow, shrink or move a mapping, keeping its pages.
//!
//! A mapping can change size where it is, or move: the VMA is copied to the new range (where it
//! may merge with its new neighbours) and its page-table entries move with it, so the contents
//! follow without a copy. The old range is then unmapped, or, with `MREMAP_DONTUNMAP`, left
//! mapped and empty. Growing in place is a new-range merge of the extension into the VMA itself,
//! so it also swallows a compatible VMA it comes to touch.
//!
//! Mirrors `mm/mremap.c` ([H] 6.18): `do_mremap`, `check_mremap_params`, `check_prep_vma`,
//! `remap_move` (several VMAs, 6.17+), `mremap_at` (`shrink_vma`, `expand_vma`,
//! `vrm_can_expand_in_place`, `expand_vma_in_place`), `mremap_to`, `vrm_set_new_addr`, `move_vma`
//! (`prep_move_vma`, `vrm_calc_charge`, `copy_vma_and_data`, `unmap_source_vma`,
//! `dontunmap_complete`), and `mm/vma.c:copy_vma`, `vma_merge_extend`. The checks are
//! `docs/reference/vma-rules.md` 4.6, the merge of a copy 2.4 and 2.6.
//!
//! [`Remap`] is the kernel's `struct vma_remap_struct`: the call's arguments, then what
//! `check_prep_vma` derives from them (the size change, whether to populate), then the commit
//! charge. It is threaded through every step, and a step that moves the call on (a shrink before
//! a move, a move that failed and now unmaps its copy) rewrites it, as the kernel does.
//!
//! # The matrix: mode × size change
//!
//! | flags | shrink (`new < old`) | same (`new == old`) | grow (`new > old`) |
//! | --- | --- | --- | --- |
//! | none | `shrink_vma`: unmap `[addr+new, addr+old)`¹ | `addr`, nothing changes² | `expand_vma_in_place`³, else `ENOMEM` |
//! | `MAYMOVE` | as none | as none | in place³, else `move_vma` to `get_unmapped_area(new)`⁴ |
//! | `FIXED` (with `MAYMOVE`) | unmap the destination, `shrink_vma`, `move_vma` | `remap_move`: every VMA of the range⁵ | unmap the destination, `move_vma` |
//! | `DONTUNMAP` (with `MAYMOVE`) | `EINVAL` | `move_vma` to the hint (`FIXED`: `remap_move`); the source stays, empty⁶ | `EINVAL` |
//!
//! `FIXED` or `DONTUNMAP` without `MAYMOVE` is `EINVAL` in every column.
//!
//! 1. May cover several VMAs and holes: no `EFAULT` (the range is only unmapped).
//! 2. Only a VMA at `addr` is needed, even if `[addr, addr+old)` crosses VMAs or holes.
//! 3. Only when `[addr, addr+old)` ends where the VMA ends and the space above is free. A
//!    `VM_SPECIAL` VMA never merges, so growing a `VM_IO`/`VM_MIXEDMAP` one in place is `ENOMEM`
//!    even with `MAYMOVE`; `VM_DONTEXPAND`/`VM_PFNMAP` ones are refused before (`EFAULT`).
//!    `old == 0` is "grow" and never fits in place: a shared mapping gets a second mapping of the
//!    same object with `MAYMOVE` (`ENOMEM` without), a private one `EINVAL`.
//! 4. Private anonymous memory of a 2 MiB multiple is placed 2 MiB aligned (`layout.rs`).
//! 5. Each VMA moves by the same offset, holes stay holes; the range may end in a hole, not start
//!    in one (`EFAULT`). A file VMA whose driver places its own mappings
//!    (`f_op->get_unmapped_area` other than the kernel's helpers) may only move alone (`EFAULT`).
//! 6. `VM_LOCKED`/`VM_LOCKONFAULT` are cleared on the whole source VMA; a source moved whole
//!    also loses its anon_vma. It keeps `VM_ACCOUNT` and stays charged; the copy is charged anew.
//!
//! # Checks, in the kernel's order (the first failure decides the errno)
//! Before anything changes (`check_mremap_params`, then `check_prep_vma` on the VMA at `addr`):
//! 1. flags outside `FIXED | MAYMOVE | DONTUNMAP` → `EINVAL`
//! 2. `addr` not page aligned → `EINVAL`
//! 3. `PAGE_ALIGN(new_len) == 0` → `EINVAL`; `new_len > TASK_SIZE` → `EINVAL`
//! 4. with `FIXED` or `DONTUNMAP`: `new_addr > TASK_SIZE - new_len`, `new_addr` unaligned, no
//!    `MAYMOVE`, `DONTUNMAP` with `old_len != new_len`, old and new ranges overlapping → `EINVAL`;
//!    `map_count + 2 >= max_map_count - 3` → `ENOMEM`
//! 5. no VMA contains `addr` → `EFAULT` (move only: a hole at `addr`, or no VMA in the range)
//! 6. the VMA is sealed → `EPERM`
//! 7. growing or moving only: `old_len == 0` on a private mapping → `EINVAL`; `DONTUNMAP` on a
//!    `VM_DONTEXPAND`/`VM_PFNMAP` VMA → `EINVAL`; the (kept part of the) old range runs past the
//!    VMA's end → `EFAULT`
//! 8. growing only: file offset wraps → `EINVAL`; `VM_DONTEXPAND`/`VM_PFNMAP` → `EFAULT`;
//!    locked past `RLIMIT_MEMLOCK` → `EAGAIN`; past `RLIMIT_AS`/`RLIMIT_DATA` → `ENOMEM`
//!
//! Then, as the call proceeds: `FIXED` unmaps the destination (its errors: a sealed VMA `EPERM`,
//! `map_count`); a shrink unmaps the tail (munmap's errors); `DONTUNMAP` past `RLIMIT_AS` →
//! `ENOMEM`; no room for the new range → `ENOMEM`; a move at `map_count >= max_map_count - 3` →
//! `ENOMEM`; `may_split` refusing a partial source → its error; the commit charge → `ENOMEM`;
//! grow in place without `MAYMOVE` → `ENOMEM`; the driver's `mremap` hook → its error.
//! Hugetlb VMAs (their alignment rules, check 15 of the table) do not exist in the engine.
//!
//! # On failure
//! - any check above: nothing changed;
//! - `FIXED`: the destination stays unmapped once that unmap succeeded (even if a later step
//!   fails), and a failed destination unmap leaves what munmap leaves (a split at its start);
//! - `FIXED` shrink: the tail stays unmapped once that unmap succeeded;
//! - several VMAs (`remap_move`): the VMAs before the one that failed have moved;
//! - the driver's `mremap` hook: the entries are moved back and the new range unmapped; the
//!   source is whole again (a `FIXED` destination stays unmapped).
//!
//! # Departures, and why
//! - The commit charge: the kernel charges the size change of a shrink-and-move (`FIXED`,
//!   `new < old`) and of a failed grow-and-move as if they were growth, and never releases it;
//!   the engine charges only growth and releases a failed move's charge, so `committed` stays
//!   the `VM_ACCOUNT` pages (only `Committed_AS` would show the difference).
//! - `locked_vm`: `dontunmap_complete` clears `VM_LOCKED` on the source but leaves its pages in
//!   `locked_vm` ("we won't unmap"), which the kernel then never subtracts; the engine subtracts
//!   them, so `locked_vm` stays the pages of `VM_LOCKED` VMAs.
//! - A multi-VMA move asks whether a file's `get_unmapped_area` is one of the kernel's helpers
//!   (none, shmem's, `thp_get_unmapped_area`). [`AreaPolicy`](crate::file::AreaPolicy) does not say which function it is,
//!   so the engine takes a policy that depends on the mapping's flags (`/dev/zero`'s own
//!   function, shmem for shared and THP for private mappings) as the driver's own.

use crate::addr::{PAGE_SHIFT, PgOff, VirtAddr};
use crate::errno::{Errno, Error, Result, err};
use crate::events::Event;
use crate::flags::{self, VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::mm::merge::MergeState;
use crate::uapi::{MapFlags, mremap as mr};
use crate::vma::{VmHooks, Vma};
use crate::vma_flags;

/// What the size change is (`enum mremap_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RemapKind {
    /// `old_len == new_len` (`MREMAP_NO_RESIZE`).
    NoResize,
    /// `old_len > new_len` (`MREMAP_SHRINK`).
    Shrink,
    /// `old_len < new_len` (`MREMAP_EXPAND`).
    Expand,
}

/// One `mremap` call on its way (`struct vma_remap_struct`).
///
/// # Invariants
/// After `check_prep_vma`: `delta == |old_len - new_len|` and `kind` says which way; the VMA
/// being remapped contains `addr` (a step that changes the tree looks it up again by `addr`).
#[derive(Clone, Debug)]
struct Remap {
    /// The start of the range being remapped (page aligned).
    addr: VirtAddr,
    /// Its length (page aligned; 0 asks for a second mapping of a shared object).
    old_len: u64,
    /// The length wanted (page aligned, non-zero).
    new_len: u64,
    /// `MREMAP_*`.
    flags: u32,
    /// `FIXED`: where to; `DONTUNMAP` alone: the hint; otherwise set to `addr`, then to where
    /// the mapping went.
    new_addr: VirtAddr,
    /// `|old_len - new_len|`.
    delta: u64,
    /// Which way the size changes.
    kind: RemapKind,
    /// The VMA is locked and grows: fault in the new part at the end (`populate_expand`).
    populate_expand: bool,
    /// Pages charged to the commit limit for this call.
    charged: u64,
}

impl Remap {
    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// `vrm_implies_new_addr`: `FIXED` or `DONTUNMAP` always gives the mapping a new address.
    fn implies_new_addr(&self) -> bool {
        self.has(mr::FIXED | mr::DONTUNMAP)
    }

    /// `vrm_move_only`: `FIXED` without a size change, which may move several VMAs.
    fn move_only(&self) -> bool {
        self.has(mr::FIXED) && self.old_len == self.new_len
    }

    /// `vrm_will_map_new`: does the call need address space it does not have yet?
    fn will_map_new(&self) -> bool {
        self.kind == RemapKind::Expand || self.implies_new_addr()
    }

    /// `vrm_set_delta` + `vrm_remap_type`.
    fn set_delta(&mut self) {
        self.delta = self.old_len.abs_diff(self.new_len);
        self.kind = match self.old_len.cmp(&self.new_len) {
            core::cmp::Ordering::Equal => RemapKind::NoResize,
            core::cmp::Ordering::Greater => RemapKind::Shrink,
            core::cmp::Ordering::Less => RemapKind::Expand,
        };
    }

    /// `vrm_overlaps`: do `[addr, addr+old_len)` and `[new_addr, new_addr+new_len)` overlap
    /// (with the kernel's wrapping arithmetic)?
    fn overlaps(&self) -> bool {
        let end_old = self.addr.0.wrapping_add(self.old_len);
        let end_new = self.new_addr.0.wrapping_add(self.new_len);
        end_old > self.new_addr.0 && end_new > self.addr.0
    }

    fn old_end(&self) -> VirtAddr {
        VirtAddr(self.addr.0 + self.old_len)
    }
}

impl Mm {
    /// `mremap(addr, old_len, new_len, flags, new_addr)`: resize and/or move the mapping at
    /// `addr`. Returns where it is now. `new_addr` is read only with `MREMAP_FIXED` (the
    /// destination) or `MREMAP_DONTUNMAP` (a hint).
    ///
    /// See the module documentation for the cases, the checks in order, and what a failure
    /// leaves behind.
    ///
    /// # On failure
    /// The argument checks and the checks on the VMA at `addr` change nothing. A failure later
    /// may leave a `FIXED` destination unmapped, a `FIXED` shrink's tail unmapped, and (moving
    /// several VMAs) the VMAs before the failing one moved, as the kernel does.
    pub fn mremap(
        &mut self,
        addr: VirtAddr,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: VirtAddr,
    ) -> Result<VirtAddr> {
        let mut vrm = Remap {
            addr,
            old_len: self.page_align_wrapping(old_len),
            new_len: self.page_align_wrapping(new_len),
            flags,
            new_addr,
            delta: 0,
            kind: RemapKind::NoResize,
            populate_expand: false,
            charged: 0,
        };
        self.do_mremap(&mut vrm)
    }

    /// `do_mremap`: the checks, then one of the three ways, then the populate of a locked
    /// mapping's growth.
    fn do_mremap(&mut self, vrm: &mut Remap) -> Result<VirtAddr> {
        self.check_mremap_params(vrm)?;
        let res = if vrm.move_only() {
            self.remap_move(vrm)
        } else {
            self.check_prep_vma(vrm)?;
            if vrm.implies_new_addr() {
                self.mremap_to(vrm)
            } else {
                self.mremap_at(vrm)
            }
        };
        if res.is_ok() && vrm.populate_expand {
            // mm_populate(new_addr + old_len, delta), after the lock is dropped.
            let start = VirtAddr(vrm.new_addr.0 + vrm.old_len);
            self.mm_populate(start, VirtAddr(start.0 + vrm.delta));
        }
        res
    }

    /// `check_mremap_params`: the checks on the arguments alone (module doc, checks 1–4).
    fn check_mremap_params(&self, vrm: &Remap) -> Result<()> {
        let task_size = self.profile.task_size;
        if vrm.flags & !(mr::FIXED | mr::MAYMOVE | mr::DONTUNMAP) != 0 {
            return Err(err(Errno::EINVAL, "unknown mremap flags"));
        }
        if !self.is_page_aligned(vrm.addr) {
            return Err(err(Errno::EINVAL, "old address is not page aligned"));
        }
        // A zero old length is allowed (a second mapping of a shared object); a zero new one is
        // not.
        if vrm.new_len == 0 {
            return Err(err(Errno::EINVAL, "new length is zero or rounds up past the end"));
        }
        if vrm.new_len > task_size {
            return Err(err(Errno::EINVAL, "new length is larger than the address space"));
        }
        if !vrm.implies_new_addr() {
            return Ok(());
        }
        if vrm.new_addr.0 > task_size - vrm.new_len {
            return Err(err(Errno::EINVAL, "new range reaches past TASK_SIZE"));
        }
        // A host-reserved range is outside the guest's space, as if beyond TASK_SIZE.
        if self.profile.is_reserved(vrm.new_addr.0, vrm.new_addr.0 + vrm.new_len) {
            return Err(err(Errno::EINVAL, "new range reaches into a host-reserved range"));
        }
        if !self.is_page_aligned(vrm.new_addr) {
            return Err(err(Errno::EINVAL, "new address is not page aligned"));
        }
        if !vrm.has(mr::MAYMOVE) {
            return Err(err(
                Errno::EINVAL,
                "MREMAP_FIXED or MREMAP_DONTUNMAP without MREMAP_MAYMOVE",
            ));
        }
        if vrm.has(mr::DONTUNMAP) && vrm.old_len != vrm.new_len {
            return Err(err(Errno::EINVAL, "MREMAP_DONTUNMAP cannot resize"));
        }
        if vrm.overlaps() {
            return Err(err(Errno::EINVAL, "old and new ranges overlap"));
        }
        // Both the destination and the source may be split in three before anything can fail
        // for the count: stay four below the limit.
        let max = self.profile.max_map_count;
        if self.map_count() + 2 >= max.saturating_sub(3) {
            return Err(err(Errno::ENOMEM, "a move could exceed vm.max_map_count"));
        }
        Ok(())
    }

    /// `check_prep_vma`: the checks on the VMA at `vrm.addr` (module doc, checks 5–8), and what
    /// the call will do: the size change, the address it starts from, whether to populate.
    fn check_prep_vma(&self, vrm: &mut Remap) -> Result<()> {
        let Some(vma) = self.tree.lookup(vrm.addr) else {
            return Err(err(Errno::EFAULT, "no mapping at the old address"));
        };
        if vma.is_sealed() {
            return Err(err(Errno::EPERM, "the mapping is sealed"));
        }
        vrm.set_delta();
        if !vrm.implies_new_addr() {
            vrm.new_addr = vrm.addr;
        }
        // Shrinking or keeping the size in place needs nothing more.
        if !vrm.will_map_new() {
            return Ok(());
        }
        if vrm.old_len == 0 && !vma.flags().test_any(vma_flags![Shared, MayShare]) {
            return Err(err(Errno::EINVAL, "old length zero duplicates only shared mappings"));
        }
        if vrm.has(mr::DONTUNMAP) && vma.flags().test_any(vma_flags![DontExpand, PfnMap]) {
            return Err(err(
                Errno::EINVAL,
                "MREMAP_DONTUNMAP of a VM_DONTEXPAND or VM_PFNMAP mapping",
            ));
        }
        // A shrink unmaps its tail wherever it lies; only the part kept must be in this VMA.
        let old_len = if vrm.kind == RemapKind::Shrink {
            vrm.new_len
        } else {
            vrm.old_len
        };
        if old_len > vma.end().0 - vrm.addr.0 {
            return Err(err(Errno::EFAULT, "the old range runs past the end of its mapping"));
        }
        if vrm.new_len == old_len {
            return Ok(());
        }
        if vma.test(VmaBit::Locked) {
            vrm.populate_expand = true;
        }
        let pgoff = vma.pgoff_at(vrm.addr).get();
        // In guest pages, as the kernel counts them.
        let shift = self.unit_shift();
        if (pgoff >> shift)
            .checked_add(vrm.new_len >> (PAGE_SHIFT + shift))
            .is_none()
        {
            return Err(err(Errno::EINVAL, "the file offset would wrap"));
        }
        if vma.flags().test_any(vma_flags![DontExpand, PfnMap]) {
            return Err(err(Errno::EFAULT, "a VM_DONTEXPAND or VM_PFNMAP mapping cannot grow"));
        }
        if !self.mlock_future_ok(vma.flags(), vrm.delta) {
            return Err(err(Errno::EAGAIN, "growing would exceed RLIMIT_MEMLOCK"));
        }
        if !self.may_expand_vm(vma.flags(), vrm.delta >> PAGE_SHIFT) {
            return Err(err(Errno::ENOMEM, "growing would exceed RLIMIT_AS or RLIMIT_DATA"));
        }
        Ok(())
    }

    /// `remap_move`: `FIXED` without a size change. Every VMA of `[addr, addr+old_len)` moves,
    /// each by the same offset, so the gaps between them stay:
    ///
    /// ```text
    ///            X        Y                      X        Y
    ///          <--->     <->                   <--->     <->
    ///  |-------|   |-----| |--|        |-------|   |-----| |--|
    ///  |   A   |   |  B  | |C |  --->  |   A'  |   |  B' | |C'|
    ///  |-------|   |-----| |--|        |-------|   |-----| |--|
    ///  addr                            new_addr
    /// ```
    ///
    /// Returns where the first one went.
    ///
    /// # On failure
    /// A hole at `addr`, or no VMA in the range: `EFAULT`, nothing changed. A VMA that may not
    /// move with others: `EFAULT`, before anything changed if it is the first, else after the
    /// ones before it moved. Any other error of one VMA's move: the ones before it moved.
    fn remap_move(&mut self, vrm: &mut Remap) -> Result<VirtAddr> {
        let start = vrm.addr;
        let end = VirtAddr(start.0.wrapping_add(vrm.old_len));
        let mut target = vrm.new_addr;
        let mut first: Option<VirtAddr> = None;
        let mut last_end = start;
        // The iterator resumes after the end of the VMA it last returned.
        let mut cursor = start;
        while cursor < end {
            let Some(vma) = self.tree.find_vma(cursor).filter(|v| v.start() < end) else {
                break;
            };
            let (v_start, v_end) = (vma.start(), vma.end());
            let multi_allowed = vma_multi_allowed(vma);
            // No hole at the start of the range.
            if first.is_none() && start < v_start {
                return Err(err(Errno::EFAULT, "the range starts in a hole"));
            }
            let addr = v_start.max(start);
            let len = v_end.min(end).0 - addr.0;
            let offset = if first.is_some() { v_start.0 - last_end.0 } else { 0 };
            last_end = v_end;
            vrm.addr = addr;
            vrm.new_addr = VirtAddr(target.0 + offset);
            vrm.old_len = len;
            vrm.new_len = len;
            if !multi_allowed && (first.is_some() || v_end < end) {
                return Err(err(
                    Errno::EFAULT,
                    "a mapping whose driver places its own mappings can only move alone",
                ));
            }
            self.check_prep_vma(vrm)?;
            let moved = self.mremap_to(vrm)?;
            first.get_or_insert(moved);
            target = VirtAddr(moved.0 + len);
            cursor = v_end;
        }
        first.ok_or(err(Errno::EFAULT, "no mapping in the old range"))
    }

    /// `mremap_at`: no new address was asked for; resize in place, or move if that is allowed
    /// and needed.
    fn mremap_at(&mut self, vrm: &mut Remap) -> Result<VirtAddr> {
        match vrm.kind {
            RemapKind::NoResize => Ok(vrm.addr),
            RemapKind::Shrink => {
                self.shrink_vma(vrm)?;
                Ok(vrm.addr)
            }
            RemapKind::Expand => self.expand_vma(vrm),
        }
    }

    /// `shrink_vma`: unmap `[addr + new_len, addr + old_len)` (munmap's own checks and errors).
    /// A caller that goes on to move the mapping looks it up again (`EFAULT` if it is gone: the
    /// kernel's `drop_lock == false` case).
    ///
    /// ```text
    ///   before   |------- A -------|  |-- B --|
    ///   shrink   <-- new -->
    ///   after    |--- A ---|
    /// ```
    ///
    /// # Preconditions
    /// `check_prep_vma` found a shrink.
    fn shrink_vma(&mut self, vrm: &Remap) -> Result<()> {
        debug_assert_eq!(vrm.kind, RemapKind::Shrink);
        self.munmap(VirtAddr(vrm.addr.0 + vrm.new_len), vrm.delta)
    }

    /// `expand_vma`: grow in place if the VMA ends where the range ends and the space above is
    /// free; else move, if allowed.
    fn expand_vma(&mut self, vrm: &mut Remap) -> Result<VirtAddr> {
        if self.can_expand_in_place(vrm) {
            self.expand_vma_in_place(vrm)?;
            return Ok(vrm.addr);
        }
        if !vrm.has(mr::MAYMOVE) {
            return Err(err(Errno::ENOMEM, "cannot grow in place and MREMAP_MAYMOVE is not set"));
        }
        self.set_new_addr(vrm)?;
        self.move_vma(vrm)
    }

    /// `vrm_can_expand_in_place` + `vma_expandable`: the range ends where its VMA ends, the
    /// `delta` bytes above are free, and the grown VMA is a valid fixed placement.
    fn can_expand_in_place(&self, vrm: &Remap) -> bool {
        let vma = self.tree.lookup(vrm.addr).expect("the remapped VMA contains addr");
        if vma.end().0 - vrm.addr.0 != vrm.old_len {
            return false;
        }
        let Some(end) = vma.end().0.checked_add(vrm.delta) else {
            return false;
        };
        if self.tree.find_intersection(vma.end(), VirtAddr(end)).is_some() {
            return false;
        }
        let len = end - vma.start().0;
        self.get_unmapped_area(None, vma.start(), len, 0, MapFlags::FIXED, VmaFlags::EMPTY)
            .is_ok()
    }

    /// `expand_vma_in_place`: charge the growth, then let `vma_merge_extend` grow the VMA (and
    /// maybe swallow the next one).
    ///
    /// # On failure
    /// `ENOMEM` from the charge, or because the extension did not merge (a `VM_SPECIAL` VMA, or
    /// an allocation): nothing changed.
    fn expand_vma_in_place(&mut self, vrm: &mut Remap) -> Result<()> {
        self.calc_charge(vrm)?;
        let Some(key) = self.vma_merge_extend(vrm.addr, vrm.delta) else {
            self.uncharge(vrm.charged);
            vrm.charged = 0;
            return Err(err(
                Errno::ENOMEM,
                "the extension did not merge into the mapping (VM_SPECIAL, or no memory)",
            ));
        };
        let flags = self.tree.get(key).expect("grown VMA in tree").flags();
        self.remap_stat_account(flags, vrm.delta);
        Ok(())
    }

    /// `mm/vma.c:vma_merge_extend`: `[end, end + delta)` after the VMA containing `addr`, as a
    /// new range with the VMA's own attributes, merged with the VMA as prev (and with next if it
    /// now touches and matches):
    ///
    /// ```text
    ///   before   |--- A ---|      |--- B ---|
    ///   grow               ++++++                  the extension is a new range
    ///   after    |------------ A ------------|     B matched A: one VMA
    /// ```
    ///
    /// Returns the grown VMA's start, or `None` if nothing merged (the VMA is `VM_SPECIAL`).
    ///
    /// # Preconditions
    /// A VMA contains `addr`, and the `delta` bytes above its end are free
    /// (`vma_expandable`).
    fn vma_merge_extend(&mut self, addr: VirtAddr, delta: u64) -> Option<VirtAddr> {
        let vma = self.tree.lookup(addr).expect("the remapped VMA contains addr");
        debug_assert!(
            self.tree
                .find_intersection(vma.end(), VirtAddr(vma.end().0 + delta))
                .is_none()
        );
        let (start, end) = (vma.end(), VirtAddr(vma.end().0 + delta));
        let pgoff = vma.pgoff().add(vma.pages());
        let next = self.tree.next_from(end).map(|v| v.start());
        let mut vmg = MergeState::copied_range(start, end, pgoff, vma, Some(vma.start()), next);
        self.merge_new_range(&mut vmg)
    }

    /// `mremap_to`: a new address is implied (`FIXED`, `DONTUNMAP`): unmap a `FIXED` destination,
    /// do a shrink first, then move.
    fn mremap_to(&mut self, vrm: &mut Remap) -> Result<VirtAddr> {
        if vrm.has(mr::FIXED) {
            // As MAP_FIXED: whatever is at the destination goes (its seals refuse with EPERM).
            let dest_end = VirtAddr(vrm.new_addr.0 + vrm.new_len);
            self.do_munmap(vrm.new_addr, dest_end)?;
            if self.tree.lookup(vrm.addr).is_none() {
                return Err(err(
                    Errno::EFAULT,
                    "the mapping is gone after unmapping the destination",
                ));
            }
        }
        if vrm.kind == RemapKind::Shrink {
            self.shrink_vma(vrm)?;
            if self.tree.lookup(vrm.addr).is_none() {
                return Err(err(Errno::EFAULT, "the mapping is gone after the shrink"));
            }
            // What is left to move.
            vrm.old_len = vrm.new_len;
        }
        if vrm.has(mr::DONTUNMAP) {
            // The source stays mapped: the address space grows by the whole length.
            let flags = self.tree.lookup(vrm.addr).expect("source VMA").flags();
            if !self.may_expand_vm(flags, vrm.old_len >> PAGE_SHIFT) {
                return Err(err(
                    Errno::ENOMEM,
                    "a second copy would exceed RLIMIT_AS or RLIMIT_DATA",
                ));
            }
        }
        self.set_new_addr(vrm)?;
        self.move_vma(vrm)
    }

    /// `vrm_set_new_addr`: where the mapping goes: `get_unmapped_area` for its file (and file
    /// offset) with the `FIXED` address or the `DONTUNMAP` hint, as `MAP_SHARED` if the VMA may
    /// share.
    fn set_new_addr(&mut self, vrm: &mut Remap) -> Result<()> {
        let vma = self.tree.lookup(vrm.addr).expect("source VMA");
        let pgoff = vma.pgoff_at(vrm.addr).get();
        let hint = if vrm.implies_new_addr() {
            vrm.new_addr
        } else {
            VirtAddr::NULL
        };
        let mut map_flags = MapFlags(0);
        if vrm.has(mr::FIXED) {
            map_flags = map_flags | MapFlags::FIXED;
        }
        if vma.test(VmaBit::MayShare) {
            map_flags = map_flags | MapFlags::SHARED;
        }
        let file = vma.file().cloned();
        vrm.new_addr = self.get_unmapped_area(file.as_ref(), hint, vrm.new_len, pgoff, map_flags, VmaFlags::EMPTY)?;
        Ok(())
    }

    /// `move_vma`: copy the VMA to `new_addr`, move its entries, account, and unmap the source
    /// (or, with `DONTUNMAP`, empty it).
    ///
    /// ```text
    ///   before   |--- A [****] ---|                    |.......|
    ///   copy     |--- A [****] ---|                    |* A' *+|    copy_vma (may merge there)
    ///   entries  |--- A [    ] ---|                    |* A' *+|    move_page_tables
    ///   unmap    |-A-|        |-A-|                    |* A' *+|    unmap_source_vma
    /// ```
    ///
    /// # On failure
    /// `map_count`, `may_split`, the charge, the copy: nothing more changed. The driver's
    /// `mremap` hook: the entries move back, the copy is unmapped, and its error is returned.
    fn move_vma(&mut self, vrm: &mut Remap) -> Result<VirtAddr> {
        self.prep_move_vma(vrm)?;
        self.calc_charge(vrm)?;
        let copied = self.copy_vma_and_data(vrm);
        let result = match copied {
            Err(Copied::Nothing(e)) => return Err(e),
            Err(Copied::Undone(e)) => Err(e),
            Ok(()) => Ok(()),
        };
        // The new length is accounted now; unmapping the source (or the failed copy) takes the
        // old length off again.
        let flags = self.tree.lookup(vrm.addr).expect("source VMA").flags();
        self.remap_stat_account(flags, vrm.new_len);
        if result.is_ok() && vrm.has(mr::DONTUNMAP) {
            self.dontunmap_complete(vrm);
        } else {
            self.unmap_source_vma(vrm);
            if result.is_err() && !vrm.has(mr::DONTUNMAP) {
                // Departure (module doc): release the charge of a failed move.
                self.uncharge(vrm.charged);
            }
        }
        result.map(|()| vrm.new_addr)
    }

    /// `prep_move_vma`: the `map_count` margin (the source may be split in three) and the
    /// driver's consent to the source splits.
    fn prep_move_vma(&mut self, vrm: &Remap) -> Result<()> {
        if self.map_count() >= self.profile.max_map_count.saturating_sub(3) {
            return Err(err(Errno::ENOMEM, "moving could exceed vm.max_map_count"));
        }
        let vma = self.tree.lookup(vrm.addr).expect("source VMA");
        if !vma.ops().hooks().contains(VmHooks::MAY_SPLIT) {
            return Ok(());
        }
        let (key, v_end) = (vma.start(), vma.end());
        if key != vrm.addr {
            self.hook_may_split(key, vrm.addr)?;
        }
        if v_end != vrm.old_end() {
            self.hook_may_split(key, vrm.old_end())?;
        }
        // ksm_madvise(MADV_UNMERGEABLE) only breaks KSM pages, which the engine does not merge.
        Ok(())
    }

    /// `vrm_calc_charge`: a `VM_ACCOUNT` mapping is charged for its growth, or with `DONTUNMAP`
    /// for the whole new copy (the source keeps its charge).
    fn calc_charge(&mut self, vrm: &mut Remap) -> Result<()> {
        vrm.charged = 0;
        let vma = self.tree.lookup(vrm.addr).expect("source VMA");
        if !vma.test(VmaBit::Account) {
            return Ok(());
        }
        let pages = if vrm.has(mr::DONTUNMAP) {
            vrm.new_len >> PAGE_SHIFT
        } else if vrm.kind == RemapKind::Expand {
            vrm.delta >> PAGE_SHIFT
        } else {
            // Departure (module doc): the kernel charges a shrink's delta here too.
            0
        };
        if pages != 0 {
            self.charge(pages)?;
        }
        vrm.charged = pages;
        Ok(())
    }

    /// `copy_vma_and_data`: copy the VMA, move the entries, call the driver's `mremap` hook.
    /// After a hook error the entries are back and `vrm` describes the copy, which the caller
    /// unmaps (`Copied::Undone`).
    fn copy_vma_and_data(&mut self, vrm: &mut Remap) -> core::result::Result<(), Copied> {
        let vma = self.tree.lookup(vrm.addr).expect("source VMA");
        let new_pgoff = vma.pgoff_at(vrm.addr);
        if let Err(e) = self.copy_vma(vrm.addr, vrm.new_addr, vrm.new_len, new_pgoff) {
            self.uncharge(vrm.charged);
            vrm.charged = 0;
            return Err(Copied::Nothing(e));
        }
        self.move_page_tables(vrm.addr, vrm.new_addr, vrm.old_len);
        // The source (which the copy may have merged with) and its ops.
        let src = self.tree.lookup(vrm.addr).expect("source VMA");
        let Some(ops) = src.ops().driver().filter(|o| o.mremap().is_some()).cloned() else {
            return Ok(());
        };
        let new_vma = self.tree.lookup(vrm.new_addr).expect("the copy is mapped");
        let result = ops.mremap().map_or(Ok(()), |hook| hook.mremap(new_vma));
        let (name, start, end) = (ops.ops_name(), new_vma.start(), new_vma.end());
        self.events.push(|| Event::Mremap {
            ops: name,
            start,
            end,
            result: result.map_err(|e| e.errno),
        });
        let Err(e) = result else { return Ok(()) };
        // Move the entries back and unmap the new range instead of the old one.
        self.move_page_tables(vrm.new_addr, vrm.addr, vrm.old_len);
        vrm.addr = vrm.new_addr;
        vrm.old_len = vrm.new_len;
        Err(Copied::Undone(e))
    }

    /// `mm/vma.c:copy_vma`: a VMA like the one containing `src` for `[addr, addr + len)` at file
    /// page `pgoff`, merged into a neighbour there if one matches (2.4), else new (its `open`
    /// runs). An anonymous VMA that never had a page written takes the page index of its new
    /// address as its offset, so it can merge where it lands (2.6):
    ///
    /// ```text
    ///   unwritten   PPPP|....|      A moves next to P: pgoff = addr >> 12, P grows
    ///   written     PPPP|AAAA|      A keeps its pgoff: separate
    /// ```
    ///
    /// The copy may merge with the source VMA itself (an unwritten source moved next to its own
    /// edge); the source is then found again by address, as the kernel re-points `*vmap`.
    ///
    /// # Preconditions
    /// A VMA contains `src`; `[addr, addr + len)` is free (a `FIXED` destination was unmapped,
    /// any other came from `get_unmapped_area`). The kernel checks the latter again ("should
    /// never get here") and so does the engine, with a debug assertion and `ENOMEM`.
    ///
    /// # On failure
    /// `ENOMEM` (an allocation): nothing changed, except that `open` and then `close` ran if
    /// linking the new VMA failed.
    fn copy_vma(&mut self, src: VirtAddr, addr: VirtAddr, len: u64, pgoff: PgOff) -> Result<()> {
        let end = VirtAddr(addr.0 + len);
        let occupied = self.tree.find_intersection(addr, end).is_some();
        debug_assert!(!occupied, "copy_vma onto a mapped range [{addr:?}, {end:?})");
        if occupied {
            return Err(err(Errno::ENOMEM, "the destination is not free"));
        }
        let mut new = self.tree.lookup(src).expect("source VMA").clone();
        let pgoff = if new.is_anonymous() && new.anon_vma().is_none() {
            PgOff(addr.page_index())
        } else {
            pgoff
        };
        let prev = self.tree.prev_before(addr).map(|v| v.start());
        let next = self.tree.next_from(end).map(|v| v.start());
        let mut vmg = MergeState::copied_range(addr, end, pgoff, &new, prev, next);
        if self.merge_new_range(&mut vmg).is_some() {
            return Ok(());
        }
        self.alloc()?; // vm_area_dup
        if new.anon_vma().is_some() {
            self.alloc()?; // anon_vma_clone
        }
        new.set_bounds(addr, end, pgoff);
        // INVARIANT: [addr, end) is free (checked above), so the insert overlaps nothing.
        self.tree.insert(new);
        self.hook_open(addr);
        if let Err(e) = self.alloc() {
            // vma_link failed: vma_close, and the copy is freed.
            let v = self.tree.remove(addr).expect("copy in tree");
            self.hook_close(&v);
            return Err(e);
        }
        Ok(())
    }

    /// `move_page_tables`: the entries of `[from, from + len)` move to `[to, to + len)`, so the
    /// pages (and their contents) follow; so do guard markers, which are entries too
    /// (`move_ptes` moves every non-empty PTE).
    ///
    /// # Preconditions
    /// The two ranges do not overlap (`check_mremap_params`, or a destination from
    /// `get_unmapped_area`).
    fn move_page_tables(&mut self, from: VirtAddr, to: VirtAddr, len: u64) {
        if len == 0 {
            return;
        }
        debug_assert!(
            from.0 + len <= to.0 || to.0 + len <= from.0,
            "overlapping page-table move"
        );
        self.ptes.move_range(from, VirtAddr(from.0 + len), to);
    }

    /// `vrm_stat_account`: `bytes` more of a mapping with `flags` (`total_vm` and its class,
    /// `locked_vm` if locked).
    fn remap_stat_account(&mut self, flags: VmaFlags, bytes: u64) {
        let pages = bytes >> PAGE_SHIFT;
        self.vm_stat_account(flags, pages as i64);
        if flags.test(VmaBit::Locked) {
            self.locked_vm += pages;
        }
    }

    /// `unmap_source_vma`: unmap `[addr, addr + old_len)`, the moved-from range (or, after a
    /// failed hook, the copy). Its pages were charged to the copy (or never uncharged), so
    /// `VM_ACCOUNT` is cleared on the VMA first and restored on what is left of it on either
    /// side:
    ///
    /// ```text
    ///   before   |------- A (ac) -------|
    ///   clear    |------- A      -------|
    ///   unmap    |- A -|          |- A -|
    ///   restore  |A(ac)|          |A(ac)|
    /// ```
    ///
    /// # Preconditions
    /// A VMA contains `vrm.addr` and `[addr, addr + old_len)` lies within it (checked by
    /// `check_prep_vma`; the copy may since have merged with it, which only makes it larger).
    ///
    /// # On failure
    /// Only an allocation can fail here: the source stays, without `VM_ACCOUNT`, as the kernel
    /// leaves it; the commit charge is brought back to the `VM_ACCOUNT` pages.
    fn unmap_source_vma(&mut self, vrm: &Remap) {
        let (addr, end) = (vrm.addr, vrm.old_end());
        let vma = self.tree.lookup(addr).expect("the unmapped range starts in a VMA");
        debug_assert!(end <= vma.end(), "the unmapped range {addr:?}..{end:?} leaves {vma:?}");
        let (key, vm_start, vm_end) = (vma.start(), vma.start(), vma.end());
        let accountable = vma.test(VmaBit::Account) && !vrm.has(mr::DONTUNMAP);
        if accountable {
            self.tree.get_mut(key).expect("VMA in tree").clear_flag(VmaBit::Account);
        }
        // A zero length (a duplicated shared mapping) is munmap's EINVAL: nothing is unmapped.
        let result = if vrm.old_len == 0 {
            Err(err(Errno::EINVAL, "length is zero"))
        } else {
            self.do_munmap(addr, end)
        };
        if result.is_err() {
            self.resync_commit_charge();
            return;
        }
        if accountable {
            if vm_start < addr {
                let prev = self
                    .tree
                    .prev_before(addr)
                    .map(|v| v.start())
                    .expect("the part below stays");
                self.tree.get_mut(prev).expect("VMA in tree").set_flag(VmaBit::Account);
            }
            if vm_end > end {
                self.tree
                    .get_mut(end)
                    .expect("the part above stays")
                    .set_flag(VmaBit::Account);
            }
        }
    }

    /// After a failed source unmap with `VM_ACCOUNT` cleared: release the charge of the pages
    /// that lost the flag (the kernel instead charges the moved length once more).
    fn resync_commit_charge(&mut self) {
        let accounted: u64 = self
            .tree
            .iter()
            .filter(|v| v.test(VmaBit::Account))
            .map(Vma::pages)
            .sum();
        self.uncharge(self.committed.saturating_sub(accounted));
    }

    /// `dontunmap_complete`: the source stays mapped with its entries gone. `VM_LOCKED` and
    /// `VM_LOCKONFAULT` are cleared on the whole source VMA (nothing is there to be locked); a
    /// source moved whole, and not merged with its copy, also drops its anon_vma.
    fn dontunmap_complete(&mut self, vrm: &Remap) {
        let new_key = self.tree.lookup(vrm.new_addr).expect("the copy is mapped").start();
        let key = self.tree.lookup(vrm.addr).expect("the source stays").start();
        let end = vrm.old_end();
        let vma = self.tree.get_mut(key).expect("VMA in tree");
        let was_locked = vma.test(VmaBit::Locked);
        vma.clear_flag_bits(flags::LOCKED_MASK);
        let pages = vma.pages();
        if key != new_key && vma.start() == vrm.addr && vma.end() == end {
            // unlink_anon_vmas
            vma.set_anon(None);
        }
        if was_locked {
            // Departure (module doc): the kernel leaves these pages in locked_vm.
            self.locked_vm -= pages;
        }
    }
}

/// How a failed `copy_vma_and_data` left things.
enum Copied {
    /// The copy was never made: nothing to undo.
    Nothing(Error),
    /// The copy was made and the hook refused: the entries are back, and the copy must be
    /// unmapped.
    Undone(Error),
}

/// `vma_multi_allowed`: may this VMA move as one of several (`remap_move`)? Not if a driver's
/// own `get_unmapped_area` might not honour the fixed address: anonymous memory, files without
/// one, shmem, and `thp_get_unmapped_area` users (ext4) may. userfaultfd is not modelled.
///
/// The engine sees a file's placement as an [`AreaPolicy`](crate::file::AreaPolicy) per mapping type; a policy that
/// differs between shared and private mappings is the driver's own function (`/dev/zero`'s
/// `get_unmapped_area_zero`), one that does not is a kernel helper (H: a private `/dev/zero`
/// VMA cannot move with another, an ext4 or memfd one can).
fn vma_multi_allowed(vma: &Vma) -> bool {
    let Some(file) = vma.file() else { return true };
    let ops = file.ops();
    ops.area_policy(MapFlags::SHARED) == ops.area_policy(MapFlags::PRIVATE)
}

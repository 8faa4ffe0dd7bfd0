//! `mprotect(2)`: give every VMA in `[start, start + len)` new access bits.
//!
//! Mirrors `mm/mprotect.c:do_mprotect_pkey` (argument checks, the walk) and `mprotect_fixup`
//! (new flags, accounting), host kernel [H] 6.18. Splitting and merging go through
//! [`Mm::vma_modify`] (the kernel's `vma_modify_flags`).
//!
//! ```text
//!   before   |--------- A rw- ---------|
//!   call                 <--- r-- --->      range ends where A ends
//!   after    |--- A ----|---- A' r-- --|    A splits; A' is then tried against next
//! ```
//!
//! # Checks, in the kernel's order (the first failure decides the errno)
//! 1. `PROT_GROWSDOWN` and `PROT_GROWSUP` together → `EINVAL`
//! 2. `start` not page aligned → `EINVAL`
//! 3. `len == 0` → success, nothing changes (even on unmapped memory)
//! 4. `start + PAGE_ALIGN(len)` wraps → `ENOMEM`
//! 5. protection bits outside read, write, exec, `PROT_SEM` → `EINVAL`
//! 6. no VMA in the range, or a hole at `start` → `ENOMEM`
//! 7. `PROT_GROWSDOWN` on a VMA without `VM_GROWSDOWN`, any `PROT_GROWSUP` (x86 has no grows-up
//!    VMAs) → `EINVAL`
//!
//! Then, VMA by VMA: a new access bit without its `VM_MAY*` → `EACCES`; sealed → `EPERM`; a split
//! at `max_map_count` → `ENOMEM`; a hole → `ENOMEM`.
//!
//! # On failure
//! VMAs already walked keep their new protection: the kernel does not roll back, and neither
//! do we. A hole after `start` stops the walk with `ENOMEM`.
//!
//! `VM_ACCOUNT`: becoming writable charges the pages and sets it unless the VMA is already
//! charged, shared or `VM_NORESERVE`; becoming read-only drops it only for an anonymous VMA that
//! never had a page written (no anon_vma). So a written private VMA made read-only keeps `ac` and
//! no longer merges with a fresh read-only neighbour, as on the host.

use crate::addr::VirtAddr;
use crate::errno::{Errno, Result, err};
use crate::flags::{self, ACCESS_FLAGS, VmaBit, VmaFlags, calc_vm_prot_bits};
use crate::mm::Mm;
use crate::tree::VmaPos;
use crate::uapi::Prot;
use crate::vma_flags;

impl Mm {
    /// `mprotect(start, len, prot)`; `prot` may carry `PROT_GROWSDOWN` or `PROT_GROWSUP`.
    pub fn mprotect(&mut self, start: VirtAddr, len: u64, prot: Prot) -> Result<()> {
        let grows = prot.bits() & (Prot::GROWSDOWN.bits() | Prot::GROWSUP.bits());
        let prot = prot.without(Prot::GROWSDOWN | Prot::GROWSUP);
        if grows == Prot::GROWSDOWN.bits() | Prot::GROWSUP.bits() {
            return Err(err(Errno::EINVAL, "PROT_GROWSDOWN and PROT_GROWSUP together"));
        }
        if !self.is_page_aligned(start) {
            return Err(err(Errno::EINVAL, "address is not page aligned"));
        }
        if len == 0 {
            return Ok(());
        }
        let end = VirtAddr(start.0.wrapping_add(self.page_align_wrapping(len)));
        if end <= start {
            return Err(err(Errno::ENOMEM, "range wraps around the end of the address space"));
        }
        // arch_validate_prot (x86): read, write, exec and PROT_SEM only.
        if prot.without(Prot::RWX | Prot::SEM).bits() != 0 {
            return Err(err(Errno::EINVAL, "unknown protection bits"));
        }
        // find_vma_prev-style: the first VMA in the range and the one before it, in one look-up,
        // whose position the walk then carries on from (the kernel's `vma_iterator`).
        let c = self.tree.cursor(start);
        let Some(first) = c.get().filter(|v| v.start() < end) else {
            return Err(err(Errno::ENOMEM, "no mapping in the range"));
        };
        let (f_start, f_end, f_flags) = (first.start(), first.end(), first.flags());
        let before = c.peek_prev().map(|v| v.start());
        let f_pos = c.pos().expect("the first VMA");
        let mut start = start;
        if grows == Prot::GROWSDOWN.bits() {
            if f_start >= end {
                return Err(err(Errno::ENOMEM, "no mapping in the range"));
            }
            start = f_start;
            if !f_flags.test(VmaBit::GrowsDown) {
                return Err(err(
                    Errno::EINVAL,
                    "PROT_GROWSDOWN on a mapping that does not grow down",
                ));
            }
        } else {
            if f_start > start {
                return Err(err(Errno::ENOMEM, "the range starts in a hole"));
            }
            if grows == Prot::GROWSUP.bits() {
                // The kernel would extend the range to the VMA's end; VM_GROWSUP is 0 on x86.
                return Err(err(Errno::EINVAL, "PROT_GROWSUP: x86 has no grows-up mappings"));
            }
        }
        let mut prev = if start > f_start { Some(f_start) } else { before };
        let mut nstart = start;
        // The VMA the walk is at: its position, end and flags, as the step that reached it read
        // them (one look-up for the whole walk).
        let (mut pos, mut v_end, mut v_flags) = (f_pos, f_end, f_flags);
        let new_access = calc_vm_prot_bits(prot);
        loop {
            debug_assert!({
                let v = self.tree.vma_at(pos);
                v.end() == v_end && v.flags() == v_flags
            });
            // Each call passes all of r/w/x: what is not asked for is cleared.
            let newflags = new_access.with(v_flags.without(ACCESS_FLAGS));
            let may = VmaFlags::from_legacy(newflags.to_legacy() >> 4);
            if !newflags.and(ACCESS_FLAGS).without(may).is_empty() {
                return Err(err(
                    Errno::EACCES,
                    "the mapping may not get that access (VM_MAY* missing)",
                ));
            }
            let tmp = v_end.min(end);
            let covering = self.mprotect_fixup(pos, v_flags, &mut prev, nstart, tmp, newflags)?;
            let done_end = self.tree.vma_at(covering).end();
            nstart = done_end;
            if done_end >= end {
                return Ok(());
            }
            // The walk continues only with a VMA that starts where this one ended.
            match self.tree.pos_after(covering) {
                Some(p) if self.tree.vma_at(p).start() == done_end => {
                    let n = self.tree.vma_at(p);
                    (pos, v_end, v_flags) = (p, n.end(), n.flags());
                }
                _ => return Err(err(Errno::ENOMEM, "the range has a hole or runs past the last mapping")),
            }
        }
    }

    /// `mprotect_fixup`: give `[start, end)` of the VMA at `pos`, whose flags are `oldflags`, the
    /// flags `newflags`, splitting or merging as needed. `prev` becomes the VMA now covering the
    /// range; returns that VMA's position.
    fn mprotect_fixup(
        &mut self,
        pos: VmaPos,
        oldflags: VmaFlags,
        prev: &mut Option<VirtAddr>,
        start: VirtAddr,
        end: VirtAddr,
        mut newflags: VmaFlags,
    ) -> Result<VmaPos> {
        // vma_is_sealed
        if oldflags.test(VmaBit::Sealed) {
            return Err(err(Errno::EPERM, "the mapping is sealed"));
        }
        let key = self.tree.vma_at(pos).start();
        if newflags == oldflags {
            *prev = Some(key);
            return Ok(pos);
        }
        let nrpages = end.pages_from(start);
        let mut charged = 0;
        if newflags.test(VmaBit::Write) {
            if !self.may_expand_vm(newflags, nrpages) && self.may_expand_vm(oldflags, nrpages) {
                return Err(err(Errno::ENOMEM, "becoming writable would exceed RLIMIT_DATA"));
            }
            if !oldflags.test_any(vma_flags![Account, Write, HugeTlb, Shared, NoReserve]) {
                self.charge(nrpages)?;
                charged = nrpages;
                newflags.set(VmaBit::Account);
            }
        } else if oldflags.test(VmaBit::Account) {
            let vma = self.tree.vma_at(pos);
            if vma.is_anonymous() && vma.anon_vma().is_none() {
                newflags.clear(VmaBit::Account);
            }
        }
        let sticky = flags::sticky_flags(self.profile.soft_dirty);
        let mut c = match self.vma_modify(*prev, pos, start, end, newflags) {
            Ok(c) => c,
            Err(e) => {
                self.uncharge(charged);
                return Err(e);
            }
        };
        // vm_flags_reset + vma_set_page_prot, at the position vma_modify returned.
        let v = c.get_mut().expect("the VMA covering the range");
        v.set_flags(newflags.with(v.flags().and(sticky)));
        v.set_page_prot_from_flags();
        let target = v.start();
        let target_pos = c.pos().expect("the VMA covering the range");
        *prev = Some(target);
        if oldflags.test(VmaBit::Account) && !newflags.test(VmaBit::Account) {
            self.uncharge(nrpages);
        }
        self.vm_stat_account(oldflags, -(nrpages as i64));
        self.vm_stat_account(newflags, nrpages as i64);
        // A locked private mapping becoming writable is faulted in for writing at once.
        if oldflags.and(vma_flags![Write, Shared, Locked]) == vma_flags![Locked] && newflags.test(VmaBit::Write) {
            self.populate_vma_range(target, start, end);
        }
        // Faulting pages in changes no VMA's place in the tree.
        Ok(target_pos)
    }
}

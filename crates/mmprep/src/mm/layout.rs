//! Where an un-fixed mapping goes: `get_unmapped_area`, per architecture.
//!
//! Without `MAP_FIXED` the kernel chooses the address. A hint that is free is taken as it is;
//! otherwise the search runs top-down from `mmap_base` and takes the *highest* hole that fits,
//! keeping a guard gap below grows-down VMAs. On x86_64, `MAP_32BIT` searches bottom-up in
//! `[1 GiB, 2 GiB)` instead. Large anonymous mappings and files whose `get_unmapped_area` is
//! `thp_get_unmapped_area` are placed PMD aligned (2 MiB with 4K pages) where possible.
//! Every rounding is in the guest's page ([`Mm::page_size`]); the windows and the hint rules are
//! the architecture's ([`crate::arch::Arch::search_window`], `hint_valid`). Host-reserved
//! ranges ([`crate::Profile::reserved`]) count as occupied for every search and hint, and a
//! fixed range that reaches into one fails with `ENOMEM`, as one past `TASK_SIZE` does.
//!
//! Mirrors `mm/mmap.c:__get_unmapped_area`, `round_hint_to_min`, on x86
//! `arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area_topdown`, `arch_get_unmapped_area`,
//! `find_start_end`, `arch/x86/mm/mmap.c:mmap_address_hint_valid`; on arm64 and riscv64
//! `mm/mmap.c:generic_get_unmapped_area_topdown` and `generic_get_unmapped_area` with the
//! architecture's `arch_get_mmap_end`/`arch_get_mmap_base`; `mm/vma.c:unmapped_area_topdown`,
//! `unmapped_area`; `mm/huge_memory.c:__thp_get_unmapped_area` (\[H\] 6.18;
//! `docs/reference/vma-rules.md` 5, `docs/profiles.md`).
//!
//! `shmem_get_unmapped_area` does not align while shmem huge pages are off (the reference host),
//! so it is treated as the default search.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::addr::{PAGE_SHIFT, VirtAddr};
use crate::arch::Isa;
use crate::errno::{Errno, Result, err};
use crate::file::{AreaPolicy, File};
use crate::flags::VmaFlags;
use crate::mm::Mm;
use crate::uapi::MapFlags;

/// The window of `MAP_32BIT` placement (`arch/x86/kernel/sys_x86_64.c:find_start_end`).
const MAP_32BIT_BEGIN: u64 = 0x4000_0000;
const MAP_32BIT_END: u64 = 0x8000_0000;

impl Mm {
    /// `round_hint_to_min`: page-round a hint; a non-zero hint below `mmap_min_addr` is raised.
    pub(crate) fn round_hint_to_min(&self, hint: VirtAddr) -> VirtAddr {
        let hint = hint.0 & self.page_mask();
        if hint != 0 && hint < self.profile.mmap_min_addr {
            return VirtAddr(self.page_align_wrapping(self.profile.mmap_min_addr));
        }
        VirtAddr(hint)
    }

    /// `__get_unmapped_area`: the address for a mapping of `len` bytes (page aligned, non-zero).
    pub(crate) fn get_unmapped_area(
        &self,
        file: Option<&Arc<File>>,
        addr: VirtAddr,
        len: u64,
        pgoff: u64,
        flags: MapFlags,
        vm_flags: VmaFlags,
    ) -> Result<VirtAddr> {
        let task_size = self.profile.task_size;
        if len > task_size {
            return Err(err(Errno::ENOMEM, "length is larger than the address space"));
        }
        let policy = match file {
            Some(f) => f.ops().area_policy(flags),
            None if flags.map_type() == MapFlags::SHARED => AreaPolicy::Shmem,
            None => AreaPolicy::Default,
        };
        // Anonymous memory is placed as if its offset were 0.
        let pgoff = if file.is_none() { 0 } else { pgoff };
        let thp_anon =
            file.is_none() && policy == AreaPolicy::Default && addr.0 == 0 && len.is_multiple_of(self.pmd_size());
        let addr = if policy == AreaPolicy::Thp || thp_anon {
            self.thp_get_unmapped_area(addr, len, pgoff, flags, vm_flags)?
        } else {
            self.mm_get_unmapped_area(addr, len, flags, vm_flags)?
        };
        if addr.0 > task_size - len {
            return Err(err(Errno::ENOMEM, "the range reaches past TASK_SIZE"));
        }
        // Not the kernel's check: a host-reserved range is treated as beyond TASK_SIZE.
        if self.profile.is_reserved(addr.0, addr.0 + len) {
            return Err(err(Errno::ENOMEM, "the range reaches into a host-reserved range"));
        }
        if !self.is_page_aligned(addr) {
            return Err(err(Errno::EINVAL, "address is not page aligned"));
        }
        // security_mmap_addr
        if addr.0 < self.profile.dac_mmap_min_addr && !self.profile.cap_sys_rawio {
            return Err(err(Errno::EPERM, "address is below vm.mmap_min_addr"));
        }
        Ok(addr)
    }

    /// `mm_get_unmapped_area`: the top-down search, or the bottom-up one in the legacy layout
    /// (`MMF_TOPDOWN` clear), with the architecture's functions.
    fn mm_get_unmapped_area(&self, addr: VirtAddr, len: u64, flags: MapFlags, vm_flags: VmaFlags) -> Result<VirtAddr> {
        match (self.profile.arch.isa(), self.profile.topdown) {
            (Isa::X86_64 | Isa::I386, true) => self.arch_get_unmapped_area_topdown(addr, len, flags, vm_flags),
            (Isa::X86_64 | Isa::I386, false) => self.arch_get_unmapped_area(addr, len, flags),
            (Isa::Arm64 | Isa::Riscv64, true) => self.generic_get_unmapped_area_topdown(addr, len, flags),
            (Isa::Arm64 | Isa::Riscv64, false) => self.generic_get_unmapped_area(addr, len, flags),
        }
    }

    /// Is `[hint, hint + len)` free: below the next VMA's `vm_start_gap` (the `find_vma` test of
    /// every architecture's hint path) and clear of the host-reserved ranges?
    fn hint_free(&self, hint: u64, len: u64) -> bool {
        let gap = self.profile.stack_guard_gap;
        let below_next = match self.tree.find_vma(VirtAddr(hint)) {
            None => true,
            Some(v) => hint + len <= v.start_gap(gap).0,
        };
        below_next && !self.profile.is_reserved(hint, hint + len)
    }

    /// x86's bottom-up hint test: `end - len >= hint`, then free. `end` is the top of the
    /// window (`TASK_SIZE`, or 2 GiB for `MAP_32BIT`).
    fn hint_fits(&self, addr: VirtAddr, len: u64, end: u64) -> Option<VirtAddr> {
        if addr.0 == 0 {
            return None;
        }
        let hint = addr.0 & self.page_mask();
        (end - len >= hint && self.hint_free(hint, len)).then_some(VirtAddr(hint))
    }

    /// `arch_get_unmapped_area` (x86, bottom-up): the lowest hole at or above
    /// `mmap_legacy_base`; for `MAP_32BIT` on x86_64, the lowest in `[1 GiB, 2 GiB)`
    /// (`find_start_end`: "Give it 1GB of playground for now", not randomised with
    /// randomisation off). A 32-bit task ignores `MAP_32BIT` (`in_32bit_syscall`).
    fn arch_get_unmapped_area(&self, addr: VirtAddr, len: u64, flags: MapFlags) -> Result<VirtAddr> {
        if flags.contains(MapFlags::FIXED) {
            return Ok(addr);
        }
        let (begin, end) = if flags.contains(MapFlags::BIT32) && self.profile.arch.has_map_32bit() {
            (MAP_32BIT_BEGIN, MAP_32BIT_END)
        } else {
            (self.profile.mmap_legacy_base, self.profile.arch.search_window(addr.0).0)
        };
        if len > end {
            return Err(err(Errno::ENOMEM, "length is larger than the address space"));
        }
        if let Some(hint) = self.hint_fits(addr, len, end) {
            return Ok(hint);
        }
        self.unmapped_area_bottomup(len, begin, end)
            .map(VirtAddr)
            .ok_or(err(Errno::ENOMEM, "no free range is large enough"))
    }

    /// `arch_get_unmapped_area_topdown` (x86).
    fn arch_get_unmapped_area_topdown(
        &self,
        addr: VirtAddr,
        len: u64,
        flags: MapFlags,
        _vm_flags: VmaFlags,
    ) -> Result<VirtAddr> {
        let arch = self.profile.arch;
        let task_size = self.profile.task_size;
        if len > task_size {
            return Err(err(Errno::ENOMEM, "length is larger than the address space"));
        }
        if flags.contains(MapFlags::FIXED) {
            return Ok(addr);
        }
        // "for MAP_32BIT mappings we force the legacy mmap base": the bottom-up search.
        if flags.contains(MapFlags::BIT32) && arch.has_map_32bit() {
            return self.arch_get_unmapped_area(addr, len, flags);
        }
        if addr.0 != 0 {
            let hint = addr.0 & self.page_mask();
            if arch.hint_valid(hint, len) && self.hint_free(hint, len) {
                return Ok(VirtAddr(hint));
            }
        }
        // A hint above DEFAULT_MAP_WINDOW opens the space above it (5-level paging).
        let (_, shift) = arch.search_window(addr.0);
        let low = self.page_size().max(self.profile.mmap_min_addr);
        if let Some(a) = self.unmapped_area_topdown(len, low, self.profile.mmap_base + shift) {
            return Ok(VirtAddr(a));
        }
        // "A failed mmap() very likely causes application failure": fall back to the bottom-up
        // search (arch_get_unmapped_area, from mmap_legacy_base).
        self.arch_get_unmapped_area(addr, len, flags)
    }

    /// The generic hint test (`generic_get_unmapped_area[_topdown]`): `PAGE_ALIGN(hint)` taken
    /// if `mmap_end - len >= hint >= mmap_min_addr` and free.
    fn generic_hint(&self, addr: VirtAddr, len: u64, mmap_end: u64) -> Option<VirtAddr> {
        if addr.0 == 0 {
            return None;
        }
        let hint = self.page_align_wrapping(addr.0);
        (mmap_end - len >= hint && hint >= self.profile.mmap_min_addr && self.hint_free(hint, len))
            .then_some(VirtAddr(hint))
    }

    /// `mm/mmap.c:generic_get_unmapped_area_topdown` (arm64, riscv64).
    fn generic_get_unmapped_area_topdown(&self, addr: VirtAddr, len: u64, flags: MapFlags) -> Result<VirtAddr> {
        let (mmap_end, shift) = self.profile.arch.search_window(addr.0);
        if len > mmap_end.saturating_sub(self.profile.mmap_min_addr) {
            return Err(err(Errno::ENOMEM, "length is larger than the address space"));
        }
        if flags.contains(MapFlags::FIXED) {
            return Ok(addr);
        }
        if let Some(hint) = self.generic_hint(addr, len, mmap_end) {
            return Ok(hint);
        }
        let low = self.page_size().max(self.profile.mmap_min_addr);
        if let Some(a) = self.unmapped_area_topdown(len, low, self.profile.mmap_base + shift) {
            return Ok(VirtAddr(a));
        }
        // The bottom-up fallback, from TASK_UNMAPPED_BASE to mmap_end.
        self.unmapped_area_bottomup(len, self.profile.arch.unmapped_base(), mmap_end)
            .map(VirtAddr)
            .ok_or(err(Errno::ENOMEM, "no free range is large enough"))
    }

    /// `mm/mmap.c:generic_get_unmapped_area` (arm64, riscv64, legacy layout): from
    /// `mm->mmap_base` (the legacy base) up to `mmap_end`.
    fn generic_get_unmapped_area(&self, addr: VirtAddr, len: u64, flags: MapFlags) -> Result<VirtAddr> {
        let (mmap_end, _) = self.profile.arch.search_window(addr.0);
        if len > mmap_end.saturating_sub(self.profile.mmap_min_addr) {
            return Err(err(Errno::ENOMEM, "length is larger than the address space"));
        }
        if flags.contains(MapFlags::FIXED) {
            return Ok(addr);
        }
        if let Some(hint) = self.generic_hint(addr, len, mmap_end) {
            return Ok(hint);
        }
        self.unmapped_area_bottomup(len, self.profile.mmap_legacy_base, mmap_end)
            .map(VirtAddr)
            .ok_or(err(Errno::ENOMEM, "no free range is large enough"))
    }

    /// The occupied intervals `[vm_start_gap, vm_end)` of the VMAs, with the host-reserved
    /// ranges among them, lowest first. Only built when there are reserved ranges.
    fn occupied_with_reserved(&self) -> Vec<(u64, u64)> {
        let gap = self.profile.stack_guard_gap;
        let mut v: Vec<(u64, u64)> = self.tree.iter().map(|v| (v.start_gap(gap).0, v.end().0)).collect();
        // Rounded out to whole guest pages, so that every hole stays page aligned.
        let mask = self.page_mask();
        v.extend(
            self.profile
                .reserved
                .iter()
                .map(|r| (r.start & mask, self.page_align_wrapping(r.end))),
        );
        v.sort_unstable_by_key(|&(lo, hi)| (hi, lo));
        v
    }

    /// `unmapped_area_topdown`: the highest `len`-byte hole in `[low, high)`, returned as its
    /// start (`hole_end - len`).
    fn unmapped_area_topdown(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        if self.profile.reserved.is_empty() {
            let gap = self.profile.stack_guard_gap;
            topdown_in(
                self.tree.iter().rev().map(|v| (v.start_gap(gap).0, v.end().0)),
                len,
                low,
                high,
            )
        } else {
            topdown_in(self.occupied_with_reserved().into_iter().rev(), len, low, high)
        }
    }

    /// `unmapped_area`: the lowest `len`-byte hole in `[low, high)`.
    fn unmapped_area_bottomup(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        if self.profile.reserved.is_empty() {
            let gap = self.profile.stack_guard_gap;
            bottomup_in(
                self.tree.iter().map(|v| (v.start_gap(gap).0, v.end().0)),
                len,
                low,
                high,
            )
        } else {
            let mut v = self.occupied_with_reserved();
            v.sort_unstable();
            bottomup_in(v.into_iter(), len, low, high)
        }
    }

    /// `thp_get_unmapped_area`: try a placement whose file offset and address agree modulo 2 MiB
    /// (for anonymous memory: a 2 MiB aligned address), by searching for `len + 2 MiB` and
    /// aligning inside the hole; fall back to the plain search.
    fn thp_get_unmapped_area(
        &self,
        addr: VirtAddr,
        len: u64,
        pgoff: u64,
        flags: MapFlags,
        vm_flags: VmaFlags,
    ) -> Result<VirtAddr> {
        if let Some(a) = self.thp_try(addr, len, pgoff, flags, vm_flags) {
            return Ok(a);
        }
        self.mm_get_unmapped_area(addr, len, flags, vm_flags)
    }

    /// `__thp_get_unmapped_area`: `None` means "fall back".
    fn thp_try(&self, addr: VirtAddr, len: u64, pgoff: u64, flags: MapFlags, vm_flags: VmaFlags) -> Option<VirtAddr> {
        let off = pgoff
            .checked_shl(PAGE_SHIFT)
            .filter(|_| pgoff >> (64 - PAGE_SHIFT) == 0)?;
        if off > i64::MAX as u64 {
            return None;
        }
        let off_end = off.checked_add(len)?;
        let pmd = self.pmd_size();
        let off_align = off.checked_add(pmd - 1)? & !(pmd - 1);
        if off_end <= off_align || off_end - off_align < pmd {
            return None;
        }
        let len_pad = len.checked_add(pmd)?;
        off.checked_add(len_pad)?;
        let ret = self.mm_get_unmapped_area(addr, len_pad, flags, vm_flags).ok()?;
        if ret == addr {
            return Some(addr);
        }
        let off_sub = off.wrapping_sub(ret.0) & (pmd - 1);
        // A top-down mm with an already aligned hole leaves the padding below.
        if self.profile.topdown && off_sub == 0 {
            return Some(VirtAddr(ret.0 + pmd));
        }
        Some(VirtAddr(ret.0 + off_sub))
    }
}

/// The top-down walk over occupied intervals given highest first (by end).
fn topdown_in(occupied: impl Iterator<Item = (u64, u64)>, len: u64, low: u64, high: u64) -> Option<u64> {
    let mut cur = high;
    for (occ_lo, occ_hi) in occupied {
        if cur <= low {
            return None;
        }
        if occ_hi < cur {
            let hole_lo = occ_hi.max(low);
            if cur >= hole_lo && cur - hole_lo >= len {
                return Some(cur - len);
            }
        }
        cur = cur.min(occ_lo);
    }
    (cur > low && cur - low >= len).then(|| cur - len)
}

/// The bottom-up walk over occupied intervals given lowest first.
fn bottomup_in(occupied: impl Iterator<Item = (u64, u64)>, len: u64, low: u64, high: u64) -> Option<u64> {
    let mut cur = low;
    for (occ_lo, occ_hi) in occupied {
        if occ_hi <= cur {
            continue;
        }
        if occ_lo > cur && occ_lo.min(high) - cur >= len {
            return Some(cur);
        }
        cur = cur.max(occ_hi);
        if cur >= high {
            return None;
        }
    }
    (high > cur && high - cur >= len).then_some(cur)
}

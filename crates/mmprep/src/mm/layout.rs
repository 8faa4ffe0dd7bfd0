//! Where an un-fixed mapping goes: `get_unmapped_area` on x86_64.
//!
//! Without `MAP_FIXED` the kernel chooses the address. A hint that is free is taken as it is;
//! otherwise the search runs top-down from `mmap_base` and takes the *highest* hole that fits,
//! keeping a guard gap below grows-down VMAs. `MAP_32BIT` searches bottom-up in
//! `[1 GiB, 2 GiB)` instead. Large anonymous mappings and files whose
//! `get_unmapped_area` is `thp_get_unmapped_area` are placed 2 MiB aligned where possible.
//!
//! Mirrors `mm/mmap.c:__get_unmapped_area`, `round_hint_to_min`,
//! `arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area_topdown`,
//! `arch/x86/mm/mmap.c:mmap_address_hint_valid`, `mm/vma.c:unmapped_area_topdown`,
//! `arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area` (the legacy bottom-up layout, see
//! [`crate::mmap_layout`]), `mm/huge_memory.c:__thp_get_unmapped_area` (\[H\] 6.18;
//! `docs/reference/vma-rules.md` 5).
//!
//! `shmem_get_unmapped_area` does not align while shmem huge pages are off (the reference host),
//! so it is treated as the default search.

use alloc::sync::Arc;

use crate::addr::{PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, VirtAddr};
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
        let hint = hint.0 & PAGE_MASK;
        if hint != 0 && hint < self.profile.mmap_min_addr {
            return VirtAddr((self.profile.mmap_min_addr + PAGE_SIZE - 1) & PAGE_MASK);
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
        let thp_anon = file.is_none() && policy == AreaPolicy::Default && addr.0 == 0 && len.is_multiple_of(PMD_SIZE);
        let addr = if policy == AreaPolicy::Thp || thp_anon {
            self.thp_get_unmapped_area(addr, len, pgoff, flags, vm_flags)?
        } else {
            self.mm_get_unmapped_area(addr, len, flags, vm_flags)?
        };
        if addr.0 > task_size - len {
            return Err(err(Errno::ENOMEM, "the range reaches past TASK_SIZE"));
        }
        if !addr.is_page_aligned() {
            return Err(err(Errno::EINVAL, "address is not page aligned"));
        }
        // security_mmap_addr
        if addr.0 < self.profile.dac_mmap_min_addr && !self.profile.cap_sys_rawio {
            return Err(err(Errno::EPERM, "address is below vm.mmap_min_addr"));
        }
        Ok(addr)
    }

    /// `mm_get_unmapped_area`: the top-down search, or the bottom-up one in the legacy layout
    /// (`MMF_TOPDOWN` clear).
    fn mm_get_unmapped_area(&self, addr: VirtAddr, len: u64, flags: MapFlags, vm_flags: VmaFlags) -> Result<VirtAddr> {
        if self.profile.topdown {
            self.arch_get_unmapped_area_topdown(addr, len, flags, vm_flags)
        } else {
            self.arch_get_unmapped_area(addr, len, flags)
        }
    }

    /// A free hint is taken as it is (`mmap_address_hint_valid` with 4-level paging, where
    /// `DEFAULT_MAP_WINDOW == TASK_SIZE`, then the `find_vma` / `vm_start_gap` test).
    /// `end` is the top of the search window (`TASK_SIZE`, or 2 GiB for `MAP_32BIT`).
    fn hint_fits(&self, addr: VirtAddr, len: u64, end: u64) -> Option<VirtAddr> {
        if addr.0 == 0 {
            return None;
        }
        let hint = addr.0 & PAGE_MASK;
        if end - len < hint {
            return None;
        }
        let gap = self.profile.stack_guard_gap;
        match self.tree.find_vma(VirtAddr(hint)) {
            None => Some(VirtAddr(hint)),
            Some(v) if hint + len <= v.start_gap(gap).0 => Some(VirtAddr(hint)),
            Some(_) => None,
        }
    }

    /// `arch_get_unmapped_area` (x86_64, bottom-up): the lowest hole at or above
    /// `mmap_legacy_base`; for `MAP_32BIT`, the lowest in `[1 GiB, 2 GiB)` (`find_start_end`:
    /// "Give it 1GB of playground for now", not randomised with randomisation off).
    fn arch_get_unmapped_area(&self, addr: VirtAddr, len: u64, flags: MapFlags) -> Result<VirtAddr> {
        if flags.contains(MapFlags::FIXED) {
            return Ok(addr);
        }
        let (begin, end) = if flags.contains(MapFlags::BIT32) {
            (MAP_32BIT_BEGIN, MAP_32BIT_END)
        } else {
            (self.profile.mmap_legacy_base, self.profile.task_size)
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

    /// `arch_get_unmapped_area_topdown` (x86_64).
    fn arch_get_unmapped_area_topdown(
        &self,
        addr: VirtAddr,
        len: u64,
        flags: MapFlags,
        _vm_flags: VmaFlags,
    ) -> Result<VirtAddr> {
        let task_size = self.profile.task_size;
        if len > task_size {
            return Err(err(Errno::ENOMEM, "length is larger than the address space"));
        }
        if flags.contains(MapFlags::FIXED) {
            return Ok(addr);
        }
        // "for MAP_32BIT mappings we force the legacy mmap base": the bottom-up search.
        if flags.contains(MapFlags::BIT32) {
            return self.arch_get_unmapped_area(addr, len, flags);
        }
        if let Some(hint) = self.hint_fits(addr, len, task_size) {
            return Ok(hint);
        }
        let low = PAGE_SIZE.max(self.profile.mmap_min_addr);
        if let Some(a) = self.unmapped_area_topdown(len, low, self.profile.mmap_base) {
            return Ok(VirtAddr(a));
        }
        // "A failed mmap() very likely causes application failure": fall back to the bottom-up
        // search (arch_get_unmapped_area, from mmap_legacy_base).
        self.arch_get_unmapped_area(addr, len, flags)
    }

    /// The occupied interval of a VMA for placement: `[vm_start_gap, vm_end)`.
    fn occupied(&self, v: &crate::vma::Vma) -> (u64, u64) {
        (v.start_gap(self.profile.stack_guard_gap).0, v.end.0)
    }

    /// `unmapped_area_topdown`: the highest `len`-byte hole in `[low, high)`, returned as its
    /// start (`hole_end - len`).
    fn unmapped_area_topdown(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        let mut cur = high;
        for v in self.tree.iter().rev() {
            if cur <= low {
                return None;
            }
            let (occ_lo, occ_hi) = self.occupied(v);
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

    /// `unmapped_area`: the lowest `len`-byte hole in `[low, high)`.
    fn unmapped_area_bottomup(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        let mut cur = low;
        for v in self.tree.iter() {
            let (occ_lo, occ_hi) = self.occupied(v);
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
        let off_align = off.checked_add(PMD_SIZE - 1)? & !(PMD_SIZE - 1);
        if off_end <= off_align || off_end - off_align < PMD_SIZE {
            return None;
        }
        let len_pad = len.checked_add(PMD_SIZE)?;
        off.checked_add(len_pad)?;
        let ret = self.mm_get_unmapped_area(addr, len_pad, flags, vm_flags).ok()?;
        if ret == addr {
            return Some(addr);
        }
        let off_sub = off.wrapping_sub(ret.0) & (PMD_SIZE - 1);
        // A top-down mm with an already aligned hole leaves the padding below.
        if self.profile.topdown && off_sub == 0 {
            return Some(VirtAddr(ret.0 + PMD_SIZE));
        }
        Some(VirtAddr(ret.0 + off_sub))
    }
}

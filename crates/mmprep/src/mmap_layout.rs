//! The x86_64 process layout with address randomisation off: where `mmap(NULL, ...)` starts.
//!
//! At `execve` the kernel picks, once per process, the top of the top-down search
//! (`mm->mmap_base`), the start of the bottom-up one (`mm->mmap_legacy_base`) and which of the
//! two the process uses (`MMF_TOPDOWN`). With `ADDR_NO_RANDOMIZE` (`setarch -R`) the random
//! factor is 0 and every value follows from `TASK_SIZE`, the stack rlimit and the stack guard
//! gap:
//!
//! ```text
//!   gap  = RLIMIT_STACK + stack_guard_gap      (unless that overflows: then RLIMIT_STACK)
//!   gap  = clamp(gap, 128 MiB, TASK_SIZE / 6 * 5)
//!   mmap_base        = PAGE_ALIGN(TASK_SIZE - gap)
//!   mmap_legacy_base = PAGE_ALIGN(TASK_SIZE / 3)   (TASK_UNMAPPED_BASE)
//! ```
//!
//! The bottom-up ("legacy") layout is chosen only by the `ADDR_COMPAT_LAYOUT` personality
//! (`setarch -L`) or the `vm.legacy_va_layout` sysctl. An unlimited stack rlimit does *not*
//! choose it on x86_64 (the generic `mm/util.c:mmap_is_legacy` does, x86's own does not): the gap
//! is clamped to five sixths of the address space instead, and `mmap_base` is
//! `0x155555556000`. Host probe, Linux 6.18.44 x86_64, `setarch -R`: `ulimit -s 8192` and
//! `65536` → `0x7ffff7fff000`, `1048576` → `0x7fffbfeff000`, `unlimited` → `0x155555556000`
//! (the top of `ld.so`, the first `mmap(NULL)` of the process); `setarch -R -L` with any stack
//! limit → bottom-up from `0x2aaaaaaab000` (`tests/layout.rs` runs the probe again).
//!
//! These functions are the x86_64, 4 KiB case; [`crate::arch::Arch::pick_mmap_layout`] computes
//! the same for every guest architecture (the profile uses it) and agrees with them on x86_64.
//!
//! Mirrors `arch/x86/mm/mmap.c:arch_pick_mmap_layout`, `arch_pick_mmap_base`, `mmap_base`,
//! `mmap_legacy_base`, `mmap_is_legacy`, `include/linux/sched/mm.h` (`TASK_UNMAPPED_BASE`,
//! `__TASK_UNMAPPED_BASE`).

use crate::addr::{PAGE_MASK, PAGE_SIZE};

/// x86_64 `TASK_SIZE` (and `DEFAULT_MAP_WINDOW`) with 4-level paging: `(1 << 47) - PAGE_SIZE`.
pub const TASK_SIZE_4LEVEL: u64 = (1 << 47) - PAGE_SIZE;

/// The smallest gap left between `mmap_base` and the top of the address space (`SIZE_128M`).
pub const MIN_GAP: u64 = 128 << 20;

/// The layout decision of one process (`mm->mmap_base`, `mm->mmap_legacy_base`, `MMF_TOPDOWN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapLayout {
    /// `mm->mmap_base`: the top of the top-down search (the legacy base in the legacy layout).
    pub mmap_base: u64,
    /// `mm->mmap_legacy_base`: the bottom of the bottom-up search.
    pub mmap_legacy_base: u64,
    /// `MMF_TOPDOWN`.
    pub topdown: bool,
}

fn page_align_up(x: u64) -> u64 {
    x.saturating_add(PAGE_SIZE - 1) & PAGE_MASK
}

/// `mmap_base(rnd = 0, task_size, rlim_stack)`: the top of the top-down area.
///
/// `rlimit_stack` is the soft limit in bytes (`u64::MAX` for `RLIM_INFINITY`); the pad is the
/// stack guard gap alone, since `stack_maxrandom_size` is 0 without `PF_RANDOMIZE`.
pub fn mmap_base(task_size: u64, rlimit_stack: u64, stack_guard_gap: u64) -> u64 {
    let mut gap = rlimit_stack;
    let pad = stack_guard_gap;
    // "Values close to RLIM_INFINITY can overflow."
    if let Some(g) = gap.checked_add(pad) {
        gap = g;
    }
    let gap_max = (task_size / 6) * 5;
    let gap = gap.clamp(MIN_GAP, gap_max.max(MIN_GAP));
    page_align_up(task_size.saturating_sub(gap))
}

/// `mmap_legacy_base(rnd = 0, task_size)`: `__TASK_UNMAPPED_BASE(task_size)`.
pub fn mmap_legacy_base(task_size: u64) -> u64 {
    page_align_up(task_size / 3)
}

/// `arch_pick_mmap_layout` for a 64-bit task without randomisation. `legacy` is
/// `mmap_is_legacy()`: the `ADDR_COMPAT_LAYOUT` personality or `vm.legacy_va_layout`.
pub fn pick_mmap_layout(task_size: u64, rlimit_stack: u64, stack_guard_gap: u64, legacy: bool) -> MmapLayout {
    let legacy_base = mmap_legacy_base(task_size);
    MmapLayout {
        mmap_base: if legacy {
            legacy_base
        } else {
            mmap_base(task_size, rlimit_stack, stack_guard_gap)
        },
        mmap_legacy_base: legacy_base,
        topdown: !legacy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: u64 = 256 << 12;

    /// Values measured on the host (see the module doc).
    #[test]
    fn host_values() {
        let t = TASK_SIZE_4LEVEL;
        assert_eq!(mmap_base(t, 8 << 20, GAP), 0x7fff_f7ff_f000);
        assert_eq!(mmap_base(t, 64 << 20, GAP), 0x7fff_f7ff_f000);
        assert_eq!(mmap_base(t, 1 << 30, GAP), 0x7fff_bfef_f000);
        assert_eq!(mmap_base(t, u64::MAX, GAP), 0x1555_5555_6000);
        assert_eq!(mmap_legacy_base(t), 0x2aaa_aaaa_b000);
        let l = pick_mmap_layout(t, 8 << 20, GAP, true);
        assert_eq!((l.mmap_base, l.topdown), (0x2aaa_aaaa_b000, false));
    }
}

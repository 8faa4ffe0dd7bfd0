//! The host profile: the facts about the machine that change a system call's answer.
//!
//! The same `mmap` call can succeed on one machine and fail on another: privileges, resource
//! limits, the overcommit policy and memory size, `vm.max_map_count`, transparent-hugepage
//! settings and kernel build options all take part. The engine never reads the machine; it takes
//! these facts as a plain [`Profile`] value. The CLI fills one from the machine it runs on
//! (`mmprep-host`), so that a diff against the host kernel compares like with like; tests build
//! one explicitly, usually [`Profile::reference_host`].
//!
//! Values and their kernel sources are listed in `docs/reference/vma-rules.md` section 0.
//!
//! The guest architecture is part of the profile ([`Profile::arch`], [`crate::arch`]):
//! [`Profile::for_arch`] gives the reference host's limits with another architecture's page
//! size, address-space size and placement rules, and [`Profile::reserved`] lists the ranges an
//! embedder keeps for itself. `docs/profiles.md` lists every architecture and what is checked
//! against a real kernel.

use alloc::vec::Vec;
use core::ops::Range;

use crate::arch::Arch;

/// `vm.overcommit_memory` (`mm/util.c:__vm_enough_memory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overcommit {
    /// 0, `OVERCOMMIT_GUESS`: refuse only a single charge larger than RAM + swap.
    Guess,
    /// 1, `OVERCOMMIT_ALWAYS`: never refuse.
    Always,
    /// 2, `OVERCOMMIT_NEVER`: strict accounting; `MAP_NORESERVE` is ignored.
    Never,
}

/// `/sys/kernel/mm/transparent_hugepage/enabled` (`TRANSPARENT_HUGEPAGE_FLAG`,
/// `TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG`), as it applies to 2 MiB (PMD) pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpMode {
    /// Every suitable anonymous VMA not marked `nh` may get huge pages.
    Always,
    /// Only VMAs with `hugepage` advice (`hg`, `VM_HUGEPAGE`).
    Madvise,
    /// None.
    Never,
}

/// `/sys/kernel/mm/transparent_hugepage/defrag`: how hard a huge-page allocation tries. It only
/// decides whether an allocation succeeds on a fragmented machine; the engine's allocations
/// always succeed, so it is recorded, not consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpDefrag {
    Always,
    Defer,
    DeferMadvise,
    Madvise,
    Never,
}

/// `/sys/kernel/mm/transparent_hugepage/shmem_enabled` (`mm/shmem.c:shmem_huge`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmemThp {
    Always,
    WithinSize,
    Advise,
    Never,
    Deny,
    Force,
}

/// The filesystem behind the scenario's `tmpfile` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmpfileFs {
    /// ext4 (the reference host's `/tmp`): refuses `MAP_SYNC` on non-DAX files, THP-aligns
    /// placement (`thp_get_unmapped_area`).
    Ext4,
    /// tmpfs: shmem files.
    Tmpfs,
}

/// Everything about the host that the engine needs to answer exactly as the kernel would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// `CAP_SYS_RAWIO`: may map below `dac_mmap_min_addr` (root has it).
    pub cap_sys_rawio: bool,
    /// `CAP_IPC_LOCK`: `mlock` ignores `RLIMIT_MEMLOCK` (root has it).
    pub cap_ipc_lock: bool,
    /// `RLIMIT_MEMLOCK` in bytes; `u64::MAX` for unlimited.
    pub rlimit_memlock: u64,
    /// `RLIMIT_AS` in bytes; `u64::MAX` for unlimited.
    pub rlimit_as: u64,
    /// `RLIMIT_DATA` in bytes; `u64::MAX` for unlimited.
    pub rlimit_data: u64,
    /// `RLIMIT_STACK` in bytes; `u64::MAX` for unlimited.
    pub rlimit_stack: u64,
    /// `vm.overcommit_memory`.
    pub overcommit: Overcommit,
    /// `vm.overcommit_ratio` (percent), used in [`Overcommit::Never`] mode.
    pub overcommit_ratio: u64,
    /// Total RAM in pages (`totalram_pages`).
    pub total_ram_pages: u64,
    /// Total swap in pages.
    pub total_swap_pages: u64,
    /// `vm.max_map_count`.
    pub max_map_count: u64,
    /// VMAs the process has that the engine does not model (the runner's own program, libraries,
    /// heap and stack). They count against `max_map_count` on the host.
    pub unmodelled_map_count: u64,
    /// Transparent hugepages of PMD size for anonymous memory: `enabled`, unless
    /// `hugepages-2048kB/enabled` says something other than `inherit`
    /// (`mm/huge_memory.c:__thp_vma_allowable_orders`, `hugepage_pmd_enabled`).
    pub thp: ThpMode,
    /// `transparent_hugepage/defrag`.
    pub thp_defrag: ThpDefrag,
    /// `transparent_hugepage/use_zero_page`: a read fault on the huge path maps the huge zero
    /// page (`mm/huge_memory.c:do_huge_pmd_anonymous_page`); without it, it allocates a huge page.
    pub thp_use_zero_page: bool,
    /// `transparent_hugepage/shmem_enabled`.
    pub thp_shmem: ShmemThp,
    /// `CONFIG_PT_RECLAIM`: `MADV_DONTNEED` frees a page table it empties over a whole 2 MiB
    /// block (`mm/pt_reclaim.c:try_get_and_clear_pmd`), so a later fault there may take the
    /// huge path again.
    pub pt_reclaim: bool,
    /// `CONFIG_MEM_SOFT_DIRTY`: `VM_SOFTDIRTY` exists and `sd` is printed.
    pub soft_dirty: bool,
    /// `CONFIG_ANON_VMA_NAME`.
    pub anon_vma_name: bool,
    /// `TASK_SIZE` (x86_64, 4-level paging: `0x7ffffffff000`).
    pub task_size: u64,
    /// The kernel-internal `mmap_min_addr` (the larger of the sysctl and
    /// `CONFIG_LSM_MMAP_MIN_ADDR`): hints below it are raised to it.
    pub mmap_min_addr: u64,
    /// `/proc/sys/vm/mmap_min_addr` (`dac_mmap_min_addr`): fixed mappings below it need
    /// `CAP_SYS_RAWIO`.
    pub dac_mmap_min_addr: u64,
    /// `mm->mmap_base`: the top of the top-down search (in the legacy layout, the legacy base).
    /// [`Profile::pick_mmap_layout`] derives it from `rlimit_stack`.
    pub mmap_base: u64,
    /// `mm->mmap_legacy_base`: the start of the bottom-up search (`TASK_UNMAPPED_BASE`), used by
    /// the legacy layout and as the top-down search's fallback.
    pub mmap_legacy_base: u64,
    /// `MMF_TOPDOWN`: the top-down layout (`false`: the legacy bottom-up one).
    pub topdown: bool,
    /// `stack_guard_gap` in bytes (256 pages).
    pub stack_guard_gap: u64,
    /// The filesystem behind `tmpfile`.
    pub tmpfile_fs: TmpfileFs,
    /// The guest architecture: page size, `TASK_SIZE`, placement rules, system-call numbers.
    /// Set it with [`Profile::for_arch`] or [`Profile::set_arch`], which keep the fields that
    /// follow from it (`task_size`, `stack_guard_gap`, the mmap bases) in step.
    pub arch: Arch,
    /// Host-reserved ranges `[start, end)`, 4096-byte aligned (rounded out to whole guest pages
    /// where the page is larger): memory the guest can never get (the emulator's own). Placement skips them; a fixed mapping, a taken hint, an `mremap`
    /// target or a `brk` that would reach into one fails as a range beyond `TASK_SIZE` does.
    /// Empty on a real kernel.
    pub reserved: Vec<Range<u64>>,
    /// `X86_FEATURE_OSPKE`: memory protection keys are on, and pkey 0 is allocated in every mm
    /// (`arch/x86/include/asm/mmu_context.h:init_new_context`). Without them no pkey is, and
    /// `pkey_mprotect` accepts only -1.
    pub pkeys: bool,
}

impl Profile {
    /// The reference host of `docs/reference/vma-rules.md` section 0: Linux 6.18 x86_64, root,
    /// overcommit 0, 23 GiB RAM and no swap, `max_map_count` 65530, THP `madvise` (defrag
    /// `madvise`, `use_zero_page` 1, shmem `never`, `CONFIG_PT_RECLAIM`), no soft-dirty,
    /// no anon VMA names, ext4 `/tmp`, no protection keys, and an `mmap_base` as with
    /// `setarch -R` and an 8 MiB stack.
    pub fn reference_host() -> Profile {
        Profile {
            cap_sys_rawio: true,
            cap_ipc_lock: true,
            rlimit_memlock: 8 << 20,
            rlimit_as: u64::MAX,
            rlimit_data: u64::MAX,
            rlimit_stack: 8 << 20,
            overcommit: Overcommit::Guess,
            overcommit_ratio: 50,
            total_ram_pages: (23u64 << 30) >> 12,
            total_swap_pages: 0,
            max_map_count: 65530,
            unmodelled_map_count: 0,
            thp: ThpMode::Madvise,
            thp_defrag: ThpDefrag::Madvise,
            thp_use_zero_page: true,
            thp_shmem: ShmemThp::Never,
            pt_reclaim: true,
            soft_dirty: false,
            anon_vma_name: false,
            task_size: 0x7fff_ffff_f000,
            mmap_min_addr: 65536,
            dac_mmap_min_addr: 4096,
            mmap_base: 0x7fff_f7ff_f000,
            mmap_legacy_base: 0x2aaa_aaaa_b000,
            topdown: true,
            stack_guard_gap: 256 << 12,
            tmpfile_fs: TmpfileFs::Ext4,
            pkeys: false,
            arch: Arch::X86_64,
            reserved: Vec::new(),
        }
    }

    /// The reference host's limits and settings for a guest of architecture `name`
    /// ([`Arch::NAMES`]), with the top-down layout of an 8 MiB stack under `setarch -R`.
    /// `None` for an unknown name. `for_arch("x86_64")` is [`Profile::reference_host`].
    pub fn for_arch(name: &str) -> Option<Profile> {
        let mut p = Profile::reference_host();
        p.set_arch(Arch::by_name(name)?);
        Some(p)
    }

    /// Makes `arch` the guest architecture and recomputes what follows from it: `task_size`,
    /// `stack_guard_gap` (256 guest pages, `mm/mmap.c:stack_guard_gap`) and the mmap bases
    /// for the current layout ([`Profile::pick_mmap_layout`]).
    pub fn set_arch(&mut self, arch: Arch) {
        self.arch = arch;
        self.task_size = arch.task_size();
        self.stack_guard_gap = 256 << arch.page_shift();
        self.pick_mmap_layout(!self.topdown);
    }

    /// Does `[start, end)` reach into a host-reserved range?
    pub fn is_reserved(&self, start: u64, end: u64) -> bool {
        self.reserved.iter().any(|r| start < r.end && r.start < end)
    }

    /// `arch_pick_mmap_layout` without randomisation: sets `mmap_base`, `mmap_legacy_base` and
    /// `topdown` from the architecture, `rlimit_stack` and `stack_guard_gap`, as `execve` does
    /// under `setarch -R` (`legacy`: under `setarch -L` or `vm.legacy_va_layout`; on arm64 and
    /// riscv64 an unlimited stack also chooses it). See [`crate::mmap_layout`] and
    /// [`Arch::pick_mmap_layout`].
    pub fn pick_mmap_layout(&mut self, legacy: bool) {
        let l = self
            .arch
            .pick_mmap_layout(self.rlimit_stack, self.stack_guard_gap, legacy);
        self.mmap_base = l.mmap_base;
        self.mmap_legacy_base = l.mmap_legacy_base;
        self.topdown = l.topdown;
    }

    /// The reference host with a process started under `setarch -R` with this stack rlimit
    /// (`u64::MAX`: unlimited) and the top-down layout.
    pub fn with_stack_rlimit(rlimit_stack: u64) -> Profile {
        let mut p = Profile {
            rlimit_stack,
            ..Profile::reference_host()
        };
        p.pick_mmap_layout(false);
        p
    }

    /// Sets one transparent-hugepage setting by its sysfs name under
    /// `/sys/kernel/mm/transparent_hugepage/` (`thp.enabled`, `thp.defrag`,
    /// `thp.use_zero_page`, `thp.shmem_enabled`) or `config.pt_reclaim` (`CONFIG_PT_RECLAIM`),
    /// to a value as sysfs writes it (`always`, `madvise`, `never`, ...; `0` or `1`). This is
    /// how an engine run covers settings the host does not have (`mmprep run --set`).
    ///
    /// Two keys are not sysfs files: `arch` takes an architecture name ([`Arch::NAMES`],
    /// [`Profile::set_arch`]) and `reserved` adds a host-reserved range `START-END` (hexadecimal,
    /// 4096-byte aligned; a larger guest page rounds it out to whole pages).
    ///
    /// # On failure
    /// An unknown key or a value the setting does not take: nothing changes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), &'static str> {
        let flag = |v: &str| match v {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err("the value is 0 or 1"),
        };
        match key {
            "thp.enabled" => {
                self.thp = match value {
                    "always" => ThpMode::Always,
                    "madvise" => ThpMode::Madvise,
                    "never" => ThpMode::Never,
                    _ => return Err("thp.enabled is always, madvise or never"),
                }
            }
            "thp.defrag" => {
                self.thp_defrag = match value {
                    "always" => ThpDefrag::Always,
                    "defer" => ThpDefrag::Defer,
                    "defer+madvise" => ThpDefrag::DeferMadvise,
                    "madvise" => ThpDefrag::Madvise,
                    "never" => ThpDefrag::Never,
                    _ => return Err("thp.defrag is always, defer, defer+madvise, madvise or never"),
                }
            }
            "thp.use_zero_page" => self.thp_use_zero_page = flag(value)?,
            "thp.shmem_enabled" => {
                self.thp_shmem = match value {
                    "always" => ShmemThp::Always,
                    "within_size" => ShmemThp::WithinSize,
                    "advise" => ShmemThp::Advise,
                    "never" => ShmemThp::Never,
                    "deny" => ShmemThp::Deny,
                    "force" => ShmemThp::Force,
                    _ => return Err("thp.shmem_enabled is always, within_size, advise, never, deny or force"),
                }
            }
            "config.pt_reclaim" => self.pt_reclaim = flag(value)?,
            "arch" => self.set_arch(Arch::by_name(value).ok_or(
                "arch is x86_64, x86_64-la57, i386, arm64-{4k-39,4k-48,4k-52,16k-47,16k-48,16k-52,\
                 64k-42,64k-48,64k-52}, riscv64-sv39 or riscv64-sv48 (or arm64, arm64-16k, arm64-64k, riscv64)",
            )?),
            "reserved" => {
                let r = parse_range(value).ok_or("reserved is START-END in hexadecimal (0x10000000-0x20000000)")?;
                if r.start % 4096 != 0 || r.end % 4096 != 0 || r.start >= r.end {
                    return Err("a reserved range is non-empty and 4096-byte aligned");
                }
                self.reserved.push(r);
            }
            _ => {
                return Err(
                    "unknown setting (thp.enabled, thp.defrag, thp.use_zero_page, thp.shmem_enabled, \
                     config.pt_reclaim, arch, reserved)",
                );
            }
        }
        Ok(())
    }

    /// An unprivileged user on the reference host.
    pub fn reference_user() -> Profile {
        Profile {
            cap_sys_rawio: false,
            cap_ipc_lock: false,
            ..Profile::reference_host()
        }
    }
}

/// `0xSTART-0xEND` (the `0x` optional).
fn parse_range(text: &str) -> Option<Range<u64>> {
    let (a, b) = text.split_once('-')?;
    let hex = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16).ok();
    Some(hex(a)?..hex(b)?)
}

impl Default for Profile {
    fn default() -> Profile {
        Profile::reference_host()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_takes_sysfs_words() {
        let mut p = Profile::reference_host();
        assert_eq!(p.set("thp.enabled", "always"), Ok(()));
        assert_eq!(p.thp, ThpMode::Always);
        assert_eq!(p.set("thp.use_zero_page", "0"), Ok(()));
        assert!(!p.thp_use_zero_page);
        assert_eq!(p.set("thp.defrag", "defer+madvise"), Ok(()));
        assert_eq!(p.thp_defrag, ThpDefrag::DeferMadvise);
        assert_eq!(p.set("thp.shmem_enabled", "within_size"), Ok(()));
        assert_eq!(p.thp_shmem, ShmemThp::WithinSize);
        assert_eq!(p.set("config.pt_reclaim", "0"), Ok(()));
        assert!(!p.pt_reclaim);
        let before = p.clone();
        assert!(p.set("thp.enabled", "sometimes").is_err());
        assert!(p.set("thp.use_zero_page", "yes").is_err());
        assert!(p.set("thp.khugepaged", "1").is_err());
        assert_eq!(p, before);
    }

    #[test]
    fn arch_and_reserved_settings() {
        let mut p = Profile::reference_host();
        assert_eq!(Profile::for_arch("x86_64"), Some(p.clone()));
        assert_eq!(p.set("arch", "arm64-16k"), Ok(()));
        assert_eq!(p.arch.page_size(), 16 << 10);
        assert_eq!((p.task_size, p.stack_guard_gap), (1 << 47, 4 << 20));
        assert_eq!(p.mmap_base, (1 << 47) - (128 << 20));
        assert!(p.set("reserved", "0x1800-0x2000").is_err(), "not 4K aligned");
        assert_eq!(p.set("reserved", "0x10000000-0x20000000"), Ok(()));
        assert!(p.is_reserved(0x1fff_c000, 0x2000_0000) && !p.is_reserved(0x2000_0000, 0x2001_0000));
        assert!(p.set("arch", "vax").is_err());
        assert_eq!(Profile::for_arch("vax"), None);
    }
}

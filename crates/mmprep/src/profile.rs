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
        }
    }

    /// `arch_pick_mmap_layout` without randomisation: sets `mmap_base`, `mmap_legacy_base` and
    /// `topdown` from `task_size`, `rlimit_stack` and `stack_guard_gap`, as `execve` does for a
    /// 64-bit task under `setarch -R` (`legacy`: under `setarch -L` or `vm.legacy_va_layout`).
    /// See [`crate::mmap_layout`].
    pub fn pick_mmap_layout(&mut self, legacy: bool) {
        let l = crate::mmap_layout::pick_mmap_layout(self.task_size, self.rlimit_stack, self.stack_guard_gap, legacy);
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
            _ => {
                return Err(
                    "unknown setting (thp.enabled, thp.defrag, thp.use_zero_page, thp.shmem_enabled, \
                     config.pt_reclaim)",
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
}

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

/// `/sys/kernel/mm/transparent_hugepage/enabled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpMode {
    Always,
    Madvise,
    Never,
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
    /// Transparent hugepages for anonymous memory.
    pub thp: ThpMode,
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
    /// overcommit 0, 23 GiB RAM and no swap, `max_map_count` 65530, THP `madvise`, no soft-dirty,
    /// no anon VMA names, ext4 `/tmp`, no protection keys, and an `mmap_base` as with `setarch -R` and an 8 MiB stack.
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

//! The host profile: the facts about this machine that change a system call's answer.
//!
//! The engine takes these as a plain [`Profile`] value (`mmprep::profile`); this module fills
//! one in from the running machine, so that `mmprep run` and `mmprep diff` compare the engine
//! with the kernel under the same privileges, limits and settings. It starts from
//! [`Profile::reference_host`] and overwrites every field it can read:
//!
//! | field | read from |
//! | --- | --- |
//! | `cap_sys_rawio`, `cap_ipc_lock` | `CapEff` of `/proc/self/status` (bits 17 and 14), through `procfs` |
//! | `rlimit_*` | `getrlimit` (soft limit; infinity → `u64::MAX`) |
//! | `max_map_count` | `/proc/sys/vm/max_map_count`, through `procfs` |
//! | `overcommit`, `overcommit_ratio` | `/proc/sys/vm/overcommit_memory`, `overcommit_ratio` |
//! | `dac_mmap_min_addr`, `mmap_min_addr` | `/proc/sys/vm/mmap_min_addr`; the internal one is at least 65536 (`CONFIG_LSM_MMAP_MIN_ADDR`) |
//! | `total_ram_pages`, `total_swap_pages` | `MemTotal`, `SwapTotal` of `/proc/meminfo`, through `procfs` |
//! | `pkeys` | the `ospke` CPU flag of `/proc/cpuinfo`, through `procfs` |
//! | `thp` | the `[bracketed]` word of `/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled`, or of `enabled` when that says `inherit` (or is missing) |
//! | `thp_defrag`, `thp_shmem` | the `[bracketed]` word of `transparent_hugepage/defrag`, `shmem_enabled` |
//! | `thp_use_zero_page` | `transparent_hugepage/use_zero_page` (`0` or `1`) |
//! | `tmpfile_fs` | `statfs` of the temporary directory |
//! | `soft_dirty` | whether any VMA of this process shows `sd` in `/proc/self/smaps` |
//! | `unmodelled_map_count` | the VMAs of `/proc/self/smaps`, less the `[vsyscall]` gate |
//!
//! Structured `/proc` files are read by the `procfs` crate; smaps by [`crate::procfs`] (the
//! runner's own reader, proven against `procfs` in `tests/procfs_crate.rs`, which keeps the
//! `VmFlags` codes that `procfs` 0.18 has no names for, `sl` and `gu` among them). The
//! `overcommit_*` and `mmap_min_addr` sysctls, which `procfs` has no reader for, are one decimal
//! number each, read with `str::parse`; so are the THP files below `/sys`, which are not `/proc`.
//!
//! Kept from the reference host: `pt_reclaim` (`CONFIG_PT_RECLAIM`, only in the compressed
//! `/proc/config.gz`), `anon_vma_name` (detecting it would need a scratch mapping to
//! name), `task_size` (4-level paging), `mmap_base` (randomised per process; only `mmap any`
//! depends on it, and the transcript prints such addresses as `outside`) and `stack_guard_gap`
//! (a boot parameter). A value that cannot be read also keeps the reference value.
//!
//! `soft_dirty`: with `CONFIG_MEM_SOFT_DIRTY`, every new VMA starts with `VM_SOFTDIRTY`, so the
//! process's own stack and heap print `sd`; without it no VMA ever does.
//!
//! `unmodelled_map_count` counts this process's VMAs now. The runner child is forked from it
//! later and then maps one or two more for itself (the room it keeps to read maps at the map
//! limit), so a comparison with the kernel takes the count the child reports instead
//! ([`crate::KernelRun::runner_vmas`]: `mmprep diff` and `fuzz` do); before, `mmprep diff`
//! of a scenario at the map limit was off by one or two VMAs.

use mmprep::Profile;
use mmprep::profile::{Overcommit, ShmemThp, ThpDefrag, ThpMode, TmpfileFs};

use crate::procfs::ProcVma;

/// `CAP_IPC_LOCK` (`include/uapi/linux/capability.h`).
const CAP_IPC_LOCK: u32 = 14;
/// `CAP_SYS_RAWIO`.
const CAP_SYS_RAWIO: u32 = 17;
/// `CONFIG_LSM_MMAP_MIN_ADDR` on the reference host: the floor of the kernel-internal
/// `mmap_min_addr` whatever the sysctl says.
const LSM_MMAP_MIN_ADDR: u64 = 65536;

/// The profile of the machine this runs on (see the module doc for where each field comes from).
pub fn host_profile() -> Profile {
    let mut p = Profile::reference_host();
    if let Some(caps) = cap_effective() {
        p.cap_sys_rawio = caps & (1 << CAP_SYS_RAWIO) != 0;
        p.cap_ipc_lock = caps & (1 << CAP_IPC_LOCK) != 0;
    }
    #[cfg(target_os = "linux")]
    for (resource, field) in [
        (rustix::process::Resource::Memlock, &mut p.rlimit_memlock),
        (rustix::process::Resource::As, &mut p.rlimit_as),
        (rustix::process::Resource::Data, &mut p.rlimit_data),
        (rustix::process::Resource::Stack, &mut p.rlimit_stack),
    ] {
        if let Some(limit) = rlimit(resource) {
            *field = limit;
        }
    }
    if let Some(mode) = sysctl("overcommit_memory") {
        p.overcommit = match mode {
            1 => Overcommit::Always,
            2 => Overcommit::Never,
            _ => Overcommit::Guess,
        };
    }
    if let Some(ratio) = sysctl("overcommit_ratio") {
        p.overcommit_ratio = ratio;
    }
    p.pkeys = cpu_has_ospke();
    if let Some(count) = max_map_count() {
        p.max_map_count = count;
    }
    if let Some(min) = sysctl("mmap_min_addr") {
        p.dac_mmap_min_addr = min;
        p.mmap_min_addr = min.max(LSM_MMAP_MIN_ADDR);
    }
    if let Some((ram, swap)) = memory_bytes() {
        p.total_ram_pages = ram / 4096;
        p.total_swap_pages = swap / 4096;
    }
    if let Some(thp) = thp_mode() {
        p.thp = thp;
    }
    if let Some(defrag) = thp_file("defrag").as_deref().and_then(parse_defrag) {
        p.thp_defrag = defrag;
    }
    if let Some(shmem) = thp_file("shmem_enabled").as_deref().and_then(parse_shmem) {
        p.thp_shmem = shmem;
    }
    match thp_file("use_zero_page").as_deref().map(str::trim) {
        Some("0") => p.thp_use_zero_page = false,
        Some("1") => p.thp_use_zero_page = true,
        _ => {}
    }
    if let Some(fs) = tmpfile_fs() {
        p.tmpfile_fs = fs;
    }
    if let Ok(vmas) = crate::procfs::read_self(true) {
        p.soft_dirty = shows_soft_dirty(&vmas);
        p.unmodelled_map_count = counted_vmas(&vmas);
    }
    p
}

/// `CapEff` of `/proc/self/status`.
#[cfg(target_os = "linux")]
fn cap_effective() -> Option<u64> {
    Some(procfs::process::Process::myself().ok()?.status().ok()?.capeff)
}

/// `MemTotal` and `SwapTotal` of `/proc/meminfo`, in bytes.
#[cfg(target_os = "linux")]
fn memory_bytes() -> Option<(u64, u64)> {
    use procfs::Current;
    let m = procfs::Meminfo::current().ok()?;
    Some((m.mem_total, m.swap_total))
}

/// Whether the first CPU of `/proc/cpuinfo` lists `ospke` (protection keys enabled by the OS).
#[cfg(target_os = "linux")]
fn cpu_has_ospke() -> bool {
    use procfs::Current;
    procfs::CpuInfo::current()
        .ok()
        .and_then(|c| Some(c.flags(0)?.contains(&"ospke")))
        .unwrap_or(false)
}

/// `vm.max_map_count`.
#[cfg(target_os = "linux")]
fn max_map_count() -> Option<u64> {
    procfs::sys::vm::max_map_count().ok()
}

// Off Linux there is no /proc: every value keeps the reference host's.
#[cfg(not(target_os = "linux"))]
fn cap_effective() -> Option<u64> {
    None
}
#[cfg(not(target_os = "linux"))]
fn memory_bytes() -> Option<(u64, u64)> {
    None
}
#[cfg(not(target_os = "linux"))]
fn cpu_has_ospke() -> bool {
    false
}
#[cfg(not(target_os = "linux"))]
fn max_map_count() -> Option<u64> {
    None
}

/// A one-number sysctl of `/proc/sys/vm/` that `procfs` has no reader for.
fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of `resource`; `RLIM_INFINITY` becomes `u64::MAX`.
#[cfg(target_os = "linux")]
fn rlimit(resource: rustix::process::Resource) -> Option<u64> {
    Some(rustix::process::getrlimit(resource).current.unwrap_or(u64::MAX))
}

/// A file of `/sys/kernel/mm/transparent_hugepage/`.
fn thp_file(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/kernel/mm/transparent_hugepage/{name}")).ok()
}

/// The THP mode for 2 MiB pages: the PMD size's own setting unless it is `inherit`
/// (`hugepage_pmd_enabled`), else the top-level one.
fn thp_mode() -> Option<ThpMode> {
    let pmd = thp_file("hugepages-2048kB/enabled");
    match pmd.as_deref().and_then(selected) {
        Some("inherit") | None => parse_thp(&thp_file("enabled")?),
        Some(_) => parse_thp(pmd.as_deref()?),
    }
}

/// The `[bracketed]` word of a sysfs choice.
fn selected(text: &str) -> Option<&str> {
    Some(text.split_once('[')?.1.split_once(']')?.0)
}

fn parse_thp(text: &str) -> Option<ThpMode> {
    match selected(text)? {
        "always" => Some(ThpMode::Always),
        "madvise" => Some(ThpMode::Madvise),
        "never" => Some(ThpMode::Never),
        _ => None,
    }
}

fn parse_defrag(text: &str) -> Option<ThpDefrag> {
    match selected(text)? {
        "always" => Some(ThpDefrag::Always),
        "defer" => Some(ThpDefrag::Defer),
        "defer+madvise" => Some(ThpDefrag::DeferMadvise),
        "madvise" => Some(ThpDefrag::Madvise),
        "never" => Some(ThpDefrag::Never),
        _ => None,
    }
}

fn parse_shmem(text: &str) -> Option<ShmemThp> {
    match selected(text)? {
        "always" => Some(ShmemThp::Always),
        "within_size" => Some(ShmemThp::WithinSize),
        "advise" => Some(ShmemThp::Advise),
        "never" => Some(ShmemThp::Never),
        "deny" => Some(ShmemThp::Deny),
        "force" => Some(ShmemThp::Force),
        _ => None,
    }
}

/// The filesystem of the temporary directory (ext4 for anything that is not tmpfs).
#[cfg(not(target_os = "linux"))]
fn tmpfile_fs() -> Option<TmpfileFs> {
    None
}

#[cfg(target_os = "linux")]
fn tmpfile_fs() -> Option<TmpfileFs> {
    let fs = rustix::fs::statfs(std::env::temp_dir()).ok()?;
    Some(if fs.f_type == libc::TMPFS_MAGIC {
        TmpfileFs::Tmpfs
    } else {
        TmpfileFs::Ext4
    })
}

/// Does any VMA's `VmFlags` carry `sd`?
fn shows_soft_dirty(vmas: &[ProcVma]) -> bool {
    vmas.iter().any(|v| v.flags.contains(&"sd"))
}

/// The VMAs `max_map_count` counts: every one but the `[vsyscall]` gate area, which is not a
/// VMA of the process.
fn counted_vmas(vmas: &[ProcVma]) -> u64 {
    vmas.iter().filter(|v| v.name != "[vsyscall]").count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_thp("always [madvise] never\n"), Some(ThpMode::Madvise));
        assert_eq!(parse_thp("[always] madvise never\n"), Some(ThpMode::Always));
        assert_eq!(parse_thp("always madvise never\n"), None);
        assert_eq!(
            parse_defrag("always defer defer+madvise [madvise] never\n"),
            Some(ThpDefrag::Madvise)
        );
        assert_eq!(
            parse_defrag("always defer [defer+madvise] madvise never\n"),
            Some(ThpDefrag::DeferMadvise)
        );
        assert_eq!(
            parse_shmem("always within_size advise [never] deny force\n"),
            Some(ShmemThp::Never)
        );
        assert_eq!(selected("always [inherit] madvise never\n"), Some("inherit"));
        let vmas = crate::procfs::parse(
            "55-56 r--p 00000000 fe:00 1   /bin/x\n\
             VmFlags: rd mr mw me \n\
             ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0     [vsyscall]\n\
             VmFlags: ex \n",
        )
        .expect("valid smaps");
        assert_eq!(counted_vmas(&vmas), 1);
        assert!(!shows_soft_dirty(&vmas));
        let dirty = crate::procfs::parse("55-56 r--p 00000000 fe:00 1   /bin/x\nVmFlags: rd sd \n").unwrap();
        assert!(shows_soft_dirty(&dirty));
    }

    /// The profile of the machine running the tests (root on the reference host).
    #[test]
    fn reads_this_machine() {
        let p = host_profile();
        assert!(p.total_ram_pages > 0);
        assert!(p.max_map_count > 0);
        assert!(p.unmodelled_map_count > 5, "{}", p.unmodelled_map_count);
        assert!(p.mmap_min_addr >= LSM_MMAP_MIN_ADDR && p.mmap_min_addr >= p.dac_mmap_min_addr);
        #[cfg(target_os = "linux")]
        if rustix::process::geteuid().is_root() {
            assert!(p.cap_sys_rawio && p.cap_ipc_lock);
        }
    }
}

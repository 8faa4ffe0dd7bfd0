//! Importing a live process: an engine [`Mm`] built from `/proc/PID/smaps`, `stat`, `limits`
//! and `personality`, so that the engine can answer the process's next memory system calls.
//!
//! | engine | read from |
//! | --- | --- |
//! | each VMA's range, file offset, device, inode, name | the smaps header line |
//! | its flags | `VmFlags:` |
//! | an anon_vma | `Anonymous:`, `AnonHugePages:` or `Swap:` above 0 (see below) |
//! | `start_data`, `end_data`, `start_brk`, `start_stack` | `/proc/PID/stat` fields 45, 46, 47, 28 (through `procfs`) |
//! | `brk` | not shown by the kernel: the caller's value, else the end of the last `[heap]` VMA, else `start_brk` |
//! | `rlimit_stack`, `rlimit_data`, `rlimit_as`, `rlimit_memlock` | `/proc/PID/limits` (soft; through `procfs`) |
//! | `mmap_base`, the layout | [`Profile::pick_mmap_layout`] from the stack limit; legacy if the personality has `ADDR_COMPAT_LAYOUT` or `vm.legacy_va_layout` is set |
//!
//! Files: one engine [`File`] per (device, inode), shared by every VMA of it, so that adjacent
//! mappings of one file compare equal (as the mappings of one `open()` do in the kernel). It is
//! an ext4-style page-cache file (`mmprep_drivers::regular::Ext4File`) of the size `stat` gives
//! for its path (or large enough for its mappings); it is open for writing if any of its VMAs
//! is a shared mapping that may be written (`ms` and `mw`).
//!
//! What smaps cannot show, and what is assumed instead:
//! - anon_vmas: a VMA that once had anonymous pages and no longer has any is imported without
//!   one; consecutive pieces of one mapping (adjacent, same file or both anonymous, contiguous
//!   offsets) that both hold anonymous pages share one anon_vma, as the halves of a split do;
//!   none is a fork child;
//! - anonymous memory's page offset is `start >> PAGE_SHIFT` (mremap moves keep the old one);
//! - `[anon:NAME]` names are not modelled (the VMA is imported as plain anonymous memory);
//! - with address randomisation on, `mmap_base` is unknown: [`Imported::randomized`] says so.
//!
//! `stat` and `limits` are read by the `procfs` crate; smaps by the runner's reader
//! ([`crate::procfs`], proven against `procfs`), which keeps every `VmFlags` code. Two small
//! files `procfs` has no reader for are one hex or decimal number each: `/proc/PID/personality`
//! and the `legacy_va_layout` and `randomize_va_space` sysctls.

use std::collections::HashMap;
use std::sync::Arc;

use mmprep::file::{DevId, File, FileMode, Inode, InodeKind};
use mmprep::flags::VmaBit;
use mmprep::mm::{ImportAnon, ImportOps, ImportVma, MmBounds, flags_from_smaps_codes};
use mmprep::{Mm, PgOff, Profile, VirtAddr};
use mmprep_drivers::regular::Ext4File;

use crate::procfs::{self, ProcVma};

/// `ADDR_NO_RANDOMIZE` (`include/uapi/linux/personality.h`).
const ADDR_NO_RANDOMIZE: u64 = 0x0040000;
/// `ADDR_COMPAT_LAYOUT`.
const ADDR_COMPAT_LAYOUT: u64 = 0x0200000;

/// An imported process.
pub struct Imported {
    /// The engine's copy of the address space.
    pub mm: Mm,
    /// The smaps text it was built from.
    pub smaps: String,
    /// Address randomisation was on: `mmap(NULL)` placement will not match.
    pub randomized: bool,
}

/// One smaps block: the header (with whether it holds anonymous pages) and the engine's flags.
struct Block {
    vma: ProcVma,
    flags: mmprep::flags::VmaFlags,
}

/// The addresses `/proc/PID/stat` shows (fields 28, 45, 46, 47).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatAddrs {
    pub start_stack: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
}

/// The stat fields of a process (`procfs`'s reading of `/proc/PID/stat`) that say where the
/// data, heap and stack are.
#[cfg(target_os = "linux")]
pub fn stat_addrs(stat: &::procfs::process::Stat) -> Result<StatAddrs, String> {
    // Fields 45 to 47 are printed since Linux 3.5; procfs leaves them out before.
    let need = |v: Option<u64>, what: &str| v.ok_or_else(|| format!("stat has no {what}"));
    Ok(StatAddrs {
        start_stack: stat.startstack,
        start_data: need(stat.start_data, "start_data")?,
        end_data: need(stat.end_data, "end_data")?,
        start_brk: need(stat.start_brk, "start_brk")?,
    })
}

/// Process `pid`, opened by `procfs`.
#[cfg(target_os = "linux")]
pub(crate) fn proc_of(pid: u32) -> Result<::procfs::process::Process, String> {
    let raw = i32::try_from(pid).map_err(|_| format!("no process {pid}"))?;
    ::procfs::process::Process::new(raw).map_err(|e| format!("/proc/{pid}: {e}"))
}

/// `/proc/PID/stat` of process `pid`, read by `procfs`.
#[cfg(target_os = "linux")]
pub(crate) fn read_stat(pid: u32) -> Result<::procfs::process::Stat, String> {
    proc_of(pid)?.stat().map_err(|e| format!("/proc/{pid}/stat: {e}"))
}

/// Parses smaps text into blocks.
fn parse_smaps(text: &str) -> Result<Vec<Block>, String> {
    Ok(procfs::parse(text)?
        .into_iter()
        .map(|vma| Block {
            flags: flags_from_smaps_codes(vma.flags.iter().copied()),
            vma,
        })
        .collect())
}

/// A special mapping's name, if `name` is one the kernel gives (`[vsyscall]` is no VMA).
fn special_name(name: &str) -> Option<&'static str> {
    ["[vdso]", "[vvar]", "[vvar_vclock]", "[uprobes]"]
        .into_iter()
        .find(|n| *n == name)
}

/// Builds an engine address space from smaps text and the stat addresses. `brk` is the current
/// break if known (the kernel does not print it). `profile` should be the process's
/// ([`process_profile`]).
pub fn import_text(smaps: &str, stat: StatAddrs, brk: Option<u64>, profile: Profile) -> Result<Mm, String> {
    let blocks = parse_smaps(smaps)?;
    let mut mm = Mm::new(profile);
    let mut files: HashMap<(u32, u32, u64), Arc<File>> = HashMap::new();
    // Open mode and size per identity, from all of its VMAs.
    let mut writable: HashMap<(u32, u32, u64), bool> = HashMap::new();
    let mut reach: HashMap<(u32, u32, u64), u64> = HashMap::new();
    let is_file = |v: &ProcVma| v.inode != 0 || v.dev != (0, 0);
    for b in blocks.iter().filter(|b| is_file(&b.vma)) {
        let id = (b.vma.dev.0, b.vma.dev.1, b.vma.inode);
        *writable.entry(id).or_default() |= b.flags.test(VmaBit::MayShare) && b.flags.test(VmaBit::MayWrite);
        let r = reach.entry(id).or_default();
        *r = (*r).max(b.vma.offset + (b.vma.end - b.vma.start));
    }
    let mut prev: Option<&Block> = None;
    for b in &blocks {
        let v = &b.vma;
        if v.name == "[vsyscall]" {
            continue;
        }
        let (file, ops, pgoff) = if is_file(v) {
            let id = (v.dev.0, v.dev.1, v.inode);
            let file = files
                .entry(id)
                .or_insert_with(|| {
                    let size = std::fs::metadata(&v.name).map(|m| m.len()).unwrap_or(0).max(reach[&id]);
                    let inode = Arc::new(Inode::new(
                        DevId {
                            major: v.dev.0,
                            minor: v.dev.1,
                        },
                        v.inode,
                        InodeKind::Regular,
                        size,
                    ));
                    let mode = if writable[&id] {
                        FileMode::READ_WRITE
                    } else {
                        FileMode::READ_ONLY
                    };
                    File::new(inode, mode, Arc::new(Ext4File), v.name.clone(), false)
                })
                .clone();
            (Some(file), ImportOps::File, v.offset >> 12)
        } else if let Some(name) = special_name(&v.name) {
            (None, ImportOps::Special(name), 0)
        } else {
            (None, ImportOps::Anonymous, v.start >> 12)
        };
        let anon = match prev {
            _ if !b.vma.anon_pages => ImportAnon::None,
            Some(p) if p.vma.anon_pages && same_mapping(p, b) => ImportAnon::SameAs(VirtAddr(p.vma.start)),
            _ => ImportAnon::New,
        };
        mm.import_vma(ImportVma {
            start: VirtAddr(v.start),
            end: VirtAddr(v.end),
            pgoff: PgOff(pgoff),
            flags: b.flags,
            file,
            ops,
            anon,
        })
        .map_err(|e| format!("{:x}-{:x} {}: {e}", v.start, v.end, v.name))?;
        prev = Some(b);
    }
    // The heap may be several VMAs (a guard page mprotected inside it): the break is at or
    // below the end of the last one the kernel names [heap].
    let heap_end = blocks
        .iter()
        .filter(|b| b.vma.name == "[heap]" && b.vma.end > stat.start_brk)
        .map(|b| b.vma.end)
        .max();
    let brk = brk.or(heap_end).unwrap_or(stat.start_brk).max(stat.start_brk);
    mm.set_bounds(MmBounds {
        start_data: stat.start_data,
        end_data: stat.end_data,
        start_brk: stat.start_brk,
        brk,
        start_stack: stat.start_stack,
    })
    .map_err(|e| format!("stat addresses: {e}"))?;
    Ok(mm)
}

/// Are `b` and the block before it `p` consecutive pieces of one mapping?
fn same_mapping(p: &Block, b: &Block) -> bool {
    let (p, v) = (&p.vma, &b.vma);
    if p.end != v.start || (p.dev, p.inode) != (v.dev, v.inode) {
        return false;
    }
    if v.inode == 0 && v.dev == (0, 0) {
        return special_name(&p.name).is_none() && special_name(&v.name).is_none();
    }
    p.offset + (p.end - p.start) == v.offset
}

/// A soft limit of `/proc/PID/limits` in bytes (`u64::MAX` for unlimited).
#[cfg(target_os = "linux")]
fn soft_limit(limit: &::procfs::process::Limit) -> u64 {
    match limit.soft_limit {
        ::procfs::process::LimitValue::Unlimited => u64::MAX,
        ::procfs::process::LimitValue::Value(v) => v,
    }
}

/// What a process's profile is made of beyond the machine's: its soft limits (bytes,
/// `u64::MAX` for unlimited), whether it has the legacy layout and whether randomisation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcLimits {
    pub stack: u64,
    pub data: u64,
    pub address_space: u64,
    pub memlock: u64,
    /// `ADDR_COMPAT_LAYOUT` in the personality, or `vm.legacy_va_layout`.
    pub legacy: bool,
    /// Address randomisation is on: `mmap(NULL)` placement will not match.
    pub randomized: bool,
}

/// Reads process `pid`'s [`ProcLimits`].
#[cfg(not(target_os = "linux"))]
pub fn read_limits(_pid: u32) -> Result<ProcLimits, String> {
    Err("importing a process needs Linux".into())
}

/// Reads process `pid`'s [`ProcLimits`].
#[cfg(target_os = "linux")]
pub fn read_limits(pid: u32) -> Result<ProcLimits, String> {
    let limits = proc_of(pid)?.limits().map_err(|e| format!("/proc/{pid}/limits: {e}"))?;
    // /proc/PID/personality needs ptrace access; without it, assume the default personality.
    let personality = std::fs::read_to_string(format!("/proc/{pid}/personality"))
        .ok()
        .and_then(|p| u64::from_str_radix(p.trim(), 16).ok())
        .unwrap_or(0);
    let sysctl_legacy = std::fs::read_to_string("/proc/sys/vm/legacy_va_layout")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let randomize = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(2);
    Ok(ProcLimits {
        stack: soft_limit(&limits.max_stack_size),
        data: soft_limit(&limits.max_data_size),
        address_space: soft_limit(&limits.max_address_space),
        memlock: soft_limit(&limits.max_locked_memory),
        legacy: personality & ADDR_COMPAT_LAYOUT != 0 || sysctl_legacy != 0,
        randomized: personality & ADDR_NO_RANDOMIZE == 0 && randomize != 0,
    })
}

/// This machine's profile ([`crate::host_profile`]) with a process's limits and layout.
pub fn profile_with(l: &ProcLimits) -> Profile {
    let mut p = crate::host_profile();
    p.rlimit_stack = l.stack;
    p.rlimit_data = l.data;
    p.rlimit_as = l.address_space;
    p.rlimit_memlock = l.memlock;
    p.pick_mmap_layout(l.legacy);
    // Every VMA of the process is modelled ([vsyscall] is not a VMA).
    p.unmodelled_map_count = 0;
    p
}

/// The profile of process `pid`: this machine's ([`crate::host_profile`]) with the process's
/// own limits and layout. Returns it and whether randomisation is on.
pub fn process_profile(pid: u32) -> Result<(Profile, bool), String> {
    let l = read_limits(pid)?;
    Ok((profile_with(&l), l.randomized))
}

/// One VMA as smaps shows it: the range, the name, the flags, whether it holds anonymous pages.
#[derive(Clone, Debug)]
pub struct SmapsVma {
    pub start: u64,
    pub end: u64,
    pub name: String,
    pub flags: mmprep::flags::VmaFlags,
    /// `Anonymous:`, `AnonHugePages:` or `Swap:` above 0: the VMA has an anon_vma.
    pub anon_pages: bool,
}

/// The VMAs of smaps text (without `[vsyscall]`).
pub fn smaps_vmas(text: &str) -> Result<Vec<SmapsVma>, String> {
    Ok(parse_smaps(text)?
        .into_iter()
        .filter(|b| b.vma.name != "[vsyscall]")
        .map(|b| SmapsVma {
            start: b.vma.start,
            end: b.vma.end,
            name: b.vma.name,
            flags: b.flags,
            anon_pages: b.vma.anon_pages,
        })
        .collect())
}

/// How many times [`import_pid`] reads `smaps` before it gives up on a process whose mappings
/// keep changing.
const SNAPSHOT_TRIES: usize = 20;

/// One consistent `smaps` text of process `pid`: the kernel prints `smaps` a buffer at a time and
/// locks the address space afresh for each (`fs/proc/task_mmu.c:m_start`), so a process whose threads
/// map or unmap meanwhile can be read torn (a VMA twice, or one missing). Two reads in a row whose
/// VMA lines agree are taken as one snapshot.
#[cfg(target_os = "linux")]
fn read_smaps_snapshot(pid: u32) -> Result<String, String> {
    let path = format!("/proc/{pid}/smaps");
    let read = || std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"));
    let mut last = read()?;
    for _ in 0..SNAPSHOT_TRIES {
        let next = read()?;
        if maps_of(&next) == maps_of(&last) {
            return Ok(next);
        }
        last = next;
    }
    Err(format!(
        "{path}: the mappings changed in each of {SNAPSHOT_TRIES} reads; stop the process (kill -STOP {pid}) and import again"
    ))
}

/// Imports process `pid` as it is now. `brk` is its current break if the caller knows it.
/// The process should be stopped (or waiting) while this reads its files; for one that is
/// running, `smaps` is read until two reads agree (`read_smaps_snapshot`).
#[cfg(target_os = "linux")]
pub fn import_pid(pid: u32, brk: Option<u64>) -> Result<Imported, String> {
    let (profile, randomized) = process_profile(pid)?;
    let smaps = read_smaps_snapshot(pid)?;
    let stat = stat_addrs(&read_stat(pid)?)?;
    let mm = import_text(&smaps, stat, brk, profile)?;
    Ok(Imported { mm, smaps, randomized })
}

/// Imports process `pid`: off Linux there is no `/proc`.
#[cfg(not(target_os = "linux"))]
pub fn import_pid(_pid: u32, _brk: Option<u64>) -> Result<Imported, String> {
    Err("importing a process needs Linux".into())
}

/// The maps text of smaps or maps text as the engine prints it: VMA lines only, without the
/// `[vsyscall]` gate (which is not a VMA).
pub fn maps_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.contains('-') && procfs::parse(line).is_ok_and(|v| v.len() == 1) && !line.ends_with(" [vsyscall]") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Each VMA's maps line followed by ` | ` and its VmFlags, from smaps text.
pub fn maps_with_flags(smaps: &str) -> String {
    let mut out = String::new();
    for b in parse_smaps(smaps).unwrap_or_default() {
        if b.vma.name == "[vsyscall]" {
            continue;
        }
        let codes: Vec<&str> = b.flags.smaps_codes(true).collect();
        out.push_str(&format!("{:x}-{:x} | {}\n", b.vma.start, b.vma.end, codes.join(" ")));
    }
    out
}

/// The same for the engine's address space.
pub fn engine_maps_with_flags(mm: &Mm) -> String {
    let soft_dirty = mm.profile().soft_dirty;
    mm.vmas()
        .map(|v| {
            let codes: Vec<&str> = v.flags().smaps_codes(soft_dirty).collect();
            format!("{:x}-{:x} | {}\n", v.start().get(), v.end().get(), codes.join(" "))
        })
        .collect()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// `stat` and `limits` of this process, through `procfs`: the limits are `getrlimit`'s, the
    /// stat addresses lie in the VMAs the kernel names for them.
    #[test]
    fn stat_and_limits_of_this_process() {
        use rustix::process::{Resource, getrlimit};
        let pid = std::process::id();
        let l = read_limits(pid).expect("limits");
        let soft = |r| getrlimit(r).current.unwrap_or(u64::MAX);
        assert_eq!(l.stack, soft(Resource::Stack));
        assert_eq!(l.data, soft(Resource::Data));
        assert_eq!(l.address_space, soft(Resource::As));
        assert_eq!(l.memlock, soft(Resource::Memlock));
        let s = stat_addrs(&read_stat(pid).expect("stat")).expect("stat addresses");
        let vmas = procfs::read_self(false).expect("maps");
        let named = |name: &str, addr: u64| vmas.iter().any(|v| v.name == name && v.start <= addr && addr <= v.end);
        assert!(named("[stack]", s.start_stack), "{s:?}");
        assert!(s.start_data <= s.end_data && s.end_data <= s.start_brk, "{s:?}");
    }

    /// This test process, imported: the engine prints the same maps.
    #[test]
    fn import_self() {
        let pid = std::process::id();
        let imported = import_pid(pid, None).expect("import");
        imported.mm.check_invariants();
        // One smaps snapshot: the engine prints what the kernel printed in it.
        let real = maps_of(&imported.smaps);
        let engine = imported.mm.maps();
        assert_eq!(real, engine, "\nreal:\n{real}\nengine:\n{engine}");
        assert_eq!(maps_with_flags(&imported.smaps), engine_maps_with_flags(&imported.mm));
        assert!(engine.contains("[stack]") && engine.contains("[vdso]"), "{engine}");
    }
}

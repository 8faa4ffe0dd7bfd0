//! The `api` target: a sequence of public [`Mm`] calls with hostile arguments, checked after
//! every call.
//!
//! The input picks a host profile, then ops until it runs out (at most [`MAX_OPS`]). The world
//! is up to [`MAX_MMS`] address spaces (the first, and fork children, each driven in turn) and
//! up to [`MAX_FILES`] open files (memfds, ext4-like files, `/dev/zero`, every example driver of
//! the `mmprep_drivers` registry, and a hostile driver whose hooks do what the input says:
//! [`crate::hostile`]). After every call:
//!
//! - nothing panicked (a panic is the finding);
//! - `check_invariants()` holds on every address space;
//! - the address spaces the call was not made on are exactly as they were;
//! - a failed call left its address space as the kernel would ([`OnError`], chosen per call);
//! - calls that change attributes only (`mprotect`, `madvise`, `mlock`, `mseal`) did not change
//!   what is mapped, failed or not;
//! - facts of success: `mmap` covers what it returned, `munmap` leaves no VMA in its range, both
//!   move `total_vm` by their range; `mprotect`, `mlock`, `munlock`, `mseal` leave their state on
//!   every VMA of the range; a growing `mremap` maps its new range; `exit` leaves nothing; a fork
//!   child's maps are lines of its parent's; a byte written reads back.
//!
//! `docs/fuzzing.md` has the table of which comparison each failed call gets, and why.
//!
//! At the end every address space is torn down, and over the whole run each driver saw as many
//! `close` calls as VMAs came (`mapped` + `open`), and no VMA still holds a file.
//!
//! What is not driven, and why: lengths that make the engine walk page by page (`MAP_POPULATE`,
//! `MADV_POPULATE_*`, `MADV_WILLNEED`, `fill`) are capped at [`POPULATE_CAP`] unless they are
//! beyond `TASK_SIZE` (then they must fail fast, and are kept); locking is bounded by a small
//! `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`. A long walk is correct, not a finding, and would only
//! make the fuzzer slow. For the same reason a mapping of a driver's file is cut to
//! [`DRIVER_MAP_CAP`] (within `TASK_SIZE`): a remap action installs one page-table entry per page,
//! about 64 bytes of host memory each, so a 1 TiB device mapping would need 16 GiB (left to the
//! page-table representation: issue 12, finding 5).

use std::sync::Arc;

use mmprep::events::Event;
use mmprep::file::{File, FileMode, InodeKind};
use mmprep::flags::VmaBit;
use mmprep::profile::{Overcommit, ThpMode, TmpfileFs};
use mmprep::uapi::{madv, mlock, mremap};
use mmprep::{Access, MapFlags, Mm, PAGE_SIZE, Profile, Prot, VirtAddr};
use mmprep_drivers::registry::{self, DriverEnv, Params};
use mmprep_drivers::{regular, zero};

use crate::hostile;
use crate::input::Input;
use crate::snapshot::{Snapshot, VmaView, joined, outside};

/// Ops per input at most.
pub const MAX_OPS: usize = 200;
/// Address spaces alive at once at most.
pub const MAX_MMS: usize = 4;
/// Files open at once at most.
pub const MAX_FILES: usize = 8;
/// The longest range a populating call walks, in bytes (64 pages).
pub const POPULATE_CAP: u64 = 64 * PAGE_SIZE;
/// The longest mapping of a driver's file (a character device), in bytes.
pub const DRIVER_MAP_CAP: u64 = 64 << 20;
/// Where most mappings go: the scenario window base (any address is fair game too).
const BASE: u64 = 0x2000_0000_0000;
const PAGE: u64 = PAGE_SIZE;

/// What a failed call may have changed in its address space. Chosen per call from the
/// engine's documented failure behaviour (each `# On failure` section), which is the kernel's.
#[derive(Debug)]
enum OnError {
    /// Nothing: the maps text, every VMA (range, flags, file page, file) and `stats()` are
    /// equal.
    Exact,
    /// Only splits may remain: the VMAs are equal once split pieces are joined, and the counters
    /// are equal except `map_count`.
    Splits,
    /// Only VMAs inside these ranges (and splits at their edges): the VMAs outside them are
    /// equal once split pieces are joined. The counters are not compared: the VMAs walked before
    /// the failure keep their change, and it shows in the counters.
    Outside(Vec<(u64, u64)>),
    /// Like `Outside([lo, hi))`, and more: the walk went from `lo` up and stopped at the
    /// failure, so there is a point `p` in the range with everything from `p` up unchanged
    /// (split pieces joined).
    Prefix(u64, u64),
}

struct World {
    profile: Profile,
    mms: Vec<Mm>,
    files: Vec<Arc<File>>,
    /// Every file ever opened, to check at the end that no VMA kept one.
    all_files: Vec<Arc<File>>,
    /// Addresses calls returned, to aim at again.
    returned: Vec<u64>,
    /// Driver hook calls, drained after every op.
    hooks: Hooks,
    next_ino: u64,
}

/// The `api` target. Panics on a finding.
pub fn api(data: &[u8]) {
    let mut input = Input::new(data);
    let profile = pick_profile(&mut input);
    let mut first = Mm::new(profile.clone());
    first.set_event_log(true);
    let mut world = World {
        profile,
        mms: vec![first],
        files: Vec::new(),
        all_files: Vec::new(),
        returned: Vec::new(),
        hooks: Hooks::default(),
        next_ino: 1_000_000,
    };
    for _ in 0..MAX_OPS {
        if input.is_done() {
            break;
        }
        step(&mut world, &mut input);
        for mm in &mut world.mms {
            world.hooks.add(&mm.take_events());
        }
        world.hooks.check(live_with_close(&world.mms));
    }
    // Teardown: every address space goes, as a process exits.
    while let Some(mut mm) = world.mms.pop() {
        mm.exit();
        mm.check_invariants();
        assert_eq!(mm.vmas().count(), 0, "exit left VMAs");
        let events = mm.take_events();
        world.hooks.add(&events);
    }
    world.hooks.check(0);
    drop(world.files);
    for f in &world.all_files {
        assert_eq!(
            Arc::strong_count(f),
            1,
            "a file is still referenced after every address space went: {}",
            f.path()
        );
    }
}

/// Driver hook calls: VMAs that came (`mapped`, `open`) and went (`close`).
///
/// Every VMA with a `close` hook is closed exactly once. It came through `mapped` (a new VMA,
/// whatever `mapped` answered: a failure unmaps it, and it is closed) or `open` (a split piece,
/// a fork copy, a moved VMA), or it is a new VMA whose action failed before `mapped` ran (it
/// is unmapped again and closed without having been `mapped`; the kernel's
/// `mmap_action_complete` does the same). So at any time
/// `mapped + open <= close + alive <= mapped + open + failed actions`.
#[derive(Clone, Copy, Default)]
struct Hooks {
    mapped: usize,
    opens: usize,
    closes: usize,
    failed_actions: usize,
}

impl Hooks {
    fn add(&mut self, events: &[Event]) {
        for e in events {
            match e {
                Event::Mapped { .. } => self.mapped += 1,
                Event::Open { .. } => self.opens += 1,
                Event::Close { .. } => self.closes += 1,
                Event::ActionComplete { result: Err(_), .. } => self.failed_actions += 1,
                _ => {}
            }
        }
    }

    fn check(&self, alive: usize) {
        let Hooks {
            mapped,
            opens,
            closes,
            failed_actions,
        } = *self;
        assert!(
            mapped + opens <= closes + alive && closes + alive <= mapped + opens + failed_actions,
            "{alive} VMAs with a close hook are alive, {closes} were closed, but drivers saw mapped \
             {mapped} + open {opens} (and {failed_actions} failed actions)"
        );
    }
}

/// The VMAs with a `close` hook, over all address spaces.
fn live_with_close(mms: &[Mm]) -> usize {
    mms.iter()
        .map(|mm| mm.vmas().filter(|v| v.ops().has_close()).count())
        .sum()
}

/// A host: the reference one without `CAP_IPC_LOCK`, an unprivileged user, a tight one (few
/// VMAs, small limits, strict overcommit) and a loose one (THP always, overcommit always, tmpfs).
/// `RLIMIT_MEMLOCK` is small in all of them (see the module doc).
fn pick_profile(input: &mut Input) -> Profile {
    let mut p = Profile::reference_host();
    p.cap_ipc_lock = false;
    p.rlimit_memlock = 1 << 20;
    match input.below(4) {
        0 => {}
        1 => {
            p.cap_sys_rawio = false;
        }
        2 => {
            p.max_map_count = 12;
            p.unmodelled_map_count = 4;
            p.rlimit_as = 256 << 20;
            p.rlimit_data = 64 << 20;
            p.rlimit_stack = 64 << 10;
            p.overcommit = Overcommit::Never;
            p.total_ram_pages = 8192;
            p.total_swap_pages = 0;
            p.rlimit_memlock = 16 << 10;
        }
        _ => {
            p.overcommit = Overcommit::Always;
            p.thp = ThpMode::Always;
            p.soft_dirty = true;
            p.anon_vma_name = true;
            p.tmpfile_fs = TmpfileFs::Tmpfs;
            p.rlimit_memlock = 0;
        }
    }
    p
}

/// An address: near 0, near `u64::MAX`, near `TASK_SIZE`, in the window, at the edge of a VMA,
/// one a call returned, or any.
fn addr(input: &mut Input, world: &World, mm: usize) -> u64 {
    let task = world.profile.task_size;
    let small = u64::from(input.u8());
    let a = match input.below(10) {
        0 => small * PAGE,
        1 => u64::MAX - small * PAGE - (PAGE - 1),
        2 => task.wrapping_add(small * PAGE).wrapping_sub(8 * PAGE),
        3 | 4 => BASE + u64::from(input.u16() % 1024) * PAGE,
        5 | 6 => {
            let vmas: Vec<(u64, u64)> = world.mms[mm].vmas().map(|v| (v.start().0, v.end().0)).collect();
            if vmas.is_empty() {
                BASE
            } else {
                let (s, e) = vmas[usize::from(input.u8()) % vmas.len()];
                let base = if input.bool() { s } else { e };
                // At the edge, or a few pages either side.
                if small < 128 {
                    base
                } else {
                    base.wrapping_add((small % 8) * PAGE).wrapping_sub(4 * PAGE)
                }
            }
        }
        7 if !world.returned.is_empty() => world.returned[usize::from(input.u8()) % world.returned.len()],
        8 => world
            .profile
            .mmap_min_addr
            .wrapping_add(small * PAGE)
            .wrapping_sub(16 * PAGE),
        _ => input.u64(),
    };
    // Now and then not page aligned.
    if input.u8() < 16 { a | (small % PAGE).max(1) } else { a }
}

/// A length: a few pages, many, zero, unaligned, huge or wrapping, 2 MiB multiples, or up to
/// the end of the VMA at (or after) `at`.
fn len(input: &mut Input, world: &World, mm: usize, at: u64) -> u64 {
    let task = world.profile.task_size;
    let small = u64::from(input.u8());
    match input.below(12) {
        10 | 11 => match world.mms[mm].find_vma(VirtAddr(at)) {
            Some(v) => v.end().0.wrapping_sub(at),
            None => PAGE,
        },
        0..=2 => (small % 16 + 1) * PAGE,
        3 => u64::from(input.u16()) * PAGE,
        4 => 0,
        5 => small + 1,
        6 => input
            .pick(&[
                u64::MAX,
                u64::MAX - PAGE + 1,
                u64::MAX - 2 * PAGE,
                1 << 63,
                task,
                task + 1,
            ])
            .wrapping_sub(small % 2),
        7 => task.wrapping_sub(at).wrapping_add(small * PAGE).wrapping_sub(4 * PAGE),
        8 => (small % 4 + 1) << 21,
        _ => input.u64(),
    }
}

fn prot(input: &mut Input) -> Prot {
    match input.below(8) {
        0 => Prot::NONE,
        1 => Prot::READ,
        2 | 3 => Prot::RW,
        4 => Prot::RX,
        5 => Prot::RWX,
        6 => {
            let extra = input.pick(&[Prot::GROWSDOWN, Prot::GROWSUP, Prot::SEM, Prot(0x10), Prot(0x8000_0000)]);
            Prot(u32::from(input.u8()) & 7).union(extra)
        }
        7 if input.u8() < 64 => Prot(input.u32()),
        _ => Prot(u32::from(input.u8()) & 7),
    }
}

fn map_flags(input: &mut Input) -> MapFlags {
    if input.u8() < 16 {
        return MapFlags(input.u32());
    }
    let ty = input.pick(&[
        MapFlags::PRIVATE,
        MapFlags::PRIVATE,
        MapFlags::SHARED,
        MapFlags::SHARED_VALIDATE,
        MapFlags::PRIVATE,
        MapFlags::SHARED,
        MapFlags::SHARED_VALIDATE,
        MapFlags::DROPPABLE,
        MapFlags(0),
        MapFlags(0x0f),
    ]);
    let mut f = ty;
    if input.u8() < 160 {
        f = f | MapFlags::ANONYMOUS;
    }
    if input.u8() < 170 {
        f = f | MapFlags::FIXED;
    }
    const EXTRAS: [MapFlags; 14] = [
        MapFlags::FIXED_NOREPLACE,
        MapFlags::POPULATE,
        MapFlags::LOCKED,
        MapFlags::NORESERVE,
        MapFlags::GROWSDOWN,
        MapFlags::STACK,
        MapFlags::HUGETLB,
        MapFlags::SYNC,
        MapFlags::BIT32,
        MapFlags::NONBLOCK,
        MapFlags::UNINITIALIZED,
        MapFlags::HUGE_2MB,
        MapFlags::DENYWRITE,
        MapFlags(0x80_0000),
    ];
    // No extra flag, one, or two.
    let n = match input.u8() {
        0..=139 => 0,
        140..=219 => 1,
        _ => 2,
    };
    for _ in 0..n {
        f = f | input.pick(&EXTRAS);
    }
    f
}

fn advice(input: &mut Input) -> u32 {
    if input.u8() < 16 {
        return input.u32();
    }
    input.pick(&[
        madv::NORMAL,
        madv::RANDOM,
        madv::SEQUENTIAL,
        madv::WILLNEED,
        madv::DONTNEED,
        madv::FREE,
        madv::REMOVE,
        madv::DONTFORK,
        madv::DOFORK,
        madv::MERGEABLE,
        madv::UNMERGEABLE,
        madv::HUGEPAGE,
        madv::NOHUGEPAGE,
        madv::DONTDUMP,
        madv::DODUMP,
        madv::WIPEONFORK,
        madv::KEEPONFORK,
        madv::COLD,
        madv::PAGEOUT,
        madv::POPULATE_READ,
        madv::POPULATE_WRITE,
        madv::DONTNEED_LOCKED,
        madv::COLLAPSE,
        madv::HWPOISON,
        madv::SOFT_OFFLINE,
        madv::GUARD_INSTALL,
        madv::GUARD_INSTALL,
        madv::GUARD_REMOVE,
        5,
        26,
        104,
    ])
}

/// Caps a populating length (module doc): one beyond `TASK_SIZE` stays, it must fail fast.
fn cap_populate(len: u64, task: u64) -> u64 {
    if len > POPULATE_CAP && len <= task {
        len % POPULATE_CAP
    } else {
        len
    }
}

/// `[start, start + len rounded up to pages)`, clamped at the top of the address space.
fn range(start: u64, len: u64) -> (u64, u64) {
    let start = start & !(PAGE - 1);
    let aligned = len.checked_add(PAGE - 1).map_or(u64::MAX, |l| l & !(PAGE - 1));
    (start, start.saturating_add(aligned))
}

/// The calls the target makes.
#[derive(Clone, Copy)]
enum Op {
    Open,
    Close,
    Mmap,
    Munmap,
    Mprotect,
    Madvise,
    /// `mlock`, `mlock2`, `munlock`.
    Mlock,
    Mremap,
    Mseal,
    /// `read`, `write`, `fill`, `access`, `access_remote`.
    Memory,
    /// `try_read`, `try_write`, `try_access`.
    Shared,
    Fork,
    Exit,
    /// Drop an address space.
    Drop,
    /// `vmas_in`, `vma_at`, `find_vma`.
    Lookup,
}

/// How often each op comes, out of 256; the rest are lookups.
const OP_WEIGHTS: [(Op, u16); 14] = [
    (Op::Open, 12),
    (Op::Close, 4),
    (Op::Mmap, 50),
    (Op::Munmap, 18),
    (Op::Mprotect, 24),
    (Op::Madvise, 24),
    (Op::Mlock, 14),
    (Op::Mremap, 24),
    (Op::Mseal, 8),
    (Op::Memory, 30),
    (Op::Shared, 8),
    (Op::Fork, 8),
    (Op::Exit, 3),
    (Op::Drop, 4),
];

fn op_kind(byte: u8) -> Op {
    let mut acc = 0;
    for (op, weight) in OP_WEIGHTS {
        acc += weight;
        if u16::from(byte) < acc {
            return op;
        }
    }
    Op::Lookup
}

fn step(world: &mut World, input: &mut Input) {
    let op = input.u8();
    let mi = usize::from(input.u8()) % world.mms.len();
    let task = world.profile.task_size;
    // The maps text only of the address space the call is made on; the others are compared by
    // their VMAs and counters.
    let snapshots = |mms: &[Mm], mi: usize| -> Vec<Snapshot> {
        mms.iter()
            .enumerate()
            .map(|(i, mm)| {
                if i == mi {
                    Snapshot::of(mm)
                } else {
                    Snapshot::without_maps(mm)
                }
            })
            .collect()
    };
    let before = snapshots(&world.mms, mi);
    // Test switch: the next few engine allocations of this one call may fail.
    let fail_alloc = input.u8() < 12;
    if fail_alloc {
        let n = u32::from(input.u8() % 4);
        world.mms[mi].fail_allocation_in(n);
    }
    // `Some(contract)` when the call failed.
    let mut failed: Option<OnError> = None;
    // The call, for the messages.
    let mut what = String::new();
    // Set by calls that only change VMAs' attributes, never what is mapped: `mprotect`,
    // `madvise`, `mlock`, `mseal` (success or failure).
    let mut keeps_mapped = false;
    // What `total_vm` must be after a successful `mmap` or `munmap`, in pages.
    let mut want_total: Option<u64> = None;
    match op_kind(op) {
        Op::Open => {
            if world.files.len() >= MAX_FILES {
                world.files.remove(0);
            }
            let size = match input.below(4) {
                0 => 0,
                1 => u64::from(input.u8()) * PAGE + u64::from(input.u8() % 2),
                2 => 64 << 10,
                _ => u64::from(input.u32()),
            };
            let mode = input.pick(&[FileMode::READ_WRITE, FileMode::READ_ONLY, FileMode::WRITE_ONLY]);
            world.next_ino += 1;
            let mm = &world.mms[mi];
            let file = match input.below(6) {
                0 => Some(mm.shmem().memfd_create("fuzz", size)),
                5 => {
                    let plan = hostile::Plan::decode(input);
                    trace(mi, &format!("hostile driver {plan:?}"), "");
                    Some(hostile::open(plan, mm.machine(), world.next_ino))
                }
                1 => Some(regular::open_ext4(
                    world.next_ino,
                    size,
                    mode,
                    "/tmp/mmprep/fuzz".into(),
                )),
                2 => Some(zero::open(mode)),
                _ => {
                    let drivers = registry::drivers();
                    let info = &drivers[input.below(drivers.len())];
                    let mut params = Vec::new();
                    if input.bool() && !info.params.is_empty() {
                        let p = info.params[input.below(info.params.len())];
                        let key = p.split('=').next().unwrap_or_default().to_string();
                        let value = match input.below(4) {
                            0 => "0".to_string(),
                            1 => format!("{}", input.u8()),
                            2 => format!("{:#x}", u64::from(input.u16()) * PAGE),
                            _ => format!("{}", input.u64()),
                        };
                        params.push((key, value));
                    }
                    let env = DriverEnv {
                        machine: mm.machine(),
                        shmem: mm.shmem(),
                        events: mm.event_sink(),
                    };
                    // A refused parameter is the driver's answer, not a finding.
                    (info.open)(&Params(params), &env).ok()
                }
            };
            if let Some(f) = file {
                what = format!("open {} ({} files)", f.path(), world.files.len() + 1);
                world.all_files.push(f.clone());
                world.files.push(f);
            }
        }
        // The VMAs keep their references.
        Op::Close => {
            if !world.files.is_empty() {
                let i = input.below(world.files.len());
                what = format!("close file {i}");
                world.files.remove(i);
            }
        }
        Op::Mmap => {
            let a = addr(input, world, mi);
            let mut l = len(input, world, mi, a);
            let p = prot(input);
            let f = map_flags(input);
            if f.contains(MapFlags::POPULATE) {
                l = cap_populate(l, task);
            }
            let file = if world.files.is_empty() || input.u8() < 40 {
                None
            } else {
                Some(world.files[input.below(world.files.len())].clone())
            };
            let hostile = file.as_ref().is_some_and(|f| f.ops().name() == "hostile");
            // A driver's remap action installs one page-table entry per page (module doc).
            if file.as_ref().is_some_and(|f| f.inode().kind() == InodeKind::CharDevice)
                && l > DRIVER_MAP_CAP
                && l <= task
            {
                l %= DRIVER_MAP_CAP;
            }
            let off = match input.below(16) {
                0..=9 => 0,
                10..=12 => u64::from(input.u8()) * PAGE,
                13 => u64::from(input.u16()),
                14 => input.u64() & !(PAGE - 1),
                _ => input.u64(),
            };
            let pgoff_call = input.u8() < 32;
            let mm = &mut world.mms[mi];
            what = format!(
                "mmap{}({a:#x}, {l:#x}, {p:?}, {f:?}, {:?}, {off:#x})",
                if pgoff_call { "_pgoff" } else { "" },
                file.as_ref().map(|f| f.path().to_string())
            );
            let r = if pgoff_call {
                mm.mmap_pgoff(VirtAddr(a), l, p, f, file.as_ref(), off)
            } else {
                mm.mmap(VirtAddr(a), l, p, f, file.as_ref(), off)
            };
            match r {
                Ok(at) => {
                    assert_eq!(at.0 % PAGE, 0, "mmap returned an unaligned address {at:?}");
                    assert_covered(mm, at.0, l, "mmap");
                    // What was in the range was replaced; the new pages came.
                    let (s, e) = range(at.0, l);
                    let total = before[mi].stats.total_vm;
                    want_total = Some(total - pages_in(&before[mi], s, e) + (e - s) / PAGE);
                    world.returned.push(at.0);
                }
                Err(e) => {
                    what = failure(&what, &e);
                    // MAP_FIXED replaces what was there: the gather and the driver's hook can
                    // fail after the old VMAs went (engine doc, mm/mmap.rs "On failure").
                    // Without it (or with FIXED_NOREPLACE, which refuses before replacing)
                    // nothing was replaced and a failure leaves nothing behind.
                    let replaces = f.contains(MapFlags::FIXED) && !f.contains(MapFlags::FIXED_NOREPLACE);
                    failed = Some(if replaces {
                        OnError::Outside(vec![range(a, l)])
                    } else if fail_alloc || hostile {
                        // When the driver's completion fails, the new VMA is unmapped again and
                        // the kernel ignores that munmap's result (mm/mmap.rs
                        // `mmap_action_complete`): the VMA stays if that unmap fails, on an
                        // armed allocation failure or because the hostile driver set
                        // VM_SEALED. Only in what was a hole.
                        OnError::Outside(holes(&before[mi]))
                    } else {
                        OnError::Exact
                    });
                }
            }
        }
        Op::Munmap => {
            let a = addr(input, world, mi);
            let l = len(input, world, mi, a);
            let mm = &mut world.mms[mi];
            what = format!("munmap({a:#x}, {l:#x})");
            match mm.munmap(VirtAddr(a), l) {
                Ok(()) => {
                    let (s, e) = range(a, l);
                    if s < e {
                        let left = mm.vmas_in(VirtAddr(s), VirtAddr(e)).count();
                        assert_eq!(left, 0, "munmap({a:#x}, {l:#x}) succeeded and left VMAs");
                        want_total = Some(before[mi].stats.total_vm - pages_in(&before[mi], s, e));
                    }
                }
                // A split at `addr` stays (mm/munmap.rs "On failure").
                Err(e) => {
                    what = failure(&what, &e);
                    failed = Some(OnError::Splits);
                }
            }
        }
        Op::Mprotect => {
            keeps_mapped = true;
            let a = addr(input, world, mi);
            let l = len(input, world, mi, a);
            let p = prot(input);
            let mm = &mut world.mms[mi];
            // PROT_GROWSDOWN moves the start to the start of the first VMA of the range, down
            // (the rest of a grows-down VMA) or up (past a hole) (`do_mprotect_pkey`).
            let lo = if p.contains(Prot::GROWSDOWN) {
                mm.find_vma(VirtAddr(a)).map_or(a, |v| v.start().0)
            } else {
                a
            };
            what = format!("mprotect({a:#x}, {l:#x}, {p:?})");
            // A zero length succeeds at once, changing nothing (`do_mprotect_pkey`).
            let lo = lo & !(PAGE - 1);
            let hi = if l == 0 { lo } else { range(a, l).1 };
            let lo = lo.min(hi);
            if let Err(e) = mm.mprotect(VirtAddr(a), l, p) {
                what = failure(&what, &e);
                // The VMAs walked keep their new protection (mm/mprotect.rs "On failure").
                failed = Some(walked(&before[mi], lo, hi, true));
            } else if lo < hi {
                // A hole fails with ENOMEM; every VMA of the range has the new protection.
                assert_covered(mm, lo, hi - lo, &what);
                let want = [
                    (Prot::READ, VmaBit::Read),
                    (Prot::WRITE, VmaBit::Write),
                    (Prot::EXEC, VmaBit::Exec),
                ];
                for v in mm.vmas_in(VirtAddr(lo), VirtAddr(hi)) {
                    for (bit, flag) in want {
                        assert_eq!(p.contains(bit), v.test(flag), "{what} succeeded but left {v:?}");
                    }
                }
            }
        }
        Op::Madvise => {
            keeps_mapped = true;
            let a = addr(input, world, mi);
            let adv = advice(input);
            let mut l = len(input, world, mi, a);
            if matches!(adv, madv::POPULATE_READ | madv::POPULATE_WRITE | madv::WILLNEED) {
                l = cap_populate(l, task);
            }
            let mm = &mut world.mms[mi];
            what = format!("madvise({a:#x}, {l:#x}, {adv})");
            if let Err(e) = mm.madvise(VirtAddr(a), l, adv) {
                what = failure(&what, &e);
                // VMAs walked before the failing one keep their change (mm/madvise.rs).
                failed = Some(walked(&before[mi], a, range(a, l).1, false));
            }
        }
        Op::Mlock => {
            keeps_mapped = true;
            let a = addr(input, world, mi);
            let l = len(input, world, mi, a);
            let which = input.below(3);
            let flags = match input.below(4) {
                0 => mlock::ONFAULT,
                1 => input.u32(),
                _ => 0,
            };
            let mm = &mut world.mms[mi];
            what = format!("mlock#{which}({a:#x}, {l:#x}, {flags:#x})");
            let r = match which {
                0 => mm.mlock(VirtAddr(a), l),
                1 => mm.mlock2(VirtAddr(a), l, flags),
                _ => mm.munlock(VirtAddr(a), l),
            };
            // mlock takes an unaligned start: the range is `len + offset_in_page(start)` from
            // its page, rounded up to pages, and that may wrap to 0 (`do_mlock`); an end below
            // the start is EINVAL before anything changes.
            let lo = a & !(PAGE - 1);
            let span = l.wrapping_add(a % PAGE).wrapping_add(PAGE - 1) & !(PAGE - 1);
            let hi = lo.checked_add(span).unwrap_or(lo);
            if let Err(e) = r {
                what = failure(&what, &e);
                // The walk does not roll back (mm/mlock.rs "On failure").
                failed = Some(walked(&before[mi], lo, hi, true));
            } else if lo < hi {
                // A hole fails with ENOMEM. Every ordinary VMA of the range is locked (and on
                // fault with MLOCK_ONFAULT) or unlocked; `mlock_fixup` leaves special, DAX,
                // hugetlb and droppable VMAs alone, so only anonymous ones are checked.
                assert_covered(mm, lo, hi - lo, &what);
                let onfault = which == 1 && flags == mlock::ONFAULT;
                for v in mm.vmas_in(VirtAddr(lo), VirtAddr(hi)) {
                    if !v.is_anonymous() || v.test(VmaBit::Droppable) {
                        continue;
                    }
                    let want = (which < 2, which < 2 && onfault);
                    assert_eq!(
                        (v.test(VmaBit::Locked), v.test(VmaBit::LockOnFault)),
                        want,
                        "{what} succeeded but left {v:?}"
                    );
                }
            }
        }
        Op::Mremap => {
            let a = addr(input, world, mi);
            let old_len = len(input, world, mi, a);
            let new_len = len(input, world, mi, a);
            let flags = match input.below(8) {
                0 => 0,
                1 | 2 => mremap::MAYMOVE,
                3 | 4 => mremap::MAYMOVE | mremap::FIXED,
                5 => mremap::MAYMOVE | mremap::DONTUNMAP,
                6 => u32::from(input.u8() & 7),
                _ => input.u32(),
            };
            let new_addr = addr(input, world, mi);
            let mm = &mut world.mms[mi];
            what = format!("mremap({a:#x}, {old_len:#x}, {new_len:#x}, {flags:#x}, {new_addr:#x})");
            match mm.mremap(VirtAddr(a), old_len, new_len, flags, VirtAddr(new_addr)) {
                Ok(at) => {
                    assert_eq!(at.0 % PAGE, 0, "{what} returned an unaligned address {at:?}");
                    // A growth (in place or moved) needs the old range in one VMA, and the
                    // whole new range is then mapped. A shrink only unmaps the tail of
                    // `old_len`, which may reach past the VMA; a move of several VMAs keeps
                    // their gaps.
                    let (o, n) = (range(0, old_len).1, range(0, new_len).1);
                    if n > o {
                        assert_covered(mm, at.0, new_len, &what);
                    }
                    world.returned.push(at.0);
                }
                Err(e) => {
                    what = failure(&what, &e);
                    // The source may have changed (a shrink's tail, VMAs moved before the one
                    // that failed); with FIXED the destination was unmapped first and stays so
                    // (mm/mremap.rs "On failure"). Nothing else.
                    let mut ranges = vec![range(a, old_len)];
                    if flags & mremap::FIXED != 0 {
                        ranges.push(range(new_addr, new_len));
                    }
                    failed = Some(OnError::Outside(ranges));
                }
            }
        }
        Op::Mseal => {
            keeps_mapped = true;
            let a = addr(input, world, mi);
            let l = len(input, world, mi, a);
            let flags = if input.u8() < 32 { input.u64() } else { 0 };
            let mm = &mut world.mms[mi];
            what = format!("mseal({a:#x}, {l:#x}, {flags:#x})");
            let (lo, hi) = range(a, l);
            if let Err(e) = mm.mseal(VirtAddr(a), l, flags) {
                what = failure(&what, &e);
                // A refused split stops the walk; the VMAs before it stay sealed (mm/mseal.rs).
                failed = Some(walked(&before[mi], lo, hi, true));
            } else if lo < hi {
                // A hole fails with ENOMEM; every VMA of the range is sealed.
                assert_covered(mm, lo, hi - lo, &what);
                for v in mm.vmas_in(VirtAddr(lo), VirtAddr(hi)) {
                    assert!(v.is_sealed(), "{what} succeeded but left {v:?}");
                }
            }
        }
        // Memory: read, write (and read it back), fill, one access, another process's access.
        Op::Memory => {
            let a = addr(input, world, mi);
            let n = usize::from(input.u16()) % (2 * PAGE as usize + 64);
            let byte = input.u8();
            let kind = input.below(5);
            what = format!("memory#{kind}({a:#x}, {n:#x})");
            let mm = &mut world.mms[mi];
            match kind {
                0 => {
                    let mut buf = vec![0u8; n];
                    let _ = mm.read(VirtAddr(a), &mut buf);
                }
                1 => {
                    let data: Vec<u8> = (0..n).map(|i| byte.wrapping_add(i as u8)).collect();
                    if mm.write(VirtAddr(a), &data).is_ok() {
                        let mut back = vec![0u8; n];
                        if mm.read(VirtAddr(a), &mut back).is_ok() && !is_io(mm, a, n) {
                            assert!(back == data, "bytes written at {a:#x} read back different");
                        }
                    }
                }
                2 => {
                    let l = cap_populate(n as u64 * 17, task);
                    let _ = mm.fill(VirtAddr(a), l, byte);
                }
                3 => {
                    let access = if byte & 1 == 0 { Access::Read } else { Access::Write };
                    let _ = mm.access(VirtAddr(a), access);
                }
                _ => {
                    let mut buf = vec![byte; n];
                    let done = mm.access_remote(VirtAddr(a), &mut buf, byte & 1 == 1);
                    assert!(done <= n, "access_remote did {done} of {n} bytes");
                }
            }
            check_access(&before[mi], &Snapshot::of(&world.mms[mi]));
        }
        // The same under the shared lock: `&self`, so nothing may change at all.
        Op::Shared => {
            let a = addr(input, world, mi);
            let n = usize::from(input.u16()) % (2 * PAGE as usize + 64);
            let mm = &world.mms[mi];
            match input.below(3) {
                0 => {
                    let mut buf = vec![0u8; n];
                    if let Err(e) = mm.try_read(VirtAddr(a), &mut buf) {
                        assert!(e.done <= n);
                    }
                }
                1 => {
                    let data = vec![0x5a; n];
                    if let Err(e) = mm.try_write(VirtAddr(a), &data) {
                        assert!(e.done <= n);
                    }
                }
                _ => {
                    let _ = mm.try_access(VirtAddr(a), Access::Write);
                }
            }
            failed = Some(OnError::Exact);
        }
        Op::Fork => {
            let mm = &mut world.mms[mi];
            what = "fork()".to_string();
            match mm.fork() {
                Ok(child) => {
                    child.check_invariants();
                    // The parent is as it was; the child has a subset of its lines (no
                    // VM_DONTFORK VMAs), in order, and none that the parent lacks.
                    failed = Some(OnError::Exact);
                    let parent = mm.maps();
                    let mut lines = parent.lines();
                    for l in child.maps().lines() {
                        assert!(
                            lines.any(|p| p == l),
                            "fork child has a maps line its parent lacks: {l}\nparent:\n{parent}"
                        );
                    }
                    if world.mms.len() < MAX_MMS {
                        world.mms.push(child);
                    } else {
                        // The child exits at once (explicitly, to read its `close` calls).
                        let mut child = child;
                        child.exit();
                        let events = child.take_events();
                        world.hooks.add(&events);
                        drop(child);
                    }
                }
                // The parent is unchanged (mm/fork.rs "On failure").
                Err(e) => {
                    what = failure(&what, &e);
                    failed = Some(OnError::Exact);
                }
            }
        }
        Op::Exit => {
            what = "exit()".into();
            let mm = &mut world.mms[mi];
            mm.exit();
            mm.check_invariants();
            assert_eq!(mm.vmas().count(), 0, "exit left VMAs");
            let s = mm.stats();
            assert_eq!(
                (
                    s.map_count,
                    s.total_vm,
                    s.data_vm,
                    s.exec_vm,
                    s.stack_vm,
                    s.locked_vm,
                    s.committed
                ),
                (world.profile.unmodelled_map_count, 0, 0, 0, 0, 0, 0),
                "counters after exit"
            );
        }
        // An address space goes (a child exits): `Drop` closes its VMAs.
        Op::Drop => {
            if world.mms.len() > 1 {
                trace(mi, "drop", "");
                let mut gone = world.mms.remove(mi);
                // `Drop` runs `exit`; calling it first lets the run read its `close` calls.
                gone.exit();
                let events = gone.take_events();
                world.hooks.add(&events);
                drop(gone);
                // Indexes moved: compare the rest with their old selves.
                let mut rest = before;
                rest.remove(mi);
                for (mm, was) in world.mms.iter().zip(&rest) {
                    mm.check_invariants();
                    assert_eq!(
                        &Snapshot::without_maps(mm),
                        was,
                        "dropping one address space changed another"
                    );
                }
            }
            disarm(world, mi);
            return;
        }
        // Lookups with hostile ranges.
        Op::Lookup => {
            let a = addr(input, world, mi);
            let b = addr(input, world, mi);
            let mm = &world.mms[mi];
            for v in mm.vmas_in(VirtAddr(a), VirtAddr(b)) {
                assert!(v.start().0 < b && v.end().0 > a, "vmas_in({a:#x}, {b:#x}) gave {v:?}");
            }
            if let Some(v) = mm.vma_at(VirtAddr(a)) {
                assert!(v.start().0 <= a && a < v.end().0, "vma_at({a:#x}) gave {v:?}");
            }
            if let Some(v) = mm.find_vma(VirtAddr(a)) {
                assert!(a < v.end().0, "find_vma({a:#x}) gave {v:?}");
            }
            let _ = mm.resident_pages();
            failed = Some(OnError::Exact);
        }
    }
    disarm(world, mi);
    let after = snapshots(&world.mms, mi);
    for (i, mm) in world.mms.iter().enumerate() {
        mm.check_invariants();
        if i < before.len() && i != mi {
            assert_eq!(
                after[i], before[i],
                "a call on address space {mi} changed address space {i}"
            );
        }
    }
    if keeps_mapped {
        assert_eq!(
            mapped_ranges(&after[mi]),
            mapped_ranges(&before[mi]),
            "{what} changed what is mapped\nbefore:\n{}after:\n{}",
            before[mi].maps,
            after[mi].maps
        );
        assert_eq!(
            after[mi].stats.total_vm, before[mi].stats.total_vm,
            "{what} changed total_vm"
        );
    }
    if let Some(total) = want_total {
        assert_eq!(after[mi].stats.total_vm, total, "{what}: total_vm");
    }
    trace(
        mi,
        &what,
        match &failed {
            Some(OnError::Exact) => "(exact)",
            Some(_) => "failed",
            None => "",
        },
    );
    if let Some(contract) = failed {
        check_unchanged(&what, &contract, &before[mi], &after[mi], fail_alloc);
    }
}

/// The call's description with the error it returned.
fn failure(what: &str, e: &mmprep::Error) -> String {
    format!("{what} = {} ({})", e.errno.name(), e.reason)
}

/// With `MMPREP_FUZZ_TRACE` set, each call goes to stderr as it is made.
fn trace(mm: usize, what: &str, how: &str) {
    if std::env::var_os("MMPREP_FUZZ_TRACE").is_some() && !what.is_empty() {
        eprintln!("mm{mm}: {what} {how}");
    }
}

/// The test switch is for one call only: push its trigger out of reach again.
fn disarm(world: &mut World, mi: usize) {
    if let Some(mm) = world.mms.get_mut(mi) {
        mm.fail_allocation_in(u32::MAX);
    }
}

/// Pages of the VMAs of `s` inside `[lo, hi)`.
fn pages_in(s: &Snapshot, lo: u64, hi: u64) -> u64 {
    s.vmas
        .iter()
        .map(|v| v.end.min(hi).saturating_sub(v.start.max(lo)) / PAGE)
        .sum()
}

/// The mapped address ranges, whatever their VMAs: touching VMAs joined.
fn mapped_ranges(s: &Snapshot) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for v in &s.vmas {
        match out.last_mut() {
            Some(last) if last.1 == v.start => last.1 = v.end,
            _ => out.push((v.start, v.end)),
        }
    }
    out
}

/// The ranges no VMA covered.
fn holes(s: &Snapshot) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    for v in &s.vmas {
        if at < v.start {
            out.push((at, v.start));
        }
        at = v.end;
    }
    out.push((at, u64::MAX));
    out
}

/// The contract of a call that walks the VMAs of `[lo, hi)` and does not roll back: if no VMA
/// was in the range nothing can have changed; else only inside it, and with `prefix` (a walk
/// that stops at the first failure) only a prefix of it.
fn walked(before: &Snapshot, lo: u64, hi: u64, prefix: bool) -> OnError {
    let lo = lo & !(PAGE - 1);
    if lo >= hi || !before.vmas.iter().any(|v| v.start < hi && v.end > lo) {
        OnError::Exact
    } else if prefix {
        OnError::Prefix(lo, hi)
    } else {
        OnError::Outside(vec![(lo, hi)])
    }
}

fn check_unchanged(what: &str, contract: &OnError, before: &Snapshot, after: &Snapshot, fail_alloc: bool) {
    let what = format!(
        "{what}{}",
        if fail_alloc {
            " (with an allocation failure armed)"
        } else {
            ""
        }
    );
    match contract {
        OnError::Exact => {
            assert_eq!(after.maps, before.maps, "{what} failed and changed the maps");
            assert_eq!(after.vmas, before.vmas, "{what} failed and changed a VMA");
            assert_eq!(after.stats, before.stats, "{what} failed and changed the counters");
        }
        OnError::Splits => {
            assert_eq!(
                joined(&after.vmas),
                joined(&before.vmas),
                "{what} failed and changed more than splits\nbefore:\n{}after:\n{}",
                before.maps,
                after.maps
            );
            let mut s = after.stats;
            s.map_count = before.stats.map_count;
            assert_eq!(s, before.stats, "{what} failed and changed the counters");
        }
        OnError::Outside(ranges) => {
            assert_eq!(
                unsticky(outside(&after.vmas, ranges)),
                unsticky(outside(&before.vmas, ranges)),
                "{what} failed and changed VMAs outside {ranges:x?}\nbefore:\n{}after:\n{}",
                before.maps,
                after.maps
            );
        }
        OnError::Prefix(lo, hi) => {
            // Candidate stopping points: the range's ends and every VMA edge inside it.
            let mut points = vec![*lo, *hi];
            for v in before.vmas.iter().chain(&after.vmas) {
                points.extend([v.start, v.end].into_iter().filter(|p| lo < p && p < hi));
            }
            let fits =
                |p: u64| unsticky(outside(&after.vmas, &[(*lo, p)])) == unsticky(outside(&before.vmas, &[(*lo, p)]));
            assert!(
                points.into_iter().any(fits),
                "{what} failed and changed VMAs past the point where its walk over [{lo:#x}, {hi:#x}) stopped\nbefore:\n{}after:\n{}",
                before.maps,
                after.maps
            );
        }
    }
}

/// `vmas` without the sticky flags (`VM_MAYBE_GUARD`, `VM_SOFTDIRTY`), joined again. A merge
/// gives the merged VMA the union of its parts' sticky flags (`VM_STICKY`, 6.19's series), so a
/// change inside a range can reach a neighbour's sticky flags outside it; and a guard install
/// sets `VM_MAYBE_GUARD` on a whole VMA without splitting it.
fn unsticky(mut vmas: Vec<VmaView>) -> Vec<VmaView> {
    let sticky = mmprep::flags::sticky_flags(true);
    for v in &mut vmas {
        v.flags = v.flags.without(sticky);
    }
    joined(&vmas)
}

/// A memory access changes no VMA, except that a fault below a grows-down VMA may grow it (the
/// stack): same VMAs, same ends, a start lower only for a grows-down one. If no VMA changed,
/// the counters did not either.
fn check_access(before: &Snapshot, after: &Snapshot) {
    assert_eq!(
        after.vmas.len(),
        before.vmas.len(),
        "an access added or removed a VMA\nbefore:\n{}after:\n{}",
        before.maps,
        after.maps
    );
    let mut grew = false;
    for (a, b) in after.vmas.iter().zip(&before.vmas) {
        if a == b {
            continue;
        }
        let grows_down = b.flags.test(VmaBit::GrowsDown);
        let same_but_start = VmaView {
            start: b.start,
            pgoff: b.pgoff,
            ..a.clone()
        } == *b;
        assert!(
            grows_down && same_but_start && a.start < b.start,
            "an access changed a VMA: {b:x?} became {a:x?}"
        );
        grew = true;
    }
    if !grew {
        assert_eq!(after.stats, before.stats, "an access changed the counters");
    }
}

/// Does `[a, a + n)` touch an I/O or PFN mapping (device memory, where a read need not return
/// what was written)? A range that wraps past the top is not compared either.
fn is_io(mm: &Mm, a: u64, n: usize) -> bool {
    let Some(end) = a.checked_add(n as u64) else {
        return true;
    };
    mm.vmas_in(VirtAddr(a), VirtAddr(end))
        .any(|v| v.test(VmaBit::Io) || v.test(VmaBit::PfnMap) || v.test(VmaBit::MixedMap))
}

/// A successful call's range `[at, at + len)` is covered by VMAs with no hole.
fn assert_covered(mm: &Mm, at: u64, len: u64, what: &str) {
    let (s, e) = range(at, len);
    let mut next = s;
    for v in mm.vmas_in(VirtAddr(s), VirtAddr(e)) {
        assert!(
            v.start().0 <= next,
            "{what} at {at:#x} + {len:#x}: a hole at {next:#x}\n{mm:?}"
        );
        next = v.end().0;
    }
    assert!(
        next >= e,
        "{what} at {at:#x} + {len:#x}: not covered past {next:#x}\n{mm:?}"
    );
}

//! `mmprep trace`: a real program run under ptrace, each of its memory system calls run again
//! on the engine and the two results compared.
//!
//! The program starts with address randomisation off (`personality(ADDR_NO_RANDOMIZE)` before
//! its `execve`, as `setarch -R` does) and stops at every system call (`PTRACE_SYSCALL` with
//! `PTRACE_O_TRACESYSGOOD`). After each `execve` (`PTRACE_EVENT_EXEC`) its address space is
//! imported (`import.rs`); from then on, for every memory call (`mmprep::abi::nr::is_memory`):
//!
//! 1. at the entry stop, what the program did without a system call since the last one is
//!    reconciled from `/proc/PID/smaps`: a stack VMA the kernel grew on a fault, a VMA that
//!    now holds anonymous pages (the first write gave it an anon_vma) — each becomes a fault
//!    the engine takes itself ([`Event::Fault`]), and is counted; nothing is re-imported;
//! 2. for a file `mmap`, the descriptor's identity (`/proc/PID/fd/N`: device, inode, size;
//!    the descriptor itself, duplicated with `pidfd_getfd`: its open mode, and `fstatvfs`,
//!    `fstatfs` for `noexec` and tmpfs) goes into the engine's descriptor table;
//! 3. at the exit stop the same call runs on the engine through `mmprep::abi::syscall` and the
//!    two return values (address or `-errno`) are compared.
//!
//! Every `--check-every` calls and when a process ends (`PTRACE_EVENT_EXIT` of its last task)
//! the whole maps text and each VMA's `VmFlags` are compared with the kernel's, as `mmprep
//! import` does.
//!
//! Processes: `PTRACE_O_TRACEFORK|TRACEVFORK|TRACECLONE` follow every new task. A `fork` copies
//! the parent's engine address space (`Mm::fork`, `dup_mmap`), after reconciling the parent's
//! faults; `vfork` and a `clone` with `CLONE_VM` (threads, `posix_spawn`) share it; an `execve`
//! starts the task afresh from an import.
//!
//! Threads: the engine must run the calls of one address space in the order the kernel ran
//! them, and compare maps only when no call is half done. So only one task of an address space
//! is let into a memory call at a time: another task that reaches the entry stop of one waits
//! there, stopped, until the exit stop of the first (two threads' `mmap(NULL)` would otherwise
//! race for `mmap_lock` in an order the tracer cannot see). Threads that are running meanwhile
//! may still fault (a stack grows): a maps check reconciles from the same smaps snapshot it
//! compares.
//!
//! ptrace itself may be refused (a seccomp filter, Yama, a container without `CAP_SYS_PTRACE`
//! over the child): [`TraceError::Refused`] says so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::time::{Duration, Instant};

use libc::{c_int, pid_t};
use mmprep::abi::{self, Outcome};
use mmprep::flags::VmaBit;

use crate::import::{
    ProcLimits, engine_maps_with_flags, maps_of, maps_with_flags, read_limits, read_stat, smaps_vmas, stat_addrs,
};
use crate::replay::{Event, FileId, FileKind, Session, call_text, ret_text};
use crate::sys;

/// `personality(2)`'s `ADDR_NO_RANDOMIZE`.
const ADDR_NO_RANDOMIZE: libc::c_ulong = libc::ADDR_NO_RANDOMIZE as libc::c_ulong;
/// The exit status of the child when `PTRACE_TRACEME` is refused.
const CHILD_TRACEME_REFUSED: c_int = 125;
/// The exit status of the child when `execvp` fails.
const CHILD_EXEC_FAILED: c_int = 127;
/// `execve`, `execveat`, `clone`, `clone3` on x86_64.
/// (libc's named numbers, not hand-written ones. ptrace itself stays on libc: rustix has no
/// ptrace API.)
const SYS_CLONE: u64 = libc::SYS_clone as u64;
const SYS_CLONE3: u64 = libc::SYS_clone3 as u64;
/// `MAP_ANONYMOUS`.
const MAP_ANONYMOUS: u64 = libc::MAP_ANONYMOUS as u64;
/// `CLONE_VM`, `CLONE_THREAD`.
const CLONE_VM: u64 = libc::CLONE_VM as u64;
const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;

/// How to trace.
#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    /// Compare the whole maps every this many memory calls (0: only when a process ends).
    pub check_every: u64,
    /// Keep the events (for `--save`).
    pub record: bool,
    /// Print a progress line on standard error now and then.
    pub progress: bool,
}

/// Why a trace could not run.
#[derive(Debug)]
pub enum TraceError {
    /// The kernel refused ptrace.
    Refused(String),
    /// Anything else: the program could not start, `/proc` could not be read...
    Failed(String),
}

/// A difference between the engine and the kernel.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// Process id of the task.
    pub pid: u32,
    /// The call (`mmap(...)`) or `maps check`.
    pub what: String,
    /// The kernel's result or maps line.
    pub kernel: String,
    /// The engine's.
    pub engine: String,
    /// Both maps around the address, for the first divergence only.
    pub context: Option<String>,
}

/// How a traced program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramEnd {
    Exited(i32),
    Signaled(i32),
}

/// What a trace found.
#[derive(Debug)]
pub struct TraceReport {
    /// The programs exec'd, in order (`/proc/PID/exe`).
    pub programs: Vec<String>,
    /// Processes seen (not threads).
    pub processes: u64,
    /// Threads seen beyond each process's first.
    pub threads: u64,
    /// Memory calls run on the engine, per kind.
    pub calls: BTreeMap<&'static str, u64>,
    /// Memory calls the engine does not model, per kind (the kernel's result stands).
    pub not_modelled: BTreeMap<&'static str, u64>,
    /// Faults reconciled between calls: VMAs that got their first anon_vma.
    pub anon_faults: u64,
    /// Faults reconciled between calls: stack growths.
    pub stack_growths: u64,
    /// Whole-maps comparisons made.
    pub checks: u64,
    /// `mmap` calls that returned an address on both sides, with the same address.
    pub mmaps_same: u64,
    /// Exec stops where the engine's own exec layout (`crate::exec`) was compared with the
    /// real one, and how many of them were equal.
    pub exec_checks: u64,
    pub exec_same: u64,
    /// The first few exec layout differences (reported, not divergences): pid, program, the
    /// kernel's line and the engine's (`None`: no such line on that side; `Some("error: ...")`
    /// when the engine could not build the layout).
    pub exec_differences: Vec<(u32, String, Option<String>, Option<String>)>,
    /// Divergences: the first few.
    pub divergences: Vec<Divergence>,
    /// All of them.
    pub divergence_count: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// How the traced program (the first process) ended.
    pub end: Option<ProgramEnd>,
    /// The events, if recorded.
    pub events: Vec<Event>,
}

impl TraceReport {
    /// All modelled calls.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// One traced task.
struct Task {
    /// Its process id (thread group).
    tgid: u32,
    /// The engine address space it uses (an index into the session).
    mm: usize,
    /// The memory call it is in (entry seen, exit not yet): number and registers.
    call: Option<(u64, [u64; 6])>,
    /// It must swallow the `SIGSTOP` every new tracee starts with.
    initial_stop: bool,
}

/// The tracer's state.
struct Tracer {
    opts: TraceOptions,
    session: Session,
    tasks: HashMap<pid_t, Task>,
    /// New tasks that stopped before their parent's fork event told where they belong.
    held: HashSet<pid_t>,
    /// Tasks stopped at the entry of a memory call until the call of another task of the same
    /// address space has ended: (task, number, registers).
    waiting: Vec<(pid_t, u64, [u64; 6])>,
    /// Tasks per address space.
    users: HashMap<usize, u64>,
    /// The first differing lines of the last maps check that differed, and whose.
    last_maps_difference: Option<(u32, String, String)>,
    next_mm: usize,
    since_check: u64,
    report: TraceReport,
    last_progress: Instant,
}

/// Runs `cmd` (program and arguments, found on `PATH`) under ptrace and compares every memory
/// call with the engine. See the module documentation.
pub fn trace(cmd: &[String], opts: TraceOptions) -> Result<TraceReport, TraceError> {
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| TraceError::Failed(format!("{a:?} holds a NUL byte"))))
        .collect::<Result<_, _>>()?;
    if argv.is_empty() {
        return Err(TraceError::Failed("no command to trace".into()));
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let start = Instant::now();
    let child = match sys::fork() {
        Ok(sys::Forked::Child) => {
            // Only async-signal-safe calls from here on: the arguments were prepared before.
            // SAFETY: PTRACE_TRACEME takes no pointers.
            if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) } != 0 {
                sys::exit_now(CHILD_TRACEME_REFUSED);
            }
            // SAFETY: personality takes and returns plain integers; 0xffffffff only queries.
            unsafe {
                let current = libc::personality(0xffff_ffff);
                libc::personality(current as libc::c_ulong | ADDR_NO_RANDOMIZE);
                libc::raise(libc::SIGSTOP);
                // `ptrs` is a NULL-terminated array of C strings that outlive the call.
                libc::execvp(ptrs[0], ptrs.as_ptr());
            }
            sys::exit_now(CHILD_EXEC_FAILED);
        }
        Ok(sys::Forked::Parent(pid)) => pid.as_raw_nonzero().get(),
        Err(e) => return Err(TraceError::Failed(format!("cannot fork: {}", sys::errno_text(e)))),
    };
    let mut tracer = Tracer {
        opts,
        session: Session::new(),
        tasks: HashMap::new(),
        held: HashSet::new(),
        waiting: Vec::new(),
        last_maps_difference: None,
        users: HashMap::new(),
        next_mm: 0,
        since_check: 0,
        report: TraceReport {
            programs: Vec::new(),
            processes: 1,
            threads: 0,
            calls: BTreeMap::new(),
            not_modelled: BTreeMap::new(),
            anon_faults: 0,
            stack_growths: 0,
            checks: 0,
            mmaps_same: 0,
            exec_checks: 0,
            exec_same: 0,
            exec_differences: Vec::new(),
            divergences: Vec::new(),
            divergence_count: 0,
            elapsed: Duration::ZERO,
            end: None,
            events: Vec::new(),
        },
        last_progress: Instant::now(),
    };
    let r = tracer.run(child);
    if r.is_err() {
        // SAFETY: `child` is our own child; killing it ends the tracees with it (EXITKILL).
        unsafe { libc::kill(child, libc::SIGKILL) };
        reap_all();
    }
    r?;
    tracer.report.elapsed = start.elapsed();
    Ok(tracer.report)
}

/// Waits for every remaining child, after a `SIGKILL`.
///
/// A killed tracee still stops once more, at `PTRACE_EVENT_EXIT` (we trace exits), and stays
/// there until it is resumed: each stop seen here is resumed, or the wait never ends. (It did:
/// `mmprep trace -- setarch -L /bin/true` hung, the traced `true` parked in its exit stop.)
fn reap_all() {
    let mut status = 0;
    loop {
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid > 0 {
            if libc::WIFSTOPPED(status) {
                resume(pid, 0);
            }
        } else if sys::last_errno() != libc::EINTR {
            return;
        }
    }
}

/// `waitpid(-1, __WALL)`: the task and its status, or `None` when no tracee is left.
fn wait_any() -> Option<(pid_t, c_int)> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid > 0 {
            return Some((pid, status));
        }
        if sys::last_errno() != libc::EINTR {
            return None;
        }
    }
}

/// `PTRACE_SYSCALL`: resume `pid` to its next system call stop, delivering `sig`.
fn resume(pid: pid_t, sig: c_int) {
    // SAFETY: no pointers; a task that died meanwhile makes it fail with ESRCH, which is fine.
    unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, sig as libc::c_long) };
}

/// The registers of a stopped tracee.
fn regs(pid: pid_t) -> Option<libc::user_regs_struct> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct to the pointer we pass.
    let rc = unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut r as *mut libc::user_regs_struct) };
    (rc == 0).then_some(r)
}

/// Whether a syscall stop is an entry (`Some(true)`), an exit (`Some(false)`) or neither
/// (a seccomp stop), from `PTRACE_GET_SYSCALL_INFO`.
fn syscall_stop_kind(pid: pid_t) -> Option<bool> {
    let mut buf = [0u64; 16];
    // SAFETY: the kernel writes at most the size we pass (128 bytes) to `buf`.
    let n = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            pid,
            std::mem::size_of_val(&buf),
            buf.as_mut_ptr(),
        )
    };
    if n <= 0 {
        return None;
    }
    match buf[0] as u8 {
        libc::PTRACE_SYSCALL_INFO_ENTRY => Some(true),
        libc::PTRACE_SYSCALL_INFO_EXIT => Some(false),
        _ => None,
    }
}

/// Is `pid` in group-stop (`PTRACE_GETSIGINFO` fails with `EINVAL`) rather than in a
/// signal-delivery-stop?
fn in_group_stop(pid: pid_t) -> bool {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one siginfo_t to the pointer.
    let rc = unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, pid, 0, &mut info as *mut libc::siginfo_t) };
    rc != 0 && sys::last_errno() == libc::EINVAL
}

/// `PTRACE_GETEVENTMSG`.
fn event_msg(pid: pid_t) -> u64 {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: the kernel writes one unsigned long to the pointer.
    unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0, &mut msg as *mut libc::c_ulong) };
    msg
}

fn read_proc(pid: u32, what: &str) -> Result<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/{what}")).map_err(|e| format!("/proc/{pid}/{what}: {e}"))
}

/// Descriptor `fd` of process `pid` (a thread group leader), duplicated into this one
/// (`pidfd_getfd(2)`), or `None` if it is not open.
fn tracee_fd(pid: u32, fd: u32) -> Option<std::os::fd::OwnedFd> {
    use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
    let pidfd = pidfd_open(Pid::from_raw(i32::try_from(pid).ok()?)?, PidfdFlags::empty()).ok()?;
    pidfd_getfd(&pidfd, i32::try_from(fd).ok()?, PidfdGetfdFlags::empty()).ok()
}

/// The identity of descriptor `fd` of `pid`, or `None` if it is not open.
fn file_id(pid: u32, fd: u32) -> Option<FileId> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let link = format!("/proc/{pid}/fd/{fd}");
    let meta = std::fs::metadata(&link).ok()?;
    let path = std::fs::read_link(&link).ok()?.to_string_lossy().into_owned();
    // The tracee's open file itself, duplicated into this process (we trace it, so the kernel
    // lets us): its access mode and its filesystem come from the descriptor, not from text.
    let file = tracee_fd(pid, fd);
    let acc = file
        .as_ref()
        .and_then(|f| rustix::fs::fcntl_getfl(f).ok())
        .map_or(rustix::fs::OFlags::RDONLY, |f| f & rustix::fs::OFlags::ACCMODE);
    let noexec = file
        .as_ref()
        .and_then(|f| rustix::fs::fstatvfs(f).ok())
        .is_some_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC));
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        let tmpfs = file
            .as_ref()
            .and_then(|f| rustix::fs::fstatfs(f).ok())
            .is_some_and(|st| st.f_type == libc::TMPFS_MAGIC);
        if tmpfs { FileKind::Shmem } else { FileKind::Regular }
    } else if ft.is_char_device() && sys::dev_major_minor(meta.rdev()) == (1, 5) {
        FileKind::DevZero
    } else {
        FileKind::NoMmap
    };
    Some(FileId {
        kind,
        dev: sys::dev_major_minor(meta.dev()),
        ino: meta.ino(),
        size: meta.len(),
        write: acc != rustix::fs::OFlags::RDONLY,
        read: acc != rustix::fs::OFlags::WRONLY,
        noexec,
        path,
    })
}

/// The lines of `maps` from three VMAs before the one at (or after) `addr` to three after it.
fn around(maps: &str, addr: u64) -> String {
    let lines: Vec<&str> = maps.lines().collect();
    let idx = lines
        .iter()
        .position(|l| {
            l.split(['-', ' '])
                .nth(1)
                .and_then(|e| u64::from_str_radix(e, 16).ok())
                .is_some_and(|end| end > addr)
        })
        .unwrap_or(lines.len());
    let lo = idx.saturating_sub(3);
    let hi = (idx + 4).min(lines.len());
    lines[lo..hi].iter().map(|l| format!("    {l}\n")).collect()
}

/// The first line where two texts differ, as (kernel, engine).
fn first_difference(kernel: &str, engine: &str) -> (String, String) {
    let (mut k, mut e) = (kernel.lines(), engine.lines());
    loop {
        match (k.next(), e.next()) {
            (None, None) => return (String::new(), String::new()),
            (a, b) if a != b => {
                return (
                    a.unwrap_or("(no more lines)").to_string(),
                    b.unwrap_or("(no more lines)").to_string(),
                );
            }
            _ => {}
        }
    }
}

impl Tracer {
    /// Applies an event to the engine and records it.
    fn apply(&mut self, ev: Event) -> Result<Option<Outcome>, String> {
        let r = self.session.apply(&ev);
        if self.opts.record {
            self.report.events.push(ev);
        }
        r
    }

    fn diverge(&mut self, d: Divergence) {
        self.report.divergence_count += 1;
        if self.report.divergences.len() < 20 {
            self.report.divergences.push(d);
        }
    }

    /// Is a task of `mm` other than `pid` inside a memory call (its entry seen, not its exit)?
    /// Then the kernel's maps already hold that call's effect and the engine's do not yet:
    /// reconciling or comparing now would compare two different moments.
    fn busy(&self, mm: usize, pid: pid_t) -> bool {
        self.tasks
            .iter()
            .any(|(&p, t)| p != pid && t.mm == mm && t.call.is_some())
    }

    fn new_mm(&mut self) -> usize {
        let mm = self.next_mm;
        self.next_mm += 1;
        mm
    }

    fn attach_user(&mut self, mm: usize) {
        *self.users.entry(mm).or_default() += 1;
    }

    /// Drops one user of `mm`; the last one drops the engine's address space too.
    fn detach_user(&mut self, mm: usize) -> Result<(), String> {
        let n = self.users.entry(mm).or_default();
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.users.remove(&mm);
            if self.session.space(mm).is_some() {
                self.apply(Event::Drop { mm })?;
            }
        }
        Ok(())
    }

    fn run(&mut self, child: pid_t) -> Result<(), TraceError> {
        // The child's SIGSTOP, before its execve.
        let Some((_, status)) = wait_any() else {
            return Err(TraceError::Failed("the child vanished".into()));
        };
        if libc::WIFEXITED(status) {
            return Err(match libc::WEXITSTATUS(status) {
                CHILD_TRACEME_REFUSED => TraceError::Refused(
                    "the kernel refused PTRACE_TRACEME (seccomp, Yama or a container policy)".into(),
                ),
                s => TraceError::Failed(format!("the child exited with status {s} before its execve")),
            });
        }
        let options = libc::PTRACE_O_TRACESYSGOOD
            | libc::PTRACE_O_TRACEEXEC
            | libc::PTRACE_O_TRACEFORK
            | libc::PTRACE_O_TRACEVFORK
            | libc::PTRACE_O_TRACECLONE
            | libc::PTRACE_O_TRACEEXIT
            | libc::PTRACE_O_EXITKILL;
        // SAFETY: no pointers; the options are an integer.
        if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, child, 0, options as libc::c_long) } != 0 {
            return Err(TraceError::Refused(format!(
                "PTRACE_SETOPTIONS: {}",
                sys::errno_text(sys::last_errno())
            )));
        }
        // Until its execve the child has no engine address space: it makes no memory call.
        let mm = self.new_mm();
        self.tasks.insert(
            child,
            Task {
                tgid: child as u32,
                mm,
                call: None,
                initial_stop: false,
            },
        );
        self.attach_user(mm);
        resume(child, 0);
        while let Some((pid, status)) = wait_any() {
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                if pid == child {
                    self.report.end = Some(if libc::WIFEXITED(status) {
                        ProgramEnd::Exited(libc::WEXITSTATUS(status))
                    } else {
                        ProgramEnd::Signaled(libc::WTERMSIG(status))
                    });
                }
                self.waiting.retain(|w| w.0 != pid);
                if let Some(t) = self.tasks.remove(&pid) {
                    self.detach_user(t.mm).map_err(TraceError::Failed)?;
                }
                continue;
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            if !self.tasks.contains_key(&pid) {
                // A new task whose parent's fork event has not come yet: hold it.
                self.held.insert(pid);
                continue;
            }
            let mut inject = 0;
            if sig == libc::SIGTRAP | 0x80 {
                if !self.syscall_stop(pid).map_err(TraceError::Failed)? {
                    continue;
                }
            } else if event != 0 {
                self.event_stop(pid, event).map_err(TraceError::Failed)?;
            } else if sig == libc::SIGSTOP && self.tasks.get(&pid).is_some_and(|t| t.initial_stop) {
                if let Some(t) = self.tasks.get_mut(&pid) {
                    t.initial_stop = false;
                }
            } else if in_group_stop(pid) {
                // A stopping signal already delivered: the task is in group-stop. Resuming it
                // with no signal lets it go on (a shell's job control is not modelled).
            } else {
                inject = sig;
            }
            resume(pid, inject);
            self.progress();
        }
        if self.report.programs.is_empty() {
            return Err(TraceError::Failed(match self.report.end {
                Some(ProgramEnd::Exited(CHILD_EXEC_FAILED)) => {
                    "the program did not start: execvp failed (not found on PATH, or not executable)".into()
                }
                end => format!("the program did not start ({end:?})"),
            }));
        }
        Ok(())
    }

    fn progress(&mut self) {
        if self.opts.progress && self.last_progress.elapsed() > Duration::from_millis(500) {
            self.last_progress = Instant::now();
            eprint!(
                "\rmmprep trace: {} calls, {} divergences ",
                self.report.total_calls(),
                self.report.divergence_count
            );
        }
    }

    fn event_stop(&mut self, pid: pid_t, event: c_int) -> Result<(), String> {
        match event {
            libc::PTRACE_EVENT_EXEC => {
                // A thread that execs takes over the thread-group leader's pid.
                let former = event_msg(pid) as pid_t;
                if former != pid
                    && let Some(t) = self.tasks.remove(&former)
                {
                    self.detach_user(t.mm)?;
                }
                let old = self.tasks.get(&pid).map(|t| t.mm).ok_or("exec of an unknown task")?;
                self.detach_user(old)?;
                let mm = self.new_mm();
                self.import(pid as u32, mm)?;
                self.attach_user(mm);
                if let Some(t) = self.tasks.get_mut(&pid) {
                    t.mm = mm;
                    t.tgid = pid as u32;
                    t.call = None;
                }
                let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.report.programs.push(exe);
            }
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                let new = event_msg(pid) as pid_t;
                let parent = self.tasks.get(&pid).ok_or("fork of an unknown task")?;
                let (ptgid, pmm) = (parent.tgid, parent.mm);
                let flags = match event {
                    libc::PTRACE_EVENT_FORK => 0,
                    libc::PTRACE_EVENT_VFORK => CLONE_VM,
                    _ => clone_flags(pid),
                };
                let (tgid, mm) = if flags & CLONE_VM != 0 {
                    (if flags & CLONE_THREAD != 0 { ptgid } else { new as u32 }, pmm)
                } else {
                    // dup_mmap copies the parent as it is now: its faults first.
                    let child_mm = self.new_mm();
                    if self.session.space(pmm).is_some() {
                        if !self.busy(pmm, pid) {
                            self.reconcile(ptgid, pmm)?;
                        }
                        self.apply(Event::Fork {
                            parent: pmm,
                            child: child_mm,
                        })?;
                    }
                    (new as u32, child_mm)
                };
                if flags & CLONE_THREAD != 0 {
                    self.report.threads += 1;
                } else {
                    self.report.processes += 1;
                }
                self.attach_user(mm);
                let held = self.held.remove(&new);
                self.tasks.insert(
                    new,
                    Task {
                        tgid,
                        mm,
                        call: None,
                        initial_stop: !held,
                    },
                );
                if held {
                    resume(new, 0);
                }
            }
            libc::PTRACE_EVENT_EXIT => {
                // A task killed while it waited to enter a memory call never makes it.
                self.waiting.retain(|w| w.0 != pid);
                let t = self.tasks.get(&pid).ok_or("exit of an unknown task")?;
                let (tgid, mm) = (t.tgid, t.mm);
                if self.users.get(&mm) == Some(&1) && self.session.space(mm).is_some() && !self.busy(mm, pid) {
                    self.check(tgid, mm)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn import(&mut self, pid: u32, mm: usize) -> Result<(), String> {
        let limits: ProcLimits = read_limits(pid)?;
        if limits.randomized {
            return Err(format!(
                "process {pid} runs with address randomisation on: mmap(NULL) cannot be compared \
                 (the program turned it back on after the tracer turned it off, as `setarch ARCH` \
                 without -R does: add -R)"
            ));
        }
        let smaps = read_proc(pid, "smaps")?;
        let stat = stat_addrs(&read_stat(pid)?)?;
        // The engine's own exec layout against the real one: reported, never fatal.
        let diffs = crate::exec::check_pid(pid, &smaps).unwrap_or_else(|e| vec![(None, Some(format!("error: {e}")))]);
        self.report.exec_checks += 1;
        if diffs.is_empty() {
            self.report.exec_same += 1;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_or_else(|_| String::new(), |p| p.to_string_lossy().into_owned());
        for (k, e) in diffs {
            if self.report.exec_differences.len() < 20 {
                self.report.exec_differences.push((pid, exe.clone(), k, e));
            }
        }
        self.apply(Event::Import {
            mm,
            pid,
            smaps,
            stat,
            limits,
        })?;
        Ok(())
    }

    /// A syscall stop of `pid`. Returns whether to resume it (a task waiting for another's
    /// memory call stays stopped).
    fn syscall_stop(&mut self, pid: pid_t) -> Result<bool, String> {
        let Some(entry) = syscall_stop_kind(pid) else {
            return Ok(true);
        };
        let Some(r) = regs(pid) else {
            return Ok(true);
        };
        let (tgid, mm) = {
            let t = self.tasks.get(&pid).ok_or("a syscall stop of an unknown task")?;
            (t.tgid, t.mm)
        };
        if entry {
            let nr = r.orig_rax;
            let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9];
            if !abi::nr::is_memory(nr) || self.session.space(mm).is_none() {
                return Ok(true);
            }
            if self.busy(mm, pid) {
                // One memory call per address space at a time, so that the engine runs them
                // in the kernel's order: this one waits at its entry stop.
                self.waiting.push((pid, nr, args));
                return Ok(false);
            }
            self.enter(pid, tgid, mm, nr, args)?;
            return Ok(true);
        }
        let Some((nr, args)) = self.tasks.get_mut(&pid).and_then(|t| t.call.take()) else {
            return Ok(true);
        };
        self.exit(pid, tgid, mm, nr, args, r.rax)?;
        // Let the next task that waits to enter a memory call of this address space go on.
        if let Some(i) = self
            .waiting
            .iter()
            .position(|w| self.tasks.get(&w.0).is_some_and(|t| t.mm == mm))
        {
            let (w, nr, args) = self.waiting.remove(i);
            let wtgid = self.tasks.get(&w).map_or(w as u32, |t| t.tgid);
            self.enter(w, wtgid, mm, nr, args)?;
            resume(w, 0);
        }
        Ok(true)
    }

    /// The entry stop of memory call `nr` by `pid`, which no other call of `mm` is inside:
    /// reconcile the faults, note the descriptor of a file mmap, remember the call.
    fn enter(&mut self, pid: pid_t, tgid: u32, mm: usize, nr: u64, args: [u64; 6]) -> Result<(), String> {
        self.reconcile(tgid, mm)?;
        if nr == abi::nr::MMAP && args[3] & MAP_ANONYMOUS == 0 {
            let fd = args[4] as u32;
            let file = file_id(tgid, fd);
            self.apply(Event::Fd { mm, fd, file })?;
        }
        if let Some(t) = self.tasks.get_mut(&pid) {
            t.call = Some((nr, args));
        }
        Ok(())
    }

    /// The exit stop of memory call `nr`: run it on the engine and compare.
    fn exit(&mut self, pid: pid_t, tgid: u32, mm: usize, nr: u64, args: [u64; 6], kernel: u64) -> Result<(), String> {
        let name = abi::nr::name(nr).unwrap_or("?");
        match self.apply(Event::Call {
            mm,
            nr,
            args,
            ret: kernel,
        })? {
            Some(Outcome::Return(engine)) => {
                *self.report.calls.entry(name).or_default() += 1;
                if engine == kernel {
                    if nr == abi::nr::MMAP && abi::errno_of(kernel).is_none() {
                        self.report.mmaps_same += 1;
                    }
                } else {
                    let context = (self.report.divergence_count == 0).then(|| {
                        let addr = if abi::errno_of(kernel).is_none() && nr != abi::nr::BRK {
                            kernel
                        } else {
                            args[0]
                        };
                        let engine_maps = self.session.space(mm).map(|s| s.mm.maps()).unwrap_or_default();
                        let kernel_maps = read_proc(tgid, "maps").map(|m| maps_of(&m)).unwrap_or_default();
                        format!(
                            "  kernel maps around {addr:#x}:\n{}  engine maps around {addr:#x}:\n{}",
                            around(&kernel_maps, addr),
                            around(&engine_maps, addr)
                        )
                    });
                    self.diverge(Divergence {
                        pid: tgid,
                        what: call_text(nr, &args),
                        kernel: ret_text(kernel),
                        engine: ret_text(engine),
                        context,
                    });
                }
            }
            _ => *self.report.not_modelled.entry(name).or_default() += 1,
        }
        self.since_check += 1;
        if self.opts.check_every > 0 && self.since_check >= self.opts.check_every && !self.busy(mm, pid) {
            self.since_check = 0;
            self.check(tgid, mm)?;
        }
        Ok(())
    }

    /// Makes the engine take the faults the program took since its last memory call.
    fn reconcile(&mut self, tgid: u32, mm: usize) -> Result<(), String> {
        let Ok(smaps) = read_proc(tgid, "smaps") else {
            return Ok(());
        };
        self.reconcile_with(tgid, mm, &smaps)
    }

    /// [`Tracer::reconcile`] from an smaps snapshot already read.
    fn reconcile_with(&mut self, tgid: u32, mm: usize, smaps: &str) -> Result<(), String> {
        let kernel = smaps_vmas(smaps)?;
        let mut faults = Vec::new();
        {
            let Some(space) = self.session.space(mm) else {
                return Ok(());
            };
            let emm = &space.mm;
            for k in &kernel {
                // The kernel grew a stack downwards: the engine faults at its new start.
                if k.flags.test(VmaBit::GrowsDown)
                    && let Some(v) = emm.vma_at(mmprep::VirtAddr(k.end - 1))
                    && v.test(VmaBit::GrowsDown)
                    && v.start().get() > k.start
                {
                    faults.push((k.start, false, true));
                }
                if !k.anon_pages {
                    continue;
                }
                for v in emm.vmas_in(mmprep::VirtAddr(k.start), mmprep::VirtAddr(k.end)) {
                    if v.anon_vma().is_none() {
                        faults.push((v.start().get().max(k.start), true, false));
                    }
                }
            }
        }
        for (addr, write, stack) in faults {
            // A VMA that cannot be written (written before an mprotect this tracer saw after
            // the fact) keeps no anon_vma: the next maps check shows what that changes.
            let writable = self
                .session
                .space(mm)
                .and_then(|s| s.mm.vma_at(mmprep::VirtAddr(addr)))
                .is_none_or(|v| v.test(VmaBit::Write));
            if write && !writable {
                continue;
            }
            match self.apply(Event::Fault { mm, addr, write }) {
                Ok(_) if stack => self.report.stack_growths += 1,
                Ok(_) => self.report.anon_faults += 1,
                Err(e) => self.diverge(Divergence {
                    pid: tgid,
                    what: format!("a fault at {addr:#x} between calls"),
                    kernel: "taken".into(),
                    engine: e,
                    context: None,
                }),
            }
        }
        Ok(())
    }

    /// Compares the whole maps and VmFlags of `mm` with the kernel's, after reconciling the
    /// faults in the same smaps snapshot (other threads may be running: a stack grows).
    fn check(&mut self, tgid: u32, mm: usize) -> Result<(), String> {
        let Ok(smaps) = read_proc(tgid, "smaps") else {
            return Ok(());
        };
        self.reconcile_with(tgid, mm, &smaps)?;
        let Some(space) = self.session.space(mm) else {
            return Ok(());
        };
        self.report.checks += 1;
        let (kmaps, emaps) = (fs_facts_hidden(&maps_of(&smaps)), fs_facts_hidden(&space.mm.maps()));
        let (kflags, eflags) = (maps_with_flags(&smaps), engine_maps_with_flags(&space.mm));
        let diff = if kmaps != emaps {
            Some(("maps", first_difference(&kmaps, &emaps), kmaps, emaps))
        } else if kflags != eflags {
            Some(("VmFlags", first_difference(&kflags, &eflags), kflags, eflags))
        } else {
            None
        };
        if let Some((what, (k, e), kt, et)) = diff {
            // The same difference as the last check found is not a new divergence.
            let seen = (tgid, k.clone(), e.clone());
            if self.last_maps_difference.as_ref() == Some(&seen) {
                return Ok(());
            }
            self.last_maps_difference = Some(seen);
            let first = self.report.divergence_count == 0;
            self.diverge(Divergence {
                pid: tgid,
                what: format!("{what} check"),
                kernel: k,
                engine: e,
                context: first.then(|| format!("  kernel:\n{}  engine:\n{}", indent(&kt), indent(&et))),
            });
        }
        Ok(())
    }
}

/// Maps text without what only the file system knows: the inode of each shared anonymous
/// mapping (`00:01 N /dev/zero (deleted)`) is shown as `*` (the kernel numbers the shmem file
/// it makes with `get_next_ino()`, a global counter no engine can know), and a ` (deleted)`
/// suffix is dropped (the kernel prints the path as it is now: a file unlinked after it was
/// mapped — Java's `hsperfdata` file — gains the suffix without any memory call).
fn fs_facts_hidden(maps: &str) -> String {
    let mut out = String::with_capacity(maps.len());
    for line in maps.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let line = line.strip_suffix(" (deleted)").unwrap_or(line);
        if w.len() >= 6 && w[3] == "00:01" && line.ends_with(" /dev/zero") {
            out.push_str(&format!("{} {} {} {} * {}", w[0], w[1], w[2], w[3], w[5..].join(" ")));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// The flags of the `clone` or `clone3` call `pid` is stopped in.
fn clone_flags(pid: pid_t) -> u64 {
    let Some(r) = regs(pid) else {
        return 0;
    };
    match r.orig_rax {
        SYS_CLONE => r.rdi,
        SYS_CLONE3 => {
            // struct clone_args starts with the flags.
            use std::io::{Read, Seek, SeekFrom};
            let mut buf = [0u8; 8];
            std::fs::File::open(format!("/proc/{pid}/mem"))
                .and_then(|mut f| {
                    f.seek(SeekFrom::Start(r.rdi))?;
                    f.read_exact(&mut buf)
                })
                .map(|()| u64::from_ne_bytes(buf))
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// The report as text for a person.
pub fn render(report: &TraceReport) -> String {
    let mut out = String::new();
    let programs: Vec<&str> = report.programs.iter().map(String::as_str).collect();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.push_str(&format!(
        "programs: {} ({}, {})\n",
        programs.join(", "),
        plural(report.processes, "process", "processes"),
        plural(report.threads, "more thread", "more threads")
    ));
    let calls: Vec<String> = report.calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out.push_str(&format!(
        "memory calls: {} ({})\n",
        report.total_calls(),
        if calls.is_empty() {
            "none".into()
        } else {
            calls.join(", ")
        }
    ));
    if !report.not_modelled.is_empty() {
        let nm: Vec<String> = report.not_modelled.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("not modelled (kernel result kept): {}\n", nm.join(", ")));
    }
    out.push_str(&format!(
        "mmap addresses identical: {}\nfaults reconciled between calls: {} first writes (anon_vma), {} stack growths\nmaps checks: {}\n",
        report.mmaps_same, report.anon_faults, report.stack_growths, report.checks
    ));
    out.push_str(&format!(
        "exec layouts identical to the engine's: {} of {}\n",
        report.exec_same, report.exec_checks
    ));
    for (pid, exe, k, e) in &report.exec_differences {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        out.push_str(&format!(
            "  exec of {exe} (pid {pid}): kernel {}, engine {}\n",
            side(k),
            side(e)
        ));
    }
    out.push_str(&format!("divergences: {}\n", report.divergence_count));
    for (i, d) in report.divergences.iter().enumerate() {
        out.push_str(&format!(
            "  {}. pid {}: {}: kernel {}, engine {}\n",
            i + 1,
            d.pid,
            d.what,
            d.kernel,
            d.engine
        ));
        if let Some(c) = &d.context {
            out.push_str(c);
        }
    }
    if let Some(end) = report.end {
        out.push_str(&match end {
            ProgramEnd::Exited(s) => format!("program exited with status {s}\n"),
            ProgramEnd::Signaled(s) => format!("program killed by {}\n", sys::signal_name(s)),
        });
    }
    out.push_str(&format!("time: {:.3} s\n", report.elapsed.as_secs_f64()));
    out
}

/// The report as one JSON object.
pub fn render_json(report: &TraceReport) -> String {
    fn s(v: &str) -> String {
        let mut o = String::from("\"");
        for c in v.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }
    let map = |m: &BTreeMap<&'static str, u64>| {
        let v: Vec<String> = m.iter().map(|(k, n)| format!("{}:{n}", s(k))).collect();
        format!("{{{}}}", v.join(","))
    };
    let programs: Vec<String> = report.programs.iter().map(|p| s(p)).collect();
    let divs: Vec<String> = report
        .divergences
        .iter()
        .map(|d| {
            format!(
                "{{\"pid\":{},\"what\":{},\"kernel\":{},\"engine\":{},\"context\":{}}}",
                d.pid,
                s(&d.what),
                s(&d.kernel),
                s(&d.engine),
                d.context.as_deref().map_or("null".into(), s)
            )
        })
        .collect();
    let opt = |v: &Option<String>| v.as_deref().map_or("null".into(), s);
    let execs: Vec<String> = report
        .exec_differences
        .iter()
        .map(|(pid, exe, k, e)| {
            format!(
                "{{\"pid\":{pid},\"program\":{},\"kernel\":{},\"engine\":{}}}",
                s(exe),
                opt(k),
                opt(e)
            )
        })
        .collect();
    let end = match report.end {
        Some(ProgramEnd::Exited(c)) => format!("{{\"exited\":{c}}}"),
        Some(ProgramEnd::Signaled(c)) => format!("{{\"signaled\":{c}}}"),
        None => "null".into(),
    };
    format!(
        "{{\"programs\":[{}],\"processes\":{},\"threads\":{},\"calls\":{},\"total_calls\":{},\"not_modelled\":{},\"mmaps_same\":{},\"anon_faults\":{},\"stack_growths\":{},\"checks\":{},\"exec_checks\":{},\"exec_same\":{},\"exec_differences\":[{}],\"divergence_count\":{},\"divergences\":[{}],\"end\":{},\"seconds\":{:.6}}}",
        programs.join(","),
        report.processes,
        report.threads,
        map(&report.calls),
        report.total_calls(),
        map(&report.not_modelled),
        report.mmaps_same,
        report.anon_faults,
        report.stack_growths,
        report.checks,
        report.exec_checks,
        report.exec_same,
        execs.join(","),
        report.divergence_count,
        divs.join(","),
        end,
        report.elapsed.as_secs_f64()
    )
}

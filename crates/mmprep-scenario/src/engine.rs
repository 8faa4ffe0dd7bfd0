//! Runs a [`Script`] on the engine and returns its [`Transcript`].
//!
//! Each step becomes one call on an [`mmprep::Mm`] built from the host [`Profile`], and each
//! result one [`Outcome`], printed by the same [`format_step`] the kernel runner uses. Files are
//! made with the engine's shmem (memfd), the ext4-like regular file and `/dev/zero` of
//! `mmprep-drivers`.
//!
//! An operation the engine does not have ends the run with [`RunEnd::Unsupported`] naming it
//! (exit status 5), never with a made-up result (every operation of the format runs now).
//! `file NAME driver DRIVER` opens one of `mmprep-drivers`' example
//! drivers ([`registry`]); an unknown driver or parameter ends the run as a parse error.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use mmprep::events::Event;
use mmprep::file::{File, FileMode};
use mmprep::mm::{Access as MmAccess, Mm, Signal as MmSignal};
use mmprep::procfs;
use mmprep::profile::TmpfileFs;
use mmprep::{MapFlags, Profile, Prot, VirtAddr};
use mmprep_drivers::registry::{self, DriverEnv, Params};
use mmprep_drivers::{regular, zero};

use crate::script::{Access, FileKind, MmapAddr, Op, ParseError, Script, page_chunks};
use crate::transcript::{Fault, MapsEntry, Outcome, RunEnd, Signal, Transcript, format_step, offset_hex, push_run};

/// An open scenario file on the engine side.
struct OpenFile {
    name: String,
    file: Arc<File>,
    open: bool,
}

/// Runs `script` on a fresh engine address space built from `profile`.
pub fn run(script: &Script, profile: &Profile) -> Transcript {
    let mut runner = EngineRunner::new(script, profile);
    let mut entries = Vec::with_capacity(script.steps.len());
    for step in &script.steps {
        match runner.step(script, &step.op) {
            Ok(Some(outcome)) => entries.push(format_step(step.line, step.verb(), &outcome, runner.window)),
            Ok(None) => {}
            Err(e) => {
                return Transcript {
                    entries,
                    end: e.end(step.line),
                };
            }
        }
    }
    let end = match &script.error {
        Some(e) => RunEnd::ParseError(e.clone()),
        None => RunEnd::Finished,
    };
    Transcript { entries, end }
}

/// Why a step did not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The engine does not have this yet (exit status 5).
    Unsupported(String),
    /// The line is well-formed but names something the engine does not know (an unknown driver,
    /// a parameter it does not take): a parse error (exit status 3).
    Invalid(String),
}

impl StepError {
    /// How the run ends when line `line` fails this way.
    pub fn end(self, line: usize) -> RunEnd {
        match self {
            StepError::Unsupported(reason) => RunEnd::Unsupported { line, reason },
            StepError::Invalid(message) => RunEnd::ParseError(ParseError {
                line,
                column: 0,
                message,
            }),
        }
    }
}

/// A scenario being run on the engine, one step at a time.
pub struct EngineRunner {
    mm: Mm,
    files: Vec<OpenFile>,
    window: (u64, u64),
    /// Hook calls logged but not yet printed by an `events` line (kept across `fork`).
    pending_events: Vec<Event>,
    /// The address spaces of the processes that forked. On the host a parent waits for its
    /// child until the run ends, so its VMAs stay mapped; dropping its `Mm` at the `fork` line
    /// would run its drivers' `close` hooks (`Mm::exit`) while the kernel's parent still maps.
    parents: Vec<Mm>,
}

fn signal(s: MmSignal) -> Signal {
    match s {
        MmSignal::Segv => Signal::Segv,
        MmSignal::Bus => Signal::Bus,
    }
}

fn addr(offset: u64) -> VirtAddr {
    VirtAddr(Script::absolute(offset))
}

fn errno_outcome<T>(r: mmprep::Result<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => ok(v),
        Err(e) => Outcome::Failed(e.errno),
    }
}

impl EngineRunner {
    /// A fresh address space for `script`.
    pub fn new(script: &Script, profile: &Profile) -> EngineRunner {
        let mut mm = Mm::new(profile.clone());
        // Log driver calls only when the script will print them.
        mm.set_event_log(script.steps.iter().any(|s| s.op == Op::Events));
        EngineRunner {
            mm,
            files: Vec::new(),
            window: script.window_range(),
            pending_events: Vec::new(),
            parents: Vec::new(),
        }
    }

    /// The address space.
    pub fn mm(&self) -> &Mm {
        &self.mm
    }

    /// The absolute window `[start, end)`.
    pub fn window(&self) -> (u64, u64) {
        self.window
    }

    /// Runs one step: `Ok(None)` for lines that print nothing, `Err(reason)` for unsupported.
    pub fn step(&mut self, script: &Script, op: &Op) -> Result<Option<Outcome>, StepError> {
        let outcome = self.step_inner(script, op);
        // Every run in a debug build (tests, fuzzing) re-checks what the engine caches.
        #[cfg(debug_assertions)]
        self.mm.check_invariants();
        outcome
    }

    fn step_inner(&mut self, script: &Script, op: &Op) -> Result<Option<Outcome>, StepError> {
        let outcome = match *op {
            Op::File { id } => {
                let decl = &script.files[id];
                let file = match &decl.kind {
                    FileKind::Memfd { size } => self.mm.shmem().memfd_create(&decl.name, *size),
                    FileKind::Tmpfile { size, read_only } => {
                        let mode = if *read_only {
                            FileMode::READ_ONLY
                        } else {
                            FileMode::READ_WRITE
                        };
                        match self.mm.profile().tmpfile_fs {
                            TmpfileFs::Ext4 => {
                                let ino = 100_000 + id as u64;
                                regular::open_ext4(ino, *size, mode, format!("/tmp/mmprep/{}", decl.name))
                            }
                            TmpfileFs::Tmpfs => self.mm.shmem().memfd_create(&decl.name, *size),
                        }
                    }
                    FileKind::Zero => zero::open(FileMode::READ_WRITE),
                    FileKind::Driver { driver, params } => {
                        let Some(info) = registry::find(driver) else {
                            return Err(StepError::Invalid(format!(
                                "unknown driver `{driver}` (`mmprep drivers` lists them)"
                            )));
                        };
                        let params = Params(params.clone());
                        info.check_keys(&params).map_err(StepError::Invalid)?;
                        let env = DriverEnv {
                            machine: self.mm.machine(),
                            shmem: self.mm.shmem(),
                        };
                        (info.open)(&params, &env).map_err(|e| StepError::Invalid(format!("driver `{driver}`: {e}")))?
                    }
                };
                debug_assert_eq!(self.files.len(), id, "file ids are in declaration order");
                self.files.push(OpenFile {
                    name: decl.name.clone(),
                    file,
                    open: true,
                });
                return Ok(None);
            }
            Op::Close { id } => {
                self.files[id].open = false;
                return Ok(None);
            }
            Op::Mmap {
                addr: a,
                len,
                prot,
                flags,
                file,
            } => {
                let at = match a {
                    MmapAddr::Any => VirtAddr(0),
                    MmapAddr::At(off) => addr(off),
                };
                let (f, offset) = match file {
                    Some(arg) => {
                        let of = &self.files[arg.file];
                        ((arg.open && of.open).then(|| of.file.clone()), arg.offset)
                    }
                    None => (None, 0),
                };
                let r = self.mm.mmap(at, len, Prot(prot), MapFlags(flags), f.as_ref(), offset);
                errno_outcome(r, |a| Outcome::Addr(a.get()))
            }
            Op::Munmap { addr: a, len } => errno_outcome(self.mm.munmap(addr(a), len), |_| Outcome::Done),
            Op::Mprotect { addr: a, len, prot } => {
                errno_outcome(self.mm.mprotect(addr(a), len, Prot(prot)), |_| Outcome::Done)
            }
            Op::Touch { addr: a, len, access } => Outcome::Accessed(self.touch(addr(a), len, access)),
            Op::Fork => match self.mm.fork() {
                Ok(child) => {
                    let parent_events = self.mm.take_events();
                    self.pending_events.extend(parent_events);
                    let parent = core::mem::replace(&mut self.mm, child);
                    self.parents.push(parent);
                    Outcome::Forked
                }
                Err(e) => Outcome::Failed(e.errno),
            },
            Op::Maps => Outcome::Maps(self.maps().into_iter().map(|(e, _)| e).collect()),
            Op::Smaps => Outcome::Smaps(self.maps()),
            Op::Madvise { addr: a, len, advice } => {
                errno_outcome(self.mm.madvise(addr(a), len, advice), |_| Outcome::Done)
            }
            Op::Mlock { addr: a, len } => errno_outcome(self.mm.mlock(addr(a), len), |_| Outcome::Done),
            Op::Mlock2 { addr: a, len, flags } => errno_outcome(self.mm.mlock2(addr(a), len, flags), |_| Outcome::Done),
            Op::Munlock { addr: a, len } => errno_outcome(self.mm.munlock(addr(a), len), |_| Outcome::Done),
            Op::Mremap {
                addr: a,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                let to = new_addr.map_or(VirtAddr(0), addr);
                let r = self.mm.mremap(addr(a), old_len, new_len, flags, to);
                errno_outcome(r, |a| Outcome::Addr(a.get()))
            }
            Op::Mseal { addr: a, len } => errno_outcome(self.mm.mseal(addr(a), len, 0), |_| Outcome::Done),
            Op::Write { addr: a, len, byte } => Outcome::Accessed(self.write(addr(a), len, byte)),
            Op::Read { addr: a, len } => self.read(addr(a), len),
            Op::Events => {
                let logged = self.mm.take_events();
                self.pending_events.extend(logged);
                let lines = self
                    .pending_events
                    .drain(..)
                    .map(|e| e.render(&|a| offset_hex(a.get())))
                    .collect();
                Outcome::Events(lines)
            }
        };
        Ok(Some(outcome))
    }

    /// `touch`: one byte per page, lowest first; `w` reads then writes it back.
    fn touch(&mut self, start: VirtAddr, len: u64, access: Access) -> Option<Fault> {
        for (first, _) in page_chunks(start.get(), len) {
            let a = VirtAddr(first);
            let mut result = self.mm.access(a, MmAccess::Read);
            if result.is_ok() && access == Access::Write {
                result = self.mm.access(a, MmAccess::Write);
            }
            if let Err(sig) = result {
                return Some(Fault {
                    signal: signal(sig),
                    addr: first,
                });
            }
        }
        None
    }

    /// `write`: `byte` into every byte of the range, stopping at the first page that faults.
    fn write(&mut self, start: VirtAddr, len: u64, byte: u8) -> Option<Fault> {
        for (first, n) in page_chunks(start.get(), len) {
            if let Err(f) = self.mm.fill(VirtAddr(first), n, byte) {
                return Some(Fault {
                    signal: signal(f.signal),
                    addr: f.addr.get(),
                });
            }
        }
        None
    }

    /// `read`: every byte of the range, run-length encoded, stopping at the first page that
    /// faults.
    fn read(&mut self, start: VirtAddr, len: u64) -> Outcome {
        let mut runs = Vec::new();
        let mut buf = [0u8; mmprep::PAGE_SIZE as usize];
        for (first, n) in page_chunks(start.get(), len) {
            let page = &mut buf[..n as usize];
            if let Err(f) = self.mm.read(VirtAddr(first), page) {
                let fault = Some(Fault {
                    signal: signal(f.signal),
                    addr: f.addr.get(),
                });
                return Outcome::Read { len, runs, fault };
            }
            for &b in page.iter() {
                push_run(&mut runs, b, 1);
            }
        }
        Outcome::Read { len, runs, fault: None }
    }

    /// The VMAs intersecting the window, with the NAME column resolved.
    fn maps(&self) -> Vec<(MapsEntry, Vec<&'static str>)> {
        let (lo, hi) = self.window;
        let soft_dirty = self.mm.profile().soft_dirty;
        self.mm
            .vmas_in(VirtAddr(lo), VirtAddr(hi))
            .map(|v| {
                let row = procfs::maps_row(v);
                let name = match v.file().and_then(|f| self.scenario_name(f)) {
                    Some(n) => n,
                    None => row.name,
                };
                let entry = MapsEntry {
                    start: row.start,
                    end: row.end,
                    perms: row.perms,
                    offset: row.offset,
                    name,
                };
                let codes = procfs::vmflags(v, soft_dirty);
                (entry, codes)
            })
            .collect()
    }

    /// The scenario NAME of a mapped file: the first declared file with the same device and
    /// inode number, as the contract (and the kernel runner) defines it.
    fn scenario_name(&self, f: &Arc<File>) -> Option<String> {
        let id = |f: &File| (f.inode().dev(), f.inode().ino());
        self.files.iter().find(|o| id(&o.file) == id(f)).map(|o| o.name.clone())
    }
}

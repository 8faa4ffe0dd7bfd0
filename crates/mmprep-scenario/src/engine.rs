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
//! `file NAME c PATH.c` opens a C driver through the [`CDriverHost`] in [`RunOptions`] (the
//! `mmprep` command gives it `mmprep-c`'s); without one, the line is unsupported.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use mmprep::events::Event;
use mmprep::file::{File, FileMode};
use mmprep::mm::{Access as MmAccess, Mm, Signal as MmSignal};
use mmprep::procfs;
use mmprep::profile::TmpfileFs;
use mmprep::{MapFlags, Profile, Prot, VirtAddr};
use mmprep_drivers::registry::{self, CDriverHost, CDriverRequest, DriverEnv, Params};
use mmprep_drivers::{regular, zero};
use std::path::PathBuf;

use crate::parse::LineParser;
use crate::script::{Access, FileDecl, FileKind, MmapAddr, Op, ParseError, Script, Step, WINDOW_BASE, page_chunks};
use crate::transcript::{
    EntryVerb, Fault, LineLabel, MapsEntry, Outcome, RunEnd, Signal, Simple, Transcript, format_step, offset_hex,
    push_run, write_simple_at, write_step,
};

/// An open scenario file on the engine side.
struct OpenFile {
    name: String,
    file: Arc<File>,
    open: bool,
}

/// What a run needs beyond the script, for `c` file lines.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// The scenario's folder: a `c` line's PATH is relative to it (`None`: the current folder).
    pub dir: Option<PathBuf>,
    /// Compiles and loads C drivers (`None`: `c` lines are unsupported).
    pub c_drivers: Option<Arc<dyn CDriverHost>>,
}

/// Runs `script` on a fresh engine address space built from `profile`.
pub fn run(script: &Script, profile: &Profile) -> Transcript {
    run_with(script, profile, &RunOptions::default())
}

/// [`run`], with a folder and a C driver host for `c` file lines.
pub fn run_with(script: &Script, profile: &Profile, options: &RunOptions) -> Transcript {
    let mut runner = EngineRunner::new(script, profile);
    runner.options = options.clone();
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

/// Runs `script` like [`run`], calling `each` after every step that ran, with the step, the
/// runner (its address space, [`EngineRunner::last_error`], [`EngineRunner::last_events`]) and
/// the step's outcome (`None` for lines that print nothing). With `record_events`, the runner
/// keeps each step's hook calls ([`EngineRunner::record_events`]). `each` returns the text to add to
/// the step's entry (`--why`'s line), in [`ControlFlow::Continue`] to go on or in
/// [`ControlFlow::Break`] to end the run after this step, as if the script ended there.
pub fn run_observed(
    script: &Script,
    profile: &Profile,
    options: &RunOptions,
    record_events: bool,
    mut each: impl FnMut(&Step, &EngineRunner, Option<&Outcome>) -> ControlFlow<Option<String>, Option<String>>,
) -> Transcript {
    let mut runner = EngineRunner::new(script, profile);
    runner.options = options.clone();
    if record_events {
        runner.record_events();
    }
    let mut entries = Vec::new();
    for step in &script.steps {
        let outcome = match runner.step(script, &step.op) {
            Ok(outcome) => outcome,
            Err(e) => {
                return Transcript {
                    entries,
                    end: e.end(step.line),
                };
            }
        };
        let flow = each(step, &runner, outcome.as_ref());
        if let Some(outcome) = &outcome {
            let mut entry = format_step(step.line, step.verb(), outcome, runner.window);
            let (ControlFlow::Continue(extra) | ControlFlow::Break(extra)) = &flow;
            if let Some(extra) = extra {
                entry.push_str(extra);
            }
            entries.push(entry);
        }
        if flow.is_break() {
            return Transcript {
                entries,
                end: RunEnd::Finished,
            };
        }
    }
    let end = match &script.error {
        Some(e) => RunEnd::ParseError(e.clone()),
        None => RunEnd::Finished,
    };
    Transcript { entries, end }
}

/// `--why`: the line that follows a failed call's entry, `\n  why: ERRNO: reason (site)`, from the
/// engine's [`mmprep::Error`]; `None` when the step did not fail with an error number.
pub fn why_line(outcome: Option<&Outcome>, error: Option<&mmprep::Error>) -> Option<String> {
    let (Some(Outcome::Failed(_)), Some(e)) = (outcome, error) else {
        return None;
    };
    let site = match e.site() {
        Some(site) => String::from(site),
        None => format!("a driver hook: {}:{}", e.at.file(), e.at.line()),
    };
    let driver = match e.driver {
        Some(d) => format!(" [driver `{d}` broke an engine rule]"),
        None => String::new(),
    };
    Some(format!("\n  why: {}: {}{driver} ({site})", e.errno, e.reason))
}

/// [`run`] with `--why`: each failed call's entry is followed by [`why_line`].
pub fn run_why(script: &Script, profile: &Profile, options: &RunOptions) -> Transcript {
    run_observed(script, profile, options, false, |_, runner, outcome| {
        ControlFlow::Continue(why_line(outcome, runner.last_error()))
    })
}

/// A scenario run on the engine as it is read, one line at a time: each line is parsed, run and
/// its transcript entry appended to the caller's buffer before the next line is looked at, so a
/// run holds neither the script nor the transcript and its memory follows the address space, not
/// the file. What `mmprep run FILE` prints is the same as [`run_with`] (or [`run_why`]) on the
/// whole parsed script: the lines before a bad line run, then the run ends with its error.
///
/// ```
/// # use mmprep_scenario::engine::{RunOptions, Stream};
/// let profile = mmprep::Profile::reference_host();
/// let mut run = Stream::new(&profile, &RunOptions::default(), false, false);
/// let mut out = Vec::new();
/// for line in "mmap 0 8K rw- private|anon|fixed\nmprotect 4K 4K r--".lines() {
///     if run.line(line, &mut out).is_break() {
///         break;
///     }
/// }
/// assert_eq!(out, b"L1 mmap = 0x0\nL2 mprotect = 0\n");
/// assert_eq!(run.finish(), mmprep_scenario::RunEnd::Finished);
/// ```
pub struct Stream {
    parser: LineParser,
    /// Made at the first line that runs: the window is final by then (only the first line that
    /// is not blank or a comment may set it).
    runner: Option<EngineRunner>,
    profile: Profile,
    options: RunOptions,
    /// Log driver calls (the script may have an `events` line).
    events: bool,
    /// Follow each failed call with its `--why` line.
    why: bool,
    /// The 1-based number of the last line fed.
    line: usize,
    /// The start of its entry, `L<line> `.
    label: LineLabel,
    /// How the run ended, once it has.
    end: Option<RunEnd>,
}

impl Stream {
    /// A run on a fresh address space built from `profile`. `events`: the script may have an
    /// `events` line (a caller that cannot tell says `true`: the hook log only costs time).
    /// `why`: follow each failed call's entry with [`why_line`], as [`run_why`] does.
    pub fn new(profile: &Profile, options: &RunOptions, events: bool, why: bool) -> Stream {
        Stream {
            parser: LineParser::new(),
            runner: None,
            profile: profile.clone(),
            options: options.clone(),
            events,
            why,
            line: 0,
            label: LineLabel::new(0),
            end: None,
        }
    }

    /// Parses and runs the next line of the script (without its `\n`; a `\r` before it
    /// removed), appending its transcript entry and a `\n` to `out` if it prints one.
    /// [`ControlFlow::Break`] when the run has ended at this line (a line that does not parse,
    /// an unsupported one): feed no more lines, [`Stream::finish`] says how it ended.
    pub fn line(&mut self, raw: &str, out: &mut Vec<u8>) -> ControlFlow<()> {
        self.line_bytes(raw.as_bytes(), out)
    }

    /// [`Stream::line`] for a line given as bytes, as a runner that splits a file's bytes into
    /// lines itself has it ([`LineParser::line_bytes`]: the file must be UTF-8; a line that is
    /// not ends the run as a parse error).
    pub fn line_bytes(&mut self, raw: &[u8], out: &mut Vec<u8>) -> ControlFlow<()> {
        if self.end.is_some() {
            return ControlFlow::Break(());
        }
        self.line += 1;
        self.label.next();
        let line = self.line;
        let op = match self.parser.line_bytes(line, raw) {
            Ok(Some(op)) => op,
            Ok(None) => return ControlFlow::Continue(()),
            Err(e) => {
                self.end = Some(RunEnd::ParseError(e));
                return ControlFlow::Break(());
            }
        };
        self.run_op(line, op, out)
    }

    /// Feeds a piece of a file made of whole lines (each ends with `\n`, or `\r\n`; the last one
    /// may have neither), as [`Stream::line_bytes`] on each of its lines, until `out` holds
    /// `room` bytes or more: how many bytes of `text` were fed (whole lines), and
    /// [`ControlFlow::Break`] with the line at which the run ended, if it did. The common lines
    /// are parsed where they stand ([`LineParser::quick_line`]), with no search for their end
    /// first; only the others are cut out.
    pub fn feed<'t>(&mut self, text: &'t [u8], out: &mut Vec<u8>, room: usize) -> (usize, ControlFlow<&'t [u8]>) {
        let mut at = 0;
        while let Some(rest) = text.get(at..)
            && !rest.is_empty()
            && out.len() < room
        {
            if self.end.is_some() {
                return (at, ControlFlow::Break(&[]));
            }
            if let Some((op, used)) = self.parser.quick_line(self.line + 1, rest) {
                self.line += 1;
                self.label.next();
                at += used;
                if self.run_op(self.line, op, out).is_break() {
                    return (at, ControlFlow::Break(&rest[..used]));
                }
                continue;
            }
            let (raw, used) = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    let line = &rest[..n];
                    (line.strip_suffix(b"\r").unwrap_or(line), n + 1)
                }
                // A last line without `\n` keeps a `\r` it ends with, as `str::lines` does.
                None => (rest, rest.len()),
            };
            at += used;
            if self.line_bytes(raw, out).is_break() {
                return (at, ControlFlow::Break(raw));
            }
        }
        (at, ControlFlow::Continue(()))
    }

    /// Runs the op of line number `line` and appends its entry (the second half of
    /// [`Stream::line_bytes`]).
    fn run_op(&mut self, line: usize, op: Op, out: &mut Vec<u8>) -> ControlFlow<()> {
        if self.runner.is_none() {
            self.start_runner();
        }
        let Some(runner) = &mut self.runner else {
            return ControlFlow::Break(());
        };
        if !self.why
            && let Some(verb) = entry_verb(&op)
            && let Some(result) = runner.step_simple(&op)
        {
            write_simple_at(out, &self.label, verb, result, runner.window);
            return ControlFlow::Continue(());
        }
        match runner.step_with(self.parser.files(), &op) {
            Ok(Some(outcome)) => {
                write_step(out, line, op.verb(), &outcome, runner.window);
                if self.why
                    && let Some(why) = why_line(Some(&outcome), runner.last_error())
                {
                    out.extend_from_slice(why.as_bytes());
                }
                out.push(b'\n');
            }
            Ok(None) => {}
            Err(e) => {
                self.end = Some(e.end(line));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Makes the address space, at the first line that runs (kept out of [`Stream::line_bytes`],
    /// which runs for every line, so that its frame stays small).
    #[cold]
    #[inline(never)]
    fn start_runner(&mut self) {
        let window = (WINDOW_BASE, WINDOW_BASE + self.parser.window());
        let mut runner = EngineRunner::with_window(window, &self.profile, self.events);
        runner.options = self.options.clone();
        self.runner = Some(runner);
    }

    /// Has a line other than blank lines and comments been fed? A scenario without one is empty
    /// (`mmprep run` reports it as a bad scenario).
    pub fn seen_content(&self) -> bool {
        self.parser.seen_content()
    }

    /// How the run ended: the error that stopped it, or [`RunEnd::Finished`] when every line fed
    /// ran.
    pub fn finish(self) -> RunEnd {
        self.end.unwrap_or(RunEnd::Finished)
    }
}

/// The [`EntryVerb`] of the ops [`EngineRunner::step_simple`] runs, made at compile time.
fn entry_verb(op: &Op) -> Option<&'static EntryVerb> {
    const fn verb(name: &str) -> EntryVerb {
        match EntryVerb::new(name) {
            Some(v) => v,
            None => panic!("a verb of the format is short"),
        }
    }
    static MMAP: EntryVerb = verb("mmap");
    static MUNMAP: EntryVerb = verb("munmap");
    static MPROTECT: EntryVerb = verb("mprotect");
    static MADVISE: EntryVerb = verb("madvise");
    match op {
        Op::Mmap { .. } => Some(&MMAP),
        Op::Munmap { .. } => Some(&MUNMAP),
        Op::Mprotect { .. } => Some(&MPROTECT),
        Op::Madvise { .. } => Some(&MADVISE),
        _ => None,
    }
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
    /// The error of the last step's call, if it failed with one (`--why`).
    last_error: Option<mmprep::Error>,
    /// Keep a copy of the hook calls of each step ([`EngineRunner::record_events`]).
    record_events: bool,
    /// The hook calls of the last step, when recording.
    last_events: Vec<Event>,
    /// The folder and C driver host for `c` lines.
    options: RunOptions,
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

/// The [`Simple`] result of a call, keeping its error for `--why` as [`errno_outcome`] does.
fn simple(last: &mut Option<mmprep::Error>, r: mmprep::Result<Simple>) -> Simple {
    match r {
        Ok(v) => {
            *last = None;
            v
        }
        Err(e) => {
            *last = Some(e);
            Simple::Failed(e.errno)
        }
    }
}

fn errno_outcome<T>(last: &mut Option<mmprep::Error>, r: mmprep::Result<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => ok(v),
        Err(e) => {
            *last = Some(e);
            Outcome::Failed(e.errno)
        }
    }
}

impl EngineRunner {
    /// A fresh address space for `script`.
    pub fn new(script: &Script, profile: &Profile) -> EngineRunner {
        // Log driver calls only when the script will print them.
        let events = script.steps.iter().any(|s| s.op == Op::Events);
        EngineRunner::with_window(script.window_range(), profile, events)
    }

    /// A fresh address space for a script whose window is `window` (absolute `[start, end)`);
    /// `events`: the script may have an `events` line, so driver calls are logged.
    pub fn with_window(window: (u64, u64), profile: &Profile, events: bool) -> EngineRunner {
        let mut mm = Mm::new(profile.clone());
        mm.set_event_log(events);
        EngineRunner {
            mm,
            files: Vec::new(),
            window,
            pending_events: Vec::new(),
            parents: Vec::new(),
            last_error: None,
            record_events: false,
            last_events: Vec::new(),
            options: RunOptions::default(),
        }
    }

    /// The error the last step's call failed with (`None` if it did not fail, or failed
    /// without an error number: a fault).
    pub fn last_error(&self) -> Option<&mmprep::Error> {
        self.last_error.as_ref()
    }

    /// Turns on the hook log and keeps a copy of each step's hook calls
    /// ([`EngineRunner::last_events`]); `events` lines print the same as without it.
    pub fn record_events(&mut self) {
        self.record_events = true;
        self.mm.set_event_log(true);
    }

    /// The hook calls the last step made, when [`EngineRunner::record_events`] is on.
    pub fn last_events(&self) -> &[Event] {
        &self.last_events
    }

    /// The VMAs in the window as a `maps` line shows them (the NAME column resolved to the
    /// scenario's file names).
    pub fn window_maps(&self) -> Vec<MapsEntry> {
        self.maps().into_iter().map(|(e, _)| e).collect()
    }

    /// The address space.
    pub fn mm(&self) -> &Mm {
        &self.mm
    }

    /// The absolute window `[start, end)`.
    pub fn window(&self) -> (u64, u64) {
        self.window
    }

    /// The hook calls logged since the last look: the current process's, then what drivers
    /// logged into a forked parent's log. A driver keeps the sink of the address space that
    /// opened its file (a C driver's `pr_info`), which after a `fork` line is a parent's; the
    /// parents run no more steps, so anything there came from a driver called by the current
    /// process in this step (after the hook lines of the step, not between them).
    fn take_logged(&mut self) -> Vec<Event> {
        let mut logged = self.mm.take_events();
        for parent in &mut self.parents {
            logged.extend(parent.take_events());
        }
        logged
    }

    /// Runs one step: `Ok(None)` for lines that print nothing, `Err(reason)` for unsupported.
    pub fn step(&mut self, script: &Script, op: &Op) -> Result<Option<Outcome>, StepError> {
        self.step_with(&script.files, op)
    }

    /// [`EngineRunner::step`] with the script's file declarations alone (what `file` lines need),
    /// for a runner that has no whole [`Script`] ([`Stream`]).
    pub fn step_with(&mut self, files: &[FileDecl], op: &Op) -> Result<Option<Outcome>, StepError> {
        self.last_error = None;
        self.last_events.clear();
        let outcome = self.step_inner(files, op);
        // After a fork, drivers may log into a parent's log: collect it step by step, so that
        // what a driver printed stays with the step that called it.
        if self.record_events || !self.parents.is_empty() {
            let logged = self.take_logged();
            if self.record_events {
                self.last_events.extend(logged.iter().cloned());
            }
            self.pending_events.extend(logged);
        }
        // Every run in a debug build (tests, fuzzing) re-checks what the engine caches.
        #[cfg(debug_assertions)]
        self.mm.check_invariants();
        outcome
    }

    /// [`EngineRunner::step_with`] for the calls long scenarios are made of (`mmap` of anonymous
    /// memory, `munmap`, `mprotect`, `madvise`), when nothing but the result is asked for (no
    /// recorded events, no forked parent whose log must be collected): the call alone, and its
    /// result as a [`Simple`] that has nothing to drop. `None` for every other step, which then
    /// goes through [`EngineRunner::step_with`].
    pub fn step_simple(&mut self, op: &Op) -> Option<Simple> {
        if self.record_events || !self.parents.is_empty() {
            return None;
        }
        let result = match *op {
            Op::Mmap {
                addr: a,
                len,
                prot,
                flags,
                file: None,
            } => {
                let at = match a {
                    MmapAddr::Any => VirtAddr(0),
                    MmapAddr::At(off) => addr(off),
                };
                let r = self.mm.mmap(at, len, Prot(prot), MapFlags(flags), None, 0);
                simple(&mut self.last_error, r.map(|a| Simple::Addr(a.get())))
            }
            Op::Munmap { addr: a, len } => {
                simple(&mut self.last_error, self.mm.munmap(addr(a), len).map(|_| Simple::Done))
            }
            Op::Mprotect { addr: a, len, prot } => simple(
                &mut self.last_error,
                self.mm.mprotect(addr(a), len, Prot(prot)).map(|_| Simple::Done),
            ),
            Op::Madvise { addr: a, len, advice } => simple(
                &mut self.last_error,
                self.mm.madvise(addr(a), len, advice).map(|_| Simple::Done),
            ),
            _ => return None,
        };
        // As `step_with` does: every run in a debug build re-checks what the engine caches.
        #[cfg(debug_assertions)]
        self.mm.check_invariants();
        Some(result)
    }

    fn step_inner(&mut self, files: &[FileDecl], op: &Op) -> Result<Option<Outcome>, StepError> {
        let outcome = match *op {
            Op::File { id } => {
                let decl = &files[id];
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
                            events: self.mm.event_sink(),
                        };
                        (info.open)(&params, &env).map_err(|e| StepError::Invalid(format!("driver `{driver}`: {e}")))?
                    }
                    FileKind::C {
                        path,
                        fops,
                        cflags,
                        read_only,
                        params,
                    } => {
                        let Some(host) = self.options.c_drivers.clone() else {
                            return Err(StepError::Unsupported(format!(
                                "file `{}`: this runner cannot load C drivers (run it with `mmprep run`)",
                                decl.name
                            )));
                        };
                        let source = match &self.options.dir {
                            Some(dir) => dir.join(path),
                            None => PathBuf::from(path),
                        };
                        let params = Params(params.clone());
                        let request = CDriverRequest {
                            source: &source,
                            fops: fops.as_deref(),
                            cflags,
                            read_only: *read_only,
                            params: &params,
                        };
                        let env = DriverEnv {
                            machine: self.mm.machine(),
                            shmem: self.mm.shmem(),
                            events: self.mm.event_sink(),
                        };
                        host.open(&request, &env)
                            .map_err(|e| StepError::Invalid(format!("C driver `{path}`: {e}")))?
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
                errno_outcome(&mut self.last_error, r, |a| Outcome::Addr(a.get()))
            }
            Op::Munmap { addr: a, len } => {
                errno_outcome(&mut self.last_error, self.mm.munmap(addr(a), len), |_| Outcome::Done)
            }
            Op::Mprotect { addr: a, len, prot } => {
                errno_outcome(&mut self.last_error, self.mm.mprotect(addr(a), len, Prot(prot)), |_| {
                    Outcome::Done
                })
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
                Err(e) => {
                    self.last_error = Some(e);
                    Outcome::Failed(e.errno)
                }
            },
            Op::Maps => Outcome::Maps(self.maps().into_iter().map(|(e, _)| e).collect()),
            Op::Smaps => Outcome::Smaps(self.maps()),
            Op::Madvise { addr: a, len, advice } => {
                errno_outcome(&mut self.last_error, self.mm.madvise(addr(a), len, advice), |_| {
                    Outcome::Done
                })
            }
            Op::Mlock { addr: a, len } => {
                errno_outcome(&mut self.last_error, self.mm.mlock(addr(a), len), |_| Outcome::Done)
            }
            Op::Mlock2 { addr: a, len, flags } => {
                errno_outcome(&mut self.last_error, self.mm.mlock2(addr(a), len, flags), |_| {
                    Outcome::Done
                })
            }
            Op::Munlock { addr: a, len } => {
                errno_outcome(&mut self.last_error, self.mm.munlock(addr(a), len), |_| Outcome::Done)
            }
            Op::Mremap {
                addr: a,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                let to = new_addr.map_or(VirtAddr(0), addr);
                let r = self.mm.mremap(addr(a), old_len, new_len, flags, to);
                errno_outcome(&mut self.last_error, r, |a| Outcome::Addr(a.get()))
            }
            Op::Mseal { addr: a, len } => {
                errno_outcome(&mut self.last_error, self.mm.mseal(addr(a), len, 0), |_| Outcome::Done)
            }
            Op::Write { addr: a, len, byte } => Outcome::Accessed(self.write(addr(a), len, byte)),
            Op::Read { addr: a, len } => self.read(addr(a), len),
            Op::Events => {
                let logged = self.take_logged();
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

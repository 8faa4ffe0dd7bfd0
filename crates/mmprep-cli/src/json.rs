//! `--json`: the machine-readable output of `run`, `kernel`, `diff`, `fuzz`, `bench` and `trace`.
//!
//! One schema for every command, `mmprep/1`, described field by field in `docs/json.md`: a
//! [`Document`] with the schema name, the command and its exit status, then the command's own
//! part (`files` for `run`, `kernel` and `diff`, `fuzz`, `bench` or `trace`). The types here are
//! that schema: the CLI serializes them, and the tests deserialize the output into them and
//! serialize it again to check that nothing is lost.
//!
//! A transcript entry is read back from the transcript text ([`Entry::from_text`]), the one
//! printer of `mmprep_scenario::transcript`, so the JSON says what the text says and nothing else.
//! Addresses and offsets are strings of lower-case hex (`"0x4000"`), relative to the window as in
//! the transcript: they may exceed what a JSON number holds exactly.

use serde::{Deserialize, Serialize};

/// The schema's name and version. A change that removes or renames a field, or changes its
/// meaning, makes it `mmprep/2`; new optional fields keep `mmprep/1`.
pub const SCHEMA: &str = "mmprep/1";

/// The whole output of one command: one JSON object on one line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The subcommand: `run`, `kernel`, `diff`, `fuzz`, `bench` or `trace`.
    pub command: String,
    /// The exit status the command ends with.
    pub status: u8,
    /// `run`, `kernel`, `diff`: one per FILE, in the order given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileResult>>,
    /// `fuzz`: the seeds tried and the first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuzz: Option<Fuzz>,
    /// `bench`: one row per VMA count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench: Option<Vec<BenchRow>>,
    /// `trace`: the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

impl Document {
    /// An empty document of `command` with `status`.
    pub fn new(command: &str, status: u8) -> Document {
        Document {
            schema: SCHEMA.into(),
            command: command.into(),
            status,
            files: None,
            fuzz: None,
            bench: None,
            trace: None,
        }
    }

    /// The document as one line of JSON.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a Document always serializes");
        s.push('\n');
        s
    }
}

/// One scenario file of `run`, `kernel` or `diff`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileResult {
    /// The file as named on the command line (`<stdin>` for `-`).
    pub name: String,
    /// This file's exit status.
    pub status: u8,
    /// How the run ended (`diff`: the kernel's run).
    pub end: End,
    /// The message the text output prints on stderr for this file, if any.
    pub message: Option<String>,
    /// `run`, `kernel`: the transcript. `diff`: the kernel's transcript (the oracle).
    pub entries: Vec<Entry>,
    /// `diff` only: whether the engine's transcript and end are the same as the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same: Option<bool>,
    /// `diff` only: the entries that differ, in transcript order (all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differences: Option<Vec<Difference>>,
    /// `diff` only, when the two runs end differently: the engine's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_end: Option<End>,
}

/// How a run ended (`mmprep_scenario::RunEnd`, plus a file that was never run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// Every line ran.
    Finished,
    /// A line did not parse; the lines before it ran (`column` 0: not known).
    ParseError {
        line: usize,
        column: usize,
        message: String,
    },
    /// The runner does not support a line.
    Unsupported { line: usize, reason: String },
    /// The kernel runner found the window already mapped.
    WindowTaken,
    /// The runner itself failed.
    RunnerFailed { reason: String },
    /// The file was not run: it cannot be read, is not UTF-8 or is empty (see `message`).
    NotRun,
}

impl From<&mmprep_scenario::RunEnd> for End {
    fn from(end: &mmprep_scenario::RunEnd) -> End {
        use mmprep_scenario::RunEnd;
        match end {
            RunEnd::Finished => End::Finished,
            RunEnd::ParseError(e) => End::ParseError {
                line: e.line,
                column: e.column,
                message: e.message.to_string(),
            },
            RunEnd::Unsupported { line, reason } => End::Unsupported {
                line: *line,
                reason: reason.clone(),
            },
            RunEnd::WindowTaken => End::WindowTaken,
            RunEnd::RunnerFailed(reason) => End::RunnerFailed { reason: reason.clone() },
        }
    }
}

/// One transcript entry: one scenario line's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The 1-based scenario line (the `L` number).
    pub line: usize,
    /// The operation (`mmap`, `maps`, ...).
    pub verb: String,
    /// What the call returned.
    pub result: CallResult,
    /// `maps` and `smaps`: the VMAs in the window, lowest first; empty otherwise.
    pub vmas: Vec<Vma>,
    /// `events`: the hook calls, one per line; empty otherwise.
    pub events: Vec<String>,
    /// `run --why`: the reason line of a failed call (`EINVAL: ... (mm/mmap.c:do_mmap)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The entry exactly as the text transcript prints it (its lines joined by `\n`).
    pub text: String,
}

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallResult {
    /// An address in the window (`mmap`, `mremap`), relative to it.
    Addr { addr: String },
    /// An address outside the window.
    Outside,
    /// Success (`0`): every other call, an access without a fault, `fork` in the child.
    Ok,
    /// A failed call: `EINVAL`, `ENOMEM`, ...
    Error { errno: String },
    /// `touch`, `write`: the access faulted.
    Fault { signal: String, addr: String },
    /// `read`: the bytes read as runs, then the fault that stopped it, if any.
    Read { runs: Vec<ByteRun>, fault: Option<FaultAt> },
    /// `maps`, `smaps`, `events`: how many lines follow (the `vmas` or `events`).
    Count { count: usize },
    /// A result this schema version does not know (kept as the transcript's text).
    Other { text: String },
}

/// A run of equal bytes in a `read` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRun {
    pub byte: u8,
    pub count: u64,
}

/// A fault: the signal and the address that faulted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultAt {
    pub signal: String,
    pub addr: String,
}

/// One VMA of a `maps` or `smaps` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vma {
    /// Start, relative to the window.
    pub start: String,
    /// End (exclusive), relative to the window.
    pub end: String,
    /// As in `/proc/PID/maps`: `rw-p`, `r--s`.
    pub perms: String,
    /// The file offset.
    pub offset: String,
    /// The scenario's file name, the kernel's name column, or empty.
    pub name: String,
    /// `smaps`: the `VmFlags` codes; `None` for `maps`.
    pub flags: Option<Vec<String>>,
}

fn hex(text: &str) -> Option<String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let n = u64::from_str_radix(digits, 16).ok()?;
    Some(format!("{n:#x}"))
}

fn fault_at(text: &str) -> Option<FaultAt> {
    let (signal, addr) = text.split_once('@')?;
    signal.starts_with("SIG").then_some(())?;
    Some(FaultAt {
        signal: signal.into(),
        addr: hex(addr)?,
    })
}

fn parse_result(verb: &str, value: &str, follows: usize) -> Option<CallResult> {
    if let Some(errno) = value.strip_prefix('-').filter(|e| !e.is_empty()) {
        return Some(CallResult::Error { errno: errno.into() });
    }
    if verb == "read" {
        let mut runs = Vec::new();
        let mut fault = None;
        for word in value.split(' ').filter(|w| *w != "-") {
            if let Some(f) = fault_at(word) {
                fault = Some(f);
            } else {
                let (b, n) = word.split_once('x')?;
                runs.push(ByteRun {
                    byte: u8::from_str_radix(b, 16).ok()?,
                    count: n.parse().ok()?,
                });
            }
        }
        return Some(CallResult::Read { runs, fault });
    }
    if matches!(verb, "maps" | "smaps" | "events") {
        let count: usize = value.parse().ok()?;
        return (count == follows).then_some(CallResult::Count { count });
    }
    match value {
        "0" => Some(CallResult::Ok),
        "outside" => Some(CallResult::Outside),
        v if v.starts_with("0x") => Some(CallResult::Addr { addr: hex(v)? }),
        v => fault_at(v).map(|f| CallResult::Fault {
            signal: f.signal,
            addr: f.addr,
        }),
    }
}

fn parse_vma(line: &str) -> Option<Vma> {
    let (maps, flags) = match line.split_once(" |") {
        Some((m, f)) => (m, Some(f.split_whitespace().map(String::from).collect())),
        None => (line, None),
    };
    let mut words = maps.splitn(4, ' ');
    let (start, end) = words.next()?.split_once('-')?;
    let perms = words.next()?.to_string();
    let offset = hex(words.next()?)?;
    Some(Vma {
        start: hex(start)?,
        end: hex(end)?,
        perms,
        offset,
        name: words.next().unwrap_or_default().to_string(),
        flags,
    })
}

impl Entry {
    /// Reads one transcript entry (`L4 mmap = 0x0`, with the lines of a `maps`, `smaps` or
    /// `events` result and a `--why` line after it). A result it cannot read becomes
    /// [`CallResult::Other`], so every entry has a JSON form.
    pub fn from_text(text: &str) -> Entry {
        let mut lines = text.split('\n');
        let head = lines.next().unwrap_or_default();
        let (left, value) = head.split_once(" = ").unwrap_or((head, ""));
        let (l, verb) = left.split_once(' ').unwrap_or((left, ""));
        let line = l.strip_prefix('L').and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut why = None;
        let mut rest = Vec::new();
        for l in lines {
            match l.strip_prefix("  why: ") {
                Some(w) => why = Some(w.to_string()),
                None => rest.push(l.strip_prefix("  ").unwrap_or(l)),
            }
        }
        let mut vmas = Vec::new();
        let mut events = Vec::new();
        let mut result = parse_result(verb, value, rest.len());
        match verb {
            "maps" | "smaps" => {
                for l in &rest {
                    match parse_vma(l) {
                        Some(v) => vmas.push(v),
                        None => result = None,
                    }
                }
            }
            "events" => events = rest.iter().map(|l| l.to_string()).collect(),
            _ if !rest.is_empty() => result = None,
            _ => {}
        }
        let result = result.unwrap_or_else(|| {
            vmas.clear();
            events.clear();
            CallResult::Other { text: value.into() }
        });
        Entry {
            line,
            verb: verb.into(),
            result,
            vmas,
            events,
            why,
            text: text.into(),
        }
    }
}

/// The entries of a transcript.
pub fn entries(t: &mmprep_scenario::Transcript) -> Vec<Entry> {
    t.entries.iter().map(|e| Entry::from_text(e)).collect()
}

/// An entry that differs between the kernel and the engine (`None`: that side has no entry
/// there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The scenario line of the entry.
    pub line: Option<usize>,
    pub kernel: Option<Entry>,
    pub engine: Option<Entry>,
}

/// The differences of a comparison, every one of them.
pub fn differences(c: &mmprep_host::diff::Comparison) -> Vec<Difference> {
    c.differences
        .iter()
        .map(|d| Difference {
            line: d.line,
            kernel: d.kernel.as_deref().map(Entry::from_text),
            engine: d.engine.as_deref().map(Entry::from_text),
        })
        .collect()
}

/// `fuzz`: what was tried and what was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fuzz {
    /// The first seed.
    pub start: u64,
    /// How many seeds were asked for.
    pub seeds: u64,
    /// `--thp`.
    pub thp: bool,
    /// How many seeds ran (up to and including the failing one).
    pub tried: u64,
    /// `--print`: the generated scenarios, not run; empty otherwise.
    pub scenarios: Vec<Scenario>,
    /// The first scenario whose transcripts differ, if any.
    pub failure: Option<FuzzFailure>,
}

/// A generated scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub seed: u64,
    pub text: String,
}

/// A differing scenario, as generated and as shrunk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FuzzFailure {
    pub seed: u64,
    pub found: Case,
    pub shrunk: Case,
}

/// One scenario text, its two transcripts' ends and the differing entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub scenario: String,
    pub kernel_end: End,
    pub engine_end: End,
    pub differences: Vec<Difference>,
}

impl From<&mmprep_host::fuzz::Failure> for Case {
    fn from(f: &mmprep_host::fuzz::Failure) -> Case {
        Case {
            scenario: f.text.clone(),
            kernel_end: End::from(&f.kernel.end),
            engine_end: End::from(&f.engine.end),
            differences: differences(&f.comparison),
        }
    }
}

/// `bench`: one VMA count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// VMAs in the layout.
    pub vmas: u64,
    /// Calls in the stream (twice `--pairs`).
    pub calls: u64,
    pub engine_ns_per_call: f64,
    pub kernel_ns_per_call: f64,
    /// Kernel time over engine time.
    pub kernel_over_engine: f64,
}

/// `trace`: the report of `mmprep_host::trace` (its fields are listed in `docs/json.md`);
/// fields a later version adds are kept in `more`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub programs: Vec<String>,
    pub processes: u64,
    pub threads: u64,
    pub calls: std::collections::BTreeMap<String, u64>,
    pub total_calls: u64,
    pub not_modelled: std::collections::BTreeMap<String, u64>,
    pub mmaps_same: u64,
    pub anon_faults: u64,
    pub stack_growths: u64,
    pub checks: u64,
    pub divergence_count: u64,
    pub divergences: Vec<TraceDivergence>,
    pub end: Option<TraceEnd>,
    pub seconds: f64,
    #[serde(flatten)]
    pub more: serde_json::Map<String, serde_json::Value>,
}

/// One place where the engine and the kernel disagreed in a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceDivergence {
    pub pid: u64,
    pub what: String,
    pub kernel: String,
    pub engine: String,
    pub context: Option<String>,
}

/// How the traced program ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceEnd {
    Exited(i64),
    Signaled(i64),
}

impl Trace {
    /// The report, read from `mmprep_host::trace::render_json`.
    pub fn from_report(report: &mmprep_host::trace::TraceReport) -> Result<Trace, serde_json::Error> {
        serde_json::from_str(&mmprep_host::trace::render_json(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back() {
        let e = Entry::from_text("L4 mmap = 0x4000");
        assert_eq!(e.line, 4);
        assert_eq!(e.result, CallResult::Addr { addr: "0x4000".into() });
        let e = Entry::from_text("L9 smaps = 1\n  00100000-00102000 r--s 00001000 data | rd sh");
        assert_eq!(e.result, CallResult::Count { count: 1 });
        assert_eq!(e.vmas[0].name, "data");
        assert_eq!(e.vmas[0].offset, "0x1000");
        assert_eq!(
            e.vmas[0].flags.as_deref(),
            Some(&["rd".to_string(), "sh".to_string()][..])
        );
        let e = Entry::from_text("L10 munmap = -EINVAL\n  why: EINVAL: not aligned (mm/vma.c:do_vmi_munmap)");
        assert_eq!(e.result, CallResult::Error { errno: "EINVAL".into() });
        assert!(e.why.is_some());
        let e = Entry::from_text("L2 read = 00x4096 41x8192 SIGBUS@0x3000");
        let CallResult::Read { runs, fault } = e.result else {
            panic!()
        };
        assert_eq!(runs.len(), 2);
        assert_eq!(fault.map(|f| f.signal), Some("SIGBUS".into()));
        assert_eq!(
            Entry::from_text("L2 touch = SIGSEGV@0xfffffffffffff000").result,
            CallResult::Fault {
                signal: "SIGSEGV".into(),
                addr: "0xfffffffffffff000".into()
            }
        );
        assert_eq!(
            Entry::from_text("L1 read = -").result,
            CallResult::Read {
                runs: vec![],
                fault: None
            }
        );
        assert!(matches!(
            Entry::from_text("L1 mmap = ???").result,
            CallResult::Other { .. }
        ));
    }
}

//! The hand-written scenario suite, `tests/scenarios/*.scn` at the top of the repository.
//!
//! Every `NAME.scn` there has a `NAME.expected` next to it: the transcript the host kernel
//! printed for it (`mmprep kernel NAME.scn > NAME.expected`), never written by hand and never
//! taken from the engine. Two tests read the whole directory and its subdirectories (such as
//! `thp/`; a case is named by its path, `thp/split-after`), except `pending/`, which holds
//! scenarios for operations the engine does not have yet:
//!
//! - [`engine_matches_the_kernel_transcripts`]: each scenario on the engine, with this machine's
//!   profile as `mmprep run` uses it, must print its `.expected` byte for byte;
//! - [`kernel_transcripts_are_current`]: each scenario run again on the host kernel must still
//!   print its `.expected`, so a checked-in transcript cannot go stale unnoticed.
//!
//! Neither skips anything: a scenario without a transcript, a transcript without a scenario, a
//! line that does not parse, a run that ends early, or a panic is a failure like a difference.
//! Both go through every scenario, print a report with a line diff for each failure, and then
//! panic once with the list of failing names.

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use mmprep_scenario::{RunEnd, Script, Transcript};

/// `tests/scenarios` at the top of the workspace.
fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

/// One scenario of the suite: its name (file stem), its text and its checked-in transcript.
struct Case {
    name: String,
    text: String,
    expected: String,
}

/// Reads every `*.scn` of the suite with its `.expected`, sorted by name, and counts the
/// scenarios. Files that break the pairing (a `.scn` without `.expected` or the reverse, or one
/// that cannot be read) come back as failures.
fn load_suite() -> (Vec<Case>, Vec<Failure>, usize) {
    let dir = scenario_dir();
    let mut scenarios = Vec::new();
    let mut transcripts = Vec::new();
    list_dir(&dir, "", &mut scenarios, &mut transcripts);
    scenarios.sort();
    transcripts.sort();
    assert!(!scenarios.is_empty(), "no scenario (*.scn) in {}", dir.display());
    let count = scenarios.len();

    let mut cases = Vec::new();
    let mut failures = Vec::new();
    for name in &transcripts {
        if !scenarios.contains(name) {
            failures.push(Failure::new(
                name,
                format!("{name}.expected has no {name}.scn: remove it or restore the scenario"),
            ));
        }
    }
    for name in scenarios {
        let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}")));
        let text = match read("scn") {
            Ok(text) => text,
            Err(e) => {
                failures.push(Failure::new(&name, format!("cannot read {name}.scn: {e}")));
                continue;
            }
        };
        let expected = match read("expected") {
            Ok(expected) => expected,
            Err(e) => {
                failures.push(Failure::new(
                    &name,
                    format!(
                        "cannot read {name}.expected ({e}); create it from the host kernel: \
                         mmprep kernel tests/scenarios/{name}.scn > tests/scenarios/{name}.expected"
                    ),
                ));
                continue;
            }
        };
        cases.push(Case { name, text, expected });
    }
    (cases, failures, count)
}

/// Adds the stems of the `*.scn` and `*.expected` files of `dir` (its path in the suite is
/// `prefix`) and of its subdirectories but `pending/`, named by their path from the suite's top.
fn list_dir(dir: &std::path::Path, prefix: &str, scenarios: &mut Vec<String>, transcripts: &mut Vec<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read the suite directory {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        let Some(name) = path.file_name().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.is_dir() {
            if name != "pending" {
                list_dir(&path, &format!("{prefix}{name}/"), scenarios, transcripts);
            }
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("scn") => scenarios.push(format!("{prefix}{stem}")),
            Some("expected") => transcripts.push(format!("{prefix}{stem}")),
            _ => {}
        }
    }
}

/// Why one scenario failed, ready to print.
struct Failure {
    name: String,
    report: String,
}

impl Failure {
    fn new(name: &str, report: String) -> Failure {
        Failure {
            name: name.to_string(),
            report,
        }
    }
}

/// Runs every case on `runner` (`who` names it in reports) and compares the transcript with the
/// case's `.expected`; panics at the end if anything failed.
fn check_suite(who: &str, runner: impl Fn(&Script) -> Transcript) {
    let (cases, mut failures, total) = load_suite();
    for case in &cases {
        if let Err(report) = check_case(case, who, &runner) {
            failures.push(Failure::new(&case.name, report));
        }
    }
    if failures.is_empty() {
        eprintln!("suite: {total} scenarios, all print their .expected on the {who}");
        return;
    }
    for failure in &failures {
        eprintln!("\n==================== {}\n{}", failure.name, failure.report);
    }
    let names: Vec<&str> = failures.iter().map(|f| f.name.as_str()).collect();
    panic!(
        "{} of {total} scenarios fail on the {who}: {}",
        failures.len(),
        names.join(" ")
    );
}

/// One scenario: it must parse, run to the end without panicking, and print `.expected`.
fn check_case(case: &Case, who: &str, runner: &impl Fn(&Script) -> Transcript) -> Result<(), String> {
    let script = mmprep_scenario::parse(&case.text);
    if let Some(error) = &script.error {
        return Err(format!(
            "{}.scn does not parse: line {}: {}",
            case.name, error.line, error.message
        ));
    }
    let transcript = panic::catch_unwind(AssertUnwindSafe(|| runner(&script))).map_err(|p| {
        let message = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        format!("the {who} panicked: {message}")
    })?;
    let actual = transcript.text();
    let mut report = String::new();
    if transcript.end != RunEnd::Finished {
        let _ = writeln!(
            report,
            "the {who} run did not finish: {}",
            transcript.end.message().unwrap_or_default()
        );
    }
    if actual != case.expected {
        let _ = write!(
            report,
            "--- {}.expected (host kernel)\n+++ {who}\n{}",
            case.name,
            line_diff(&case.expected, &actual)
        );
    }
    if report.is_empty() { Ok(()) } else { Err(report) }
}

/// Lines of context shown around each change by [`line_diff`].
const CONTEXT: usize = 3;

/// A line diff of `expected` against `actual`: changed lines marked `-` (only in `expected`) and
/// `+` (only in `actual`), with [`CONTEXT`] unchanged lines around them marked ` `, and `...`
/// where unchanged lines are left out. Transcripts are small, so a plain longest-common-
/// subsequence table does.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    if changed.is_empty() {
        return "(the same lines; the texts differ only in line endings or the final newline)\n".into();
    }
    let shown = |k: usize| changed.iter().any(|&c| k + CONTEXT >= c && k <= c + CONTEXT);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (mark, line)) in lines.iter().enumerate() {
        if shown(k) {
            if skipped {
                out.push_str("...\n");
                skipped = false;
            }
            let _ = writeln!(out, "{mark} {line}");
        } else {
            skipped = true;
        }
    }
    if skipped {
        out.push_str("...\n");
    }
    out
}

/// Every scenario, run on the engine with this machine's profile (as `mmprep run` and
/// `mmprep diff` use it), prints the host kernel's transcript.
#[test]
fn engine_matches_the_kernel_transcripts() {
    // Read once, before anything runs, as the CLI does.
    let profile = mmprep_host::host_profile();
    check_suite("engine", |script| mmprep_scenario::engine::run(script, &profile));
}

/// Every scenario, run again on the host kernel, still prints its checked-in transcript.
#[test]
fn kernel_transcripts_are_current() {
    check_suite("host kernel", mmprep_host::run);
}

#[test]
fn line_diff_marks_changes_with_context() {
    let expected = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let actual = "a\nb\nc\nd\ne\nF\ng\nh\ni\nj\nk\n";
    assert_eq!(
        line_diff(expected, actual),
        "...\n  c\n  d\n  e\n- f\n+ F\n  g\n  h\n  i\n  j\n+ k\n"
    );
    assert_eq!(
        line_diff("a\n", "a"),
        "(the same lines; the texts differ only in line endings or the final newline)\n"
    );
}

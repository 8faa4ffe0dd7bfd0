//! `--json` of every command: the output is one line of JSON that deserializes into the
//! documented schema (`docs/json.md`, the types of `src/json.rs`) and serializes back to the
//! same JSON, so no field is missing from the types and none is invented by them. Without a
//! terminal, no progress text reaches stdout or stderr.

#[allow(dead_code)]
#[path = "../src/json.rs"]
mod json;

use std::path::PathBuf;
use std::process::{Command, Output};

use json::{CallResult, Document, End};

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
        .display()
        .to_string()
}

fn mmprep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .args(args)
        .output()
        .expect("cannot run mmprep")
}

/// Runs `mmprep ARGS`, checks the exit status, and round-trips stdout through [`Document`].
fn round_trip(args: &[&str], status: i32) -> Document {
    let out = mmprep(args);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "{args:?}: {stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "no progress: {stderr:?}"
    );
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let doc: Document = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not the schema: {e}\n{stdout}"));
    let again = serde_json::to_value(&doc).expect("serializes");
    assert_eq!(again, value, "the round trip changed the JSON");
    let back: Document = serde_json::from_value(again).expect("deserializes again");
    assert_eq!(back, doc);
    assert_eq!(doc.schema, json::SCHEMA);
    assert_eq!(i32::from(doc.status), status);
    doc
}

#[test]
fn run_json() {
    let doc = round_trip(&["run", "--json", &scenario("contract-example.scn")], 0);
    assert_eq!(doc.command, "run");
    let files = doc.files.expect("files");
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f.end, End::Finished);
    let text: Vec<&str> = f.entries.iter().map(|e| e.text.as_str()).collect();
    let plain = mmprep(&["run", &scenario("contract-example.scn")]);
    assert_eq!(text.join("\n") + "\n", String::from_utf8_lossy(&plain.stdout));
    let smaps = f.entries.iter().find(|e| e.verb == "smaps").expect("an smaps entry");
    assert_eq!(smaps.result, CallResult::Count { count: 4 });
    assert_eq!(smaps.vmas[3].name, "data");
    assert!(f.entries.iter().all(|e| !matches!(e.result, CallResult::Other { .. })));
}

#[test]
fn run_why_json() {
    let doc = round_trip(&["run", "--why", "--json", &scenario("contract-example.scn")], 0);
    let files = doc.files.expect("files");
    let last = files[0].entries.last().expect("entries");
    assert_eq!(last.result, CallResult::Error { errno: "EINVAL".into() });
    assert!(
        last.why.as_deref().is_some_and(|w| w.starts_with("EINVAL: ")),
        "{last:?}"
    );
}

#[test]
fn run_json_bad_files() {
    let missing = scenario("no-such-file.scn");
    let doc = round_trip(
        &[
            "run",
            "--json",
            &scenario("parse-error.scn"),
            &missing,
            &scenario("contract-example.scn"),
        ],
        3,
    );
    let files = doc.files.expect("files");
    assert_eq!(files.len(), 3);
    assert!(matches!(files[0].end, End::ParseError { .. }), "{:?}", files[0].end);
    assert_eq!(files[1].end, End::NotRun);
    assert!(files[1].message.as_deref().is_some_and(|m| m.contains("cannot read")));
    assert_eq!(files[2].end, End::Finished);
}

#[test]
fn kernel_json() {
    let doc = round_trip(&["kernel", "--json", &scenario("contract-example.scn")], 0);
    assert_eq!(doc.command, "kernel");
    assert_eq!(doc.files.expect("files")[0].entries.len(), 7);
}

#[test]
fn diff_json() {
    let doc = round_trip(
        &[
            "diff",
            "--json",
            &scenario("contract-example.scn"),
            &scenario("parse-error.scn"),
        ],
        3,
    );
    assert_eq!(doc.command, "diff");
    let files = doc.files.expect("files");
    assert_eq!(files[0].same, Some(true));
    assert_eq!(files[0].differences.as_deref(), Some(&[][..]));
    assert!(matches!(files[1].end, End::ParseError { .. }));
    assert_eq!(files[1].same, None, "a file that does not parse is not compared");
}

#[test]
fn fuzz_json() {
    let doc = round_trip(&["fuzz", "--json", "--seeds", "3", "--start", "7"], 0);
    let fuzz = doc.fuzz.expect("fuzz");
    assert_eq!((fuzz.start, fuzz.seeds, fuzz.tried), (7, 3, 3));
    assert!(fuzz.failure.is_none());
    let doc = round_trip(&["fuzz", "--json", "--print", "--thp", "--seeds", "2"], 0);
    let fuzz = doc.fuzz.expect("fuzz");
    assert_eq!(fuzz.scenarios.len(), 2);
    assert!(fuzz.thp);
}

#[test]
fn bench_json() {
    let doc = round_trip(&["bench", "--json", "--vmas", "10,20", "--pairs", "50"], 0);
    let rows = doc.bench.expect("bench");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[1].vmas, rows[1].calls), (20, 100));
    assert!(rows[0].engine_ns_per_call > 0.0);
}

#[test]
fn trace_json() {
    let doc = round_trip(&["trace", "--json", "--", "true"], 0);
    let trace = doc.trace.expect("trace");
    assert_eq!(trace.programs, ["/usr/bin/true"]);
    assert_eq!(trace.divergence_count, 0);
    assert_eq!(trace.end, Some(json::TraceEnd::Exited(0)));
}

/// Several files, many seeds: with stderr not a terminal, the text output is exactly what it
/// was, and stderr carries no progress text.
#[test]
fn no_progress_without_a_terminal() {
    let a = scenario("contract-example.scn");
    for args in [
        vec!["run", a.as_str(), a.as_str()],
        vec!["kernel", a.as_str(), a.as_str()],
        vec!["diff", a.as_str(), a.as_str()],
        vec!["fuzz", "--seeds", "4"],
        vec!["bench", "--vmas", "10", "--pairs", "20"],
        vec!["trace", "--", "true"],
    ] {
        let out = mmprep(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for text in [&*stdout, &*String::from_utf8_lossy(&out.stderr)] {
            assert!(
                !text.contains('\r') && !text.contains('\x1b') && !text.contains("eta"),
                "{args:?}: {text:?}"
            );
        }
        if args[0] == "fuzz" {
            assert_eq!(stdout, "same: 4 seeds from 0\n");
        }
        if args[0] == "diff" {
            assert_eq!(stdout, format!("same: {a}\nsame: {a}\n"));
        }
    }
}

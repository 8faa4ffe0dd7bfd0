//! The example driver scenarios under `examples/`.
//!
//! The host kernel cannot run them (they map mmprep's example drivers), so their `.expected`
//! transcripts are the engine's, reviewed line by line against the pipeline rules of
//! `docs/reference/mmap-prepare-pipeline.md` when they were written. Two checks keep them
//! honest:
//!
//! 1. each transcript still matches its reviewed `.expected` byte for byte;
//! 2. structural rules of the mmap_prepare model hold in every run, whatever the transcript
//!    says: each `mapped` call follows the `mmap_prepare` (or legacy `mmap`) of the same range,
//!    and once everything is unmapped, every VMA that got `mapped` or `open` was closed exactly
//!    once (for ops that have `close`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mmprep::Profile;
use mmprep_scenario::{RunEnd, engine, parse};

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_driver_has_an_example() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for d in mmprep_drivers::registry::drivers() {
        assert!(
            names.contains(&d.name.to_string()),
            "examples/{}.scn is missing",
            d.name
        );
    }
}

#[test]
fn examples_match_their_reviewed_transcripts() {
    let mut failures = Vec::new();
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap_or_default();
        let t = engine::run(&parse(&text), &Profile::reference_host());
        assert_eq!(
            t.end,
            RunEnd::Finished,
            "{} did not finish: {:?}",
            path.display(),
            t.end
        );
        if t.text() != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- engine\n{}",
                path.display(),
                t.text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The event lines of a transcript (`  event` lines under an `events` entry).
fn event_lines(transcript: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_events = false;
    for line in transcript.lines() {
        if let Some(rest) = line.strip_prefix("  ") {
            if in_events {
                out.push(rest.to_string());
            }
        } else {
            in_events = line.contains(" events = ");
        }
    }
    out
}

#[test]
fn hook_order_and_balance_rules_hold() {
    for path in examples() {
        // Run it, then unmap everything and log what that calls.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("munmap 0 1G\nevents\n");
        let t = engine::run(&parse(&text), &Profile::reference_host());
        let events = event_lines(&t.text());
        let name = path.display();

        // mapped follows the hook of the same range.
        let mut last_hook_range: Option<String> = None;
        for e in &events {
            let words: Vec<&str> = e.split_whitespace().collect();
            match words.first().copied() {
                Some("mmap_prepare") | Some("mmap") => last_hook_range = words.get(2).map(|s| s.to_string()),
                Some("mapped") => {
                    assert_eq!(
                        last_hook_range.as_deref(),
                        words.get(2).copied(),
                        "{name}: `{e}` without its hook"
                    )
                }
                _ => {}
            }
        }

        // Every VMA that got mapped (successfully or not) or open is closed once.
        let mut taken: BTreeMap<String, i64> = BTreeMap::new();
        let mut closed: BTreeMap<String, i64> = BTreeMap::new();
        for e in &events {
            let words: Vec<&str> = e.split_whitespace().collect();
            let (Some(kind), Some(ops)) = (words.first(), words.get(1)) else {
                continue;
            };
            match *kind {
                "mapped" | "open" => *taken.entry(ops.to_string()).or_default() += 1,
                "close" => *closed.entry(ops.to_string()).or_default() += 1,
                _ => {}
            }
        }
        for (ops, n) in &closed {
            assert_eq!(
                taken.get(ops).copied().unwrap_or(0),
                *n,
                "{name}: {ops}: mapped+open vs close"
            );
        }
    }
}

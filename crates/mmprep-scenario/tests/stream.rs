//! The streaming runner ([`Stream`]) prints what the whole-script runner prints.
//!
//! `mmprep run` feeds a scenario to [`Stream`] line by line and writes each entry as it goes;
//! `mmprep diff`, `--json` and the tests run the parsed [`mmprep_scenario::Script`] whole
//! ([`engine::run_with`], [`engine::run_why`]). Both must give the same text and the same end on
//! every scenario of the repository, with and without `--why`, and on scenarios that stop at a
//! bad line.

use std::path::{Path, PathBuf};

use mmprep::Profile;
use mmprep_scenario::engine::{self, RunOptions, Stream};
use mmprep_scenario::{RunEnd, parse};

/// Every `.scn` file under `dir`, sorted.
fn scenarios(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            scenarios(&path, out);
        } else if path.extension().is_some_and(|e| e == "scn") {
            out.push(path);
        }
    }
}

/// `text` through [`Stream`], fed as `mmprep run` feeds it (the lines of `str::lines`).
fn streamed(text: &str, profile: &Profile, options: &RunOptions, why: bool) -> (String, RunEnd) {
    let mut run = Stream::new(profile, options, text.contains("events"), why);
    let mut out = Vec::new();
    for line in text.lines() {
        if run.line(line, &mut out).is_break() {
            break;
        }
    }
    (String::from_utf8(out).expect("a transcript is UTF-8"), run.finish())
}

/// `text` through [`Stream::feed`], as `mmprep run FILE` feeds it: pieces of whole lines (cut
/// after every `cut`-th line), each fed until `room` bytes of transcript wait.
fn fed(text: &str, profile: &Profile, options: &RunOptions, why: bool, cut: usize, room: usize) -> (String, RunEnd) {
    let mut run = Stream::new(profile, options, text.contains("events"), why);
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    for (n, (i, _)) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n').enumerate() {
        if n % cut == cut - 1 {
            pieces.push(&bytes[start..=i]);
            start = i + 1;
        }
    }
    pieces.push(&bytes[start..]);
    'pieces: for mut piece in pieces {
        while !piece.is_empty() {
            let limit = out.len().saturating_add(room);
            let (used, flow) = run.feed(piece, &mut out, limit);
            if flow.is_break() {
                break 'pieces;
            }
            piece = &piece[used..];
        }
    }
    (String::from_utf8(out).expect("a transcript is UTF-8"), run.finish())
}

/// `text` parsed whole and run by [`engine::run_with`] or [`engine::run_why`].
fn whole(text: &str, profile: &Profile, options: &RunOptions, why: bool) -> (String, RunEnd) {
    let script = parse(text);
    let t = match why {
        false => engine::run_with(&script, profile, options),
        true => engine::run_why(&script, profile, options),
    };
    (t.text(), t.end)
}

fn assert_same(name: &str, text: &str, profile: &Profile, options: &RunOptions) {
    for why in [false, true] {
        let want = whole(text, profile, options, why);
        let got = streamed(text, profile, options, why);
        assert_eq!(got.1, want.1, "{name} (why: {why}): the run ends differently");
        assert!(
            got.0 == want.0,
            "{name} (why: {why}): the transcripts differ\n--- whole\n{}\n--- streamed\n{}",
            want.0,
            got.0
        );
        for (cut, room) in [(usize::MAX, usize::MAX), (3, 1)] {
            let got = fed(text, profile, options, why, cut, room);
            assert_eq!(
                got.1, want.1,
                "{name} (why: {why}, fed {cut}/{room}): the run ends differently"
            );
            assert!(
                got.0 == want.0,
                "{name} (why: {why}, fed {cut}/{room}): the transcripts differ\n--- whole\n{}\n--- fed\n{}",
                want.0,
                got.0
            );
        }
    }
}

#[test]
fn every_repository_scenario_streams_as_it_runs_whole() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["tests/scenarios", "examples", "crates/mmprep-cli/tests/scenarios"] {
        scenarios(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(files.len() > 200, "found only {} scenarios", files.len());
    let profile = Profile::reference_host();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("a scenario is UTF-8");
        let options = RunOptions {
            dir: path.parent().map(Path::to_path_buf),
            c_drivers: None,
        };
        assert_same(&path.display().to_string(), &text, &profile, &options);
    }
}

#[test]
fn bad_lines_end_the_stream_where_they_end_the_whole_run() {
    let profile = Profile::reference_host();
    let options = RunOptions::default();
    for text in [
        "mmap 0 8K rw- private|anon|fixed\nmunmap 0\nmaps\n",
        "window 64M\nmaps\nwindow 1M\n",
        "  \n# only a comment\nwindow 8K\nmmap 0 16K rw- private|anon|fixed\nmaps",
        "file d driver no_such_driver\nmaps\n",
        "file f memfd 4K\nmmap 0 4K rw- shared f 0\nclose f\nmmap 4K 4K rw- shared f 0\nmaps\nclose f\n",
        "mmap 0 4K rw- private|anon|fixed\nmunmap 4K 4K\nmprotect 0 4K r--|bogus\n",
        "",
        "\n\n",
        "mmap 0 8K rw- private|anon|fixed\r\nmprotect 0 4K r--\r\nmadvise 0 4K dontfork \r\nmaps\r",
        "mprotect 0 4K r--\r",
        "mmap 0 8K rw- private|anon|fixed\nmunmap 0 4K # done\n\tmunmap 4K 4K\t\nmaps",
    ] {
        assert_same(&format!("{text:?}"), text, &profile, &options);
    }
}

#[test]
fn the_perf_stream_streams_as_it_runs_whole() {
    let text = mmprep_scenario::perf::perf_stream(40, 2_000, 3);
    assert_same(
        "perf 40/2000",
        &text,
        &Profile::reference_host(),
        &RunOptions::default(),
    );
}

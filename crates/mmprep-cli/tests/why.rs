//! `mmprep run --why` and `mmprep explain FILE:LINE`: the engine's reason for a failed call and
//! the kernel function behind it, and a transcript that is unchanged without `--why`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mmprep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("cannot run mmprep")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scenario written to a temporary file, removed when this goes out of scope.
struct TempScenario(PathBuf);

impl TempScenario {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempScenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A scenario of engine failures with their reasons written to a temporary file (its name
/// carries the process id, so that parallel test runs do not share it).
fn temp_scenario(name: &str, text: &str) -> TempScenario {
    let path = std::env::temp_dir().join(format!("mmprep-why-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    TempScenario(path)
}

const CONTRACT: &str = "crates/mmprep-cli/tests/scenarios/contract-example.scn";

#[test]
fn why_follows_each_failed_call_with_its_reason_and_kernel_function() {
    let out = mmprep(&["run", "--why", "--profile", "reference", CONTRACT]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .ends_with("L10 munmap = -EINVAL\n  why: EINVAL: address is not page aligned (mm/vma.c:do_vmi_munmap)\n"),
        "{}",
        stdout(&out)
    );
    let path = temp_scenario(
        "failures.scn",
        "mmap 0 0 rw- private|anon\nmmap 0 4K rw- private|anon|fixed\nmseal 0x800 4K\nmremap 0 4K 8K fixed 1M\n",
    );
    let out = mmprep(&["run", "--why", "--profile", "reference", path.path().to_str().unwrap()]);
    assert_eq!(
        stdout(&out),
        "L1 mmap = -EINVAL\n  why: EINVAL: length is zero (mm/mmap.c:do_mmap)\n\
         L2 mmap = 0x0\n\
         L3 mseal = -EINVAL\n  why: EINVAL: address is not page aligned (mm/mseal.c:do_mseal)\n\
         L4 mremap = -EINVAL\n  why: EINVAL: MREMAP_FIXED or MREMAP_DONTUNMAP without MREMAP_MAYMOVE (mm/mremap.c:check_mremap_params)\n"
    );
}

/// A driver's refusal is the driver's: the why line points at its source.
#[test]
fn why_names_the_driver_code_that_refused() {
    let out = mmprep(&["run", "--why", "examples/slots.scn"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "L9 mmap = -EBUSY\n  why: EBUSY: every mapping slot of the device is in use (a driver hook: crates/mmprep-drivers/src/slots.rs:"
        ),
        "{}",
        stdout(&out)
    );
}

/// Without `--why` the transcript is the contract's (the kernel comparison depends on it), and
/// with it the only added lines are why lines, each right after a failed call.
#[test]
fn without_why_the_transcript_is_unchanged() {
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "scn") {
            continue;
        }
        let file = path.to_str().unwrap();
        let plain = stdout(&mmprep(&["run", file]));
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        assert_eq!(plain, expected, "{file}");
        let why = stdout(&mmprep(&["run", "--why", file]));
        let mut previous = "";
        let mut kept = String::new();
        for line in why.lines() {
            if line.starts_with("  why: ") {
                assert!(previous.contains(" = -E"), "{file}: a why line after `{previous}`");
            } else {
                kept.push_str(line);
                kept.push('\n');
            }
            previous = line;
        }
        assert_eq!(kept, plain, "{file}");
        let failed = plain
            .lines()
            .filter(|l| l.starts_with('L') && l.contains(" = -E"))
            .count();
        assert_eq!(
            why.matches("\n  why: ").count(),
            failed,
            "{file}: one why line per failed call"
        );
    }
}

#[test]
fn explain_prints_the_line_its_entry_and_why() {
    let out = mmprep(&["explain", "--profile", "reference", &format!("{CONTRACT}:10")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{CONTRACT}:10: munmap 2K 4K\nL10 munmap = -EINVAL\n  why: EINVAL: address is not page aligned (mm/vma.c:do_vmi_munmap)\n"
        )
    );
    // A call that succeeds: its entry, the state built by the lines before it.
    let out = mmprep(&["explain", "examples/slots.scn:8"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "examples/slots.scn:8: mmap 8K 8K rw- shared|fixed s 8K\nL8 mmap = 0x2000\n"
    );
    // The third mapping fails only because the two before it took the slots.
    let out = mmprep(&["explain", "examples/slots.scn:9"]);
    assert!(
        stdout(&out).contains("L9 mmap = -EBUSY\n  why: EBUSY: every mapping slot"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_refuses_what_it_cannot_explain() {
    // A comment line runs nothing: a usage error.
    let out = mmprep(&["explain", "examples/slots.scn:2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("runs no call"), "{}", stderr(&out));
    // Not FILE:LINE.
    for target in ["examples/slots.scn", "examples/slots.scn:0", "examples/slots.scn:x"] {
        let out = mmprep(&["explain", target]);
        assert_eq!(out.status.code(), Some(2), "{target}");
    }
    // A missing file is a bad scenario.
    assert_eq!(mmprep(&["explain", "no/such.scn:1"]).status.code(), Some(3));
    // A line after a parse error is never reached.
    let path = temp_scenario("bad.scn", "mmap 0 4K rw- private|anon\nmmap nonsense\nmunmap 0 4K\n");
    let out = mmprep(&["explain", &format!("{}:3", path.path().display())]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("before line 3"), "{}", stderr(&out));
}

#[test]
fn help_lists_why_and_explain() {
    let top = stdout(&mmprep(&["--help"]));
    assert!(top.contains("explain"), "{top}");
    let run = stdout(&mmprep(&["run", "--help"]));
    assert!(run.contains("--why"), "{run}");
}

//! The `mmprep` binary's exit statuses and output, run as a user would run it.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A scenario file of `tests/scenarios/`.
fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Runs `mmprep ARGS...`.
fn mmprep(args: &[&str], files: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .args(args)
        .args(files.iter().map(|f| scenario(f)))
        .output()
        .expect("cannot run mmprep")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const EXAMPLE_TRANSCRIPT: &str = "\
L4 mmap = 0x0
L5 mmap = 0x4000
L6 maps = 1
  00000000-00008000 rw-p 00000000
L7 mprotect = 0
L8 mmap = 0x100000
L9 smaps = 4
  00000000-00001000 rw-p 00000000 | rd wr mr mw me ac
  00001000-00002000 r--p 00000000 | rd mr mw me
  00002000-00008000 rw-p 00000000 | rd wr mr mw me ac
  00100000-00102000 r--s 00001000 data | rd sh mr mw me ms
L10 munmap = -EINVAL
";

/// The contract's example on the host kernel: exit 0 and its transcript (one line further down
/// than in the contract, for the comment line at the top of the file).
#[test]
fn kernel_prints_the_contract_example() {
    let out = mmprep(&["kernel"], &["contract-example.scn"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), EXAMPLE_TRANSCRIPT);
    assert_eq!(text(&out.stderr), "");
}

/// A parse error: the lines before it print, the message names the line, exit 2.
#[test]
fn kernel_parse_error_exits_2() {
    let out = mmprep(&["kernel"], &["parse-error.scn"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stdout),
        "L2 mmap = 0x0\nL3 maps = 1\n  00000000-00001000 rw-p 00000000\n"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("parse-error.scn: line 4: expected `munmap ADDR LEN`"),
        "{stderr}"
    );
}

/// A driver file: the kernel runner prints nothing and exits 3.
#[test]
fn kernel_refuses_engine_only_scenarios_with_3() {
    let out = mmprep(&["kernel"], &["driver.scn"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("unsupported: line 2: "),
        "{}",
        text(&out.stderr)
    );
}

/// Several files: each transcript under a header, and the first non-zero status.
#[test]
fn kernel_several_files() {
    let out = mmprep(&["kernel"], &["contract-example.scn", "driver.scn", "parse-error.scn"]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("==> "), "{stdout}");
    assert!(stdout.contains(EXAMPLE_TRANSCRIPT), "{stdout}");
    assert_eq!(stdout.matches("==> ").count(), 3, "{stdout}");
}

/// A file that cannot be read: exit 1, with the reason.
#[test]
fn unreadable_file_exits_1() {
    let out = mmprep(&["kernel"], &["no-such-file.scn"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no-such-file.scn: cannot read it"),
        "{}",
        text(&out.stderr)
    );
}

/// The engine runner stops at a parse error on line 1 with exit 2, whatever it supports.
#[test]
fn run_parse_error_exits_2() {
    for profile in ["host", "reference"] {
        let out = mmprep(&["run", "--profile", profile], &["parse-error-first-line.scn"]);
        assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "");
        assert!(text(&out.stderr).contains("line 1: FLAGS: unknown word `bogus`"));
    }
}

/// `diff` of an engine-only scenario: the kernel cannot run it, exit 3.
#[test]
fn diff_of_an_engine_only_scenario_exits_3() {
    let out = mmprep(&["diff"], &["driver.scn"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("unsupported"), "{}", text(&out.stderr));
}

/// No file, or an unknown subcommand: clap's usage error.
#[test]
fn usage_errors() {
    assert_eq!(mmprep(&["kernel"], &[]).status.code(), Some(2));
    assert_eq!(mmprep(&["no-such-subcommand"], &[]).status.code(), Some(2));
    let help = mmprep(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    for sub in ["kernel", "run", "diff"] {
        assert!(text(&help.stdout).contains(sub));
    }
}

/// `mmprep import PID` of a sleeping child under `setarch -R`: the engine's maps, the same as
/// the kernel's, with the `[stack]` and `[vdso]` names and the VmFlags.
#[test]
fn import_a_live_process() {
    let mut child = Command::new("setarch")
        .args(["-R", "sleep", "30"])
        .spawn()
        .expect("cannot run setarch sleep");
    // setarch execs sleep in the same process; wait until it has.
    let pid = child.id();
    for _ in 0..200 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .args(["import", "--flags", &pid.to_string()])
        .output()
        .expect("cannot run mmprep");
    child.kill().expect("kill the sleep child");
    child.wait().expect("wait for the sleep child");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("same as the kernel"), "{stderr}");
    assert!(stdout.contains("[stack]") && stdout.contains("[vdso]"), "{stdout}");
    assert!(stdout.contains("    VmFlags: rd wr mr mw me gd ac"), "{stdout}");
    assert_eq!(
        Command::new(env!("CARGO_BIN_EXE_mmprep"))
            .args(["import", "999999999"])
            .status()
            .expect("cannot run mmprep")
            .code(),
        Some(1)
    );
}

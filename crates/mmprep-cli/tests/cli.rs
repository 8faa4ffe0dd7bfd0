//! The `mmprep` binary's exit statuses and output, run as a user would run it.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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

/// A parse error: the lines before it print, the message names the file, line and column, exit 3.
#[test]
fn kernel_parse_error_exits_3() {
    let out = mmprep(&["kernel"], &["parse-error.scn"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stdout),
        "L2 mmap = 0x0\nL3 maps = 1\n  00000000-00001000 rw-p 00000000\n"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("parse-error.scn:4:1: expected `munmap ADDR LEN`, got 1 argument"),
        "{stderr}"
    );
}

/// A driver file: the kernel runner prints nothing and exits 5.
#[test]
fn kernel_refuses_engine_only_scenarios_with_5() {
    let out = mmprep(&["kernel"], &["driver.scn"]);
    assert_eq!(out.status.code(), Some(5));
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
    assert_eq!(out.status.code(), Some(5));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("==> "), "{stdout}");
    assert!(stdout.contains(EXAMPLE_TRANSCRIPT), "{stdout}");
    assert_eq!(stdout.matches("==> ").count(), 3, "{stdout}");
}

/// A file that does not exist is a bad scenario: exit 3, with the reason, on every command.
#[test]
fn missing_file_exits_3() {
    for command in ["kernel", "run", "diff"] {
        let out = mmprep(&[command], &["no-such-file.scn"]);
        assert_eq!(out.status.code(), Some(3), "{command}");
        assert_eq!(text(&out.stdout), "", "{command}");
        assert!(
            text(&out.stderr).contains("no-such-file.scn: cannot read it: "),
            "{}",
            text(&out.stderr)
        );
    }
}

/// The engine runner stops at a parse error on line 1 with exit 3, whatever it supports; the
/// column is the bad token's.
#[test]
fn run_parse_error_exits_3() {
    for profile in ["host", "reference"] {
        let out = mmprep(&["run", "--profile", profile], &["parse-error-first-line.scn"]);
        assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "");
        assert!(
            text(&out.stderr).contains("parse-error-first-line.scn:1:15: FLAGS: unknown word `bogus`"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// `diff` of an engine-only scenario: the kernel cannot run it, exit 5.
#[test]
fn diff_of_an_engine_only_scenario_exits_5() {
    let out = mmprep(&["diff"], &["driver.scn"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(text(&out.stderr).contains("unsupported"), "{}", text(&out.stderr));
}

/// `diff` of a scenario that does not parse runs nothing: no `same:`, the error, exit 3.
#[test]
fn diff_parse_error_prints_only_the_error() {
    let out = mmprep(&["diff"], &["parse-error.scn"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("parse-error.scn:4:1: expected `munmap ADDR LEN`, got 1 argument"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// No file, or an unknown subcommand: clap's usage error, exit 2. `--help` lists every exit status.
#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_statuses() {
    assert_eq!(mmprep(&["kernel"], &[]).status.code(), Some(2));
    assert_eq!(mmprep(&["no-such-subcommand"], &[]).status.code(), Some(2));
    assert_eq!(mmprep(&["run", "--profile", "nosuch", "-"], &[]).status.code(), Some(2));
    let help = mmprep(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for sub in ["kernel", "run", "diff"] {
        assert!(help.contains(sub));
    }
    for line in [
        "  0  success",
        "  1  the transcripts differ",
        "  2  usage error",
        "  3  bad scenario",
        "  4  host failure",
        "  5  a line the runner does not support",
    ] {
        assert!(help.contains(line), "{line:?} not in\n{help}");
    }
    // The subcommands that read scenarios list them too.
    for sub in ["kernel", "run", "diff"] {
        let help = text(&mmprep(&[sub, "--help"], &[]).stdout);
        assert!(help.contains("  3  bad scenario"), "{sub} --help:\n{help}");
    }
}

/// `--version`: the crate's version and the kernel the engine models.
#[test]
fn version_names_the_modelled_kernel() {
    let out = mmprep(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "mmprep {} (models Linux 6.18, x86_64 host behaviour)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// Runs `mmprep ARGS...` with `input` on standard input.
fn mmprep_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run mmprep");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).expect("cannot write to mmprep");
    drop(stdin);
    child.wait_with_output().expect("cannot wait for mmprep")
}

/// `-` is standard input for `run`, `kernel` and `diff`; messages call it `<stdin>`.
#[test]
fn dash_reads_standard_input() {
    let scenario = b"mmap 0 8K rw- private|anon|fixed\nmaps\n";
    let transcript = "L1 mmap = 0x0\nL2 maps = 1\n  00000000-00002000 rw-p 00000000\n";
    for command in ["run", "kernel"] {
        let out = mmprep_stdin(&[command, "-"], scenario);
        assert_eq!(out.status.code(), Some(0), "{command}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), transcript, "{command}");
    }
    let out = mmprep_stdin(&["diff", "-"], scenario);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "same: <stdin>\n");
    let out = mmprep_stdin(&["run", "-"], b"munmap 0\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).starts_with("mmprep: <stdin>:1:1: "),
        "{}",
        text(&out.stderr)
    );
}

/// A scenario with nothing but blank lines and comments is a bad scenario, said plainly.
#[test]
fn an_empty_scenario_exits_3() {
    for input in [&b""[..], b"\n\n", b"# just a comment\n   \t\n"] {
        for command in ["run", "kernel", "diff"] {
            let out = mmprep_stdin(&[command, "-"], input);
            assert_eq!(out.status.code(), Some(3), "{command} {input:?}");
            assert_eq!(text(&out.stdout), "");
            assert_eq!(
                text(&out.stderr),
                "mmprep: <stdin>: empty scenario: no line other than blank lines and comments, nothing ran\n"
            );
        }
    }
}

/// A NUL byte in a token is printed escaped, never raw.
#[test]
fn a_nul_byte_is_escaped_in_the_message() {
    let out = mmprep_stdin(&["run", "-"], b"maps\nmunmap 0 4\0K\n");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "L1 maps = 0\n");
    assert!(!out.stderr.contains(&0), "a raw NUL in {:?}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("mmprep: <stdin>:2:10: LEN: `4\\0K` is not a number"),
        "{}",
        text(&out.stderr)
    );
}

/// Bytes that are not UTF-8: the line and column of the first bad byte, nothing runs, exit 3.
#[test]
fn invalid_utf8_reports_its_line() {
    let out = mmprep_stdin(&["kernel", "-"], b"maps\n# caf\xc3\xa9\nmaps \xff\xfe\n");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "mmprep: <stdin>:3:6: not UTF-8 (byte 0xff); a scenario is UTF-8 text, nothing ran\n"
    );
}

/// A 1 MB token is cut to 40 characters and `...` in the message.
#[test]
fn a_huge_token_is_cut_in_the_message() {
    let mut input = b"maps\nmmap 0 4K rw- ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1 << 20));
    input.push(b'\n');
    let out = mmprep_stdin(&["run", "-"], &input);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.len() < 300, "{} bytes of stderr", stderr.len());
    assert!(
        stderr.starts_with(&format!(
            "mmprep: <stdin>:2:15: FLAGS: unknown word `{}...`",
            "x".repeat(40)
        )),
        "{stderr}"
    );
}

/// The transcripts differ: exit 1, and `differs:` with the first differing line. The kernel
/// side runs under a 4 GiB address-space limit (`ulimit -v`) that the reference profile does not
/// have, so an 8 GiB mapping fails only there.
#[test]
fn a_difference_exits_1() {
    let path = std::env::temp_dir().join(format!("mmprep-cli-differs-{}.scn", std::process::id()));
    std::fs::write(&path, "window 16G\nmmap 0 8G rw- private|anon|noreserve|fixed\n").expect("cannot write");
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" diff --profile reference \"$1\"")
        .arg(env!("CARGO_BIN_EXE_mmprep"))
        .arg(&path)
        .output()
        .expect("cannot run sh");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("differs: "), "{stdout}");
    assert!(
        stdout.contains("-kernel: L2 mmap = -ENOMEM\n+engine: L2 mmap = 0x0"),
        "{stdout}"
    );
}

/// The kernel runner failing (here: a tmpfile it cannot size) is a host failure, exit 4.
#[test]
fn a_runner_failure_exits_4() {
    let out = mmprep_stdin(&["kernel", "-"], b"maps\nfile huge tmpfile 0xffffffffffffffff\nmaps\n");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout), "L1 maps = 0\n");
    assert!(
        text(&out.stderr).starts_with("mmprep: <stdin>: runner failed: L2 file: ftruncate: "),
        "{}",
        text(&out.stderr)
    );
    let out = mmprep_stdin(&["diff", "-"], b"maps\nfile huge tmpfile 0xffffffffffffffff\nmaps\n");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout), "");
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

/// `run --set`: an engine run under a THP setting the host may not have. With
/// `thp.enabled=always` a read in an unadvised anonymous VMA takes the huge path (an anon_vma:
/// `ac` survives `mprotect r--`); an unknown key or value is a usage error, exit 2.
#[test]
fn run_set_changes_the_profile() {
    let scenario = b"window 64M\nmmap 0 4M rw- private|anon|fixed\ntouch 0 4K r\nmprotect 0 4M r--\nsmaps\n";
    let out = mmprep_stdin(
        &["run", "--profile", "reference", "--set", "thp.enabled=always", "-"],
        scenario,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("r--p 00000000 | rd mr mw me ac\n"),
        "{}",
        text(&out.stdout)
    );
    let out = mmprep_stdin(&["run", "--profile", "reference", "-"], scenario);
    assert!(
        text(&out.stdout).contains("r--p 00000000 | rd mr mw me\n"),
        "{}",
        text(&out.stdout)
    );
    for bad in ["thp.enabled=sometimes", "thp.nosuch=1", "thp.enabled"] {
        let out = mmprep(&["run", "--set", bad, "/dev/null"], &[]);
        assert_eq!(out.status.code(), Some(2), "--set {bad}");
    }
}

/// `render` of several scenarios: a page each in the `-o` directory; a bad one exits 3 and the
/// others are still written; `--step`, an `-o` that is no directory and two files that would
/// write the same page are usage errors (2).
#[test]
fn render_several_files() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("render-several-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.scn");
    std::fs::write(&bad, "window 64M\nfrobnicate 0\n").unwrap();
    let good = scenario("contract-example.scn");
    let out = Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .arg("render")
        .arg(&bad)
        .arg(&good)
        .arg("-o")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bad.scn:2:1: unknown verb"),
        "{}",
        text(&out.stderr)
    );
    let page = dir.join("contract-example.html");
    assert!(
        text(&out.stdout).contains(&format!("{} (", page.display())),
        "{}",
        text(&out.stdout)
    );
    let html = std::fs::read_to_string(&page).expect("the good scenario's page is written");
    assert!(html.contains("<svg") && html.contains("contract-example.scn"));
    assert!(!dir.join("bad.html").exists());

    let usage = |extra: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mmprep"))
            .arg("render")
            .arg(&good)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out.stderr));
        text(&out.stderr)
    };
    let good_os = good.as_os_str();
    assert!(usage(&[good_os, "--step".as_ref(), "1".as_ref()]).contains("--step"));
    let not_dir = dir.join("x.html");
    assert!(usage(&[bad.as_os_str(), "-o".as_ref(), not_dir.as_os_str()]).contains("names a directory"));
    let other = dir.join("contract-example.scn");
    std::fs::copy(&good, &other).unwrap();
    assert!(usage(&[other.as_os_str(), "-o".as_ref(), dir.as_os_str()]).contains("would both be written"));
}

//! `mmprep trace` and `mmprep replay` as a user runs them: the report, `--json`, `--save` and
//! `replay`, and the exit statuses (0, 1, 2, 4, 6).

use std::process::{Command, Output};

fn mmprep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .args(args)
        .output()
        .expect("cannot run mmprep")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn trace_true_reports_no_divergence() {
    let out = mmprep(&["trace", "--check-every", "5", "--", "true"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("programs: /usr/bin/true (1 process, 0 more threads)"),
        "{stdout}"
    );
    assert!(stdout.contains("divergences: 0\n"), "{stdout}");
    assert!(
        stdout.contains("memory calls: ") && stdout.contains("mmap "),
        "{stdout}"
    );
    assert!(stdout.contains("program exited with status 0"), "{stdout}");
}

#[test]
fn trace_json_is_one_object() {
    let out = mmprep(&["trace", "--json", "--", "true"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(
            "{\"schema\":\"mmprep/1\",\"command\":\"trace\",\"status\":0,\"trace\":{\"programs\":[\"/usr/bin/true\"]"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\"divergence_count\":0,"), "{stdout}");
    assert!(stdout.trim_end().ends_with('}'), "{stdout}");
}

#[test]
fn trace_save_then_replay() {
    let path = std::env::temp_dir().join(format!("mmprep-cli-{}.trace", std::process::id()));
    let p = path.to_str().expect("utf-8 temp path");
    let out = mmprep(&["trace", "--save", p, "--", "sh", "-c", "echo a | cat"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("a\n"),
        "the program's own output comes first"
    );
    let out = mmprep(&["replay", p]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(", 0 differ from the recorded results"), "{stdout}");
    assert!(stdout.contains("calls per second"), "{stdout}");
    // A recorded result changed by hand: replay finds it and exits 1.
    let saved = std::fs::read_to_string(&path).expect("read the trace");
    let line = saved
        .lines()
        .find(|l| l.starts_with("call ") && l.contains(" 9 "))
        .expect("an mmap call");
    let (head, _) = line.rsplit_once(' ').expect("a result");
    std::fs::write(&path, saved.replacen(line, &format!("{head} 1000"), 1)).expect("write");
    let out = mmprep(&["replay", p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("1 differ"), "{}", text(&out.stdout));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn trace_exit_statuses() {
    let out = mmprep(&["trace", "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("did not start"), "{}", text(&out.stderr));
    let out = mmprep(&["trace"]);
    assert_eq!(out.status.code(), Some(2));
    let out = mmprep(&["replay", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("not a saved trace"), "{}", text(&out.stderr));
}

/// Under `strace -f` the child is already traced: PTRACE_TRACEME fails, and trace says that
/// ptrace is refused, with its own status.
#[test]
fn trace_says_when_ptrace_is_refused() {
    let Ok(out) = Command::new("strace")
        .args([
            "-f",
            "-o",
            "/dev/null",
            env!("CARGO_BIN_EXE_mmprep"),
            "trace",
            "--",
            "true",
        ])
        .output()
    else {
        eprintln!("skipped: strace is not installed");
        return;
    };
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ptrace is not allowed here"),
        "{}",
        text(&out.stderr)
    );
}

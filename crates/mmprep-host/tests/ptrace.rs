//! `mmprep_host::trace` on real programs of this machine: every memory call of theirs, answered
//! by the engine, must return what the kernel returned (every `mmap` the same address), the
//! whole maps must match at each check, and the saved trace must replay with the same results.
//!
//! The tracer waits for any child (`waitpid(-1)`), so the traces of this file run one at a
//! time (`ONE_AT_A_TIME`) and this binary holds nothing else that forks.

mod common;

use std::sync::Mutex;

use mmprep::abi;
use mmprep_host::replay::{self, Event};
use mmprep_host::trace::{ProgramEnd, TraceOptions, TraceReport, render, trace};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Is `prog` on `PATH`?
fn present(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Traces `cmd` with a maps check every 20 calls and checks everything the issue asks for.
/// Returns `None` (and says so) when the program is not installed.
#[track_caller]
fn traced(cmd: &[&str]) -> Option<TraceReport> {
    if !cmd[0].starts_with('/') && !present(cmd[0]) {
        eprintln!("skipped: {} is not installed", cmd[0]);
        return None;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    traced_locked(cmd)
}

#[track_caller]
fn traced_locked(cmd: &[&str]) -> Option<TraceReport> {
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let opts = TraceOptions {
        check_every: 20,
        record: true,
        progress: false,
    };
    let report = trace(&cmd, opts).unwrap_or_else(|e| panic!("{cmd:?}: {e:?}"));
    let text = render(&report);
    assert_eq!(report.divergence_count, 0, "{cmd:?}:\n{text}");
    assert_eq!(report.end, Some(ProgramEnd::Exited(0)), "{cmd:?}:\n{text}");
    assert!(report.calls.get("mmap").copied().unwrap_or(0) > 0, "{text}");
    assert!(report.checks > 0, "{text}");
    // Every successful mmap returned the same address on both sides.
    let mmaps_ok = report
        .events
        .iter()
        .filter(|e| matches!(e, Event::Call { nr: abi::nr::MMAP, ret, .. } if abi::errno_of(*ret).is_none()))
        .count() as u64;
    assert_eq!(report.mmaps_same, mmaps_ok, "{text}");
    // The saved trace replays on the engine alone with every recorded result.
    let saved = replay::save(&report.events);
    let events = replay::load(&saved).expect("load the saved trace");
    assert_eq!(events, report.events);
    let r = replay::replay(&events).expect("replay");
    assert_eq!(r.mismatch_count, 0, "{:?}", r.mismatches);
    assert_eq!(r.calls, report.total_calls());
    Some(report)
}

#[test]
fn true_() {
    traced(&["true"]);
}

#[test]
fn ls_la_root() {
    traced(&["ls", "-la", "/"]);
}

#[test]
fn git_version() {
    traced(&["git", "--version"]);
}

#[test]
fn perl_e_1() {
    traced(&["perl", "-e", "1"]);
}

#[test]
fn python_imports() {
    traced(&["python3", "-c", "import json, sqlite3"]);
}

/// Allocation-heavy: 300 one-MiB buffers through glibc's mmap threshold and back.
#[test]
fn python_allocations() {
    if let Some(r) = traced(&["python3", "-c", "x=[bytearray(1<<20) for _ in range(300)]; del x"]) {
        assert!(r.calls["munmap"] >= 300, "{}", render(&r));
    }
}

/// A pipeline: dash forks twice and execs cat; each process its own engine Mm.
#[test]
fn sh_pipeline() {
    if let Some(r) = traced(&["sh", "-c", "echo a | cat"]) {
        assert!(r.processes >= 3, "{}", render(&r));
    }
}

/// gcc runs cc1 and as as children (vfork/posix_spawn share the parent's Mm until their exec).
#[test]
fn gcc_c() {
    let dir = std::env::temp_dir().join(format!("mmprep-trace-gcc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("small.c");
    std::fs::write(&src, "int twice(int x) { return 2 * x; }\n").expect("write");
    let obj = dir.join("small.o");
    let (src, obj) = (src.to_string_lossy().into_owned(), obj.to_string_lossy().into_owned());
    if let Some(r) = traced(&["gcc", "-c", &src, "-o", &obj]) {
        assert!(r.programs.iter().any(|p| p.ends_with("/cc1")), "{}", render(&r));
        assert!(r.processes >= 3, "{}", render(&r));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A program that grows its stack by faulting, between two memory calls: the growth is
/// reconciled (counted), not re-imported.
#[test]
fn stack_growth_between_calls() {
    if let Some(r) = traced(&[
        "sh",
        "-c",
        "f() { if [ \"$1\" -gt 0 ]; then f $(($1 - 1)); fi; }; f 900",
    ]) {
        assert!(r.stack_growths > 0, "{}", render(&r));
    }
}

/// Threads: six python threads allocating at once; their calls are let through one at a time,
/// so the engine runs them in the kernel's order.
#[test]
fn python_threads() {
    let prog = "import threading\n\
                t = [threading.Thread(target=lambda: [bytearray(1 << 20) for _ in range(20)]) for _ in range(6)]\n\
                [x.start() for x in t]\n\
                [x.join() for x in t]";
    if let Some(r) = traced(&["python3", "-c", prog]) {
        assert!(r.threads >= 6, "{}", render(&r));
    }
}

/// A Rust program with threads (rustup's proxy, then rustc).
#[test]
fn rustc_version() {
    traced(&["rustc", "--version"]);
}

/// `probes/abi_calls.c`: raw memory calls with odd arguments (an unaligned offset, a closed
/// descriptor, a pipe, a write-only file, `/dev/zero` both ways, a memfd, `MAP_32BIT`,
/// `MAP_FIXED_NOREPLACE`, high `prot` and `mremap` flag bits, pkeys 0, 1 and 16, `msync`'s
/// errors, `mlock2` flags, `mseal` and what it refuses, `brk` below its start, a
/// `MAP_GROWSDOWN` mapping grown by a fault, `mincore`). Every result must be the kernel's.
#[test]
fn abi_calls_probe() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let probe = common::compile_c("abi_calls", include_str!("probes/abi_calls.c"));
    let exe = probe.to_string_lossy().into_owned();
    let r = traced_locked(&[&exe]).expect("the probe runs");
    let text = render(&r);
    let errnos: Vec<mmprep::Errno> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Call { ret, .. } => abi::errno_of(*ret),
            _ => None,
        })
        .collect();
    use mmprep::Errno::*;
    for want in [EINVAL, EBADF, ENODEV, EACCES, EEXIST, EBUSY, EPERM, ENOMEM] {
        assert!(errnos.contains(&want), "the probe never got {want:?}:\n{text}");
    }
    assert_eq!(r.not_modelled.get("mincore"), Some(&1), "{text}");
    assert!(
        r.stack_growths >= 1,
        "the MAP_GROWSDOWN fault was not reconciled:\n{text}"
    );
}

/// The JVM: seventeen threads, a heap reserved with `MAP_NORESERVE` and committed piecewise,
/// and a shared file it unlinks after mapping it (`hsperfdata`).
#[test]
fn java_version() {
    traced(&["java", "-version"]);
}

/// A program that turns address randomisation back on (`setarch x86_64` resets the personality
/// the tracer set) cannot be compared: the trace must end with that error, not hang. It hung:
/// the killed tracee parked in its exit stop, which the tracer reaped without resuming.
#[test]
fn a_program_that_turns_randomisation_on_ends_the_trace_without_hanging() {
    if !present("setarch") {
        eprintln!("skipped: setarch is not installed");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cmd: Vec<String> = ["setarch", "-L", "/bin/true"].iter().map(|s| s.to_string()).collect();
        let opts = TraceOptions {
            check_every: 20,
            record: false,
            progress: false,
        };
        let _ = tx.send(trace(&cmd, opts).map(|r| render(&r)));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the trace of `setarch -L /bin/true` hangs");
    let err = format!("{:?}", result.expect_err("randomisation is on in the traced `true`"));
    assert!(err.contains("address randomisation on"), "{err}");
}

//! A differential test without ptrace, the seed of `mmprep trace`: a C program
//! (`probes/sequence.c`) runs under `setarch -R` as a child, stops at a point where the test
//! imports it from `/proc/PID` (`mmprep_host::import`), then makes a fixed sequence of `brk`,
//! `mmap(NULL, ...)` (including 2 MiB multiples, which anonymous memory gets THP-aligned),
//! `munmap` and `mprotect` calls and prints each result and finally its own smaps. The test
//! replays every call on the imported engine `Mm` and asserts the same results, then the same
//! maps text and VmFlags.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mmprep::file::{File, FileMode};
use mmprep::{MapFlags, Mm, Prot, VirtAddr};
use mmprep_host::import::{engine_maps_with_flags, import_pid, maps_of, maps_with_flags};

const SEQUENCE: &str = include_str!("probes/sequence.c");

/// What the child printed after the import point.
struct Run {
    /// The engine's copy, imported at the stop.
    mm: Mm,
    /// `(call, result)` lines.
    calls: Vec<(String, String)>,
    /// The final smaps text.
    smaps: String,
}

/// Runs the probe with these limits (`ulimit -s` and `-d` arguments) and setarch flags,
/// importing it at its stop.
fn run(stack: &str, data: &str, extra: &[&str]) -> Run {
    let exe = common::compile_c("sequence", SEQUENCE);
    let script = format!(
        "ulimit -s {stack} && ulimit -d {data} && exec setarch \"$(uname -m)\" -R {} -- \"$0\"",
        extra.join(" ")
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the probe");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("brk0 line");
    let brk0 = u64::from_str_radix(line.trim().strip_prefix("brk0 ").expect("brk0"), 16).expect("hex");
    line.clear();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "ready");
    // The child blocks on stdin: its address space holds still while it is read.
    let imported = import_pid(child.id(), Some(brk0)).expect("import the probe");
    assert!(!imported.randomized, "setarch -R did not turn randomisation off");
    imported.mm.check_invariants();
    assert_eq!(
        imported.mm.maps(),
        maps_of(&imported.smaps),
        "the import itself differs"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"g")
        .expect("release the probe");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("probe output");
    let status = child.wait().expect("wait");
    assert!(status.success(), "probe failed: {status}\n{rest}");
    let (calls, smaps) = rest.split_once("smaps\n").expect("an smaps section");
    let calls = calls
        .lines()
        .map(|l| {
            let (call, result) = l.split_once(" = ").expect("CALL = RESULT");
            (call.to_string(), result.to_string())
        })
        .collect();
    Run {
        mm: imported.mm,
        calls,
        smaps: smaps.to_string(),
    }
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// The result as the probe prints it.
fn show(r: mmprep::Result<u64>) -> String {
    match r {
        Ok(v) => format!("{v:x}"),
        Err(e) => format!("-{}", e.errno.raw()),
    }
}

/// A second `open()` of the probe's executable: a new open file on the imported inode.
fn open_exe(mm: &Mm) -> Arc<File> {
    let v = mm
        .vmas()
        .find(|v| v.file().is_some_and(|f| f.path().ends_with("/sequence")))
        .expect("the executable is mapped");
    let f = v.file().expect("file");
    mmprep_drivers::regular::reopen(f.inode(), FileMode::READ_ONLY, f.path().to_string())
}

/// Runs one call line on the engine.
fn replay(mm: &mut Mm, call: &str) -> String {
    let w: Vec<&str> = call.split_whitespace().collect();
    match w[0] {
        "brk" => format!("{:x}", mm.brk(VirtAddr(hex(w[1]))).get()),
        "mmap" => {
            let file = (w[5] == "exe").then(|| open_exe(mm));
            let r = mm.mmap(
                VirtAddr(hex(w[1])),
                hex(w[2]),
                Prot(hex(w[3]) as u32),
                MapFlags(hex(w[4]) as u32),
                file.as_ref(),
                hex(w[6]),
            );
            show(r.map(VirtAddr::get))
        }
        "munmap" => show(mm.munmap(VirtAddr(hex(w[1])), hex(w[2])).map(|()| 0)),
        "mprotect" => show(
            mm.mprotect(VirtAddr(hex(w[1])), hex(w[2]), Prot(hex(w[3]) as u32))
                .map(|()| 0),
        ),
        op => panic!("unknown call {op}"),
    }
}

#[track_caller]
fn differential(stack: &str, data: &str, extra: &[&str]) -> Vec<(String, String)> {
    let Run { mut mm, calls, smaps } = run(stack, data, extra);
    assert!(calls.len() >= 20, "{calls:?}");
    for (call, kernel) in &calls {
        let engine = replay(&mut mm, call);
        assert_eq!(&engine, kernel, "`{call}`: engine {engine}, kernel {kernel}\n{mm:?}");
        mm.check_invariants();
    }
    let (real, engine) = (maps_of(&smaps), mm.maps());
    assert_eq!(engine, real, "\nengine:\n{engine}\nkernel:\n{real}");
    assert_eq!(engine_maps_with_flags(&mm), maps_with_flags(&smaps));
    calls
}

#[test]
fn sequence_8m_stack() {
    differential("8192", "unlimited", &[]);
}

#[test]
fn sequence_unlimited_stack() {
    differential("unlimited", "unlimited", &[]);
}

#[test]
fn sequence_legacy_layout() {
    differential("8192", "unlimited", &["-L"]);
}

/// `ulimit -d 2048` (the probe has 1.1 MiB of data already): the data limit refuses some of the private writable mappings and heap
/// growth (`may_expand_vm`, `check_data_rlimit`); the engine must refuse the same ones.
#[test]
fn sequence_under_a_data_limit() {
    let calls = differential("8192", "2048", &[]);
    assert!(calls.iter().any(|(_, r)| r == "-12"), "no call was refused: {calls:?}");
}

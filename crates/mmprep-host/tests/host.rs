//! The host-kernel runner against the real kernel: each test runs a scenario with
//! `mmprep_host::run` and checks the transcript the kernel produced.

use mmprep_host::run;
use mmprep_scenario::{RunEnd, Transcript, parse};

/// Runs scenario `text` on the host.
fn kernel(text: &str) -> Transcript {
    run(&parse(text))
}

/// Asserts a finished run with exactly `expected` as its text.
#[track_caller]
fn assert_transcript(text: &str, expected: &str) {
    let t = kernel(text);
    assert_eq!(t.end, RunEnd::Finished, "transcript so far:\n{}", t.text());
    assert_eq!(
        t.text(),
        expected,
        "\n--- got ---\n{}--- wanted ---\n{expected}",
        t.text()
    );
}

/// The "Example" section of `docs/scenario-format.md`, verbatim.
#[test]
fn the_contract_example() {
    assert_transcript(
        "window 64M
file data memfd 64K
mmap 0 16K rw- private|anon|fixed
mmap 16K 16K rw- private|anon|fixed
maps
mprotect 4K 4K r--
mmap 1M 8K r-- shared|fixed data 4K
smaps
munmap 2K 4K
",
        "L3 mmap = 0x0
L4 mmap = 0x4000
L5 maps = 1
  00000000-00008000 rw-p 00000000
L6 mprotect = 0
L7 mmap = 0x100000
L8 smaps = 4
  00000000-00001000 rw-p 00000000 | rd wr mr mw me ac
  00001000-00002000 r--p 00000000 | rd mr mw me
  00002000-00008000 rw-p 00000000 | rd wr mr mw me ac
  00100000-00102000 r--s 00001000 data | rd sh mr mw me ms
L9 munmap = -EINVAL
",
    );
}

/// A PROT_NONE page faults with SIGSEGV at the first byte touched; a shared mapping of a memfd
/// past the file's end faults with SIGBUS at the first page beyond it.
#[test]
fn touch_faults() {
    assert_transcript(
        "window 64M
file small memfd 4K
mmap 0 8K rw- private|anon|fixed
mprotect 4K 4K ---
touch 0 8K r
touch 0x800 8K w
touch 0x4800 1 r
mmap 1M 16K rw- shared|fixed small 0
touch 1M 16K w
touch 0x100010 0x10 r
touch 0 0 r
",
        "L3 mmap = 0x0
L4 mprotect = 0
L5 touch = SIGSEGV@0x1000
L6 touch = SIGSEGV@0x1000
L7 touch = SIGSEGV@0x4800
L8 mmap = 0x100000
L9 touch = SIGBUS@0x101000
L10 touch = 0
L11 touch = 0
",
    );
}

/// A write is refused on a read-only page after the pages before it were written.
#[test]
fn write_stops_at_a_read_only_page() {
    assert_transcript(
        "mmap 0 12K rw- private|anon|fixed
mprotect 8K 4K r--
write 0x1ffe 0x2000 0x41
read 0 12K
touch 8K 4K w
",
        "L1 mmap = 0x0
L2 mprotect = 0
L3 write = SIGSEGV@0x2000
L4 read = 00x8190 41x2 00x4096
L5 touch = SIGSEGV@0x2000
",
    );
}

/// What is written to a shared memfd mapping reads back, in the same mapping and in another
/// mapping of the same file; reading past the file's end stops with SIGBUS.
#[test]
fn read_write_round_trip_on_a_shared_memfd() {
    assert_transcript(
        "window 64M
file data memfd 12K
mmap 0 16K rw- shared|fixed data 0
write 0 4K 0x11
write 0x1000 0x10 0xff
write 0x2fff 1 7
read 0 16K
mmap 1M 8K r-- shared|fixed data 4K
read 1M 8K
read 0xff8 0x10
read 0 0
write 0 0 1
",
        "L3 mmap = 0x0
L4 write = 0
L5 write = 0
L6 write = 0
L7 read = 11x4096 ffx16 00x8175 07x1 SIGBUS@0x3000
L8 mmap = 0x100000
L9 read = ffx16 00x8175 07x1
L10 read = 11x8 ffx8
L11 read = -
L12 write = 0
",
    );
}

/// After `fork`, the lines come from the child: it prints `L<n> fork = 0`, runs the rest, and
/// sees the parent's mappings and contents; the parent prints nothing more.
#[test]
fn fork_continues_in_the_child() {
    assert_transcript(
        "mmap 0 8K rw- private|anon|fixed
write 0 1 0x5a
madvise 4K 4K dontfork
fork
maps
read 0 2
munmap 0 4K
maps
",
        "L1 mmap = 0x0
L2 write = 0
L3 madvise = 0
L4 fork = 0
L5 maps = 1
  00000000-00001000 rw-p 00000000
L6 read = 5ax1 00x1
L7 munmap = 0
L8 maps = 0
",
    );
}

/// A parse error stops the script: the lines before it ran and printed, the run ends with the
/// error (exit status 3 in the CLI).
#[test]
fn parse_error_mid_script() {
    let t = kernel("mmap 0 4K rw- private|anon|fixed\nmaps\nmunmap 0\nmaps\n");
    assert_eq!(
        t.entries,
        ["L1 mmap = 0x0", "L2 maps = 1\n  00000000-00001000 rw-p 00000000"]
    );
    let RunEnd::ParseError(e) = &t.end else {
        panic!("{:?}", t.end)
    };
    assert_eq!(e.line, 3);
    assert_eq!(t.end.exit_code(), 3);
}

/// Engine-only lines: nothing runs, no entries, `unsupported` (exit status 5).
#[test]
fn driver_files_and_events_are_unsupported() {
    let t = kernel("mmap 0 4K rw- private|anon|fixed\nfile dev driver counter pages=2\nmaps\n");
    assert_eq!(t.entries, Vec::<String>::new());
    assert!(matches!(t.end, RunEnd::Unsupported { line: 2, .. }), "{:?}", t.end);
    assert_eq!(t.end.exit_code(), 5);
    let t = kernel("maps\nevents\n");
    assert_eq!(t.entries, Vec::<String>::new());
    assert!(matches!(t.end, RunEnd::Unsupported { line: 2, .. }), "{:?}", t.end);
}

/// File kinds, the NAME column and closed files: /dev/zero private mappings carry the file's
/// NAME, shared ones are new shmem objects; a closed NAME passes descriptor -1.
#[test]
fn files_and_names() {
    assert_transcript(
        "file z zero
file t tmpfile 8K
file r tmpfile 8K ro
mmap 0 4K rw- private|fixed z 0
mmap 4K 4K rw- shared|fixed z 0
mmap 8K 8K rw- shared|fixed t 0
mmap 16K 4K r-- shared|fixed r 4K
mmap 20K 4K rw- shared|fixed r 0
close t
mmap 1M 4K rw- shared|fixed t 0
mmap 1M 4K rw- private|fixed|anon t 0
maps
",
        "L4 mmap = 0x0
L5 mmap = 0x1000
L6 mmap = 0x2000
L7 mmap = 0x4000
L8 mmap = -EACCES
L10 mmap = -EBADF
L11 mmap = 0x100000
L12 maps = 5
  00000000-00001000 rw-p 00000000 z
  00001000-00002000 rw-s 00000000 /dev/zero (deleted)
  00002000-00004000 rw-s 00000000 t
  00004000-00005000 r--s 00001000 r
  00100000-00101000 rw-p 00000000
",
    );
}

/// Errors come back as errno names, and an `mremap` can move a mapping inside the window.
#[test]
fn errors_and_mremap() {
    assert_transcript(
        "mmap 0 8K rw- private|anon|fixed
mmap 0 4K rw- private|anon|fixed_noreplace
mmap 1 4K rw- private|anon|fixed
mprotect 0 8K rw-|growsdown|growsup
mremap 0 4K 8K 0
mremap 0 4K 4K maymove|fixed 1M
mlock 4K 4K
mlock2 4K 4K onfault
munlock 4K 4K
mseal 4K 4K
munmap 4K 4K
smaps
",
        "L1 mmap = 0x0
L2 mmap = -EEXIST
L3 mmap = -EINVAL
L4 mprotect = -EINVAL
L5 mremap = -ENOMEM
L6 mremap = 0x100000
L7 mlock = 0
L8 mlock2 = 0
L9 munlock = 0
L10 mseal = 0
L11 munmap = -EPERM
L12 smaps = 2
  00001000-00002000 rw-p 00000000 | rd wr mr mw me ac sl
  00100000-00101000 rw-p 00000000 | rd wr mr mw me ac
",
    );
}

/// A file the runner cannot create ends the run as a runner failure, after the lines before.
#[test]
fn runner_failures_keep_the_lines_before() {
    let t = kernel("maps\nfile huge tmpfile 0xffffffffffffffff\nmaps\n");
    assert_eq!(t.entries, ["L1 maps = 0"]);
    let RunEnd::RunnerFailed(why) = &t.end else {
        panic!("{:?}", t.end)
    };
    assert!(why.starts_with("L2 file: ftruncate: "), "{why}");
    assert_eq!(t.end.exit_code(), 4);
}

/// A scenario that takes the process to `vm.max_map_count` still prints its maps and smaps: the
/// runner reads them into room it set aside before the scenario ran, since at the limit it can
/// create no mapping of its own (issue 10: "cannot read /proc/self/maps: out of memory").
#[test]
fn maps_at_the_map_limit() {
    let max: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Every other page read-only makes one VMA a page: enough pages to pass the limit.
    let pages = max + 64;
    let mut text = format!(
        "window {}K\nmmap 0 {}K rw- private|anon|fixed|noreserve\n",
        pages * 4 + 64,
        pages * 4
    );
    for p in (1..pages).step_by(2) {
        text.push_str(&format!("mprotect {}K 4K r--\n", p * 4));
    }
    text.push_str("maps\nsmaps\n");
    let t = kernel(&text);
    assert_eq!(t.end, RunEnd::Finished, "the run ended early:\n{}", tail(&t.text()));
    let out = t.text();
    assert!(out.contains("mprotect = -ENOMEM"), "the limit was never reached");
    let counts: Vec<u64> = out
        .lines()
        .filter(|l| l.contains(" maps = ") || l.contains(" smaps = "))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{}", tail(&out));
    assert_eq!(counts[0], counts[1]);
    assert!(
        counts[0] + 200 > max,
        "only {} VMAs in the window (limit {max})",
        counts[0]
    );
}

/// The last lines of a long transcript.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

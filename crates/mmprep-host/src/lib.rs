//! The host-kernel runner: runs a scenario with real system calls and returns its transcript.
//!
//! The host kernel is mmprep's oracle (`docs/scenario-format.md`): a scenario that uses only
//! what a real kernel has must print the same transcript here and on the engine. [`run`] forks a
//! child process; the child (`child.rs`) makes every `mmap`, `munmap`, `mprotect`... of the
//! scenario inside the window `[W, W + window)`, touches memory through fault-catching probes
//! (`probe.rs`), reads `/proc/self/maps` and `smaps` ([`procfs`]) and writes each result line
//! into a pipe; the parent collects the lines and the child's exit status into a [`Transcript`].
//! A separate process keeps the scenario's mappings, signals and descriptors away from the
//! caller, and makes `fork` scenarios possible.
//!
//! [`host_profile`] reads the machine facts the engine needs to answer like this kernel,
//! [`diff`] compares the two transcripts, and [`fuzz`] does both for generated scenarios.
//! [`import`] builds an engine address space from a live process's `/proc/PID` files;
//! [`trace`] runs a real program under ptrace and answers each of its memory calls on the
//! engine too; [`replay`] saves such a run and runs it again on the engine alone.
//!
//! The kernel side needs Linux on x86_64 (the probes are x86_64 instructions, the rest is
//! Linux's API). Elsewhere the crate still builds, so that the engine-only commands do: [`run`]
//! then ends [`RunEnd::RunnerFailed`] saying it needs Linux, and [`trace`] is absent.
//!
//! # System calls and `/proc`: which crate, and why
//!
//! The field's crates do the work wherever they can express the call unchanged:
//!
//! - **rustix** for every memory call of a scenario (`mmap`, `munmap`, `mprotect`, `madvise`,
//!   `mlock*`, `mremap`...), pipes, rlimits, `statfs`/`fstatvfs`, `pidfd_getfd` and `fcntl`
//!   (the tracer's view of a traced program's descriptor). `sys.rs` lists the four calls that
//!   take a raw path instead (`libc::syscall` with libc's *named* numbers, never a literal):
//!   an `mmap` of descriptor `-1` without `MAP_ANONYMOUS`, an advice rustix has no variant
//!   for, `mremap` with `MREMAP_DONTUNMAP` alone, and `mseal`, which rustix 1.1 lacks.
//! - **procfs** for `/proc/PID/stat`, `limits`, `status`, `/proc/meminfo`, `/proc/cpuinfo` and
//!   `vm.max_map_count`. Our own reader ([`procfs`]) stays for maps and smaps, for two reasons
//!   given in its module doc (no allocation at the map limit; `VmFlags` codes `procfs` drops),
//!   and `tests/procfs_crate.rs` proves it field by field against the crate. One-number files
//!   `procfs` has no reader for (`overcommit_memory`, `mmap_min_addr`, `personality`...) are
//!   read with `str::parse`.
//!
//! What stays on libc, each call with a `// SAFETY:` line where it is made:
//!
//! | call | where | why not rustix |
//! | --- | --- | --- |
//! | `ptrace`, `waitpid` with `__WALL` and the ptrace event bits | `trace.rs`, `exec.rs` | rustix has no ptrace API |
//! | `fork`, `_exit` | `sys.rs` | rustix has them only in its unstable runtime module, and its fork skips glibc's fork handlers |
//! | `execvp`, `personality`, `raise` | `trace.rs`, `exec.rs` (the traced child before `execve`) | no `PATH` search or `personality` in rustix |
//! | `sigaction`, `pthread_sigmask`, `signal`, `raise` | `probe.rs` | signal handlers are in rustix's runtime module only |
//! | `close_range` | `sys.rs` | not in rustix 1.1 |
//! | `mallopt` | `child.rs` | a glibc tunable, not a system call |

pub mod bench;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod child;
pub mod diff;
pub mod exec;
pub mod fuzz;
#[cfg(target_os = "linux")]
pub mod huge_alloc;
pub mod import;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod probe;
pub mod procfs;
mod profile;
pub mod replay;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod sys;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod trace;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use std::fs::File;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use std::io::Read;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use std::path::{Path, PathBuf};

use mmprep_scenario::script::{FileKind, Op, Script, Step};
use mmprep_scenario::{RunEnd, Transcript};

pub use profile::host_profile;

/// Runs `script` on the host kernel in a child process and returns the transcript it printed.
///
/// A script with engine-only lines (`file ... driver`, `events`) runs nothing and ends
/// [`RunEnd::Unsupported`]. Otherwise the lines before a parse error run and the run ends
/// [`RunEnd::ParseError`]; a window that is already mapped ends [`RunEnd::WindowTaken`] with no
/// entries; a runner problem (a file it cannot create, an errno mmprep does not know, the
/// child dying) ends [`RunEnd::RunnerFailed`] after the entries printed so far.
pub fn run(script: &Script) -> Transcript {
    run_measured(script).transcript
}

/// A kernel run, with what the runner child measured about itself.
#[derive(Clone, Debug)]
pub struct KernelRun {
    pub transcript: Transcript,
    /// The runner child's own VMAs (outside the window) when its steps began, if it got that
    /// far. They count against `vm.max_map_count` with the scenario's: an engine run meant to
    /// match this one at the map limit takes it as its profile's `unmodelled_map_count`
    /// ([`host_profile`] counts the calling process, which has a few fewer).
    pub runner_vmas: Option<u64>,
}

/// [`run`], also returning the runner child's own VMA count ([`KernelRun::runner_vmas`]).
pub fn run_measured(script: &Script) -> KernelRun {
    if let Some(step) = script.engine_only() {
        let reason = unsupported_reason(script, step);
        return KernelRun {
            transcript: Transcript {
                entries: Vec::new(),
                end: RunEnd::Unsupported {
                    line: step.line,
                    reason,
                },
            },
            runner_vmas: None,
        };
    }
    run_in_child(script).unwrap_or_else(|why| KernelRun {
        transcript: Transcript {
            entries: Vec::new(),
            end: RunEnd::RunnerFailed(why),
        },
        runner_vmas: None,
    })
}

/// Why the kernel runner cannot run `step`.
fn unsupported_reason(script: &Script, step: &Step) -> String {
    match &step.op {
        Op::File { id } => match script.files.get(*id) {
            Some(decl) => match &decl.kind {
                FileKind::Driver { driver, .. } => format!(
                    "file `{}` is served by driver `{driver}`, which only the engine has",
                    decl.name
                ),
                FileKind::C { path, .. } => format!(
                    "file `{}` is served by the C driver `{path}`, which only the engine can load",
                    decl.name
                ),
                _ => format!("file `{}` needs the engine", decl.name),
            },
            None => "a file that only the engine has".into(),
        },
        Op::Events => "`events` shows driver hooks, which only the engine has".into(),
        op => format!("`{}` runs only on the engine", op.verb()),
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn run_in_child(_: &Script) -> Result<KernelRun, String> {
    Err("the kernel runner needs Linux on x86_64".into())
}

/// Forks the runner child, collects its output and how it ended.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn run_in_child(script: &Script) -> Result<KernelRun, String> {
    let needs_tmpdir = script.files.iter().any(|f| matches!(f.kind, FileKind::Tmpfile { .. }));
    let tmpdir = if needs_tmpdir { Some(TempDir::new()?) } else { None };
    let (read_end, write_end) = sys::pipe().map_err(|e| format!("cannot create a pipe: {}", sys::errno_text(e)))?;
    let pid = match sys::fork() {
        Ok(sys::Forked::Child) => {
            drop(read_end);
            child::main(script, write_end, tmpdir.as_ref().map(TempDir::path))
        }
        Ok(sys::Forked::Parent(pid)) => pid,
        Err(e) => return Err(format!("cannot fork: {}", sys::errno_text(e))),
    };
    drop(write_end);
    let mut pipe = File::from(read_end);
    let mut output = Vec::new();
    let read = pipe.read_to_end(&mut output);
    drop(pipe);
    let child_end = sys::wait(pid);
    drop(tmpdir);
    read.map_err(|e| format!("cannot read the runner child's output: {e}"))?;
    let child_end = child_end.map_err(|e| format!("cannot wait for the runner child: {}", sys::errno_text(e)))?;
    let (entries, failure, runner_vmas) = split_output(&String::from_utf8_lossy(&output));
    let end = match (failure, child_end) {
        (Some(message), _) => RunEnd::RunnerFailed(message),
        (None, sys::ChildEnd::Exited(child::EXIT_FINISHED)) => RunEnd::Finished,
        (None, sys::ChildEnd::Exited(child::EXIT_PARSE_ERROR)) => match &script.error {
            Some(error) => RunEnd::ParseError(error.clone()),
            None => RunEnd::RunnerFailed("the runner child reported a parse error".into()),
        },
        (None, sys::ChildEnd::Exited(child::EXIT_WINDOW_TAKEN)) => RunEnd::WindowTaken,
        (None, sys::ChildEnd::Exited(status)) => {
            RunEnd::RunnerFailed(format!("the runner child exited with status {status}"))
        }
        (None, sys::ChildEnd::Signaled(signal)) => {
            RunEnd::RunnerFailed(format!("the runner child was killed by {}", sys::signal_name(signal)))
        }
    };
    Ok(KernelRun {
        transcript: Transcript { entries, end },
        runner_vmas,
    })
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
/// Splits the child's output into transcript entries (a line starting with two spaces belongs
/// to the entry before it), the runner-failure message, if one came, and the child's own VMA
/// count.
fn split_output(output: &str) -> (Vec<String>, Option<String>, Option<u64>) {
    let mut entries: Vec<String> = Vec::new();
    let mut failure = None;
    let mut vmas = None;
    for line in output.split_terminator('\n') {
        if let Some(message) = line.strip_prefix(child::FAILURE_PREFIX) {
            failure.get_or_insert_with(|| message.to_string());
        } else if let Some(count) = line.strip_prefix(child::VMAS_PREFIX) {
            // A forked scenario child does not send it again; the first one counts.
            vmas = vmas.or(count.parse().ok());
        } else if let (true, Some(last)) = (line.starts_with("  "), entries.last_mut()) {
            last.push('\n');
            last.push_str(line);
        } else {
            entries.push(line.to_string());
        }
    }
    (entries, failure, vmas)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
/// A fresh directory for a run's `tmpfile` files, removed (best effort) when dropped.
struct TempDir(PathBuf);

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
impl TempDir {
    fn new() -> Result<TempDir, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("mmprep-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
        }
        Err(format!("cannot create a fresh directory in {}", base.display()))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn output_lines_become_entries() {
        let (entries, failure, vmas) =
            split_output("!runner-vmas 31\nL1 maps = 1\n  00000000-00001000 rw-p 00000000\nL2 munmap = 0\n");
        assert_eq!(
            entries,
            ["L1 maps = 1\n  00000000-00001000 rw-p 00000000", "L2 munmap = 0"]
        );
        assert_eq!((failure, vmas), (None, Some(31)));
        let (entries, failure, vmas) = split_output("L1 fork = 0\n!runner-failed L2 file: no\n");
        assert_eq!(entries, ["L1 fork = 0"]);
        assert_eq!((failure.as_deref(), vmas), (Some("L2 file: no"), None));
    }

    /// The runner child reports its own VMAs; it has at least those of this process, which
    /// forked it (what `host_profile` counts), and a few more for the room it keeps.
    #[test]
    fn the_runner_counts_its_own_vmas() {
        let script = mmprep_scenario::parse("window 64M\nmmap 0 4K rw- private|anon|fixed\n");
        let before = host_profile().unmodelled_map_count;
        let run = run_measured(&script);
        assert_eq!(run.transcript.end, RunEnd::Finished, "{:?}", run.transcript);
        let child = run.runner_vmas.expect("the child reports its VMAs");
        // This test binary runs other tests' threads meanwhile (their stacks come and go), so
        // the two counts are not taken at one moment: allow a few.
        assert!(
            child + 8 >= before && child <= before + 16,
            "child {child}, this process {before}"
        );
        eprintln!("runner child: {child} VMAs; this process: {before}");
    }
}

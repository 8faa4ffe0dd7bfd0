//! `mmprep`, the command line: run scenarios on the host kernel, on the engine, or both.
//!
//! A scenario (`shared/scenario-format.md`) is a script of memory-map operations; its transcript
//! must be the same on the engine and on the real kernel. This binary is glue only: parsing is
//! `mmprep_scenario::parse`, the kernel run is `mmprep_host::run`, the engine run is
//! `mmprep_scenario::engine::run`, the comparison is `mmprep_host::diff`, and `fuzz` is
//! `mmprep_host::fuzz` over `mmprep_scenario::generate`.
//!
//! Exit status (the first non-zero one when several files are given):
//! 0 success (`diff`, `fuzz`: the transcripts are the same), 1 a difference (`diff`, `fuzz`)
//! or a runner or I/O failure, 2 a line that does not parse, 3 a line the runner does not
//! support (the kernel runner for engine-only lines), 4 the window is already mapped.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mmprep::Profile;
use mmprep_scenario::{RunEnd, Script, Transcript};

/// How many differing entries `diff` shows per file.
const DIFF_LIMIT: usize = 10;

#[derive(Parser)]
#[command(name = "mmprep", version, about = "The Linux mmap layer, rebuilt in userspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A guided walk through merging, splitting and mmap_prepare, checked against the host kernel
    Tour,
    /// List the example drivers that `file NAME driver DRIVER [KEY=VALUE ...]` lines can open
    Drivers,
    /// Time one identical stream of mmap/munmap/mprotect calls on the engine and on the host kernel
    Bench {
        /// VMA counts to measure, comma separated (the kernel side needs vm.max_map_count above each)
        #[arg(long, value_delimiter = ',', default_value = "1000,64000")]
        vmas: Vec<u64>,
        /// Pairs of calls in the stream (each pair leaves the layout as it was)
        #[arg(long, default_value_t = 20_000)]
        pairs: u64,
    },
    /// Run scenarios on the host kernel with real system calls and print their transcripts
    Kernel {
        /// Scenario files
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run scenarios on the mmprep engine and print their transcripts
    Run {
        /// Scenario files
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The machine facts the engine assumes
        #[arg(long, value_enum, default_value_t = ProfileChoice::Host)]
        profile: ProfileChoice,
    },
    /// Run scenarios on the kernel and on the engine and show where the transcripts differ
    Diff {
        /// Scenario files
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The machine facts the engine assumes
        #[arg(long, value_enum, default_value_t = ProfileChoice::Host)]
        profile: ProfileChoice,
    },
    /// Import a live process from /proc/PID and print the engine's maps of it
    ///
    /// The engine's address space is built from one snapshot of /proc/PID/smaps (plus stat,
    /// limits and personality); its maps text is printed and compared with the kernel's in that
    /// snapshot. Exit status 0 if they are the same, 1 if they differ or the import fails.
    Import {
        /// The process
        pid: u32,
        /// Print each VMA's VmFlags after its maps line
        #[arg(long)]
        flags: bool,
    },
    /// Run generated scenarios on the kernel and on the engine and show the first that differs
    ///
    /// Each seed from S to S+N-1 gives one random scenario; the engine runs it with this
    /// machine's profile. The first scenario whose transcripts differ is printed with the
    /// differing entries, then shrunk by deleting lines while the difference stays. Exit status
    /// 1 if one differs, 0 if none does.
    Fuzz {
        /// How many seeds to try
        #[arg(long, value_name = "N")]
        seeds: u64,
        /// The first seed
        #[arg(long, value_name = "S", default_value_t = 0)]
        start: u64,
    },
}

/// Which [`Profile`] the engine runs with.
#[derive(Clone, Copy, ValueEnum)]
enum ProfileChoice {
    /// This machine, read from /proc and /sys (what the kernel runner sees)
    Host,
    /// The project's reference host (Linux 6.18 x86_64, root)
    Reference,
}

impl ProfileChoice {
    fn profile(self) -> Profile {
        match self {
            ProfileChoice::Host => mmprep_host::host_profile(),
            ProfileChoice::Reference => Profile::reference_host(),
        }
    }
}

/// What to do with each scenario file.
enum Mode {
    Kernel,
    Engine(Profile),
    Diff(Profile),
}

impl Mode {
    /// Runs one parsed scenario; `text` is its source, for `diff`'s report.
    fn run(&self, path: &Path, text: &str, script: &Script) -> Report {
        match self {
            Mode::Kernel => print_run(mmprep_host::run(script)),
            Mode::Engine(profile) => print_run(mmprep_scenario::engine::run(script, profile)),
            Mode::Diff(profile) => diff(path, text, script, profile),
        }
    }
}

fn main() -> ExitCode {
    let (files, mode) = match Cli::parse().command {
        Command::Tour => return tour(),
        Command::Drivers => return drivers(),
        Command::Bench { vmas, pairs } => return bench(&vmas, pairs),
        Command::Fuzz { seeds, start } => return fuzz(start, seeds),
        Command::Import { pid, flags } => return import(pid, flags),
        Command::Kernel { files } => (files, Mode::Kernel),
        Command::Run { files, profile } => (files, Mode::Engine(profile.profile())),
        Command::Diff { files, profile } => (files, Mode::Diff(profile.profile())),
    };
    let mut status = 0;
    for path in &files {
        let mut report = match std::fs::read_to_string(path) {
            Ok(text) => mode.run(path, &text, &mmprep_scenario::parse(&text)),
            Err(e) => Report::failed(format!("cannot read it: {e}"), 1),
        };
        if files.len() > 1 && !matches!(mode, Mode::Diff(_)) {
            report.stdout.insert_str(0, &format!("==> {} <==\n", path.display()));
        }
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(report.stdout.as_bytes()).and_then(|()| stdout.flush()) {
            // A closed pipe (`mmprep kernel x | head`) is a normal way to stop reading.
            if e.kind() == io::ErrorKind::BrokenPipe {
                break;
            }
            eprintln!("mmprep: cannot write to stdout: {e}");
            return ExitCode::from(1);
        }
        if let Some(message) = &report.stderr {
            eprintln!("mmprep: {}: {message}", path.display());
        }
        if status == 0 {
            status = report.status;
        }
    }
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

/// What one file printed and its exit status.
struct Report {
    stdout: String,
    stderr: Option<String>,
    status: i32,
}

impl Report {
    fn failed(message: String, status: i32) -> Report {
        Report {
            stdout: String::new(),
            stderr: Some(message),
            status,
        }
    }
}

/// `kernel` and `run`: the transcript, and how the run ended.
fn print_run(t: Transcript) -> Report {
    Report {
        stdout: t.text(),
        stderr: t.end.message(),
        status: t.end.exit_code(),
    }
}

/// `diff`: runs both sides and compares them.
fn diff(path: &Path, text: &str, script: &Script, profile: &Profile) -> Report {
    let kernel = mmprep_host::run(script);
    if let RunEnd::Unsupported { .. } | RunEnd::WindowTaken | RunEnd::RunnerFailed(_) = kernel.end {
        let message = kernel.end.message().unwrap_or_default();
        return Report::failed(format!("the kernel run failed: {message}"), kernel.end.exit_code());
    }
    let engine = mmprep_scenario::engine::run(script, profile);
    let comparison = mmprep_host::diff::compare(&kernel, &engine);
    if comparison.is_same() {
        Report {
            stdout: format!("same: {}\n", path.display()),
            stderr: kernel.end.message(),
            status: kernel.end.exit_code(),
        }
    } else {
        Report {
            stdout: format!("differs: {}\n{}", path.display(), comparison.report(text, DIFF_LIMIT)),
            stderr: None,
            status: 1,
        }
    }
}

/// `import`: the engine's maps of a live process, checked against the kernel's.
fn import(pid: u32, flags: bool) -> ExitCode {
    use mmprep_host::import::{engine_maps_with_flags, import_pid, maps_of, maps_with_flags};
    let imported = match import_pid(pid, None) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("mmprep import: {e}");
            return ExitCode::from(1);
        }
    };
    if imported.randomized {
        eprintln!("note: process {pid} runs with address randomisation; mmap_base is not known");
    }
    let mm = &imported.mm;
    let engine = mm.maps();
    let soft_dirty = mm.profile().soft_dirty;
    let mut out = String::new();
    for (line, v) in engine.lines().zip(mm.vmas()) {
        out.push_str(line);
        if flags {
            let codes: Vec<&str> = v.flags().smaps_codes(soft_dirty).collect();
            out.push_str(&format!("\n    VmFlags: {}", codes.join(" ")));
        }
        out.push('\n');
    }
    let _ = io::stdout().write_all(out.as_bytes());
    let kernel = maps_of(&imported.smaps);
    let same_flags = engine_maps_with_flags(mm) == maps_with_flags(&imported.smaps);
    if engine == kernel && same_flags {
        eprintln!("same as the kernel: {} VMAs", mm.vmas().count());
        return ExitCode::SUCCESS;
    }
    eprintln!("differs from the kernel's maps:");
    let (e, k): (Vec<&str>, Vec<&str>) = (engine.lines().collect(), kernel.lines().collect());
    for line in k.iter().filter(|l| !e.contains(l)) {
        eprintln!("- {line}");
    }
    for line in e.iter().filter(|l| !k.contains(l)) {
        eprintln!("+ {line}");
    }
    if !same_flags {
        eprintln!("(VmFlags differ)");
    }
    ExitCode::from(1)
}

/// `fuzz`: the seeds `start..start + seeds` through `mmprep_host::fuzz`, until one differs.
fn fuzz(start: u64, seeds: u64) -> ExitCode {
    let profile = mmprep_host::host_profile();
    let config = mmprep_scenario::generate::GenConfig::default();
    let range = (0..seeds).map(|i| start.wrapping_add(i));
    match mmprep_host::fuzz::search(range, &config, &profile, 1).pop() {
        None => {
            println!("same: {seeds} seeds from {start}");
            ExitCode::SUCCESS
        }
        Some(failure) => {
            print!("{}", failure.report(DIFF_LIMIT));
            let shrunk = mmprep_host::fuzz::shrink(&failure, &profile);
            print!("--- shrunk ---\n{}", shrunk.report(DIFF_LIMIT));
            ExitCode::from(1)
        }
    }
}

/// `tour`: the walk on the engine, then the same scenario on the host kernel.
fn tour() -> ExitCode {
    let profile = mmprep_host::host_profile();
    print!("{}", mmprep_scenario::tour::run(&profile));
    let script = mmprep_scenario::parse(&mmprep_scenario::tour::scenario());
    let kernel = mmprep_host::run(&script);
    let engine = mmprep_scenario::engine::run(&script, &profile);
    let comparison = mmprep_host::diff::compare(&kernel, &engine);
    if comparison.is_same() {
        println!(
            "\nThe host kernel ran the same scenario and printed the same {} lines: the engine agrees.",
            kernel.entries.len()
        );
        println!("Write your own scenario (see shared/scenario-format.md) and check it with `mmprep diff FILE`.");
        ExitCode::SUCCESS
    } else {
        println!(
            "\nThe host kernel printed something else:\n{}",
            comparison.report(&mmprep_scenario::tour::scenario(), DIFF_LIMIT)
        );
        ExitCode::from(1)
    }
}

/// `bench`: the engine and the kernel on the same stream, as a ratio.
fn bench(vmas: &[u64], pairs: u64) -> ExitCode {
    let profile = mmprep_host::host_profile();
    println!(
        "{:>8} {:>8} {:>14} {:>14} {:>14}",
        "VMAs", "calls", "engine ns/call", "kernel ns/call", "kernel/engine"
    );
    for &n in vmas {
        let w = mmprep_host::bench::Workload {
            vmas: n,
            pairs,
            seed: 1,
        };
        let (engine, kernel) = match (
            mmprep_host::bench::run_engine(&w, &profile),
            mmprep_host::bench::run_kernel(&w),
        ) {
            (Ok(e), Ok(k)) => (e, k),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("mmprep: bench with {n} VMAs: {e}");
                return ExitCode::from(1);
            }
        };
        let calls = 2 * pairs;
        let per = |d: std::time::Duration| d.as_nanos() as f64 / calls as f64;
        println!(
            "{n:>8} {calls:>8} {:>14.0} {:>14.0} {:>14.1}",
            per(engine),
            per(kernel),
            kernel.as_secs_f64() / engine.as_secs_f64().max(1e-12)
        );
    }
    ExitCode::SUCCESS
}

/// `drivers`: one line per example driver, then its parameters.
fn drivers() -> ExitCode {
    for d in mmprep_drivers::registry::drivers() {
        println!("{:<10} {}", d.name, d.summary);
        for p in d.params {
            println!("{:<10}   {p}", "");
        }
    }
    ExitCode::SUCCESS
}

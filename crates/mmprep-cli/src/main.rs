//! `mmprep`, the command line: run scenarios on the host kernel, on the engine, or both.
//!
//! A scenario (`docs/scenario-format.md`) is a script of memory-map operations; its transcript
//! must be the same on the engine and on the real kernel. This binary is glue only: parsing is
//! `mmprep_scenario::parse`, the kernel run is `mmprep_host::run`, the engine run is
//! `mmprep_scenario::engine::run`, the comparison is `mmprep_host::diff`, and `fuzz` is
//! `mmprep_host::fuzz` over `mmprep_scenario::generate`.
//!
//! Exit status ([`mmprep_scenario::exit`]; the first non-zero one when several files are given):
//! 0 success (`diff`, `fuzz`, `tour`: the transcripts are the same), 1 the transcripts differ,
//! 2 a usage error, 3 a bad scenario (a line that does not parse, an empty file, a file that
//! cannot be read or is not UTF-8), 4 a host failure (the kernel runner failed, the window is
//! already mapped), 5 a line the runner does not support (the kernel runner for engine-only lines).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use mmprep::Profile;
use mmprep_scenario::{RunEnd, Script, Transcript, exit};
use settings::Setting;

mod settings;

/// Large blocks (the engine's VMA arenas among them) on transparent huge pages: a random
/// operation on a million VMAs reads memory that is never in cache, and each read also missed
/// the TLB on 4 KiB pages (`mmprep_host::huge_alloc`, `docs/performance.md`).
/// `MMPREP_HUGE_PAGES=0` turns it off.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mmprep_host::huge_alloc::HugePageAlloc = mmprep_host::huge_alloc::HugePageAlloc;

mod json;
mod progress;
mod reference;
mod stream;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod trace;

/// How many differing entries `diff` shows per file.
const DIFF_LIMIT: usize = 10;

/// `mmprep --version`: the crate's version and the kernel the engine models.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (models {} host behaviour)",
        env!("CARGO_PKG_VERSION"),
        mmprep_scenario::MODELLED_KERNEL
    )
});

/// The end of `--help`: the exit statuses, as `docs/scenario-format.md` lists them.
const EXIT_STATUS_HELP: &str = "\
Exit status (the first non-zero one when several files are given):
  0  success; diff, fuzz, tour: the transcripts are the same
  1  the transcripts differ
  2  usage error (a wrong command line)
  3  bad scenario: a line that does not parse, an empty scenario, a file that cannot be read or is not UTF-8
  4  host failure: the kernel runner failed, or the window is already mapped
  5  a line the runner does not support (engine-only lines on the kernel)

A FILE of `-` reads the scenario from standard input.";

#[derive(Parser)]
#[command(
    name = "mmprep",
    version = VERSION.as_str(),
    about = "The Linux mmap layer, rebuilt in userspace",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A guided walk through merging, splitting and mmap_prepare, checked against the host kernel
    Tour,
    /// List the example drivers that `file NAME driver DRIVER [KEY=VALUE ...]` lines can open (and how to load a C one)
    Drivers,
    /// Time one identical stream of operations on the engine and on the host kernel
    #[command(after_help = BENCH_HELP)]
    Bench {
        /// Which stream to time
        #[arg(long, value_enum, default_value_t = Stream::Pairs)]
        stream: Stream,
        /// VMA counts to measure, comma separated (the kernel side needs vm.max_map_count above
        /// each for `pairs`, above twice each for `perf`)
        #[arg(long, value_delimiter = ',', default_value = "1000,64000")]
        vmas: Vec<u64>,
        /// `pairs` stream: pairs of calls (each pair leaves the layout as it was)
        #[arg(long, default_value_t = 20_000)]
        pairs: u64,
        /// `perf` stream: random operations after the layout (the ns/op columns are the whole run's
        /// time less the layout's, over OPS)
        #[arg(long, default_value_t = 200_000)]
        ops: u64,
        /// `perf` stream: the seed of its random operations
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `perf` stream: print the scenario for the first --vmas count and time nothing
        /// (`mmprep bench --stream perf --vmas 1000 --emit > perf.scn`)
        #[arg(long)]
        emit: bool,
        /// `perf` stream: run each side (and each layout alone) this many times and keep the
        /// fastest, for steadier ns/op on a busy machine
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// Engine-only change to the machine facts, repeatable (see `mmprep run --help`)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = settings::parse)]
        set: Vec<Setting>,
        /// Print one JSON object (schema `mmprep/1`, docs/json.md) instead of the text
        #[arg(long)]
        json: bool,
    },
    /// Run scenarios on the host kernel with real system calls and print their transcripts
    #[command(after_help = EXIT_STATUS_HELP)]
    Kernel {
        /// Scenario files (`-` for standard input)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print one JSON object (schema `mmprep/1`, docs/json.md) instead of the text
        #[arg(long)]
        json: bool,
    },
    /// Run scenarios on the mmprep engine and print their transcripts
    #[command(after_help = EXIT_STATUS_HELP)]
    Run {
        /// Scenario files (`-` for standard input)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The machine facts the engine assumes
        #[arg(long, value_enum, default_value_t = ProfileChoice::Host)]
        profile: ProfileChoice,
        /// Change one machine fact for the engine only, repeatable: max_map_count=N,
        /// rlimit_as/rlimit_data/rlimit_memlock/rlimit_stack=BYTES (K/M/G/T suffix or
        /// `unlimited`), overcommit=guess|always|never, arch=NAME (the guest architecture,
        /// docs/profiles.md), reserved=0xSTART-0xEND (a host-reserved range)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = settings::parse)]
        set: Vec<Setting>,
        /// Follow each failed call with `  why: ERRNO: reason (kernel/file.c:function)`: the
        /// engine's rule that failed and the kernel function that checks it
        #[arg(long)]
        why: bool,
        /// Build C drivers with AddressSanitizer and UBSan (restarts mmprep with the sanitizer runtime)
        #[arg(long)]
        sanitize: bool,
        /// Print one JSON object (schema `mmprep/1`, docs/json.md) instead of the text
        #[arg(long)]
        json: bool,
    },
    /// Run a scenario on the engine up to one line and say why that line's call gave its result
    ///
    /// Prints the line, its transcript entry and, for a failed call, the engine's reason and
    /// the kernel function behind it (as `run --why` does). Exit status 0 when the line ran,
    /// 2 when it is not a line that runs a call, 3 for a bad scenario.
    #[command(after_help = EXIT_STATUS_HELP)]
    Explain {
        /// The scenario file and the 1-based line (`examples/slots.scn:9`)
        #[arg(value_name = "FILE:LINE")]
        target: String,
        /// The machine facts the engine assumes
        #[arg(long, value_enum, default_value_t = ProfileChoice::Host)]
        profile: ProfileChoice,
    },
    /// Draw the address space of a scenario after each step, as SVG or as a stepping HTML page
    ///
    /// The scenario runs on the engine. VMAs lie on an address axis (their widths and the gaps
    /// between them log-scaled), coloured by kind (anonymous, file, shared, driver) and shaded
    /// by permissions; the merges, splits, new and unmapped ranges of the step are outlined,
    /// resident pages are a strip under each VMA, and the step's driver hook calls fill a side
    /// lane. `-o FILE.html` writes one self-contained page with every step (buttons, arrow
    /// keys, `#N` in the address); `-o FILE.svg` or no `-o` (SVG on standard output) draws one
    /// step: the last, or `--step N`. Several FILEs each become a page, `STEM.html`, in the
    /// directory `-o DIR` (default: the current one), and each page written is named on
    /// standard output. Exit status 0, 2 for a wrong `--step` or output name, 3 for a bad
    /// scenario, 4 when the output cannot be written.
    #[command(after_help = EXIT_STATUS_HELP)]
    Render {
        /// Scenario files (`-` for standard input)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Where to write: a name ending in .svg or .html (default: SVG on stdout); with several
        /// FILEs, a directory (default: the current one)
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// The 1-based step to draw in SVG (default: the last); steps are the lines that run
        #[arg(long, value_name = "N")]
        step: Option<usize>,
        /// The machine facts the engine assumes
        #[arg(long, value_enum, default_value_t = ProfileChoice::Host)]
        profile: ProfileChoice,
    },
    /// Run scenarios on the kernel and on the engine and show where the transcripts differ
    #[command(after_help = EXIT_STATUS_HELP)]
    Diff {
        /// Scenario files (`-` for standard input)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The machine facts the engine assumes
        #[arg(long, value_enum, default_value_t = ProfileChoice::Host)]
        profile: ProfileChoice,
        /// Change one machine fact for the engine only, repeatable: max_map_count=N,
        /// rlimit_as/rlimit_data/rlimit_memlock/rlimit_stack=BYTES (K/M/G/T suffix or
        /// `unlimited`), overcommit=guess|always|never, arch=NAME (the guest architecture,
        /// docs/profiles.md), reserved=0xSTART-0xEND (a host-reserved range)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = settings::parse)]
        set: Vec<Setting>,
        /// Print one JSON object (schema `mmprep/1`, docs/json.md) instead of the text
        #[arg(long)]
        json: bool,
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
    /// Run one C driver before and after a change (->mmap to ->mmap_prepare) through a battery of scenarios and show every difference
    ///
    /// Differences that mmap_prepare is meant to cause (the same pages in fewer VMAs: a mapping
    /// that now merges) are marked apart from regressions; hook calls that differ only in the
    /// hook's and the driver's names are not shown. Exit status 1 if there is a regression.
    DriverDiff {
        /// The driver before the change (a C file)
        old: PathBuf,
        /// The driver after the change (a C file)
        new: PathBuf,
        /// The struct file_operations to take: once for both, or twice (OLD's, then NEW's)
        #[arg(long, value_name = "SYMBOL")]
        fops: Vec<String>,
        /// A driver parameter KEY=VALUE, for both sides
        #[arg(long, value_name = "KEY=VALUE")]
        param: Vec<String>,
    },
    /// Run a program under ptrace and answer each of its memory calls on the engine too
    ///
    /// Randomisation off; each process is imported after its execve; every memory call's
    /// result is compared with the kernel's, and the whole maps every N calls and at each
    /// process's end. Exit status 0 without divergence, 1 with one, 4 if the program could not
    /// be traced, 6 if the kernel refuses ptrace.
    Trace {
        /// Print the report as one JSON object (schema `mmprep/1`, docs/json.md)
        #[arg(long)]
        json: bool,
        /// Save the trace for `mmprep replay`
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// Compare the whole maps every N memory calls (0: only at each process's end)
        #[arg(long, value_name = "N", default_value_t = 100)]
        check_every: u64,
        /// The program and its arguments
        #[arg(required = true, last = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Print docs/cli-reference.md, generated from this command tree
    #[command(hide = true)]
    CliReference,
    /// Run a saved trace again on the engine alone and check every recorded result
    Replay {
        /// A file written by `mmprep trace --save`
        file: PathBuf,
    },
    /// Run generated scenarios on the kernel and on the engine and show the first that differs
    ///
    /// Each seed from S to S+N-1 gives one random scenario; the engine runs it with this
    /// machine's profile. The first scenario whose transcripts differ is printed with the
    /// differing entries, then shrunk by deleting lines while the difference stays (with
    /// --proptest: scenarios of the proptest strategy, shrunk by proptest). Exit status
    /// 1 if one differs, 0 if none does.
    Fuzz {
        /// How many seeds to try
        #[arg(long, value_name = "N")]
        seeds: u64,
        /// The first seed
        #[arg(long, value_name = "S", default_value_t = 0)]
        start: u64,
        /// Bias the scenarios to transparent huge pages: a grid of four 2 MiB blocks, ranges
        /// that fit a block or just miss it, huge-page advice, populate and collapse
        #[arg(long)]
        thp: bool,
        /// Print the generated scenarios instead of running them
        #[arg(long)]
        print: bool,
        /// Print one JSON object (schema `mmprep/1`, docs/json.md) instead of the text
        #[arg(long)]
        json: bool,
        /// Generate with the proptest strategy instead: N cases from proptest seed S, a
        /// difference shrunk by proptest (fewer operations, smaller ranges, simpler flags)
        #[arg(long)]
        proptest: bool,
    },
}

/// Which stream `bench` times.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stream {
    /// Seeded pairs of mmap+munmap or mprotect+mprotect that keep N VMAs; the calls alone are timed
    Pairs,
    /// Issue 8's perf stream (2N VMAs, then --ops random mprotect toggles, munmap+mmap and
    /// madvise pairs), run whole as `mmprep run` and `mmprep kernel` run a file
    Perf,
}

/// The end of `bench --help`.
const BENCH_HELP: &str = "\
Streams:
  pairs  the engine's Mm and the kernel's system calls on one seeded stream of call pairs; per-call
         nanoseconds of the stream alone (the layout is not timed)
  perf   the perf stream as a scenario: 2*VMAS one-page VMAs (every other page read-only), then
         OPS random operations. Each side is timed whole, parsing and printing included: the
         engine on the code `mmprep run FILE` runs (the stream written to a temporary file,
         then read, parsed, run and printed as `mmprep run` does, the transcript kept in
         memory), the kernel as `mmprep kernel FILE` (in its child).
         The transcripts must be identical. When 2*VMAS does not fit under this machine's
         vm.max_map_count, the kernel side is skipped and the engine runs alone with a
         max_map_count raised to fit (the output says so). Each side also runs the layout
         alone (the same stream with --ops 0), and ns/op is (whole - layout) / OPS: the cost
         of one op at that VMA count, so that `--vmas 1000,1000000` shows how it grows.
         --emit prints the scenario instead, to run it with `mmprep run` / `mmprep kernel`.

Memory: the mmprep command puts blocks of 2 MiB and more (the engine's VMA arenas) on
transparent huge pages; MMPREP_HUGE_PAGES=0 runs it on the system allocator alone, to see
what huge pages bring at large VMA counts.";

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
    /// The profile, whether C drivers are built with the sanitizers, and `run --why`.
    Engine {
        profile: Profile,
        sanitize: bool,
        why: bool,
    },
    Diff(Profile),
}

impl Mode {
    /// Runs one parsed scenario; `text` is its source, for messages and `diff`'s report.
    /// `json`: the report's per-line entries are wanted (`--json`); a text run skips building
    /// them, which cost a quarter of a long run's time.
    fn run(&self, input: &Input, script: &Script, json: bool) -> Report {
        match self {
            Mode::Kernel => print_run(input, mmprep_host::run(script), json),
            Mode::Engine { profile, sanitize, why } => {
                let options = input.run_options(*sanitize);
                let t = match why {
                    false => mmprep_scenario::engine::run_with(script, profile, &options),
                    true => mmprep_scenario::engine::run_why(script, profile, &options),
                };
                print_run(input, t, json)
            }
            Mode::Diff(profile) => diff(input, script, profile),
        }
    }
}

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MMPREP_HUGE_PAGES").is_some_and(|v| v == "0") {
        mmprep_host::huge_alloc::disable();
    }
    let (files, mode, json) = match Cli::parse().command {
        Command::Tour => return tour(),
        Command::Drivers => return drivers(),
        Command::Bench {
            stream,
            vmas,
            pairs,
            ops,
            seed,
            emit,
            repeat,
            set,
            json,
        } => {
            if emit && stream != Stream::Perf {
                eprintln!("mmprep: bench --emit prints the perf stream: add --stream perf");
                return ExitCode::from(exit::USAGE);
            }
            let profile = settings::apply_all(mmprep_host::host_profile(), &set);
            if json && stream == Stream::Perf {
                eprintln!("mmprep: bench --json is for the pairs stream (the perf stream prints text)");
                return ExitCode::from(exit::USAGE);
            }
            return match stream {
                Stream::Pairs => bench(&vmas, pairs, &profile, json),
                Stream::Perf if emit => emit_perf(&vmas, ops, seed),
                Stream::Perf => bench_perf(&vmas, ops, seed, repeat, &profile, !set.is_empty()),
            };
        }
        Command::Fuzz {
            seeds,
            start,
            thp,
            print,
            json,
            proptest,
        } => return fuzz(start, seeds, thp, print, json, proptest),
        Command::Import { pid, flags } => return import(pid, flags),
        Command::DriverDiff { old, new, fops, param } => return driver_diff(&old, &new, &fops, &param),
        Command::Trace {
            json,
            save,
            check_every,
            cmd,
        } => {
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            return trace::trace(&cmd, json, save.as_deref(), check_every);
            #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
            return needs_linux("trace", (&cmd, json, save, check_every));
        }
        Command::Replay { file } => {
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            return trace::replay(&file);
            #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
            return needs_linux("replay", file);
        }
        Command::CliReference => {
            print!("{}", reference::markdown(&Cli::command()));
            return ExitCode::SUCCESS;
        }
        Command::Kernel { files, json } => (files, Mode::Kernel, json),
        Command::Render {
            files,
            output,
            step,
            profile,
        } => {
            return match files.as_slice() {
                [file] => render(file, output.as_deref(), step, &profile.profile()),
                _ => render_pages(&files, output.as_deref(), step, &profile.profile()),
            };
        }
        Command::Explain { target, profile } => return explain(&target, &profile.profile()),
        Command::Run {
            files,
            profile,
            set,
            why,
            sanitize,
            json,
        } => {
            if sanitize && let Err(status) = with_sanitizer_runtime() {
                return status;
            }
            let profile = settings::apply_all(profile.profile(), &set);
            (files, Mode::Engine { profile, sanitize, why }, json)
        }
        Command::Diff {
            files,
            profile,
            set,
            json,
        } => (files, Mode::Diff(settings::apply_all(profile.profile(), &set)), json),
    };
    run_files(&files, &mode, json)
}

/// `run`, `kernel` and `diff`: each file in turn, its text (or, with `json`, one document at
/// the end) on stdout, a progress bar on a terminal's stderr when there are several files.
fn run_files(files: &[PathBuf], mode: &Mode, json: bool) -> ExitCode {
    let command = match mode {
        Mode::Kernel => "kernel",
        Mode::Engine { .. } => "run",
        Mode::Diff(_) => "diff",
    };
    let bar = progress::bar(if files.len() > 1 { files.len() as u64 } else { 0 }, command);
    let mut results = Vec::new();
    let mut status = exit::OK;
    for path in files {
        bar.set_message(display_name(path));
        // `run` without `--json` prints as it goes: nothing holds the whole transcript.
        if !json && let Mode::Engine { profile, sanitize, why } = mode {
            let (file_status, written) = bar.suspend(|| stream_run(path, profile, *sanitize, *why, files.len() > 1));
            if status == exit::OK {
                status = file_status;
            }
            bar.inc(1);
            if let Err(e) = written {
                return stdout_failed(&e, status);
            }
            continue;
        }
        let mut report = match Input::read(path) {
            Ok(input) => {
                let script = mmprep_scenario::parse(&input.text);
                match &script.error {
                    // `diff` compares whole runs: a scenario that does not parse is not run at
                    // all, so that nothing (not `same:`) is printed before the error.
                    Some(error) if matches!(mode, Mode::Diff(_)) => {
                        let end = RunEnd::ParseError(error.clone());
                        let mut report = Report::failed(input.message(&end).unwrap_or_default(), end.exit_code());
                        report.json.end = json::End::from(&end);
                        report
                    }
                    _ => mode.run(&input, &script, json),
                }
            }
            Err(report) => report,
        };
        if files.len() > 1 && !matches!(mode, Mode::Diff(_)) {
            report
                .stdout
                .insert_str(0, &format!("==> {} <==\n", display_name(path)));
        }
        if status == exit::OK {
            status = report.status;
        }
        if json {
            report.json.name = display_name(path);
            report.json.status = report.status;
            report.json.message = report.stderr.clone();
            results.push(*report.json);
            report.stdout.clear();
        }
        let written = bar.suspend(|| {
            let mut stdout = io::stdout().lock();
            let written = stdout.write_all(report.stdout.as_bytes()).and_then(|()| stdout.flush());
            if written.is_ok()
                && let Some(message) = &report.stderr
            {
                eprintln!("mmprep: {message}");
            }
            written
        });
        bar.inc(1);
        if let Err(e) = written {
            return stdout_failed(&e, status);
        }
    }
    bar.finish_and_clear();
    if json {
        let mut doc = json::Document::new(command, status);
        doc.files = Some(results);
        return print_json(&doc, status);
    }
    ExitCode::from(status)
}

/// `run` of one file without `--json`, streamed ([`stream`]): the `==> FILE <==` header when
/// `header`, the transcript as it is made, then the stderr line. The file's exit status, and
/// the error if stdout could not be written (the run stops there).
fn stream_run(path: &Path, profile: &Profile, sanitize: bool, why: bool, header: bool) -> (u8, io::Result<()>) {
    let name = display_name(path);
    let mut stdout = io::stdout().lock();
    if header && let Err(e) = writeln!(stdout, "==> {name} <==") {
        return (exit::OK, Err(e));
    }
    let dir = (path != Path::new("-")).then(|| path.parent().unwrap_or(Path::new("")).to_path_buf());
    let mut input = Input {
        name,
        text: String::new(),
        dir,
    };
    let options = input.run_options(sanitize);
    let streamed = match (path != Path::new("-"))
        .then(|| stream::run_file(path, profile, &options, why, &mut stdout))
        .flatten()
    {
        Some(streamed) => streamed,
        // Standard input, or a file that cannot be read or is not UTF-8: read whole, which
        // gives the message of a bad file.
        None => match Input::read(path) {
            Ok(whole) => {
                input = whole;
                stream::run_text(&input.text, profile, &options, why, &mut stdout)
            }
            Err(report) => {
                drop(stdout);
                if let Some(message) = &report.stderr {
                    eprintln!("mmprep: {message}");
                }
                return (report.status, Ok(()));
            }
        },
    };
    drop(stdout);
    if let Some(e) = streamed.write_error {
        return (streamed.end.exit_code(), Err(e));
    }
    if !streamed.seen_content && streamed.end == RunEnd::Finished {
        // Nothing but blank lines and comments: nothing ran, as `Input::read` reports it.
        eprintln!(
            "mmprep: {}: empty scenario: no line other than blank lines and comments, nothing ran",
            input.name
        );
        return (exit::BAD_SCENARIO, Ok(()));
    }
    if let Some(message) = input.message(&streamed.end) {
        eprintln!("mmprep: {message}");
    }
    (streamed.end.exit_code(), Ok(()))
}

/// Prints `doc` as one line on stdout and ends with `status` (or [`exit::HOST_FAILED`] when
/// stdout cannot be written).
fn print_json(doc: &json::Document, status: u8) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(doc.to_line().as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::from(status),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(status),
        Err(e) => {
            eprintln!("mmprep: cannot write to stdout: {e}");
            ExitCode::from(exit::HOST_FAILED)
        }
    }
}

/// How a FILE argument is named in messages: `<stdin>` for `-`.
fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// One scenario's source text, the name messages give it and its folder.
struct Input {
    name: String,
    text: String,
    /// The folder `c` lines' paths are relative to (`None` for standard input: the current one).
    dir: Option<PathBuf>,
}

impl Input {
    /// Reads FILE (`-`: standard input). A file that cannot be read, is not UTF-8 or holds
    /// nothing but blank lines and comments is a bad scenario: nothing of it runs.
    fn read(path: &Path) -> Result<Input, Report> {
        let name = display_name(path);
        let bytes = if path == Path::new("-") {
            let mut bytes = Vec::new();
            io::stdin().lock().read_to_end(&mut bytes).map(|_| bytes)
        } else {
            std::fs::read(path)
        };
        let bytes = bytes.map_err(|e| Report::failed(format!("{name}: cannot read it: {e}"), exit::BAD_SCENARIO))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bytes = e.as_bytes();
            let valid = e.utf8_error().valid_up_to();
            let before = &bytes[..valid];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            // The bytes before it on its line are valid UTF-8 (they are before `valid`).
            let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
            Report::failed(
                format!(
                    "{name}:{line}:{column}: not UTF-8 (byte {:#04x}); a scenario is UTF-8 text, nothing ran",
                    bytes[valid]
                ),
                exit::BAD_SCENARIO,
            )
        })?;
        if is_empty_scenario(&text) {
            return Err(Report::failed(
                format!("{name}: empty scenario: no line other than blank lines and comments, nothing ran"),
                exit::BAD_SCENARIO,
            ));
        }
        let dir = (path != Path::new("-")).then(|| path.parent().unwrap_or(Path::new("")).to_path_buf());
        Ok(Input { name, text, dir })
    }

    /// The engine run's options: the scenario's folder, and `mmprep-c` for C drivers (built
    /// with the sanitizers if `sanitize`).
    fn run_options(&self, sanitize: bool) -> mmprep_scenario::engine::RunOptions {
        mmprep_scenario::engine::RunOptions {
            dir: self.dir.clone(),
            c_drivers: Some(std::sync::Arc::new(mmprep_c::CHost { sanitize })),
        }
    }

    /// The stderr line for how a run ended (`None` for a normal end), with the file name in
    /// front: `FILE:LINE:COLUMN: message` for a parse error.
    fn message(&self, end: &RunEnd) -> Option<String> {
        match end {
            // An error the engine runner found (an unknown driver) has no column: the line's
            // first token is where it starts.
            RunEnd::ParseError(e) if e.column == 0 => {
                let mut e = e.clone();
                e.column = self.first_column(e.line);
                Some(format!("{}:{}", self.name, RunEnd::ParseError(e).message()?))
            }
            RunEnd::ParseError(_) => Some(format!("{}:{}", self.name, end.message()?)),
            _ => Some(format!("{}: {}", self.name, end.message()?)),
        }
    }

    /// The 1-based column of the first token of 1-based line `line`.
    fn first_column(&self, line: usize) -> usize {
        let raw = self.text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
        raw.chars().take_while(|&c| c == ' ' || c == '\t').count() + 1
    }
}

/// Does `text` hold nothing but blank lines and comments (as the parser reads them)?
fn is_empty_scenario(text: &str) -> bool {
    text.lines().all(|line| {
        let content = line.split('#').next().unwrap_or_default();
        content.split([' ', '\t']).all(str::is_empty)
    })
}

/// What one file printed, its stderr line (file name included) and its exit status, and the
/// same for `--json` (its name, status and message are filled in by the caller).
struct Report {
    stdout: String,
    stderr: Option<String>,
    status: u8,
    json: Box<json::FileResult>,
}

impl Report {
    /// A file that did not run (`end` [`json::End::NotRun`] until the caller says otherwise).
    fn failed(message: String, status: u8) -> Report {
        Report {
            stdout: String::new(),
            stderr: Some(message),
            status,
            json: file_result(json::End::NotRun, Vec::new()),
        }
    }
}

/// A [`json::FileResult`] without its name, status and message.
fn file_result(end: json::End, entries: Vec<json::Entry>) -> Box<json::FileResult> {
    Box::new(json::FileResult {
        name: String::new(),
        status: 0,
        end,
        message: None,
        entries,
        same: None,
        differences: None,
        engine_end: None,
    })
}

/// `kernel` and `run`: the transcript, and how the run ended.
fn print_run(input: &Input, t: Transcript, json: bool) -> Report {
    let entries = if json { json::entries(&t) } else { Vec::new() };
    Report {
        stdout: if json { String::new() } else { t.text() },
        stderr: input.message(&t.end),
        status: t.end.exit_code(),
        json: file_result(json::End::from(&t.end), entries),
    }
}

/// `diff`: runs both sides and compares them.
fn diff(input: &Input, script: &Script, profile: &Profile) -> Report {
    let measured = mmprep_host::run_measured(script);
    let kernel = measured.transcript;
    // The runner child's own VMAs count against max_map_count with the scenario's; it has a
    // few more than this process (what host_profile counted), so at the map limit the engine
    // must count the child's.
    let mut profile = profile.clone();
    if let Some(vmas) = measured.runner_vmas {
        profile.unmodelled_map_count = vmas;
    }
    let profile = &profile;
    if let RunEnd::Unsupported { .. } | RunEnd::WindowTaken | RunEnd::RunnerFailed(_) = kernel.end {
        let message = kernel.end.message().unwrap_or_default();
        let mut report = Report::failed(
            format!("{}: the kernel run failed: {message}", input.name),
            kernel.end.exit_code(),
        );
        report.json = file_result(json::End::from(&kernel.end), json::entries(&kernel));
        return report;
    }
    let engine = mmprep_scenario::engine::run_with(script, profile, &input.run_options(false));
    let comparison = mmprep_host::diff::compare(&kernel, &engine);
    let mut json = file_result(json::End::from(&kernel.end), json::entries(&kernel));
    json.same = Some(comparison.is_same());
    json.differences = Some(json::differences(&comparison));
    json.engine_end = comparison.ends.as_ref().map(|(_, e)| json::End::from(e));
    if comparison.is_same() {
        Report {
            stdout: format!("same: {}\n", input.name),
            stderr: input.message(&kernel.end),
            status: kernel.end.exit_code(),
            json,
        }
    } else {
        Report {
            stdout: format!(
                "differs: {}\n{}",
                input.name,
                comparison.report(&input.text, DIFF_LIMIT)
            ),
            stderr: None,
            status: exit::DIFFERS,
            json,
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
fn fuzz(start: u64, seeds: u64, thp: bool, print: bool, json: bool, proptest: bool) -> ExitCode {
    use mmprep_scenario::generate::{GenConfig, generate};
    let config = if thp { GenConfig::thp() } else { GenConfig::default() };
    if proptest {
        return fuzz_strategy(start, seeds, &config, print);
    }
    let range = (0..seeds).map(|i| start.wrapping_add(i));
    let mut doc = json::Fuzz {
        start,
        seeds,
        thp,
        tried: 0,
        scenarios: Vec::new(),
        failure: None,
    };
    let finish = |doc: json::Fuzz, status: u8| {
        let mut d = json::Document::new("fuzz", status);
        d.fuzz = Some(doc);
        print_json(&d, status)
    };
    if print {
        for seed in range {
            let text = generate(seed, &config);
            if json {
                doc.scenarios.push(json::Scenario { seed, text });
            } else {
                print!("# seed {seed}\n{text}");
            }
        }
        return if json { finish(doc, exit::OK) } else { ExitCode::SUCCESS };
    }
    let profile = mmprep_host::host_profile();
    let bar = progress::bar(seeds, "fuzz");
    let mut found = None;
    for seed in range {
        bar.set_message(format!("seed {seed}"));
        doc.tried += 1;
        let result = mmprep_host::fuzz::differential(seed, &config, &profile);
        bar.inc(1);
        if let Err(failure) = result {
            found = Some(*failure);
            break;
        }
    }
    match found {
        None => {
            bar.finish_and_clear();
            if json {
                return finish(doc, exit::OK);
            }
            println!("same: {seeds} seeds from {start}");
            ExitCode::SUCCESS
        }
        Some(failure) => {
            bar.set_message(format!("seed {}: shrinking", failure.seed.unwrap_or_default()));
            let shrunk = mmprep_host::fuzz::shrink(&failure, &profile);
            bar.finish_and_clear();
            if json {
                doc.failure = Some(json::FuzzFailure {
                    seed: failure.seed.unwrap_or_default(),
                    found: json::Case::from(&failure),
                    shrunk: json::Case::from(&shrunk),
                });
                return finish(doc, exit::DIFFERS);
            }
            print!("{}", failure.report(DIFF_LIMIT));
            print!("--- shrunk ---\n{}", shrunk.report(DIFF_LIMIT));
            ExitCode::from(exit::DIFFERS)
        }
    }
}

/// `fuzz --proptest`: `cases` scenarios of the proptest strategy from proptest seed `seed`.
fn fuzz_strategy(seed: u64, cases: u64, config: &mmprep_scenario::generate::GenConfig, print: bool) -> ExitCode {
    let cases = u32::try_from(cases).unwrap_or(u32::MAX);
    if print {
        for (i, text) in mmprep_host::fuzz::strategy_scenarios(cases, seed, config)
            .iter()
            .enumerate()
        {
            print!("# proptest seed {seed}, case {i}\n{text}");
        }
        return ExitCode::SUCCESS;
    }
    let profile = mmprep_host::host_profile();
    match mmprep_host::fuzz::search_strategy(cases, seed, config, &profile) {
        None => {
            println!("same: {cases} proptest cases from seed {seed}");
            ExitCode::SUCCESS
        }
        Some((failure, shrunk)) => {
            print!("{}", failure.report(DIFF_LIMIT));
            print!("--- shrunk by proptest ---\n{}", shrunk.report(DIFF_LIMIT));
            ExitCode::from(exit::DIFFERS)
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
        println!("Write your own scenario (see docs/scenario-format.md) and check it with `mmprep diff FILE`.");
        ExitCode::SUCCESS
    } else {
        println!(
            "\nThe host kernel printed something else:\n{}",
            comparison.report(&mmprep_scenario::tour::scenario(), DIFF_LIMIT)
        );
        ExitCode::from(exit::DIFFERS)
    }
}

/// `bench`: the engine and the kernel on the same stream, as a ratio.
fn bench(vmas: &[u64], pairs: u64, profile: &Profile, json: bool) -> ExitCode {
    if !json {
        println!(
            "{:>8} {:>8} {:>14} {:>14} {:>14}",
            "VMAs", "calls", "engine ns/call", "kernel ns/call", "kernel/engine"
        );
    }
    let bar = progress::bar(2 * vmas.len() as u64, "bench");
    let mut rows = Vec::new();
    for &n in vmas {
        let w = mmprep_host::bench::Workload {
            vmas: n,
            pairs,
            seed: 1,
        };
        bar.set_message(format!("{n} VMAs on the engine"));
        let engine = mmprep_host::bench::run_engine(&w, profile);
        bar.inc(1);
        bar.set_message(format!("{n} VMAs on the kernel"));
        let kernel = mmprep_host::bench::run_kernel(&w);
        bar.inc(1);
        let (engine, kernel) = match (engine, kernel) {
            (Ok(e), Ok(k)) => (e, k),
            (Err(e), _) | (_, Err(e)) => {
                bar.finish_and_clear();
                eprintln!("mmprep: bench with {n} VMAs: {e}");
                return ExitCode::from(exit::HOST_FAILED);
            }
        };
        let calls = 2 * pairs;
        let per = |d: std::time::Duration| d.as_nanos() as f64 / calls as f64;
        let row = json::BenchRow {
            vmas: n,
            calls,
            engine_ns_per_call: per(engine),
            kernel_ns_per_call: per(kernel),
            kernel_over_engine: kernel.as_secs_f64() / engine.as_secs_f64().max(1e-12),
        };
        if !json {
            bar.suspend(|| {
                println!(
                    "{n:>8} {calls:>8} {:>14.0} {:>14.0} {:>14.1}",
                    row.engine_ns_per_call, row.kernel_ns_per_call, row.kernel_over_engine
                )
            });
        }
        rows.push(row);
    }
    bar.finish_and_clear();
    if json {
        let mut doc = json::Document::new("bench", exit::OK);
        doc.bench = Some(rows);
        return print_json(&doc, exit::OK);
    }
    ExitCode::SUCCESS
}

/// `bench --stream perf --emit`: the scenario for the first VMA count, on stdout.
fn emit_perf(vmas: &[u64], ops: u64, seed: u64) -> ExitCode {
    let Some(&n) = vmas.first() else {
        eprintln!("mmprep: bench --emit needs a --vmas count");
        return ExitCode::from(exit::USAGE);
    };
    let text = mmprep_scenario::perf::perf_stream(n, ops, seed);
    let mut stdout = io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmprep: cannot write to stdout: {e}");
            ExitCode::from(exit::HOST_FAILED)
        }
    }
}

/// `bench --stream perf`: each VMA count's scenario run whole on the engine and on the kernel.
/// `overridden`: the user changed the engine's profile with `--set`, so a differing transcript
/// is expected and not a failure.
fn bench_perf(vmas: &[u64], ops: u64, seed: u64, repeat: u32, profile: &Profile, overridden: bool) -> ExitCode {
    use mmprep_host::bench::run_whole_kernel;
    let run_engine = |text: &str, profile: &Profile| fastest(repeat, || run_engine_as_run(text, profile));
    let run_kernel = |text: &str| fastest(repeat, || run_whole_kernel(text));
    println!(
        "{:>8} {:>8} {:>10} {:>12} {:>12} {:>14} {:>13} {:>13}  transcripts",
        "VMAs", "ops", "lines", "engine ms", "kernel ms", "kernel/engine", "engine ns/op", "kernel ns/op"
    );
    let mut status = exit::OK;
    for &n in vmas {
        let text = mmprep_scenario::perf::perf_stream(n, ops, seed);
        let lines = text.lines().count();
        // The same stream without its ops: the layout alone, whose time is taken off the whole
        // run's to give the cost of one op (the stream with ops starts with exactly these lines).
        let layout = mmprep_scenario::perf::perf_stream(n, 0, seed);
        // The layout alone has 2n VMAs; the process's own VMAs count against the limit too.
        let needed = 2 * n + profile.unmodelled_map_count + 16;
        let host_limit = mmprep_host::host_profile().max_map_count;
        if needed > host_limit {
            let mut engine_profile = profile.clone();
            let raised = engine_profile.max_map_count < needed;
            if raised {
                engine_profile.max_map_count = needed;
            }
            let engine = run_engine(&text, &engine_profile);
            let engine_layout = run_engine(&layout, &engine_profile);
            println!(
                "{n:>8} {ops:>8} {lines:>10} {:>12.1} {:>12} {:>14} {:>13.1} {:>13}  engine alone: {} VMAs exceed this host's vm.max_map_count {host_limit}{}",
                ms(engine.wall),
                "-",
                "-",
                per_op(engine.wall, engine_layout.wall, ops),
                "-",
                2 * n,
                if raised {
                    format!("; the engine's max_map_count raised to {needed}")
                } else {
                    String::new()
                }
            );
            if let Some(message) = engine.end.message() {
                eprintln!("mmprep: bench with {n} VMAs: the engine run: {message}");
                if status == exit::OK {
                    status = engine.end.exit_code();
                }
            }
            continue;
        }
        let engine = run_engine(&text, profile);
        let kernel = run_kernel(&text);
        let engine_layout = run_engine(&layout, profile);
        let kernel_layout = run_kernel(&layout);
        let same = engine.text == kernel.text && engine.end == kernel.end;
        println!(
            "{n:>8} {ops:>8} {lines:>10} {:>12.1} {:>12.1} {:>14.2} {:>13.1} {:>13.1}  {}",
            ms(engine.wall),
            ms(kernel.wall),
            kernel.wall.as_secs_f64() / engine.wall.as_secs_f64().max(1e-12),
            per_op(engine.wall, engine_layout.wall, ops),
            per_op(kernel.wall, kernel_layout.wall, ops),
            if same { "same" } else { "DIFFER" }
        );
        if let Some(message) = kernel.end.message() {
            eprintln!("mmprep: bench with {n} VMAs: the kernel run: {message}");
            if status == exit::OK {
                status = kernel.end.exit_code();
            }
        }
        if !same && !overridden && status == exit::OK {
            status = exit::DIFFERS;
        }
    }
    ExitCode::from(status)
}

/// `run` done `repeat` times: the first run's transcript and end, with the fastest wall time of
/// the runs that ended the same way (a run that fails differently is not a faster run of the
/// same work).
fn fastest(repeat: u32, mut run: impl FnMut() -> mmprep_host::bench::WholeRun) -> mmprep_host::bench::WholeRun {
    let mut best = run();
    for _ in 1..repeat {
        let again = run();
        if again.end == best.end && again.text == best.text {
            best.wall = best.wall.min(again.wall);
        }
    }
    best
}

/// The engine side of `bench --stream perf`, timed as a user times `mmprep run FILE`: `text` is
/// written to a file (not timed), then [`stream::run_file`], the code `mmprep run` runs, reads,
/// parses, runs and prints it. The transcript goes to memory instead of stdout, to be compared
/// with the kernel's.
fn run_engine_as_run(text: &str, profile: &Profile) -> mmprep_host::bench::WholeRun {
    use mmprep_host::bench::WholeRun;
    let failed = |why: String| WholeRun {
        wall: std::time::Duration::ZERO,
        text: String::new(),
        end: RunEnd::RunnerFailed(why),
    };
    let path = std::env::temp_dir().join(format!("mmprep-bench-{}.scn", std::process::id()));
    if let Err(e) = std::fs::write(&path, text) {
        return failed(format!("cannot write {}: {e}", path.display()));
    }
    let options = mmprep_scenario::engine::RunOptions::default();
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    let streamed = stream::run_file(&path, profile, &options, false, &mut out);
    let wall = start.elapsed();
    let _ = std::fs::remove_file(&path);
    match streamed {
        Some(streamed) => WholeRun {
            wall,
            text: String::from_utf8_lossy(&out).into_owned(),
            end: streamed.end,
        },
        None => failed(format!("cannot read back {}", path.display())),
    }
}

/// The cost of one op in nanoseconds: the whole run's time less the layout's, over `ops` (0 when
/// there are no ops; never negative, though on a loaded machine the difference can be noise).
fn per_op(whole: std::time::Duration, layout: std::time::Duration, ops: u64) -> f64 {
    if ops == 0 {
        return 0.0;
    }
    whole.saturating_sub(layout).as_secs_f64() * 1e9 / ops as f64
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `drivers`: one line per example driver, then its parameters.
fn drivers() -> ExitCode {
    for d in mmprep_drivers::registry::drivers() {
        println!("{:<10} {}", d.name, d.summary);
        for p in d.params {
            println!("{:<10}   {p}", "");
        }
    }
    println!();
    println!("C drivers: `file NAME c PATH.c [fops=SYMBOL] [ro] [KEY=VALUE ...]` compiles and maps one;");
    println!("drivers/c/ has C versions of these (docs/c-drivers.md).");
    ExitCode::SUCCESS
}

/// `explain FILE:LINE`: the scenario on the engine up to LINE, then that line, its entry and
/// why.
fn explain(target: &str, profile: &Profile) -> ExitCode {
    use std::ops::ControlFlow;
    let Some((file, line)) = target
        .rsplit_once(':')
        .and_then(|(f, l)| Some((f, l.parse::<usize>().ok().filter(|&l| l > 0)?)))
    else {
        eprintln!("mmprep explain: `{target}` is not FILE:LINE (a 1-based line number after the last `:`)");
        return ExitCode::from(exit::USAGE);
    };
    let input = match Input::read(Path::new(file)) {
        Ok(input) => input,
        Err(report) => {
            eprintln!("mmprep: {}", report.stderr.unwrap_or_default());
            return ExitCode::from(report.status);
        }
    };
    let script = mmprep_scenario::parse(&input.text);
    let source = input.text.lines().nth(line - 1).unwrap_or_default().trim();
    println!("{}:{line}: {source}", input.name);
    if !script.steps.iter().any(|s| s.line == line) {
        let before_error = script.error.as_ref().is_none_or(|e| e.line > line);
        if before_error {
            eprintln!(
                "mmprep explain: line {line} of {} runs no call (a blank line, a comment, past the end)",
                input.name
            );
            return ExitCode::from(exit::USAGE);
        }
    }
    let mut shown = false;
    let t =
        mmprep_scenario::engine::run_observed(&script, profile, &Default::default(), false, |step, runner, outcome| {
            if step.line < line {
                return ControlFlow::Continue(None);
            }
            shown = true;
            ControlFlow::Break(mmprep_scenario::engine::why_line(outcome, runner.last_error()))
        });
    match t.end {
        RunEnd::Finished if shown => {
            match t.entries.last() {
                Some(entry) if entry.starts_with(&format!("L{line} ")) => println!("{entry}"),
                _ => println!("(line {line} prints nothing: it declares or closes a file)"),
            }
            ExitCode::SUCCESS
        }
        end => {
            if let Some(message) = input.message(&end) {
                eprintln!("mmprep: {message}");
            }
            eprintln!("mmprep explain: the run ended before line {line}");
            ExitCode::from(end.exit_code().max(exit::BAD_SCENARIO))
        }
    }
}

/// `render FILE [-o OUT] [--step N]`: SVG of one step, or HTML of them all.
fn render(path: &Path, output: Option<&Path>, step: Option<usize>, profile: &Profile) -> ExitCode {
    use mmprep_scenario::render;
    let html = match output.and_then(|o| o.extension()).and_then(|e| e.to_str()) {
        None if output.is_none() => false,
        Some("svg") => false,
        Some("html" | "htm") => true,
        _ => {
            eprintln!("mmprep render: the output name must end in .svg or .html");
            return ExitCode::from(exit::USAGE);
        }
    };
    if html && step.is_some() {
        eprintln!("mmprep render: --step draws one SVG; the HTML page has every step");
        return ExitCode::from(exit::USAGE);
    }
    let (input, frames, title) = match render_frames(path, profile) {
        Ok(rendered) => rendered,
        Err(status) => return ExitCode::from(status),
    };
    let text = if html {
        render::html(&frames, &title, &input.text)
    } else {
        let index = match step {
            None => frames.len().saturating_sub(1),
            Some(n) if (1..=frames.len()).contains(&n) => n - 1,
            Some(n) => {
                eprintln!(
                    "mmprep render: --step {n}: the scenario has steps 1 to {}",
                    frames.len()
                );
                return ExitCode::from(exit::USAGE);
            }
        };
        let Some(frame) = frames.get(index) else {
            eprintln!("mmprep render: {}: no step ran", input.name);
            return ExitCode::from(exit::BAD_SCENARIO);
        };
        render::svg(frame, &title, index, frames.len())
    };
    let written = match output {
        Some(out) => std::fs::write(out, text),
        None => io::stdout().lock().write_all(text.as_bytes()),
    };
    if let Err(e) = written {
        eprintln!(
            "mmprep render: cannot write {}: {e}",
            output.map_or("stdout".into(), |o| o.display().to_string())
        );
        return ExitCode::from(exit::HOST_FAILED);
    }
    ExitCode::SUCCESS
}

/// Reads and runs one scenario for `render`: its input, the frame of each step and its title
/// (the file name). A failure has been reported on stderr; its exit status is returned.
fn render_frames(path: &Path, profile: &Profile) -> Result<(Input, Vec<mmprep_scenario::render::Frame>, String), u8> {
    let input = Input::read(path).map_err(|report| {
        eprintln!("mmprep: {}", report.stderr.unwrap_or_default());
        report.status
    })?;
    let script = mmprep_scenario::parse(&input.text);
    let (frames, transcript) = mmprep_scenario::render::frames(&script, &input.text, profile);
    if let Some(message) = input.message(&transcript.end) {
        eprintln!("mmprep: {message}");
        return Err(transcript.end.exit_code());
    }
    let title = Path::new(&input.name)
        .file_name()
        .map_or(input.name.clone(), |n| n.to_string_lossy().into_owned());
    Ok((input, frames, title))
}

/// `render` of several files: each becomes `DIR/STEM.html` (standard input: `stdin.html`),
/// named on stdout as it is written. Every file is tried; the first failure's status is the
/// exit status.
fn render_pages(files: &[PathBuf], dir: Option<&Path>, step: Option<usize>, profile: &Profile) -> ExitCode {
    if step.is_some() {
        eprintln!("mmprep render: --step draws one SVG of one scenario; several scenarios each become an HTML page");
        return ExitCode::from(exit::USAGE);
    }
    let dir = dir.unwrap_or(Path::new("."));
    if !dir.is_dir() {
        eprintln!(
            "mmprep render: with several scenarios, -o names a directory for their pages: {} is none",
            dir.display()
        );
        return ExitCode::from(exit::USAGE);
    }
    let page_of = |file: &PathBuf| {
        let stem = match file.file_stem() {
            _ if file.as_path() == Path::new("-") => "stdin".into(),
            Some(stem) => stem.to_string_lossy().into_owned(),
            None => "scenario".into(),
        };
        dir.join(format!("{stem}.html"))
    };
    let pages: Vec<PathBuf> = files.iter().map(page_of).collect();
    for (i, page) in pages.iter().enumerate() {
        if let Some(j) = pages[..i].iter().position(|p| p == page) {
            eprintln!(
                "mmprep render: {} and {} would both be written to {}",
                files[j].display(),
                files[i].display(),
                page.display()
            );
            return ExitCode::from(exit::USAGE);
        }
    }
    let mut status = 0;
    for (file, page) in files.iter().zip(&pages) {
        let (input, frames, title) = match render_frames(file, profile) {
            Ok(rendered) => rendered,
            Err(failed) => {
                if status == 0 {
                    status = failed;
                }
                continue;
            }
        };
        let html = mmprep_scenario::render::html(&frames, &title, &input.text);
        match std::fs::write(page, html) {
            Ok(()) => println!("{}: {} ({} steps)", input.name, page.display(), frames.len()),
            Err(e) => {
                eprintln!("mmprep render: cannot write {}: {e}", page.display());
                if status == 0 {
                    status = exit::HOST_FAILED;
                }
            }
        }
    }
    ExitCode::from(status)
}

/// `driver-diff`: the battery of `mmprep_scenario::driver_diff` on both drivers.
fn driver_diff(old: &Path, new: &Path, fops: &[String], params: &[String]) -> ExitCode {
    use mmprep_scenario::driver_diff::{self, Side};
    let (fo, fn_) = match fops {
        [] => (None, None),
        [one] => (Some(one.as_str()), Some(one.as_str())),
        [a, b] => (Some(a.as_str()), Some(b.as_str())),
        _ => {
            eprintln!("mmprep: driver-diff takes --fops once (both) or twice (OLD, then NEW)");
            return ExitCode::from(exit::USAGE);
        }
    };
    let mut pairs = Vec::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            eprintln!("mmprep: --param {p}: expected KEY=VALUE");
            return ExitCode::from(exit::USAGE);
        };
        pairs.push((k.to_string(), v.to_string()));
    }
    let options = mmprep_scenario::engine::RunOptions {
        dir: None,
        c_drivers: Some(std::sync::Arc::new(mmprep_c::CHost::default())),
    };
    let sides = [(old, fo), (new, fn_)].map(|(p, f)| (std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()), f));
    let old_side = Side {
        source: &sides[0].0,
        fops: sides[0].1,
    };
    let new_side = Side {
        source: &sides[1].0,
        fops: sides[1].1,
    };
    match driver_diff::run(&old_side, &new_side, &pairs, &Profile::reference_host(), &options) {
        Ok(report) => {
            print!("{}", report.text(&display_name(old), &display_name(new)));
            if report.regressions() > 0 {
                ExitCode::from(exit::DIFFERS)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("mmprep: driver-diff: {e}");
            ExitCode::from(exit::BAD_SCENARIO)
        }
    }
}

/// `run --sanitize`: a sanitized driver needs the AddressSanitizer runtime loaded before anything
/// else, so mmprep restarts itself once with it in `LD_PRELOAD` (leak checking off: the harness
/// keeps some things for the life of the process on purpose). Returns only when the runtime is
/// there, or with the exit status to end with.
fn with_sanitizer_runtime() -> Result<(), ExitCode> {
    use std::os::unix::process::CommandExt;
    const MARK: &str = "MMPREP_SANITIZER_LOADED";
    if std::env::var_os(MARK).is_some() {
        return Ok(());
    }
    let Some(runtime) = mmprep_c::sanitizer_runtime() else {
        eprintln!(
            "mmprep: --sanitize needs the C compiler's AddressSanitizer runtime (libasan), which `cc` does not have"
        );
        return Err(ExitCode::from(exit::HOST_FAILED));
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("mmprep: --sanitize: cannot find the mmprep binary to restart: {e}");
            return Err(ExitCode::from(exit::HOST_FAILED));
        }
    };
    let mut preload = runtime.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        preload.push(" ");
        preload.push(old);
    }
    let mut options = std::ffi::OsString::from("detect_leaks=0");
    if let Some(old) = std::env::var_os("ASAN_OPTIONS") {
        options.push(":");
        options.push(old);
    }
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .env("LD_PRELOAD", preload)
        .env("ASAN_OPTIONS", options)
        .exec();
    eprintln!("mmprep: --sanitize: cannot restart with the sanitizer runtime: {err}");
    Err(ExitCode::from(exit::HOST_FAILED))
}

/// The answer of a command that traces real programs, off Linux on x86_64.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn needs_linux<T>(command: &str, _: T) -> ExitCode {
    eprintln!("mmprep {command}: needs Linux on x86_64 (ptrace)");
    ExitCode::from(mmprep_scenario::exit::HOST_FAILED)
}

/// The exit of a run whose stdout failed: a closed pipe (`mmprep kernel x | head`) is a normal
/// way to stop reading and keeps the status so far; any other write error is the host's.
fn stdout_failed(e: &io::Error, status: u8) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::from(status);
    }
    eprintln!("mmprep: cannot write to stdout: {e}");
    ExitCode::from(exit::HOST_FAILED)
}

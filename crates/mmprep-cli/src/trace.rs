//! `mmprep trace` and `mmprep replay`: glue over `mmprep_host::trace` and `mmprep_host::replay`.
//!
//! Exit status: 0 no divergence (`replay`: every recorded result again), 1 a divergence, 4 the
//! program could not be traced or the trace file could not be read or written, 6 the kernel
//! refused ptrace.

use std::path::Path;
use std::process::ExitCode;

use mmprep_host::replay;
use mmprep_host::trace::{self, TraceError, TraceOptions};
use mmprep_scenario::exit;

use crate::{json, progress};

/// The exit status when the kernel refuses ptrace.
pub const PTRACE_REFUSED: u8 = 6;

/// `mmprep trace [--json] [--save FILE] [--check-every N] -- CMD ARGS...`.
pub fn trace(cmd: &[String], json: bool, save: Option<&Path>, check_every: u64) -> ExitCode {
    let opts = TraceOptions {
        check_every,
        record: save.is_some(),
        // The spinner below shows progress (on a terminal only).
        progress: false,
    };
    let spinner = progress::spinner("trace");
    spinner.set_message(cmd.join(" "));
    let report = trace::trace(cmd, opts);
    spinner.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(TraceError::Refused(why)) => {
            eprintln!("mmprep trace: ptrace is not allowed here: {why}");
            return ExitCode::from(PTRACE_REFUSED);
        }
        Err(TraceError::Failed(why)) => {
            eprintln!("mmprep trace: {why}");
            return ExitCode::from(exit::HOST_FAILED);
        }
    };
    if let Some(path) = save
        && let Err(e) = std::fs::write(path, replay::save(&report.events))
    {
        eprintln!("mmprep trace: cannot write {}: {e}", path.display());
        return ExitCode::from(exit::HOST_FAILED);
    }
    let status = if report.divergence_count == 0 {
        exit::OK
    } else {
        exit::DIFFERS
    };
    if json {
        let mut doc = json::Document::new("trace", status);
        match json::Trace::from_report(&report) {
            Ok(t) => doc.trace = Some(t),
            Err(e) => {
                eprintln!("mmprep trace: the report does not fit schema {}: {e}", json::SCHEMA);
                return ExitCode::from(exit::HOST_FAILED);
            }
        }
        return crate::print_json(&doc, status);
    }
    print!("{}", trace::render(&report));
    ExitCode::from(status)
}

/// `mmprep replay FILE`.
pub fn replay(path: &Path) -> ExitCode {
    let events = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| replay::load(&t))
    {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("mmprep replay: {}: {e}", path.display());
            return ExitCode::from(exit::HOST_FAILED);
        }
    };
    let report = match replay::replay(&events) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mmprep replay: {}: {e}", path.display());
            return ExitCode::from(exit::DIFFERS);
        }
    };
    println!(
        "{} calls replayed ({} not modelled), {} differ from the recorded results",
        report.calls, report.not_modelled, report.mismatch_count
    );
    for m in &report.mismatches {
        println!("  {m}");
    }
    println!(
        "engine time: {:.3} ms, {:.0} calls per second",
        report.elapsed.as_secs_f64() * 1e3,
        report.calls_per_second()
    );
    if report.mismatch_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::DIFFERS)
    }
}

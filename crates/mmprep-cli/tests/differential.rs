//! Differential test: generated scenarios must print the same transcript on the host kernel and
//! on the engine (with this machine's profile, as `mmprep diff` uses).
//!
//! Two generators: the default one, and the one biased to transparent huge pages
//! (`mmprep fuzz --thp`). By default seeds `0..300` of each (CI). `MMPREP_SEEDS=N` changes the
//! count; `MMPREP_FRESH_SEEDS=1` starts from a time-based seed, printed so that a failure can be
//! replayed with `mmprep fuzz --seeds 1 --start SEED` (with `--thp` for the second generator). On a difference the test prints the seed, the scenario,
//! the differing entries (the first with its scenario line) and a shrunk reproducer, goes on up
//! to 10 failing seeds, and panics with their list.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mmprep_host::fuzz;
use mmprep_scenario::generate::GenConfig;

/// How many failing seeds are collected before the test stops.
const MAX_FAILURES: usize = 10;
/// How many of them are shrunk (each shrink runs the scenario up to a few hundred times).
const SHRUNK: usize = 3;
/// How many differing entries a report shows.
const LIMIT: usize = 6;

#[test]
fn generated_scenarios_agree_with_the_kernel() {
    check_generated(GenConfig::default(), "");
}

/// The same with the generator biased to transparent huge pages (`GenConfig::thp`): 2 MiB
/// blocks whole, cut and missed, `hugepage` advice on half the mappings.
#[test]
fn thp_biased_scenarios_agree_with_the_kernel() {
    check_generated(GenConfig::thp(), " --thp");
}

/// Runs the seeds the environment asks for with `config`; `flag` is what `mmprep fuzz` needs
/// to replay them.
fn check_generated(config: GenConfig, flag: &str) {
    let count: u64 = match std::env::var("MMPREP_SEEDS") {
        Ok(n) => n.trim().parse().expect("MMPREP_SEEDS is a number"),
        Err(_) => 300,
    };
    let start = if std::env::var_os("MMPREP_FRESH_SEEDS").is_some() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // Far from the fixed seeds CI runs.
        let base = now | (1 << 63);
        eprintln!("differential: fresh seeds {base}..{}", base.wrapping_add(count));
        base
    } else {
        0
    };
    // Read once, before anything maps memory, as the CLI does.
    let profile = mmprep_host::host_profile();
    let began = Instant::now();
    let seeds = (0..count).map(|i| start.wrapping_add(i));
    let failures = fuzz::search(seeds, &config, &profile, MAX_FAILURES);
    eprintln!(
        "differential: {} seeds from {start} in {:.2?}, {} differ",
        count,
        began.elapsed(),
        failures.len()
    );
    if failures.is_empty() {
        return;
    }
    for (i, failure) in failures.iter().enumerate() {
        eprintln!("\n==================== {}", failure.report(LIMIT));
        if i < SHRUNK {
            let shrunk = fuzz::shrink(failure, &profile);
            eprintln!("--- shrunk ---\n{}", shrunk.report(LIMIT));
        }
    }
    let seeds: Vec<String> = failures
        .iter()
        .map(|f| f.seed.map_or("?".into(), |s| s.to_string()))
        .collect();
    panic!(
        "{} generated scenarios differ between the kernel and the engine (seeds {}); replay one \
         with `mmprep fuzz --seeds 1 --start SEED{flag}`",
        failures.len(),
        seeds.join(" ")
    );
}

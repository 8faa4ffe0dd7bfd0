//! Differential property test: scenarios from the proptest strategy
//! (`mmprep_scenario::strategy`) print the same transcript on the host kernel and on the engine.
//! On a difference proptest shrinks the scenario (fewer operations, smaller ranges, simpler
//! flags) and the test prints the shrunk one with its differences.
//!
//! 200 cases of each config by default, from a fixed seed so that CI is reproducible;
//! `PROPTEST_CASES=N` changes the count, `PROPTEST_RNG_SEED=S` the seed. The seeded generator's
//! differential test (`mmprep-cli/tests/differential.rs`) stays as it is.
//!
//! `shrinking_finds_a_small_reproducer` proves the shrinking: the engine side is made wrong on
//! purpose (a successful `mprotect ... r--` reports `EACCES`), and the failure must shrink to a
//! scenario of a few lines.

use mmprep::Profile;
use mmprep_host::fuzz;
use mmprep_scenario::generate::GenConfig;
use mmprep_scenario::strategy::{Scenario, scenario};
use mmprep_scenario::{Transcript, parse};
use proptest::test_runner::{Config, RngSeed, TestError, TestRunner};

/// The fixed seed CI runs (when `PROPTEST_RNG_SEED` is not set).
const SEED: u64 = 0x6d6d_7072_6570;

fn runner() -> TestRunner {
    // `Config::default()` reads PROPTEST_CASES and PROPTEST_RNG_SEED.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 200;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        // The default (4 per case) can stop before the reproducer is small; a run is cheap.
        config.max_shrink_iters = 10_000;
    }
    config.failure_persistence = None;
    eprintln!("proptest: {} cases, seed {}", config.cases, config.rng_seed);
    TestRunner::new(config)
}

/// Runs the strategy of `config` with `check`, and panics with the shrunk scenario and what
/// `report` says about it if a case fails.
fn run(config: &GenConfig, check: impl Fn(&str) -> Result<(), String>, report: impl Fn(&str) -> String) {
    let result = runner().run(&scenario(config), |s: Scenario| {
        check(&s.text()).map_err(proptest::test_runner::TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, shrunk)) => {
            let text = shrunk.text();
            panic!("{reason}\n--- shrunk scenario ---\n{text}{}", report(&text));
        }
        Err(e) => panic!("{e}"),
    }
}

fn differential(config: GenConfig) {
    let profile = mmprep_host::host_profile();
    let check = |text: &str| match fuzz::check_text(text, &profile) {
        None => Ok(()),
        Some(f) => Err(format!(
            "the transcripts differ ({} entries)",
            f.comparison.differences.len()
        )),
    };
    let report = |text: &str| fuzz::check_text(text, &profile).map_or(String::new(), |f| f.report(6));
    run(&config, check, report);
}

#[test]
fn strategy_scenarios_agree_with_the_kernel() {
    differential(GenConfig::engine_today());
}

#[test]
fn thp_strategy_scenarios_agree_with_the_kernel() {
    differential(GenConfig::thp());
}

/// The engine made wrong on purpose: every successful `mprotect` to read-only reports
/// `EACCES`. Returns the transcripts of both sides.
fn broken_engine(text: &str, profile: &Profile) -> (Transcript, Transcript) {
    let script = parse(text);
    let kernel = mmprep_host::run(&script);
    let mut engine = mmprep_scenario::engine::run(&script, profile);
    let lines: Vec<&str> = text.lines().collect();
    for entry in &mut engine.entries {
        let Some((line, rest)) = entry.strip_prefix('L').and_then(|e| e.split_once(' ')) else {
            continue;
        };
        let source = line
            .parse::<usize>()
            .ok()
            .and_then(|n| lines.get(n - 1))
            .copied()
            .unwrap_or("");
        if rest == "mprotect = 0" && source.split_whitespace().nth(3).is_some_and(|p| p.starts_with("r--")) {
            *entry = format!("L{line} mprotect = -EACCES");
        }
    }
    (kernel, engine)
}

#[test]
fn shrinking_finds_a_small_reproducer() {
    let profile = mmprep_host::host_profile();
    let check = |text: &str| {
        let (kernel, engine) = broken_engine(text, &profile);
        let comparison = mmprep_host::diff::compare(&kernel, &engine);
        if comparison.is_same() {
            Ok(())
        } else {
            Err(comparison.report(text, 4))
        }
    };
    let runner_config = Config {
        cases: 200,
        rng_seed: RngSeed::Fixed(SEED),
        max_shrink_iters: 10_000,
        failure_persistence: None,
        ..Config::default()
    };
    for config in [GenConfig::engine_today(), GenConfig::thp()] {
        let mut runner = TestRunner::new(runner_config.clone());
        let result = runner.run(&scenario(&config), |s| {
            check(&s.text()).map_err(proptest::test_runner::TestCaseError::fail)
        });
        let Err(TestError::Fail(reason, shrunk)) = result else {
            panic!("the broken engine was not caught: {result:?}");
        };
        let text = shrunk.text();
        eprintln!("--- shrunk ---\n{text}--- difference ---\n{reason}");
        let lines = text.lines().count();
        // At most: a window, one mapping, the mprotect, the final smaps.
        assert!(lines <= 4, "{lines} lines:\n{text}");
        assert!(
            text.lines().any(|l| l.starts_with("mprotect ") && l.contains(" r--")),
            "{text}"
        );
    }
}

/// What `mmprep fuzz --proptest` runs: the same cases for the same seed, and none differs.
#[test]
fn fuzz_search_strategy_is_reproducible() {
    let config = GenConfig::engine_today();
    let a = fuzz::strategy_scenarios(20, 7, &config);
    assert_eq!(a.len(), 20);
    assert_eq!(a, fuzz::strategy_scenarios(20, 7, &config));
    assert_ne!(a, fuzz::strategy_scenarios(20, 8, &config));
    let profile = mmprep_host::host_profile();
    assert!(fuzz::search_strategy(50, 7, &config, &profile).is_none());
}

//! Differential fuzzing: generated scenarios run on the host kernel and on the engine.
//!
//! [`differential`] generates the scenario of one seed
//! ([`mmprep_scenario::generate::generate`]), runs it on both sides and compares the
//! transcripts ([`crate::diff::compare`]); [`search`] does that for many seeds and collects the
//! ones that differ. [`shrink`] minimises a differing scenario by deleting lines while the
//! difference persists, so a failure can be read in a few lines.
//!
//! [`search_strategy`] does the same with the proptest strategy
//! ([`mmprep_scenario::strategy`]) instead of seeds, and lets proptest shrink the failure
//! structurally (fewer operations, smaller ranges, simpler flags).
//!
//! The CLI's `mmprep fuzz` and the `differential` test of `mmprep-cli` are thin loops over these.

use std::fmt::Write;

use mmprep::Profile;
use mmprep_scenario::generate::{GenConfig, generate};
use mmprep_scenario::{RunEnd, Transcript, parse};

use crate::diff::{Comparison, compare};

/// A scenario whose kernel and engine transcripts differ.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed it was generated from (`None` for a scenario that was not generated, such as a
    /// shrunk one).
    pub seed: Option<u64>,
    /// The scenario text.
    pub text: String,
    pub kernel: Transcript,
    pub engine: Transcript,
    pub comparison: Comparison,
}

impl Failure {
    /// A report for a person: the seed, the scenario text exactly (to save as a file and replay
    /// with `mmprep diff`), and the differences (the first differing entry with its scenario
    /// line number and text first), at most `limit` entries.
    pub fn report(&self, limit: usize) -> String {
        let mut out = String::new();
        match self.seed {
            Some(seed) => {
                let _ = writeln!(out, "seed {seed}: the transcripts differ");
            }
            None => out.push_str("the transcripts differ\n"),
        }
        out.push_str("--- scenario ---\n");
        out.push_str(&self.text);
        if !self.text.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("--- difference ---\n");
        out.push_str(&self.comparison.report(&self.text, limit));
        out
    }

    /// What kind of difference this is, to tell distinct failures apart: the verb of the
    /// scenario line of the first differing entry (or `end` when only the ends differ).
    pub fn signature(&self) -> String {
        signature(&self.text, &self.comparison)
    }
}

fn signature(text: &str, comparison: &Comparison) -> String {
    match comparison.differences.first() {
        Some(d) => {
            let line = d.line.and_then(|n| text.lines().nth(n.saturating_sub(1))).unwrap_or("");
            line.split_whitespace().next().unwrap_or("?").to_string()
        }
        None => "end".into(),
    }
}

/// Runs `text` on the kernel and on the engine (with `profile`). `None` if the transcripts are
/// the same.
pub fn check_text(text: &str, profile: &Profile) -> Option<Failure> {
    let script = parse(text);
    let measured = crate::run_measured(&script);
    let kernel = measured.transcript;
    // The runner child's own VMAs count against max_map_count (see `crate::KernelRun`).
    let mut profile = profile.clone();
    if let Some(vmas) = measured.runner_vmas {
        profile.unmodelled_map_count = vmas;
    }
    let engine = mmprep_scenario::engine::run(&script, &profile);
    let comparison = compare(&kernel, &engine);
    if comparison.is_same() {
        return None;
    }
    Some(Failure {
        seed: None,
        text: text.to_string(),
        kernel,
        engine,
        comparison,
    })
}

/// Generates the scenario of `seed` and runs it on both sides. `Err` if they differ.
pub fn differential(seed: u64, config: &GenConfig, profile: &Profile) -> Result<(), Box<Failure>> {
    let text = generate(seed, config);
    match check_text(&text, profile) {
        None => Ok(()),
        Some(mut failure) => {
            failure.seed = Some(seed);
            Err(Box::new(failure))
        }
    }
}

/// Runs [`differential`] for every seed in order, and returns the failures, stopping after
/// `max_failures` of them.
pub fn search(
    seeds: impl IntoIterator<Item = u64>,
    config: &GenConfig,
    profile: &Profile,
    max_failures: usize,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for seed in seeds {
        if failures.len() >= max_failures {
            break;
        }
        if let Err(failure) = differential(seed, config, profile) {
            failures.push(*failure);
        }
    }
    failures
}

/// Shrinks a differing scenario: deletes lines (chunks, then single lines) as long as the
/// result still parses, the kernel run still ends as it did, and the transcripts still differ
/// with the same [`Failure::signature`]. Returns the shrunk failure (the original if nothing
/// could be deleted). Runs the scenario a few hundred times at most for a 60-line script.
pub fn shrink(failure: &Failure, profile: &Profile) -> Failure {
    let want = failure.signature();
    let kernel_end = std::mem::discriminant(&failure.kernel.end);
    let still_fails = |lines: &[&str]| -> Option<Failure> {
        let mut text = lines.join("\n");
        text.push('\n');
        let script = parse(&text);
        if script.error.is_some() {
            return None;
        }
        let f = check_text(&text, profile)?;
        let same_end = std::mem::discriminant(&f.kernel.end) == kernel_end;
        let finished_or_same = matches!(f.kernel.end, RunEnd::Finished) || same_end;
        (same_end && finished_or_same && f.signature() == want).then_some(f)
    };
    let mut lines: Vec<&str> = failure.text.lines().collect();
    let mut best = failure.clone();
    // Comments and blank lines first: they never matter.
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            let t = l.split('#').next().unwrap_or("").trim();
            !t.is_empty()
        })
        .collect();
    if kept.len() < lines.len()
        && let Some(f) = still_fails(&kept)
    {
        lines = kept;
        best = f;
    }
    let mut chunk = lines.len().div_ceil(2).max(1);
    loop {
        let mut progress = false;
        let mut i = 0;
        while i < lines.len() {
            let end = (i + chunk).min(lines.len());
            let mut candidate = lines.clone();
            candidate.drain(i..end);
            if !candidate.is_empty()
                && let Some(f) = still_fails(&candidate)
            {
                lines = candidate;
                best = f;
                progress = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !progress {
            break;
        }
        if !progress {
            chunk = chunk.div_ceil(2);
        }
    }
    best.seed = failure.seed;
    best
}

/// The proptest runner of [`search_strategy`] and [`strategy_scenarios`]: `cases` cases from
/// `seed`, no failure files.
fn strategy_runner(cases: u32, seed: u64) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 10_000,
        failure_persistence: None,
        ..Config::default()
    })
}

/// The texts of the first `cases` scenarios [`search_strategy`] runs from `seed`.
pub fn strategy_scenarios(cases: u32, seed: u64, config: &GenConfig) -> Vec<String> {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = strategy_runner(cases, seed);
    let strategy = mmprep_scenario::strategy::scenario(config);
    (0..cases)
        .filter_map(|_| strategy.new_tree(&mut runner).ok().map(|t| t.current().text()))
        .collect()
}

/// Runs `cases` scenarios of the proptest strategy of `config` (from `seed`) on both sides
/// until one differs, then lets proptest shrink it while the difference keeps its
/// [`Failure::signature`] and the kernel run ends the same way. Returns the first differing
/// scenario and the shrunk one.
pub fn search_strategy(cases: u32, seed: u64, config: &GenConfig, profile: &Profile) -> Option<(Failure, Failure)> {
    use std::cell::RefCell;
    let first: RefCell<Option<Failure>> = RefCell::new(None);
    let result = strategy_runner(cases, seed).run(&mmprep_scenario::strategy::scenario(config), |s| {
        let Some(f) = check_text(&s.text(), profile) else {
            return Ok(());
        };
        let mut first = first.borrow_mut();
        let same = match &*first {
            None => true,
            Some(want) => {
                f.signature() == want.signature()
                    && std::mem::discriminant(&f.kernel.end) == std::mem::discriminant(&want.kernel.end)
            }
        };
        if first.is_none() {
            *first = Some(f);
        }
        if same {
            Err(proptest::test_runner::TestCaseError::fail("the transcripts differ"))
        } else {
            Ok(())
        }
    });
    let shrunk = match result {
        Err(proptest::test_runner::TestError::Fail(_, value)) => check_text(&value.text(), profile)?,
        _ => return None,
    };
    Some((first.into_inner()?, shrunk))
}

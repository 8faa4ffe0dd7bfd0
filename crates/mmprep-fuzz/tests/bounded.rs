//! The fuzz targets on stable, for CI: the same bodies `cargo fuzz` runs (`fuzz/fuzz_targets/`),
//! fed by a seeded PRNG for a bounded number of inputs, in the test profile (debug assertions
//! and overflow checks on).
//!
//! `MMPREP_FUZZ_INPUTS=N` and `MMPREP_FUZZ_SEED=S` run more or other inputs by hand. A failing
//! input is written to `CARGO_TARGET_TMPDIR/fuzz-<target>-failure.bin`, to replay with
//! `cargo fuzz run <target> FILE` (docs/fuzzing.md), and its panic fails the test.

use std::panic::{self, AssertUnwindSafe};

use fastrand::Rng;
use mmprep_scenario::generate::{GenConfig, generate};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `target` on `inputs` inputs made by `make`; on a panic, saves the input and fails.
fn drive(name: &str, default_inputs: usize, seed: u64, target: fn(&[u8]), make: fn(&mut Rng) -> Vec<u8>) {
    let inputs = env("MMPREP_FUZZ_INPUTS").map_or(default_inputs, |n| n as usize);
    let mut rng = Rng::with_seed(env("MMPREP_FUZZ_SEED").unwrap_or(seed));
    for i in 0..inputs {
        let data = make(&mut rng);
        if panic::catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-failure.bin"));
            std::fs::write(&path, &data).expect("save the failing input");
            panic!(
                "{name}: input {i} of {inputs} failed (the panic is printed above); saved as {}",
                path.display()
            );
        }
    }
}

/// Random bytes, with runs of small values (which pick the common choices) and of 0xff.
fn api_input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.usize(0..1500);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        match rng.u8(0..8) {
            0 => out.extend(std::iter::repeat_n(0, rng.usize(1..8))),
            1 => out.extend(std::iter::repeat_n(0xff, rng.usize(1..8))),
            2 | 3 => out.push(rng.u8(0..24)),
            _ => out.push(rng.u8(..)),
        }
    }
    out
}

/// A generated scenario with bytes and lines mangled, or random text.
fn scenario_input(rng: &mut Rng) -> Vec<u8> {
    if rng.u8(0..8) == 0 {
        return (0..rng.usize(0..400)).map(|_| rng.u8(..)).collect();
    }
    let config = if rng.bool() {
        GenConfig::all_ops()
    } else {
        GenConfig::engine_today()
    };
    let mut text = generate(rng.u64(..), &config).into_bytes();
    for _ in 0..rng.usize(0..8) {
        if text.is_empty() {
            break;
        }
        let at = rng.usize(..text.len());
        match rng.u8(0..6) {
            0 => text[at] = rng.u8(..),
            1 => text[at] = b"0123456789abcdefxKMG|-_=# \n"[rng.usize(..27)],
            2 => {
                text.remove(at);
            }
            3 => {
                let word: &[u8] = [
                    &b"0xfffffffffffff000"[..],
                    b"18446744073709551615",
                    b"fork\n",
                    b"populate|",
                    b"fixed|",
                    b" 1G",
                    b"guard_install",
                    b"file d driver slots\n",
                ][rng.usize(..8)];
                text.splice(at..at, word.iter().copied());
            }
            4 => {
                // Duplicate a line.
                let start = text[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                let end = text[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(text.len(), |p| at + p + 1);
                let line = text[start..end].to_vec();
                text.splice(start..start, line);
            }
            _ => text.truncate(at),
        }
    }
    text
}

/// The inputs kept in `fuzz/seeds/TARGET/` (past findings, each named for what it found), run
/// first: a regression test for each, and a seed corpus for `cargo fuzz`.
fn seeds(name: &str, target: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("read the seed directory").path();
        let data = std::fs::read(&path).expect("read a seed");
        if panic::catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            panic!("{name}: seed {} failed (the panic is printed above)", path.display());
        }
        n += 1;
    }
    n
}

#[test]
fn api_seeds() {
    assert!(seeds("api", mmprep_fuzz::api) > 0, "fuzz/seeds/api is empty or missing");
}

#[test]
fn api_bounded() {
    drive("api", 20_000, 0x6170_6900, mmprep_fuzz::api, api_input);
}

#[test]
fn scenario_bounded() {
    drive("scenario", 10_000, 0x7363_6e00, mmprep_fuzz::scenario, scenario_input);
}

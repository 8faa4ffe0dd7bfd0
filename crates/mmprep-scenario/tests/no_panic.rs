//! Parsing and running on the engine never panics, whatever the input.
//!
//! Ten thousand inputs: generated scenarios mangled at the token and line level (tokens
//! dropped, duplicated, swapped or replaced, numbers that are zero, huge, unaligned, near
//! `u64::MAX` or wrap the window base, random bytes, very long lines), and pure random token
//! soup. Each is parsed, then run on the engine with the reference profile under
//! `catch_unwind`. Any panic fails the test, which prints the input, the panic message and where
//! it happened (the backtrace of the first panic).
//!
//! `touch` lengths are capped at 1 MiB in the parsed script before it runs: the engine walks a
//! file-backed range page by page, and a `touch` of 2^60 bytes over a huge mapping would be a
//! (correct) very long loop, not a panic.

use std::backtrace::Backtrace;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use fastrand::Rng;
use mmprep::Profile;
use mmprep_scenario::generate::{GenConfig, generate};
use mmprep_scenario::script::{Op, WINDOW_BASE};
use mmprep_scenario::{engine, parse};

/// How many inputs the test feeds.
const INPUTS: usize = 10_000;
/// The longest `touch` the engine is asked to walk (see the module doc).
const TOUCH_CAP: u64 = 1 << 20;

const VERBS: &[&str] = &[
    "window", "file", "close", "mmap", "munmap", "mprotect", "madvise", "mlock", "mlock2", "munlock", "mremap",
    "mseal", "touch", "write", "read", "fork", "maps", "smaps", "events",
];

const WORDS: &[&str] = &[
    "any",
    "memfd",
    "tmpfile",
    "zero",
    "driver",
    "ro",
    "r",
    "w",
    "onfault",
    "f0",
    "f1",
    "F1",
    "data-0",
    "file_2",
    "---",
    "r--",
    "rw-",
    "rwx",
    "r-x",
    "-w-",
    "--x",
    "rw-|growsdown",
    "r--|growsup",
    "rw-|growsdown|growsup",
    "private",
    "shared",
    "shared_validate",
    "anon",
    "fixed",
    "fixed_noreplace",
    "noreserve",
    "populate",
    "growsdown",
    "locked",
    "stack",
    "sync",
    "private|anon|fixed",
    "shared|anon|fixed",
    "private|fixed",
    "shared|fixed",
    "shared_validate|fixed|sync",
    "private|anon",
    "shared_validate|anon",
    "private|shared",
    "0",
    "maymove",
    "maymove|fixed",
    "maymove|dontunmap",
    "dontneed",
    "guard_install",
    "free",
    "#",
    "|",
    "||",
    "KEY=VALUE",
    "x=",
    "=",
    "rw",
    "rwxp",
    "-",
];

/// Numbers that reach the engine's edge cases.
fn odd_number(rng: &mut Rng) -> u64 {
    const W: u64 = WINDOW_BASE;
    const ODD: &[u64] = &[
        0,
        1,
        4095,
        4096,
        4097,
        8192,
        65536,
        1 << 20,
        1 << 21,
        (1 << 21) + 4096,
        1 << 30,
        1 << 40,
        0x7fff_ffff_f000,
        0x7fff_ffff_ffff,
        1 << 47,
        1 << 48,
        1 << 52,
        1 << 62,
        1 << 63,
        u64::MAX,
        u64::MAX - 1,
        u64::MAX - 4095,
        u64::MAX - 4096,
        0u64.wrapping_sub(W),
        0u64.wrapping_sub(W) + 4096,
        0u64.wrapping_sub(W) - 4096,
        0u64.wrapping_sub(W) + 0x10000,
        0x7fff_ffff_f000 - W,
        0x7fff_ffff_e000 - W,
        0x8000_0000_0000 - W,
        u64::MAX - W,
    ];
    match rng.u8(0..6) {
        0 | 1 => ODD[rng.usize(..ODD.len())],
        2 => rng.u64(..),
        3 => rng.u64(0..64) * 4096,
        4 => rng.u64(0..64) * 4096 + rng.u64(1..4096),
        _ => ODD[rng.usize(..ODD.len())]
            .wrapping_add(rng.u64(0..3) * 4096)
            .wrapping_sub(4096),
    }
}

fn number_text(rng: &mut Rng, v: u64) -> String {
    match rng.u8(0..8) {
        0 if v.is_multiple_of(1024) && v / 1024 > 0 => format!("{}K", v / 1024),
        1 if v.is_multiple_of(1 << 20) && v >> 20 > 0 => format!("{}M", v >> 20),
        2 if v.is_multiple_of(1 << 30) && v >> 30 > 0 => format!("{}G", v >> 30),
        3 | 4 => format!("{v:#x}"),
        5 => format!("0x{v:X}"),
        _ => v.to_string(),
    }
}

fn random_token(rng: &mut Rng) -> String {
    match rng.u8(0..10) {
        0..=2 => {
            let v = odd_number(rng);
            number_text(rng, v)
        }
        3 => VERBS[rng.usize(..VERBS.len())].to_string(),
        4..=7 => WORDS[rng.usize(..WORDS.len())].to_string(),
        8 => {
            // Numbers that do not fit, or almost parse.
            let pick = [
                "18446744073709551616",
                "0x10000000000000000",
                "99999999999999999999K",
                "16777216T",
                "0x",
                "4k",
                "-4096",
                "+1",
                "0x1g",
                "1KK",
                "17179869184K",
                "18014398509481984K",
            ];
            pick[rng.usize(..pick.len())].to_string()
        }
        _ => (0..rng.usize(1..6)).map(|_| random_char(rng)).collect(),
    }
}

fn random_char(rng: &mut Rng) -> char {
    match rng.u8(0..4) {
        0 => rng.char(..),
        1 => rng.char('\0'..='\u{7f}'),
        _ => b"0123456789abcdefxKMG|-_=#rwx "[rng.usize(..29)] as char,
    }
}

/// A generated scenario, mangled.
fn mutated_scenario(rng: &mut Rng) -> String {
    let config = if rng.u8(0..4) == 0 {
        GenConfig::all_ops()
    } else {
        GenConfig::engine_today()
    };
    let text = generate(rng.u64(..), &config);
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    let edits = rng.usize(1..=6);
    for _ in 0..edits {
        if lines.is_empty() {
            lines.push(vec![random_token(rng)]);
        }
        let li = rng.usize(..lines.len());
        match rng.u8(0..20) {
            // Token edits within a line.
            0 if !lines[li].is_empty() => {
                let ti = rng.usize(..lines[li].len());
                lines[li].remove(ti);
            }
            1 if !lines[li].is_empty() => {
                let ti = rng.usize(..lines[li].len());
                let t = lines[li][ti].clone();
                lines[li].insert(ti, t);
            }
            2 if lines[li].len() >= 2 => {
                let a = rng.usize(..lines[li].len());
                let b = rng.usize(..lines[li].len());
                lines[li].swap(a, b);
            }
            3..=10 if !lines[li].is_empty() => {
                // Replace a number (or any token) with an odd number.
                let numeric: Vec<usize> = (0..lines[li].len())
                    .filter(|&i| lines[li][i].starts_with(|c: char| c.is_ascii_digit()))
                    .collect();
                let ti = if numeric.is_empty() {
                    rng.usize(..lines[li].len())
                } else {
                    numeric[rng.usize(..numeric.len())]
                };
                let v = odd_number(rng);
                lines[li][ti] = number_text(rng, v);
            }
            11 => {
                let t = random_token(rng);
                let at = rng.usize(..=lines[li].len());
                lines[li].insert(at, t);
            }
            // Line edits.
            12 => {
                lines.remove(li);
            }
            13 => {
                let l = lines[li].clone();
                lines.insert(rng.usize(..=lines.len()), l);
            }
            14 => {
                let other = rng.usize(..lines.len());
                lines.swap(li, other);
            }
            15 => {
                // A very long line: many tokens, or one huge token.
                let long = if rng.bool() {
                    (0..rng.usize(1000..5000)).map(|_| random_token(rng)).collect()
                } else {
                    vec!["9".repeat(rng.usize(20..3000))]
                };
                lines.insert(rng.usize(..=lines.len()), long);
            }
            16 => {
                // Random bytes (valid UTF-8: the parser takes &str).
                let junk: String = (0..rng.usize(1..64)).map(|_| random_char(rng)).collect();
                lines.insert(rng.usize(..=lines.len()), vec![junk]);
            }
            17 => {
                // A token of another line.
                let other = rng.usize(..lines.len());
                if !lines[other].is_empty() {
                    let t = lines[other][rng.usize(..lines[other].len())].clone();
                    let at = rng.usize(..=lines[li].len());
                    lines[li].insert(at, t);
                }
            }
            _ => {
                // An address offset that wraps the window base, on a range line.
                if lines[li].len() >= 3 && !lines[li][1].starts_with('a') {
                    let wrap = 0u64.wrapping_sub(WINDOW_BASE).wrapping_add(rng.u64(0..64) * 4096);
                    lines[li][1] = format!("{wrap:#x}");
                }
            }
        }
    }
    let mut out = String::new();
    for l in &lines {
        out.push_str(&l.join(if rng.u8(0..10) == 0 { "\t" } else { " " }));
        if rng.u8(0..50) == 0 {
            out.push('\r');
        }
        out.push('\n');
        if rng.u8(0..40) == 0 {
            out.push('\n');
        }
    }
    out
}

/// Lines of random verbs and tokens, with file declarations sometimes first so that names
/// resolve.
fn token_soup(rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.bool() {
        out.push_str("file f0 memfd 64K\nfile f1 tmpfile 16K\nfile F1 zero\n");
    }
    for _ in 0..rng.usize(1..40) {
        let verb = if rng.u8(0..5) == 0 {
            random_token(rng)
        } else {
            VERBS[rng.usize(..VERBS.len())].to_string()
        };
        out.push_str(&verb);
        for _ in 0..rng.usize(0..7) {
            out.push(' ');
            out.push_str(&random_token(rng));
        }
        out.push('\n');
    }
    out
}

/// What the panic hook saw: message, location and (for the first) a backtrace.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

#[test]
fn parse_and_engine_never_panic() {
    let profile = Profile::reference_host();
    // MMPREP_NO_PANIC_INPUTS=N and MMPREP_NO_PANIC_SEED=S, to search further by hand.
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
    let inputs = env("MMPREP_NO_PANIC_INPUTS").map_or(INPUTS, |n| n as usize);
    let mut rng = Rng::with_seed(env("MMPREP_NO_PANIC_SEED").unwrap_or(0x006e_6f70_616e_6963));
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let mut slot = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
        let backtrace = Backtrace::force_capture();
        *slot = Some(format!("{info}\nbacktrace:\n{backtrace}"));
    }));
    let mut panics: Vec<(String, String)> = Vec::new();
    let mut steps_run = 0;
    for i in 0..inputs {
        let text = if i % 3 == 2 {
            token_soup(&mut rng)
        } else {
            mutated_scenario(&mut rng)
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut script = parse(&text);
            steps_run += script.steps.len();
            for step in &mut script.steps {
                if let Op::Touch { len, .. } | Op::Read { len, .. } | Op::Write { len, .. } = &mut step.op {
                    *len = (*len).min(TOUCH_CAP);
                }
            }
            engine::run(&script, &profile)
        }));
        if result.is_err() {
            let why = LAST_PANIC
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default();
            panics.push((text, why));
            if panics.len() >= 20 {
                break;
            }
        }
    }
    panic::set_hook(previous_hook);
    eprintln!("{steps_run} steps ran for {inputs} inputs, {} panicked", panics.len());
    if panics.is_empty() {
        // The mutations must reach the engine, not only the parser's error paths.
        assert!(
            steps_run > inputs * 10,
            "only {steps_run} steps ran for {inputs} inputs"
        );
        return;
    }
    for (text, why) in panics.iter().take(5) {
        let shown: String = if text.len() > 4000 {
            let cut = (0..=4000).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            format!("{}... ({} bytes)", &text[..cut], text.len())
        } else {
            text.clone()
        };
        eprintln!("==================== input:\n{shown}\n-------------------- panic: {why}");
    }
    panic!("{} inputs panicked (the first 5 are printed above)", panics.len());
}

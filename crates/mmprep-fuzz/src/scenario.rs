//! The `scenario` target: the scenario parser and the engine runner on arbitrary text.
//!
//! The bytes are read as UTF-8 (invalid sequences replaced: the parser takes `&str`; the CLI
//! refuses invalid UTF-8 before parsing), parsed, and run on the engine, as
//! `crates/mmprep-scenario/tests/no_panic.rs` does for its generated inputs. Findings: a panic
//! anywhere, a failed `check_invariants()` (the runner checks after every step in builds with
//! debug assertions), a parse that claims success but has an error, or a transcript that does
//! not print.
//!
//! Lengths that make the engine walk page by page are capped at [`TOUCH_CAP`] when they are
//! within `TASK_SIZE` (a length beyond it must fail fast and is kept): `touch`, `read` and
//! `write` ranges, `mmap ... populate|locked` and `madvise` populate or willneed. A walk of 2^40
//! bytes is correct, only slow. Locking is bounded by the profile: no `CAP_IPC_LOCK`, a 1 MiB
//! `RLIMIT_MEMLOCK`.

use mmprep::Profile;
use mmprep::uapi::madv;
use mmprep_scenario::script::Op;
use mmprep_scenario::{engine, parse};

/// The longest range a populating line walks, in bytes.
pub const TOUCH_CAP: u64 = 1 << 20;

/// The `scenario` target. Panics on a finding.
pub fn scenario(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut script = parse(&text);
    let mut profile = Profile::reference_host();
    profile.cap_ipc_lock = false;
    profile.rlimit_memlock = 1 << 20;
    let task = profile.task_size;
    let cap = |len: &mut u64| {
        if *len > TOUCH_CAP && *len <= task {
            *len = TOUCH_CAP;
        }
    };
    for step in &mut script.steps {
        match &mut step.op {
            Op::Touch { len, .. } | Op::Read { len, .. } | Op::Write { len, .. } => cap(len),
            // MAP_POPULATE, MAP_LOCKED.
            Op::Mmap { len, flags, .. } if *flags & (0x8000 | 0x2000) != 0 => cap(len),
            Op::Madvise { len, advice, .. }
                if matches!(*advice, madv::POPULATE_READ | madv::POPULATE_WRITE | madv::WILLNEED) =>
            {
                cap(len)
            }
            _ => {}
        }
    }
    let transcript = engine::run(&script, &profile);
    // Every entry and the end print.
    let _ = transcript.text();
    let _ = transcript.end.message();
    let _ = transcript.end.exit_code();
}

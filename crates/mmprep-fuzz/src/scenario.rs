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
//! `RLIMIT_MEMLOCK`. A mapping of a driver's file is cut to [`DRIVER_MAP_CAP`]: the remap
//! actions (`mem`, `fb`, ...) install one page-table entry per page, about 64 bytes of host
//! memory each, so `mmap 0 1T rw- shared d 0` of a 1 TiB `fb` needs some 16 GiB (a known cost,
//! left to the page-table representation: issue 12, finding 5).

use mmprep::Profile;
use mmprep::uapi::madv;
use mmprep_scenario::script::{FileKind, Op};
use mmprep_scenario::{engine, parse};

/// The longest range a populating line walks, in bytes.
pub const TOUCH_CAP: u64 = 1 << 20;
/// The longest mapping of a driver's file, in bytes.
pub const DRIVER_MAP_CAP: u64 = 64 << 20;

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
    let is_driver = |id: usize| matches!(script.files.get(id).map(|f| &f.kind), Some(FileKind::Driver { .. }));
    let driver_maps: Vec<bool> = script
        .steps
        .iter()
        .map(|step| matches!(&step.op, Op::Mmap { file: Some(f), .. } if is_driver(f.file)))
        .collect();
    for (step, driver_map) in script.steps.iter_mut().zip(driver_maps) {
        match &mut step.op {
            // A driver's remap action installs an entry per page (see the module doc).
            Op::Mmap { len, .. } if driver_map && *len > DRIVER_MAP_CAP && *len <= task => *len = DRIVER_MAP_CAP,
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

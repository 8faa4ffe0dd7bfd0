//! The x86_64 process layout with randomisation off, against the kernel: a C probe run under
//! `setarch -R` with several stack rlimits prints where its interpreter (`ld.so`, the first
//! `mmap(NULL)` of every dynamically linked process, made by `load_elf_interp`) landed; the engine,
//! given only the stack rlimit, must put a mapping of the same size at the same address.

mod common;

use mmprep::mmap_layout::TASK_SIZE_4LEVEL;
use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};

const PROBE: &str = r#"
#include <stdio.h>
#include <string.h>
int main(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo = 0, hi = 0, s, e;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "/ld-linux"))
            continue;
        sscanf(line, "%lx-%lx", &s, &e);
        if (!lo || s < lo) lo = s;
        if (e > hi) hi = e;
    }
    printf("%lx %lx\n", lo, hi);
    return 0;
}
"#;

/// Where the kernel put `ld.so` (start, end) for this stack limit and setarch flags.
fn interp_range(stack: &str, extra: &[&str]) -> (u64, u64) {
    let exe = common::compile_c("layout", PROBE);
    let out = common::run_setarch(&exe, stack, extra);
    let mut it = out.split_whitespace().map(|w| u64::from_str_radix(w, 16).expect("hex"));
    let (lo, hi) = (it.next().expect("start"), it.next().expect("end"));
    assert!(lo != 0 && hi > lo, "no ld.so mapping in the probe's maps: {out}");
    (lo, hi)
}

/// The engine's `mmap(NULL, len)` in an empty address space with this profile.
fn engine_first_mmap(profile: Profile, len: u64) -> u64 {
    let mut mm = Mm::new(profile);
    let a = mm
        .mmap(
            VirtAddr(0),
            len,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS,
            None,
            0,
        )
        .expect("mmap");
    mm.check_invariants();
    a.get()
}

fn profile(stack: u64, legacy: bool) -> Profile {
    let mut p = Profile {
        rlimit_stack: stack,
        task_size: TASK_SIZE_4LEVEL,
        ..Profile::reference_host()
    };
    p.pick_mmap_layout(legacy);
    p
}

#[track_caller]
fn check(stack_arg: &str, stack: u64, legacy: bool) {
    let extra: &[&str] = if legacy { &["-L"] } else { &[] };
    let (lo, hi) = interp_range(stack_arg, extra);
    let p = profile(stack, legacy);
    if legacy {
        assert_eq!(p.mmap_base, lo, "legacy base vs ld.so start (stack {stack_arg})");
    } else {
        assert_eq!(p.mmap_base, hi, "mmap_base vs ld.so end (stack {stack_arg})");
    }
    assert_eq!(
        engine_first_mmap(p, hi - lo),
        lo,
        "first mmap(NULL) (stack {stack_arg})"
    );
}

#[test]
fn topdown_8m_stack() {
    check("8192", 8 << 20, false);
}

#[test]
fn topdown_64m_stack() {
    check("65536", 64 << 20, false);
}

#[test]
fn topdown_1g_stack() {
    check("1048576", 1 << 30, false);
}

/// An unlimited stack keeps the top-down layout on x86_64; the gap is clamped to 5/6 of the
/// address space.
#[test]
fn topdown_unlimited_stack() {
    check("unlimited", u64::MAX, false);
}

/// `setarch -L` (`ADDR_COMPAT_LAYOUT`): bottom-up from `TASK_UNMAPPED_BASE`, whatever the stack.
#[test]
fn legacy_layout() {
    check("8192", 8 << 20, true);
    check("unlimited", u64::MAX, true);
}

#[test]
fn with_stack_rlimit_is_the_reference_host_at_8m() {
    assert_eq!(Profile::with_stack_rlimit(8 << 20), Profile::reference_host());
}

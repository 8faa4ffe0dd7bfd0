//! The `i386` profile against a real 32-bit program on this host (issue 13).
//!
//! The host has `gcc -m32` but no 32-bit libc, so the probe is freestanding: `_start` and
//! `int $0x80` system calls, built with `gcc -m32 -nostdlib -static -fno-pie -no-pie`. It
//! prints its own `/proc/self/smaps` and `/proc/self/stat`, makes a sequence of memory calls
//! through the i386 numbers (`mmap2` 192, `munmap` 91, `mprotect` 125, `mremap` 163), prints
//! each result, then prints `/proc/self/maps`. The test imports the first smaps into the engine
//! with the `i386` profile (`mmprep_host::import::import_text`), runs the same calls through
//! `mmprep::abi::syscall` with the same numbers and registers, and asserts the same results and
//! the same final maps, under `setarch -R` (top-down from the compat base) with an 8 MiB, a
//! 1 GiB and an unlimited stack, and under `setarch -R -L` (the legacy layout). The exec layout
//! itself is imported, not built: `Mm::exec` makes x86_64 layouts only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use mmprep::abi::{self, FdTable, Outcome};

/// An argument register: a literal, or the result of an earlier call.
#[derive(Clone, Copy)]
enum Arg {
    Lit(u32),
    Ret(usize),
}
use Arg::{Lit, Ret};

impl Arg {
    /// `[self, len, prot]` as the first three registers.
    fn pair(self, len: u32, prot: u32) -> [Arg; 6] {
        [self, Lit(len), Lit(prot), Lit(0), Lit(0), Lit(0)]
    }
}

const RW: u32 = 3;
const ANON: u32 = 0x22; // MAP_PRIVATE | MAP_ANONYMOUS
const FIXED: u32 = 0x10;
const NOREPLACE: u32 = 0x10_0000;
const BIT32: u32 = 0x40;

/// The calls, in order: (i386 number, registers ebx..ebp).
fn calls() -> Vec<(u32, [Arg; 6])> {
    let mmap2 = |addr: Arg, len: u32, prot: u32, flags: u32| {
        (192, [addr, Lit(len), Lit(prot), Lit(flags), Lit(u32::MAX), Lit(0)])
    };
    vec![
        /* 0 */ mmap2(Lit(0), 4096, RW, ANON),
        /* 1 */ mmap2(Lit(0), 8192, 1, ANON),
        /* 2 */ mmap2(Lit(0), 4096, RW, ANON | BIT32), // MAP_32BIT means nothing to a 32-bit task
        /* 3 */ mmap2(Lit(0x4000_0000), 4096, RW, ANON), // a free hint
        /* 4 */ mmap2(Lit(0x4000_0000), 4096, RW, ANON | FIXED),
        /* 5 */ mmap2(Lit(0x4000_1000), 4096, RW, ANON | NOREPLACE),
        /* 6 */ mmap2(Lit(0x4000_0000), 4096, RW, ANON | NOREPLACE), // EEXIST
        /* 7 */ mmap2(Lit(0xffff_f000), 4096, RW, ANON), // a hint past TASK_SIZE
        /* 8 */ mmap2(Lit(0xffff_e000), 4096, RW, ANON | FIXED), // ENOMEM
        /* 9 */ mmap2(Lit(0), 3 << 20, RW, ANON),
        /* 10 munmap */ (91, [Ret(1), Lit(4096), Lit(0), Lit(0), Lit(0), Lit(0)]),
        /* 11 mprotect */ (125, [Ret(9), Lit(4096), Lit(1), Lit(0), Lit(0), Lit(0)]),
        /* 12 */ mmap2(Lit(0), 4096, 7, ANON),
        /* 13 mremap MAYMOVE */ (163, [Ret(0), Lit(4096), Lit(3 << 12), Lit(1), Lit(0), Lit(0)]),
        /* 14 mremap shrink */ (163, [Ret(13), Lit(3 << 12), Lit(4096), Lit(0), Lit(0), Lit(0)]),
        /* 15 mprotect */ (125, Ret(3).pair(4096, 5)),
    ]
}

/// The probe's C source, generated from [`calls`].
fn probe_source() -> String {
    let mut body = String::new();
    for (i, (nr, args)) in calls().iter().enumerate() {
        let a: Vec<String> = args
            .iter()
            .map(|a| match a {
                Lit(v) => format!("{v:#x}u"),
                Ret(j) => format!("r[{j}]"),
            })
            .collect();
        writeln!(body, "  r[{i}] = sc({nr}, {});\n  hex(r[{i}]);", a.join(", ")).unwrap();
    }
    format!(
        r#"typedef unsigned int u32;
static u32 sc(u32 n, u32 a, u32 b, u32 c, u32 d, u32 e, u32 f) {{
  u32 r;
  __asm__ volatile("push %%ebp\n\tmov %7, %%ebp\n\tint $0x80\n\tpop %%ebp"
    : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e), "g"(f) : "memory");
  return r;
}}
static char buf[1 << 16];
static u32 r[64];
static void put(const char *s, u32 n) {{ sc(4, 1, (u32)s, n, 0, 0, 0); }}
static void hex(u32 v) {{
  char t[11]; t[0] = '0'; t[1] = 'x';
  for (int i = 0; i < 8; i++) {{ int d = (v >> (28 - 4 * i)) & 15; t[2 + i] = d < 10 ? '0' + d : 'a' + d - 10; }}
  t[10] = '\n'; put(t, 11);
}}
static u32 len(const char *s) {{ u32 n = 0; while (s[n]) n++; return n; }}
static void dump(const char *tag, const char *path) {{
  u32 fd = sc(5, (u32)path, 0, 0, 0, 0, 0), n, tot = 0;
  while ((int)(n = sc(3, fd, (u32)buf + tot, sizeof(buf) - tot, 0, 0, 0)) > 0) tot += n;
  sc(6, fd, 0, 0, 0, 0, 0);
  put(tag, len(tag)); put("\n", 1); put(buf, tot); put("end\n", 4);
}}
void _start(void) {{
  dump("smaps", "/proc/self/smaps");
  dump("stat", "/proc/self/stat");
{body}  dump("maps", "/proc/self/maps");
  sc(1, 0, 0, 0, 0, 0, 0);
}}
"#
    )
}

/// Builds the probe; `None` if there is no `gcc` at all.
fn build_probe(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("i386probe.c");
    let exe = dir.join("i386probe");
    std::fs::write(&src, probe_source()).unwrap();
    let out = match Command::new("gcc")
        .args([
            "-m32",
            "-nostdlib",
            "-static",
            "-fno-pie",
            "-no-pie",
            "-O1",
            "-fno-stack-protector",
            "-o",
        ])
        .arg(&exe)
        .arg(&src)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("gcc: {e}"),
    };
    assert!(
        out.status.success(),
        "gcc -m32 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

/// The text between `tag\n` and the next `end\n`, and what follows it.
fn section<'a>(text: &'a str, tag: &str) -> (&'a str, &'a str) {
    let start = text
        .find(&format!("{tag}\n"))
        .unwrap_or_else(|| panic!("no {tag} in\n{text}"))
        + tag.len()
        + 1;
    let len = text[start..].find("end\n").expect("end");
    (&text[start..start + len], &text[start + len + 4..])
}

/// Runs the probe under `setarch` with `flags` and the stack rlimit `stack_kib` (`None`:
/// unlimited), and the same calls on the engine; asserts both agree. Returns the engine's
/// `mmap_base`, or `None` when the hard limit does not allow that stack limit.
fn compare(exe: &Path, setarch_flags: &[&str], stack_kib: Option<u64>, legacy: bool) -> Option<u64> {
    let limit = stack_kib.map_or("unlimited".to_string(), |k| k.to_string());
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -s {limit} 2>/dev/null || exit 77; exec setarch i386 \"$@\""
        ))
        .arg("sh")
        .args(setarch_flags)
        .arg(exe)
        .output()
        .expect("sh, setarch");
    if out.status.code() == Some(77) {
        eprintln!("skipped: the hard stack limit does not allow `ulimit -s {limit}`");
        return None;
    }
    assert!(out.status.success(), "probe failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (smaps, rest) = section(&text, "smaps");
    let (stat, rest) = section(rest, "stat");
    let kernel_rets: Vec<u32> = rest
        .lines()
        .take(calls().len())
        .map(|l| u32::from_str_radix(l.trim_start_matches("0x"), 16).expect("hex"))
        .collect();
    let (kernel_maps, _) = section(rest, "maps");

    let mut profile = mmprep_host::host_profile();
    profile.rlimit_stack = stack_kib.map_or(u64::MAX, |k| k << 10);
    profile.set_arch(mmprep::arch::Arch::by_name("i386").unwrap());
    profile.pick_mmap_layout(legacy);
    let stat = <procfs::process::Stat as procfs::FromRead>::from_read(stat.as_bytes()).expect("stat");
    let stat = mmprep_host::import::stat_addrs(&stat).expect("stat addresses");
    let mut mm = mmprep_host::import::import_text(smaps, stat, None, profile).expect("import");
    let fds = FdTable::new();
    let mut rets: Vec<u32> = Vec::new();
    for (i, (nr, args)) in calls().iter().enumerate() {
        let regs = args.map(|a| match a {
            Lit(v) => u64::from(v),
            Ret(j) => u64::from(rets[j]),
        });
        let got = match abi::syscall(&mut mm, &fds, u64::from(*nr), regs) {
            Outcome::Return(v) => v as u32,
            other => panic!("call {i}: {other:?}"),
        };
        assert_eq!(
            got, kernel_rets[i],
            "call {i} ({nr}, {regs:x?}) under setarch {setarch_flags:?}: engine {got:#x}, kernel {:#x}\n{mm:?}",
            kernel_rets[i]
        );
        rets.push(got);
        mm.check_invariants();
    }
    assert_eq!(
        mmprep_host::import::maps_of(&mm.maps()),
        mmprep_host::import::maps_of(kernel_maps),
        "final maps under setarch {setarch_flags:?}"
    );
    // The profile's base is the one the kernel used: the top of the vDSO block (top-down) or
    // the legacy base.
    let base = mm.profile().mmap_base;
    if !legacy {
        let vdso_end = format!("-{base:08x} r-xp 00000000 00:00 0 ");
        assert!(
            kernel_maps.contains(&vdso_end),
            "no [vdso] ending at {base:#x}:\n{kernel_maps}"
        );
    }
    Some(base)
}

#[test]
fn i386_profile_matches_a_real_32_bit_program() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let Some(exe) = build_probe(&dir) else {
        eprintln!("skipped: gcc is not installed (the i386 probe needs `gcc -m32`)");
        return;
    };
    // The compat base keeps the 128 MiB minimum gap with an 8 MiB stack, follows a 1 GiB one,
    // and is clamped to five sixths of the 32-bit space when unlimited (x86 does not choose the
    // legacy layout for an unlimited stack); -L is the legacy base.
    assert_eq!(compare(&exe, &["-R"], Some(8192), false), Some(0xf7ff_e000));
    assert_eq!(compare(&exe, &["-R", "-L"], Some(8192), true), Some(0x5555_5000));
    for (stack, base) in [(Some(1 << 20), 0xbfef_e000), (None, 0x2aaa_b000)] {
        if let Some(got) = compare(&exe, &["-R"], stack, false) {
            assert_eq!(got, base, "stack {stack:?} KiB");
        }
    }
}

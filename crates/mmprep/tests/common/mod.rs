//! Shared helpers for the engine's tests: pages above a base, mapping shorthands, and the
//! layout as maps-style lines (offsets from the base, as scenario transcripts print them).
#![allow(dead_code)]

use std::sync::Arc;

use mmprep::file::File;
use mmprep::{Access, MapFlags, Mm, Profile, Prot, VirtAddr};

/// The base the tests map at: the scenario window base, so a test's layout reads like the
/// transcript of the scenario it mirrors.
pub const BASE: u64 = 0x2000_0000_0000;

/// The address of page `n` above the base.
pub fn page(n: u64) -> VirtAddr {
    VirtAddr(BASE + n * 4096)
}

/// `n` pages in bytes.
pub fn pages(n: u64) -> u64 {
    n * 4096
}

/// An empty address space on the reference host.
pub fn new_mm() -> Mm {
    Mm::new(Profile::reference_host())
}

pub const ANON: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED.0);
pub const SHARED_FIXED: MapFlags = MapFlags(MapFlags::SHARED.0 | MapFlags::FIXED.0);
pub const PRIVATE_FIXED: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::FIXED.0);

/// Maps private anonymous memory over pages `[from, to)`.
pub fn map_anon(mm: &mut Mm, from: u64, to: u64, prot: Prot) {
    let a = mm
        .mmap(page(from), pages(to - from), prot, ANON, None, 0)
        .expect("anonymous mmap");
    assert_eq!(a, page(from));
    mm.check_invariants();
}

/// Maps `file` over pages `[from, to)` at file page `pgoff`.
pub fn map_file(mm: &mut Mm, from: u64, to: u64, prot: Prot, flags: MapFlags, file: &Arc<File>, pgoff: u64) {
    let a = mm
        .mmap(page(from), pages(to - from), prot, flags, Some(file), pages(pgoff))
        .expect("file mmap");
    assert_eq!(a, page(from));
    mm.check_invariants();
}

/// Writes one byte in every page of `[from, to)`.
pub fn write_touch(mm: &mut Mm, from: u64, to: u64) {
    for p in from..to {
        mm.access(page(p), Access::Write).expect("write access");
    }
    mm.check_invariants();
}

/// The VMAs as scenario-transcript lines: `START-END PERMS OFFSET`, offsets from the base.
pub fn layout(mm: &Mm) -> String {
    mm.vmas()
        .map(|v| {
            let r = mmprep::procfs::maps_row(v);
            let perms = std::str::from_utf8(&r.perms).unwrap().to_string();
            format!("{:08x}-{:08x} {} {:08x}", r.start - BASE, r.end - BASE, perms, r.offset)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts the whole layout; `expected` lines may be indented.
#[macro_export]
macro_rules! assert_maps {
    ($mm:expr, $expected:expr) => {{
        let want: Vec<&str> = $expected.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let got = common::layout(&$mm);
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got, want, "\nlayout differs; the address space is:\n{:?}", $mm);
        $mm.check_invariants();
    }};
}

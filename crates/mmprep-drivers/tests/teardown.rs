//! Teardown with every example driver (issue 12 finding 3): when an address space goes
//! (`Mm::exit`, or dropping the `Mm`: `mm/mmap.c:exit_mmap`), every VMA is closed, so for each
//! driver the VMAs it saw come (`mapped` for a new one, `open` for a split piece or a fork copy)
//! equal the `close` calls, and no VMA keeps the driver's file.
//!
//! Against the old behaviour these tests fail: dropping an `Mm` ran no `close` (and `Mm::exit`
//! did not exist), so `slots` and `ring` saw `mapped + open > close`, and a dropped fork child
//! kept its `slots` forever (`EBUSY` on the next mapping).

use std::sync::Arc;

use mmprep::events::Event;
use mmprep::{Errno, MapFlags, Mm, Profile, Prot, VirtAddr};
use mmprep_drivers::registry::{self, DriverEnv, Params};

const BASE: u64 = 0x2000_0000_0000;
const SHARED: MapFlags = MapFlags(MapFlags::SHARED.0 | MapFlags::FIXED.0);
const PRIVATE: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::FIXED.0);

fn page(n: u64) -> VirtAddr {
    VirtAddr(BASE + n * 4096)
}

/// One mapping: first page, pages, protection, flags, file offset in bytes.
type Map = (u64, u64, Prot, MapFlags, u64);

/// How to map each driver (what its example scenario under `examples/` maps), with parameters
/// that leave room for the fork child's mapping too.
fn plan(name: &str) -> (Vec<(String, String)>, Vec<Map>) {
    let p = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match name {
        "ro" => (
            p(&[]),
            vec![(0, 2, Prot::READ, SHARED, 0), (16, 2, Prot::RW, PRIVATE, 0)],
        ),
        // Five slots: the parent's two VMAs, the child's two copies and its own mapping (whose
        // split takes a sixth, over the limit: `open` cannot fail). The parent's last mapping
        // finds a free slot only if the child's teardown gave its four back.
        "slots" => (
            p(&[("slots", "5")]),
            vec![(0, 2, Prot::RW, SHARED, 0), (16, 2, Prot::RW, SHARED, 0)],
        ),
        "dax" => (
            p(&[("size", "16K")]),
            vec![(0, 2, Prot::RW, SHARED, 0), (16, 2, Prot::READ, SHARED, 8192)],
        ),
        "hpet" => (
            p(&[]),
            vec![(0, 1, Prot::READ, SHARED, 0), (16, 1, Prot::READ, SHARED, 0)],
        ),
        "mem" => (
            p(&[("base", "0xe0000"), ("size", "16K")]),
            vec![(0, 2, Prot::RW, SHARED, 0xe0000), (16, 4, Prot::RW, PRIVATE, 0xe0000)],
        ),
        "fb" => (
            p(&[("size", "16K")]),
            vec![(0, 2, Prot::RW, SHARED, 8192), (16, 4, Prot::READ, SHARED, 0)],
        ),
        "ring" => (
            p(&[("pages", "2")]),
            vec![(0, 2, Prot::RW, SHARED, 0), (16, 2, Prot::READ, SHARED, 0)],
        ),
        "dumpless" => (
            p(&[]),
            vec![(0, 2, Prot::RW, SHARED, 0), (16, 2, Prot::RW, SHARED, 8192)],
        ),
        "stack" => (
            p(&[("size", "16K")]),
            vec![(0, 2, Prot::RW, SHARED, 0), (16, 1, Prot::READ, SHARED, 0)],
        ),
        other => panic!("driver `{other}` has no plan here: add one"),
    }
}

fn map(mm: &mut Mm, file: &Arc<mmprep::file::File>, (from, n, prot, flags, off): Map) {
    let at = mm
        .mmap(page(from), n * 4096, prot, flags, Some(file), off)
        .unwrap_or_else(|e| panic!("mmap {from}+{n}: {e}"));
    assert_eq!(at, page(from));
    mm.check_invariants();
}

/// VMAs that came (`mapped`, `open`) and went (`close`) in these events.
fn tally(events: &[Event]) -> (usize, usize, usize) {
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    (
        count(|e| matches!(e, Event::Mapped { .. })),
        count(|e| matches!(e, Event::Open { .. })),
        count(|e| matches!(e, Event::Close { .. })),
    )
}

/// For every driver: map (fresh), split a VMA with `mprotect`, fork, let the child split and
/// map too, end the child, map again in the parent, end the parent. Over both address spaces
/// `mapped + open == close`, and afterwards no VMA holds the driver's file.
#[test]
fn every_driver_closes_what_it_opened() {
    let mut exercised = Vec::new();
    for info in registry::drivers() {
        let (params, maps) = plan(info.name);
        let mut mm = Mm::new(Profile::reference_host());
        mm.set_event_log(true);
        let env = DriverEnv {
            machine: mm.machine(),
            shmem: mm.shmem(),
            events: mm.event_sink(),
        };
        let file = (info.open)(&Params(params), &env).unwrap();
        let mut events = Vec::new();
        map(&mut mm, &file, maps[0]);
        // A split: the driver sees `open` for the new piece.
        if maps[0].1 > 1 {
            mm.mprotect(page(maps[0].0 + 1), 4096, Prot::READ).unwrap();
            mm.check_invariants();
        }
        events.extend(mm.take_events());

        let mut child = mm.fork().unwrap();
        child.check_invariants();
        map(&mut child, &file, maps[1]);
        if maps[1].1 > 1 {
            child.mprotect(page(maps[1].0), 4096, Prot::NONE).unwrap();
            child.check_invariants();
        }
        child.exit();
        child.check_invariants();
        assert_eq!(child.vmas().count(), 0);
        events.extend(child.take_events());
        drop(child);

        map(&mut mm, &file, maps[1]);
        mm.exit();
        mm.check_invariants();
        events.extend(mm.take_events());
        drop(mm);

        let (mapped, opens, closes) = tally(&events);
        assert_eq!(
            mapped + opens,
            closes,
            "driver `{}`: mapped {mapped} + open {opens} != close {closes}\n{events:#?}",
            info.name
        );
        assert_eq!(
            Arc::strong_count(&file),
            1,
            "driver `{}`: a VMA kept the file",
            info.name
        );
        if closes > 0 {
            exercised.push(info.name);
        }
    }
    // The drivers with `close` took part for real (the rest have no open/close hooks).
    assert_eq!(exercised, ["slots", "ring"]);
}

/// `slots` with three slots: a fork child holding two of them is dropped, and the parent can
/// use them again. Before, the child's slots were never given back: `EBUSY` forever.
#[test]
fn dropped_child_gives_its_slots_back() {
    let mut mm = Mm::new(Profile::reference_host());
    let env = DriverEnv {
        machine: mm.machine(),
        shmem: mm.shmem(),
        events: mm.event_sink(),
    };
    let params = Params(vec![("slots".into(), "3".into())]);
    let file = (registry::find("slots").unwrap().open)(&params, &env).unwrap();
    map(&mut mm, &file, (0, 1, Prot::RW, SHARED, 0));
    // The fork's copy holds a slot (open), the child's own mapping another: all three used.
    let mut child = mm.fork().unwrap();
    map(&mut child, &file, (4, 1, Prot::RW, SHARED, 0));
    let e = mm.mmap(page(8), 4096, Prot::RW, SHARED, Some(&file), 0).unwrap_err();
    assert_eq!(e.errno, Errno::EBUSY);
    mm.check_invariants();
    assert_eq!(mm.vmas().count(), 1, "the failed mapping was unmapped again");

    drop(child);
    map(&mut mm, &file, (8, 1, Prot::RW, SHARED, 0));
    map(&mut mm, &file, (12, 1, Prot::RW, SHARED, 0));
    let e = mm.mmap(page(16), 4096, Prot::RW, SHARED, Some(&file), 0).unwrap_err();
    assert_eq!(e.errno, Errno::EBUSY, "three slots, three mappings");
    mm.check_invariants();

    // Dropping the parent frees them all: a new address space gets three again.
    drop(mm);
    let mut mm = Mm::new(Profile::reference_host());
    for p in [0, 4, 8] {
        map(&mut mm, &file, (p, 1, Prot::RW, SHARED, 0));
    }
}

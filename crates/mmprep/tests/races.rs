//! Races under the caller's lock: the locking rules of `docs/core-design.md` (section 1), each
//! checked by many bounded rounds of the race it rules out.
//!
//! - Writes through the shared lock (`try_write` under an `RwLock` read guard) to pages that are
//!   already present are never lost: the in-place write decision and the entry it acts on are
//!   one step under the page-table lock (`do_wp_page`). The old decision counted `Arc`
//!   references outside that lock; transient clones held by other faults made a second writer
//!   copy the frame before the first writer's bytes landed, and the first write went into a
//!   frame nobody mapped (issue 12, finding 1: 18 139 lost rounds in 20 s).
//! - `fork` is a snapshot: it takes `&mut Mm` (`dup_mmap` holds the mmap write lock), so no
//!   writer under the shared lock runs during the copy, and none can reach the child's frames
//!   afterwards (issue 12, finding 2; issue 8's fork race). The old `fork(&self)` could run
//!   under a read guard beside the writers; that no longer compiles (see the `compile_fail`
//!   example on `Mm::fork`).
//!
//! The round counts are what CI runs; `MMPREP_RACE_SCALE=N` multiplies them for a longer soak.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::thread;

use common::*;
use mmprep::{Mm, Prot, VirtAddr};

/// The multiplier of every round count (`MMPREP_RACE_SCALE`, default 1).
fn scale() -> u64 {
    std::env::var("MMPREP_RACE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn at(p: u64, offset: u64) -> VirtAddr {
    VirtAddr(page(p).get() + offset)
}

/// Four threads write their own 8-byte slot of every page of a private mapping whose pages are
/// all present, through the shared lock, and read each write back at once; a fifth forks now and
/// then under the exclusive lock (so the pages stop being exclusive and the next writes race to
/// copy them) and keeps the child until its next fork. Ten million writes, none lost.
///
/// ```text
///  0       8       16      24      32 ... 4095   (bytes of each of the 8 pages)
/// | t0     | t1     | t2     | t3     | 0 ...   |
/// ```
#[test]
fn present_pages_lose_no_write_under_the_shared_lock() {
    const PAGES: u64 = 8;
    const THREADS: u64 = 4;
    let writes_per_thread = 2_500_000 * scale();
    let mut mm = new_mm();
    map_anon(&mut mm, 0, PAGES, Prot::RW);
    mm.fill(page(0), pages(PAGES), 0).unwrap();
    let mm = Arc::new(RwLock::new(mm));
    let done = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS as usize + 1));
    let mut writers = Vec::new();
    for t in 0..THREADS {
        let (mm, lost, barrier) = (mm.clone(), lost.clone(), barrier.clone());
        writers.push(thread::spawn(move || {
            barrier.wait();
            for i in 1..=writes_per_thread {
                let p = i % PAGES;
                let value = i.to_le_bytes();
                let guard = mm.read().unwrap();
                let wrote = guard.try_write(at(p, t * 8), &value);
                assert_eq!(
                    wrote,
                    Ok(Ok(())),
                    "thread {t}: a present page of a VMA with an anon_vma"
                );
                let mut back = [0u8; 8];
                assert_eq!(guard.try_read(at(p, t * 8), &mut back), Ok(Ok(())));
                if back != value {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let forker = {
        let (mm, done, barrier) = (mm.clone(), done.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            let mut forks = 0u64;
            let mut child: Option<Mm> = None;
            while !done.load(Ordering::Relaxed) {
                thread::sleep(std::time::Duration::from_micros(200));
                let mut guard = mm.write().unwrap();
                // The old child goes first, so the new one shares every page with the parent.
                drop(child.take());
                child = Some(guard.fork().expect("fork"));
                forks += 1;
            }
            drop(child);
            forks
        })
    };
    for w in writers {
        w.join().expect("no writer panicked");
    }
    done.store(true, Ordering::Relaxed);
    let forks = forker.join().unwrap();
    assert_eq!(
        lost.load(Ordering::Relaxed),
        0,
        "writes lost ({forks} forks ran meanwhile)"
    );
    assert!(forks > 0, "the forker never ran");
    let mut mm = mm.write().unwrap();
    // Every slot holds its thread's last value.
    for p in 0..PAGES {
        for t in 0..THREADS {
            let mut buf = [0u8; 8];
            mm.read(at(p, t * 8), &mut buf).unwrap();
            let last = (1..=writes_per_thread).rev().find(|i| i % PAGES == p).unwrap();
            assert_eq!(u64::from_le_bytes(buf), last, "page {p} slot {t}");
        }
    }
    mm.check_invariants();
}

/// A writer writes a sequence number to a low page and then to a high page, under the shared
/// lock; another thread forks under the exclusive lock, 100 000 times. Every child is a snapshot:
/// its high page is never ahead of its low page, and it does not change after `fork` returned
/// while the parent goes on writing.
///
/// ```text
/// | low: seq n+1 | ... | high: seq n |   a snapshot between the two writes of round n+1
/// ```
#[test]
fn fork_is_a_snapshot_against_a_writer() {
    let forks = 100_000 * scale();
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 1, Prot::RW);
    map_anon(&mut mm, 512, 513, Prot::RW);
    mm.fill(page(0), pages(1), 0).unwrap();
    mm.fill(page(512), pages(1), 0).unwrap();
    let mm = Arc::new(RwLock::new(mm));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mm, done) = (mm.clone(), done.clone());
        thread::spawn(move || {
            let mut seq = 0u64;
            while !done.load(Ordering::Relaxed) {
                seq += 1;
                let guard = mm.read().unwrap();
                assert_eq!(guard.try_write(page(0), &seq.to_le_bytes()), Ok(Ok(())));
                assert_eq!(guard.try_write(page(512), &seq.to_le_bytes()), Ok(Ok(())));
            }
            seq
        })
    };
    let read = |child: &mut Mm, p: u64| {
        let mut buf = [0u8; 8];
        child.read(page(p), &mut buf).unwrap();
        u64::from_le_bytes(buf)
    };
    let mut kept: Vec<(Mm, u64, u64)> = Vec::new();
    for i in 0..forks {
        let mut child = mm.write().unwrap().fork().expect("fork");
        let (low, high) = (read(&mut child, 0), read(&mut child, 512));
        assert!(
            high <= low,
            "fork {i}: the child's high page ({high}) is ahead of its low page ({low})"
        );
        // Keep a few children a while and look at them again after the writer went on.
        if i % 1000 == 0 {
            kept.push((child, low, high));
        }
    }
    for (n, (child, low, high)) in kept.iter_mut().enumerate() {
        assert_eq!(
            (read(child, 0), read(child, 512)),
            (*low, *high),
            "child {n} changed after fork returned"
        );
        child.check_invariants();
    }
    done.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds > 0, "the writer never ran");
}

/// `MADV_GUARD_INSTALL` over 2^45 bytes, and a fork of the result, cost a few runs of page-table
/// state, not one marker per page (issue 12, finding 5: per-page markers ran the host out of
/// memory and aborted). The process's resident memory grows by less than 100 MB.
#[test]
fn a_huge_guard_region_costs_no_memory() {
    let rss_kb = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let before = rss_kb();
    let mut mm = new_mm();
    let len = 1u64 << 45;
    let flags = mmprep::MapFlags(ANON.0 | mmprep::MapFlags::NORESERVE.0);
    let at = mm
        .mmap(page(0), len, Prot::RW, flags, None, 0)
        .expect("a 32 TiB noreserve mapping");
    mm.madvise(at, len, mmprep::uapi::madv::GUARD_INSTALL)
        .expect("guard install");
    let mut child = mm.fork().expect("fork");
    for m in [&mut mm, &mut child] {
        m.check_invariants();
        assert_eq!(m.access(at, mmprep::Access::Read), Err(mmprep::Signal::Segv));
        assert_eq!(
            m.access(VirtAddr(at.get() + len - 4096), mmprep::Access::Write),
            Err(mmprep::Signal::Segv)
        );
    }
    // Removing the guard from one page in the middle leaves two regions around an empty page.
    let mid = VirtAddr(at.get() + len / 2);
    mm.madvise(mid, 4096, mmprep::uapi::madv::GUARD_REMOVE).unwrap();
    assert_eq!(mm.access(mid, mmprep::Access::Write), Ok(()));
    assert_eq!(child.access(mid, mmprep::Access::Write), Err(mmprep::Signal::Segv));
    if let (Some(b), Some(a)) = (before, rss_kb()) {
        assert!(a.saturating_sub(b) < 100 * 1024, "resident memory grew by {} kB", a - b);
    }
}

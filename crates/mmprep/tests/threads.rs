//! Threads: `Mm` is `Send + Sync`, used behind the caller's lock the way the kernel uses
//! `mmap_lock`, and address spaces that share memory (a parent and its fork child, two mappings
//! of one memfd) can be driven from different threads at once.
//!
//! The engine has no per-VMA locking yet: one `Mm` is changed by one thread at a time. What runs
//! concurrently is what the kernel shares between processes: frames after `fork` (copy-on-write
//! decisions race with the other side's writes and unmaps) and page caches. Every iteration is
//! bounded; the test checks data and invariants, not timing.

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use common::*;
use mmprep::{Mm, Prot};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn mm_is_send_and_sync() {
    assert_send_sync::<Mm>();
    assert_send_sync::<mmprep::phys::Machine>();
    assert_send_sync::<mmprep::file::File>();
}

/// Threads fault and write their own VMAs while another maps, unmaps and changes protections
/// elsewhere, all through one lock; every thread's data stays its own.
#[test]
fn faults_and_remapping_under_one_lock() {
    let mm = Arc::new(Mutex::new(new_mm()));
    let barrier = Arc::new(Barrier::new(4));
    let mut handles = Vec::new();
    for t in 0..3u64 {
        let (mm, barrier) = (mm.clone(), barrier.clone());
        handles.push(thread::spawn(move || {
            let base = 64 * t;
            map_anon(&mut mm.lock().unwrap(), base, base + 16, Prot::RW);
            barrier.wait();
            for i in 0..500u64 {
                let p = base + i % 16;
                let byte = (t as u8) * 16 + (i % 16) as u8;
                let mut guard = mm.lock().unwrap();
                guard.fill(page(p), 4096, byte).expect("own VMA is writable");
                let mut buf = [0u8; 8];
                guard.read(page(p), &mut buf).expect("own VMA is readable");
                assert_eq!(buf, [byte; 8], "thread {t} page {p}");
            }
        }));
    }
    {
        let (mm, barrier) = (mm.clone(), barrier.clone());
        handles.push(thread::spawn(move || {
            barrier.wait();
            for i in 0..500u64 {
                let p = 256 + (i * 7) % 32;
                let mut guard = mm.lock().unwrap();
                match i % 3 {
                    0 => {
                        let _ = guard.mmap(page(p), pages(2), Prot::RW, ANON, None, 0);
                    }
                    1 => {
                        let _ = guard.mprotect(page(p), pages(1), Prot::READ);
                    }
                    _ => {
                        let _ = guard.munmap(page(p), pages(1));
                    }
                }
                if i % 50 == 0 {
                    guard.check_invariants();
                }
            }
        }));
    }
    for h in handles {
        h.join().expect("no thread panicked");
    }
    mm.lock().unwrap().check_invariants();
}

/// A parent and its fork child written from two threads at once: each sees only its own writes
/// to private memory (copy-on-write), both see each other's to a shared memfd.
#[test]
fn parent_and_child_in_parallel() {
    for round in 0..20u8 {
        let mut parent = new_mm();
        map_anon(&mut parent, 0, 8, Prot::RW);
        let memfd = parent.shmem().memfd_create("shared", pages(8));
        map_file(&mut parent, 16, 24, Prot::RW, SHARED_FIXED, &memfd, 0);
        parent.fill(page(0), pages(8), 0xaa).unwrap();
        let child = parent.fork().unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let run = |mut mm: Mm, me: u8, barrier: Arc<Barrier>| {
            thread::spawn(move || {
                barrier.wait();
                for p in 0..8u64 {
                    // Private page p: mine alone from the first write on.
                    mm.fill(page(p), 64, me).unwrap();
                    // Shared page: the parent writes the low half, the child the high half.
                    let at = if me == 1 { 0 } else { 2048 };
                    mm.fill(mmprep::VirtAddr(page(16 + p).get() + at), 2048, me).unwrap();
                }
                mm
            })
        };
        let hp = run(parent, 1, barrier.clone());
        let hc = run(child, 2, barrier);
        let (mut parent, mut child) = (hp.join().unwrap(), hc.join().unwrap());
        for (mm, me) in [(&mut parent, 1u8), (&mut child, 2u8)] {
            let mut buf = vec![0u8; 4096];
            for p in 0..8u64 {
                mm.read(page(p), &mut buf).unwrap();
                assert_eq!(&buf[..64], &[me; 64][..], "round {round}: private page {p} of {me}");
                assert!(
                    buf[64..].iter().all(|b| *b == 0xaa),
                    "round {round}: the rest is the pre-fork data"
                );
                mm.read(page(16 + p), &mut buf).unwrap();
                assert!(
                    buf[..2048].iter().all(|b| *b == 1) && buf[2048..].iter().all(|b| *b == 2),
                    "shared page {p}"
                );
            }
            mm.check_invariants();
        }
    }
}

/// Faults under a shared lock (`try_write`/`try_read` through an `RwLock` read guard) on
/// different VMAs run at once; what needs the exclusive lock (a VMA's first anon_vma) says so
/// and is retried under the write guard; another thread remaps elsewhere under the write guard.
#[test]
fn faults_under_a_shared_lock() {
    use std::sync::RwLock;
    let mm = Arc::new(RwLock::new(new_mm()));
    let barrier = Arc::new(Barrier::new(5));
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let (mm, barrier) = (mm.clone(), barrier.clone());
        handles.push(thread::spawn(move || {
            let base = 64 * t;
            map_anon(&mut mm.write().unwrap(), base, base + 16, Prot::RW);
            barrier.wait();
            let mut retried = 0;
            for i in 0..400u64 {
                let a = page(base + i % 16);
                let data = [(t as u8) + 1; 32];
                let shared = mm.read().unwrap().try_write(a, &data);
                match shared {
                    Ok(r) => r.expect("own VMA is writable"),
                    Err(_) => {
                        retried += 1;
                        mm.write().unwrap().write(a, &data).expect("own VMA is writable");
                    }
                }
                let mut buf = [0u8; 32];
                mm.read()
                    .unwrap()
                    .try_read(a, &mut buf)
                    .expect("no retry to read")
                    .expect("readable");
                assert_eq!(buf, data, "thread {t}");
            }
            // Only the first write needed the exclusive lock (the VMA's first anon_vma).
            assert_eq!(retried, 1, "thread {t}");
        }));
    }
    {
        let (mm, barrier) = (mm.clone(), barrier.clone());
        handles.push(thread::spawn(move || {
            barrier.wait();
            for i in 0..200u64 {
                let p = 512 + (i * 5) % 32;
                let mut g = mm.write().unwrap();
                let _ = if i % 2 == 0 {
                    g.mmap(page(p), pages(1), Prot::RW, ANON, None, 0).map(|_| ())
                } else {
                    g.munmap(page(p), pages(1))
                };
            }
        }));
    }
    for h in handles {
        h.join().expect("no thread panicked");
    }
    mm.read().unwrap().check_invariants();
}

/// Many threads write different bytes of the same not-yet-present pages at once, under the
/// shared lock: the first fault's page wins, the others use it, no write is lost.
#[test]
fn racing_faults_on_one_page_lose_nothing() {
    use std::sync::RwLock;
    for round in 0..10 {
        let mut m = new_mm();
        map_anon(&mut m, 0, 8, Prot::RW);
        write_touch(&mut m, 0, 1); // the VMA's anon_vma exists: the other pages fault shared
        let mm = Arc::new(RwLock::new(m));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let (mm, barrier) = (mm.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    for p in 1..8u64 {
                        let at = mmprep::VirtAddr(page(p).get() + t * 8);
                        mm.read()
                            .unwrap()
                            .try_write(at, &[t as u8 + 1; 8])
                            .expect("no retry")
                            .expect("writable");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let g = mm.read().unwrap();
        for p in 1..8u64 {
            let mut buf = [0u8; 64];
            g.try_read(page(p), &mut buf).unwrap().unwrap();
            for t in 0..8usize {
                assert_eq!(
                    buf[t * 8..t * 8 + 8],
                    [t as u8 + 1; 8],
                    "round {round} page {p} thread {t}"
                );
            }
        }
        g.check_invariants();
    }
}

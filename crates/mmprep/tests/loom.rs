//! The fault path's locking, model-checked: `loom` runs each test under every interleaving of
//! the page-table lock, the frames' byte locks and the frames' reference counts (the types
//! `src/sync.rs` swaps in under `--cfg loom`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p mmprep --test loom --release
//! ```
//!
//! What the model covers: two faults writing one page under the shared lock (`try_write`
//! through `&Mm`), for a page not yet present (the first installed entry wins), a present page
//! the address space owns alone (`PageAnonExclusive`: written in place), and a present page a
//! fork child still maps (the first writer copies it, the second writes the copy); each write
//! lands, and the child keeps the data it had at the fork. What it does not cover: the
//! `RwLock` the caller holds around `Mm` (a `fork` or an `mmap` takes it exclusively, so
//! they cannot interleave with these faults by construction), driver hooks, and the VMA index
//! (not changed under the shared lock).
#![cfg(loom)]

mod common;

use std::sync::Arc;

use common::*;
use mmprep::{Mm, Prot, VirtAddr};

fn slot(t: u64) -> VirtAddr {
    VirtAddr(page(0).get() + t * 8)
}

/// Two threads write their own slot of page 0 at once; both writes are there afterwards.
fn two_writers(mm: Mm) -> Mm {
    let mm = Arc::new(mm);
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let mm = mm.clone();
            loom::thread::spawn(move || {
                let wrote = mm.try_write(slot(t), &[t as u8 + 1; 8]);
                assert_eq!(wrote, Ok(Ok(())), "writer {t}");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut mm = Arc::into_inner(mm).expect("the writers are gone");
    let mut buf = [0u8; 16];
    mm.read(page(0), &mut buf).unwrap();
    assert_eq!(buf, [[1u8; 8], [2u8; 8]].concat()[..], "a write was lost");
    mm
}

/// A VMA with its anon_vma, page 0 not yet present.
fn fresh() -> Mm {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 2, Prot::RW);
    mm.fill(page(1), 8, 0xee).unwrap();
    mm
}

#[test]
fn racing_first_faults() {
    loom::model(|| {
        two_writers(fresh());
    });
}

#[test]
fn racing_writes_to_an_exclusive_page() {
    loom::model(|| {
        let mut mm = fresh();
        mm.fill(page(0), 4096, 0).unwrap();
        two_writers(mm);
    });
}

#[test]
fn racing_writes_to_a_page_a_fork_child_maps() {
    loom::model(|| {
        let mut mm = fresh();
        mm.fill(page(0), 4096, 0x5a).unwrap();
        let mut child = mm.fork().expect("fork");
        let mm = two_writers(mm);
        let mut buf = [0u8; 16];
        child.read(page(0), &mut buf).unwrap();
        assert_eq!(buf, [0x5a; 16], "the child saw a write made after the fork");
        mm.check_invariants();
        child.check_invariants();
    });
}

//! `munmap`'s gather (`mm/vma.c:vms_gather_munmap_vmas`, \[H\] 6.18) when an allocation fails at
//! each point of it: the splits the kernel made before the failure stay, the VMAs it detached
//! come back, and nothing else changes. The gather splits and detaches anonymous VMAs at one
//! cursor position without making the pieces that go (`crates/mmprep/src/mm/munmap.rs`), so
//! these tests pin down that a failure still leaves every split the kernel would have left.
//!
//! Allocations of the gather, in the kernel's order: per split `vm_area_dup` and
//! `vma_iter_prealloc`, per detached VMA `mas_store_gfp`. Ruler: one column per 4 KiB page; a
//! letter run is one VMA, `|` a boundary between VMAs, `.` a hole.

mod common;

use common::*;
use mmprep::{Errno, Prot};

/// One munmap of `[from, to)` with the `n`-th allocation failing; returns the errno (if any) and
/// the layout afterwards.
fn munmap_failing_at(setup: fn(&mut mmprep::Mm), from: u64, to: u64, n: u32) -> (Option<Errno>, String) {
    let mut mm = new_mm();
    setup(&mut mm);
    mm.fail_allocation_in(n);
    let r = mm.munmap(page(from), pages(to - from));
    mm.check_invariants();
    for v in mm.vmas() {
        // Anonymous memory's offset is its address in pages; every split piece keeps that.
        assert_eq!(v.pgoff().0, v.start().0 >> 12, "allocation {n} fails: pgoff of {v:?}");
    }
    (r.err().map(|e| e.errno), layout(&mm))
}

/// One VMA cut on both sides: two splits, then the middle is detached.
///
/// ```text
///   0123456789
///   AAAAAAAAAA     rw- anonymous
///      <-->        munmap pages 3..6
///   AAA|AAA|AAAA   after the two splits (allocations 0-1 and 2-3)
///   AAA...AAAA     after the detach (allocation 4)
/// ```
#[test]
fn middle_of_one_vma() {
    let setup: fn(&mut mmprep::Mm) = |mm| map_anon(mm, 0, 10, Prot::RW);
    let whole = "00000000-0000a000 rw-p 00000000";
    let split_low = "00000000-00003000 rw-p 00000000\n00003000-0000a000 rw-p 00000000";
    let split_both =
        "00000000-00003000 rw-p 00000000\n00003000-00006000 rw-p 00000000\n00006000-0000a000 rw-p 00000000";
    let done = "00000000-00003000 rw-p 00000000\n00006000-0000a000 rw-p 00000000";
    let want = [
        (Some(Errno::ENOMEM), whole),
        (Some(Errno::ENOMEM), whole),
        (Some(Errno::ENOMEM), split_low),
        (Some(Errno::ENOMEM), split_low),
        (Some(Errno::ENOMEM), split_both),
        (None, done),
    ];
    for (n, (errno, maps)) in want.iter().enumerate() {
        let got = munmap_failing_at(setup, 3, 6, n as u32);
        assert_eq!(got, (*errno, maps.to_string()), "allocation {n} fails");
    }
}

/// Three VMAs, the first cut below, the middle one whole, the last cut above: a split, two
/// detaches, a split, a detach.
///
/// ```text
///   0123456789
///   AAAA|BBB|CCC   A rw-, B r--, C rw-
///     <------>     munmap pages 2..9
///   AA|AA|BBB|CC|C after both splits
///   AA.......C     after the gather
/// ```
#[test]
fn three_vmas_cut_at_both_ends() {
    let setup: fn(&mut mmprep::Mm) = |mm| {
        map_anon(mm, 0, 4, Prot::RW);
        map_anon(mm, 4, 7, Prot::READ);
        map_anon(mm, 7, 10, Prot::RW);
    };
    let before = "00000000-00004000 rw-p 00000000\n00004000-00007000 r--p 00000000\n00007000-0000a000 rw-p 00000000";
    let split_a = "00000000-00002000 rw-p 00000000\n00002000-00004000 rw-p 00000000\n00004000-00007000 r--p 00000000\n00007000-0000a000 rw-p 00000000";
    let split_c = "00000000-00002000 rw-p 00000000\n00002000-00004000 rw-p 00000000\n00004000-00007000 r--p 00000000\n00007000-00009000 rw-p 00000000\n00009000-0000a000 rw-p 00000000";
    let done = "00000000-00002000 rw-p 00000000\n00009000-0000a000 rw-p 00000000";
    let want = [
        // A's split: vm_area_dup, vma_iter_prealloc.
        (Some(Errno::ENOMEM), before),
        (Some(Errno::ENOMEM), before),
        // A's upper piece detached, B detached: both come back.
        (Some(Errno::ENOMEM), split_a),
        (Some(Errno::ENOMEM), split_a),
        // C's split.
        (Some(Errno::ENOMEM), split_a),
        (Some(Errno::ENOMEM), split_a),
        // C's lower piece detached.
        (Some(Errno::ENOMEM), split_c),
        (None, done),
    ];
    for (n, (errno, maps)) in want.iter().enumerate() {
        let got = munmap_failing_at(setup, 2, 9, n as u32);
        assert_eq!(got, (*errno, maps.to_string()), "allocation {n} fails");
    }
}

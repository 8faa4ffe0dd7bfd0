//! Public lookups with hostile ranges (issue 12 finding 4): caller input never reaches a
//! `debug_assert!`; an empty or inverted range overlaps no VMA.
//!
//! Before the fix `Mm::vmas_in(start, end)` with `end <= start` reached
//! `VmaTree::overlap_or_prev`'s `debug_assert!(start < end)`: these tests panicked in debug
//! builds, and in release `vmas_in(x, x)` inside a VMA returned that VMA.

mod common;

use common::*;
use mmprep::{Prot, VirtAddr};

/// ```text
///   0123456789
///   AAAA  BB      A private rw-, B private r--
/// ```
fn two_vmas() -> mmprep::Mm {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 4, Prot::RW);
    map_anon(&mut mm, 6, 8, Prot::READ);
    assert_maps!(
        mm,
        "00000000-00004000 rw-p 00000000
         00006000-00008000 r--p 00000000"
    );
    mm
}

fn starts(mm: &mmprep::Mm, start: VirtAddr, end: VirtAddr) -> Vec<u64> {
    mm.vmas_in(start, end)
        .map(|v| (v.start().get() - BASE) / 4096)
        .collect()
}

#[test]
fn vmas_in_empty_range_inside_a_vma_is_empty() {
    let mm = two_vmas();
    assert_eq!(starts(&mm, page(2), page(2)), Vec::<u64>::new());
    assert_eq!(starts(&mm, page(0), page(0)), Vec::<u64>::new());
    assert_eq!(starts(&mm, page(4), page(4)), Vec::<u64>::new());
    // Unaligned and empty.
    assert_eq!(
        starts(&mm, VirtAddr(page(1).get() + 5), VirtAddr(page(1).get() + 5)),
        Vec::<u64>::new()
    );
    mm.check_invariants();
}

#[test]
fn vmas_in_inverted_range_is_empty() {
    let mm = two_vmas();
    assert_eq!(starts(&mm, page(7), page(1)), Vec::<u64>::new());
    assert_eq!(starts(&mm, page(3), page(2)), Vec::<u64>::new());
    assert_eq!(starts(&mm, VirtAddr(u64::MAX), VirtAddr(0)), Vec::<u64>::new());
    assert_eq!(starts(&mm, VirtAddr(u64::MAX), page(7)), Vec::<u64>::new());
    mm.check_invariants();
}

/// The ordinary cases still answer as before.
#[test]
fn vmas_in_non_empty_ranges() {
    let mm = two_vmas();
    assert_eq!(starts(&mm, page(3), page(4)), [0]);
    assert_eq!(starts(&mm, page(3), page(7)), [0, 6]);
    assert_eq!(starts(&mm, page(4), page(6)), Vec::<u64>::new());
    assert_eq!(starts(&mm, VirtAddr(0), VirtAddr(u64::MAX)), [0, 6]);
    assert_eq!(
        starts(&mm, VirtAddr(page(7).get() + 1), VirtAddr(page(7).get() + 2)),
        [6]
    );
    mm.check_invariants();
}

/// `mmprep::Error` is a standard error: `?` into `Box<dyn Error>` works, and the reason shows.
#[test]
fn error_is_a_std_error() {
    fn boxed() -> Result<(), Box<dyn std::error::Error>> {
        let mut mm = common::new_mm();
        mm.munmap(mmprep::VirtAddr(1), 4096)?;
        Ok(())
    }
    let e = boxed().unwrap_err();
    assert!(e.to_string().starts_with("EINVAL"), "{e}");
}

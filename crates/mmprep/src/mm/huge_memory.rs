//! Transparent huge pages on the fault path: which VMAs may map a 2 MiB block with one PMD
//! entry, and what a fault there installs.
//!
//! A fault in an anonymous VMA first asks whether the 2 MiB-aligned block around the address
//! can be mapped huge (`mm/memory.c:__handle_mm_fault`): the block must have no page table yet
//! (`pmd_none`), the VMA must allow PMD-size pages ([`Mm::thp_vma_allowable`]), and the block
//! must lie wholly inside the VMA. Then `do_huge_pmd_anonymous_page` runs: it gives the VMA an
//! anon_vma first (`vmf_anon_prepare`) - for a read too, which is what a program can see: `ac`
//! survives `mprotect r--` and merges with other anon_vmas are refused - and maps the huge zero
//! page on a read (with `use_zero_page`), or a huge anonymous page. Everywhere else the page
//! path runs (`handle_pte_fault`), and its first fault gives the block a page table, so later
//! faults in that block take the page path too.
//!
//! What decides eligibility, in `__thp_vma_allowable_orders`' order ([H] 6.18):
//! 1. `VM_NOHUGEPAGE` (`nh`: `nohugepage` advice, `MAP_STACK`) → no (`vma_thp_disabled`);
//! 2. hugetlb and `VM_SPECIAL` mappings (PFN, I/O, mixed) → no (`vma_is_special_huge`);
//! 3. the PMD-size mode: `always` → yes, `madvise` → only with `VM_HUGEPAGE` (`hg`),
//!    `never` → no (`hugepage_pmd_enabled`, `thp_vma_allowable_order`);
//! 4. anonymous VMAs only on the fault path (private `/dev/zero` is anonymous:
//!    `vma_set_anonymous`); file and shmem faults never create an anon_vma on a read, so their
//!    huge mappings are not modelled (shmem's `shmem_enabled` is `never` on the host anyway);
//! 5. the aligned block fits in the VMA (`thp_vma_suitable_order`).
//!
//! `hugepage` advice replaces the `nh` of a `MAP_STACK` or grows-down mapping
//! (`hugepage_madvise`), and a grows-down VMA is then eligible like any other.
//!
//! Not modelled: khugepaged (it collapses in the background, at times nothing in a scenario
//! controls), `prctl(PR_SET_THP_DISABLE)`, mTHP sizes below 2 MiB (an anonymous read fault
//! maps the small zero page whatever the size), allocation failures (`defrag`: a fragmented
//! host may fall back to small pages, which only changes memory use).

use crate::addr::{PMD_SIZE, VirtAddr};
use crate::flags::{self, VmaBit};
use crate::mm::Mm;
use crate::pagetable::Pmd;
use crate::profile::ThpMode;
use crate::vma::Vma;
use alloc::vec::Vec;

/// What maps a 2 MiB block with one PMD entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugeMapping {
    /// The huge zero page (a read fault on the huge path): no memory of its own, so `smaps`
    /// counts it in neither `Rss` nor `AnonHugePages` (on the host).
    ZeroPage,
    /// A huge anonymous page: `AnonHugePages` counts its 2 MiB.
    Page,
}

/// The 2 MiB block holding `addr`: `[start, end)`.
pub(crate) fn huge_block(addr: VirtAddr) -> (VirtAddr, VirtAddr) {
    let start = addr.0 & !(PMD_SIZE - 1);
    (VirtAddr(start), VirtAddr(start.wrapping_add(PMD_SIZE)))
}

impl Mm {
    /// The blocks mapped by one PMD entry, as runs `[start, end)` of whole 2 MiB blocks, lowest
    /// first (what `smaps`' `AnonHugePages` sums, for [`HugeMapping::Page`]).
    pub fn huge_mappings(&self) -> Vec<(VirtAddr, VirtAddr, HugeMapping)> {
        self.ptes
            .huge_runs()
            .into_iter()
            .map(|(s, e, zero)| (s, e, if zero { HugeMapping::ZeroPage } else { HugeMapping::Page }))
            .collect()
    }

    /// `thp_vma_allowable_order(vma, vm_flags, TVA_PAGEFAULT, PMD_ORDER)`: may this VMA be
    /// mapped by PMD-size pages on a fault, whatever the address?
    ///
    /// Only a 4K guest gets huge pages on a fault: the engine's page table holds 2 MiB blocks
    /// of 4 KiB entries, not a larger guest's PMD (`docs/profiles.md`). Placement still aligns
    /// to the guest's PMD size ([`Mm::pmd_size`]).
    pub(crate) fn thp_vma_allowable(&self, vma: &Vma) -> bool {
        if self.unit_shift() != 0 {
            return false;
        }
        if vma.test(VmaBit::NoHugePage) || vma.test(VmaBit::HugeTlb) || vma.flags().test_any(flags::SPECIAL) {
            return false;
        }
        let mode_allows = match self.profile.thp {
            ThpMode::Always => true,
            ThpMode::Madvise => vma.test(VmaBit::HugePage),
            ThpMode::Never => false,
        };
        mode_allows && vma.is_anonymous()
    }

    /// `thp_vma_suitable_order` for an anonymous VMA: the aligned block around `addr` lies
    /// wholly inside it.
    pub(crate) fn thp_block_fits(vma: &Vma, addr: VirtAddr) -> bool {
        let (start, end) = huge_block(addr);
        vma.start() <= start && end <= vma.end() && start < end
    }

    /// `__handle_mm_fault`'s test for the huge path: the block around `addr` has no page table
    /// (`pmd_none`), the VMA allows PMD-size pages, and the block fits in the VMA.
    pub(crate) fn thp_fault_huge(&self, vma: &Vma, addr: VirtAddr) -> bool {
        self.thp_vma_allowable(vma) && Self::thp_block_fits(vma, addr) && self.ptes.pmd(addr) == Pmd::None
    }
}

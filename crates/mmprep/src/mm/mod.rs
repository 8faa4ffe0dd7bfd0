//! One process's address space (`struct mm_struct`) and the system calls that change it.
//!
//! An [`Mm`] owns the VMAs of one address space, the counters the kernel keeps beside them
//! (`map_count`, `total_vm`, `locked_vm`...) and the host [`Profile`] that decides limits. Each
//! system call family lives in its own file and adds one `impl Mm` block:
//!
//! | file | calls | kernel |
//! | --- | --- | --- |
//! | `mmap.rs` | `mmap` | `mm/mmap.c:do_mmap`, `mm/vma.c:mmap_region` |
//! | `munmap.rs` | `munmap` | `mm/vma.c:do_vmi_munmap`, `vms_gather_munmap_vmas` |
//! | `mprotect.rs` | `mprotect` | `mm/mprotect.c:do_mprotect_pkey`, `mprotect_fixup` |
//! | `mremap.rs` | `mremap` | `mm/mremap.c:do_mremap`, `move_vma`; `mm/vma.c:copy_vma` |
//! | `mlock.rs` | `mlock`, `mlock2`, `munlock` | `mm/mlock.c:do_mlock`, `apply_vma_lock_flags`, `mlock_fixup` |
//! | `mseal.rs` | `mseal` | `mm/mseal.c:do_mseal`, `mseal_apply` |
//! | `msync.rs` | `msync` | `mm/msync.c:SYSCALL_DEFINE3(msync)` (checks and walk) |
//! | `madvise.rs` | `madvise` | `mm/madvise.c:do_madvise`, `madvise_walk_vmas`, `madvise_vma_behavior` |
//! | `brk.rs` | `brk` | `mm/mmap.c:SYSCALL_DEFINE1(brk)`, `mm/vma.c:do_brk_flags` |
//! | `special.rs` | `[vvar]`, `[vdso]` | `mm/vma.c:_install_special_mapping`, `arch/x86/entry/vdso/vma.c:map_vdso` |
//! | `import.rs` | import | `mm/vma.c:insert_vm_struct` (a live process's VMAs, as smaps shows them) |
//! | `layout.rs` | placement | `mm/mmap.c:__get_unmapped_area`, `arch/x86/kernel/sys_x86_64.c` |
//! | `fault.rs` | memory access | `mm/memory.c:handle_mm_fault` (the parts that touch VMAs) |
//! | `fork.rs` | `fork` | `mm/mmap.c:dup_mmap` |
//! | `exit.rs` | teardown (`exit`, `Drop`) | `mm/mmap.c:exit_mmap` |
//!
//! This file holds `Mm` and only the helpers several calls share: statistics, limits, the
//! anon_vma allocator, the invariant checker.
//!
//! `Mm` is `Send + Sync` and has no lock of its own: wrap it in the caller's lock, the way the
//! kernel takes `mmap_lock` (write for changes, read for lookups).

mod brk;
mod exit;
mod fault;
mod fork;
mod granule;
mod huge_memory;
mod import;
mod layout;
mod madvise;
pub(crate) mod merge;
mod mlock;
mod mmap;
mod mprotect;
mod mremap;
mod mseal;
mod msync;
mod munmap;
mod special;
mod split;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

pub use brk::{DATA_DEFAULT_FLAGS, MmBounds};
pub use fault::{Access, AccessFault, NeedsExclusive, Signal};
pub use huge_memory::HugeMapping;
pub use import::{ImportAnon, ImportOps, ImportVma, flags_from_smaps_codes};
pub use msync::{MS_ASYNC, MS_INVALIDATE, MS_SYNC};
pub use special::{SpecialMapping, VDSO_TEXT_FLAGS, VVAR_FLAGS, VdsoLayout};

use crate::addr::{PAGE_SHIFT, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::events::{Event, EventLog};
use crate::flags::{self, VmaBit, VmaFlags};
use crate::pagetable::PageTable;
use crate::phys::Machine;
use crate::profile::{Overcommit, Profile};
use crate::shmem::ShmemFs;
use crate::tree::VmaTree;
use crate::vma::{AnonVmaId, AnonVmaRef, Vma};

/// An address space (`struct mm_struct`).
///
/// # Invariants
/// - `tree` holds non-overlapping, well-formed VMAs ([`Mm::check_invariants`] verifies it).
/// - Each counter equals the sum it caches, recomputed from the VMAs (see each field).
pub struct Mm {
    /// The host facts. Immutable for the life of the `Mm`.
    pub(crate) profile: Profile,
    /// The VMAs. `map_count` is `tree.len()` plus the profile's unmodelled VMAs.
    pub(crate) tree: VmaTree,
    /// The shm mount that shared anonymous mappings and memfds live on (shared with fork
    /// children).
    pub(crate) shmem: Arc<ShmemFs>,
    /// The simulated system's memory (shared with fork children).
    pub(crate) machine: Arc<Machine>,
    /// The page tables.
    pub(crate) ptes: PageTable,
    /// Pages of all VMAs (`total_vm`). Changed only by [`Mm::vm_stat_account`].
    pub(crate) total_vm: u64,
    /// Pages of private writable non-stack VMAs (`data_vm`). Changed only by `vm_stat_account`.
    pub(crate) data_vm: u64,
    /// Pages of executable, non-writable VMAs (`exec_vm`). Changed only by `vm_stat_account`.
    pub(crate) exec_vm: u64,
    /// Pages of grows-down VMAs (`stack_vm`). Changed only by `vm_stat_account`.
    pub(crate) stack_vm: u64,
    /// Pages of `VM_LOCKED` VMAs (`locked_vm`). Changed where `VM_LOCKED` is set or cleared and
    /// where a locked VMA is mapped or unmapped.
    pub(crate) locked_vm: u64,
    /// Pages charged to the commit limit: the pages of `VM_ACCOUNT` VMAs (this mm's share of
    /// `vm_committed_as`). Changed only by [`Mm::charge`] and [`Mm::uncharge`].
    pub(crate) committed: u64,
    /// `mm->def_flags`: flags every new mapping gets (`VM_LOCKED` after `mlockall(MCL_FUTURE)`).
    pub(crate) def_flags: VmaFlags,
    /// The next anon_vma identity to hand out.
    pub(crate) next_anon_vma: u64,
    /// Test switch: fail the n-th next allocation with `ENOMEM` (0 = the next one).
    pub(crate) fail_alloc_in: Option<u32>,
    /// The hook log (off unless [`Mm::set_event_log`] turned it on).
    pub(crate) events: EventLog,
    /// The program's data, heap and stack addresses (`start_brk`, `brk`...), once set.
    pub(crate) bounds: Option<MmBounds>,
    /// An empty vector with room, lent to each munmap gather for its detached VMAs and given
    /// back when it completes, so that unmapping does not allocate (`munmap.rs`).
    pub(crate) spare_detached: Vec<Vma>,
}

impl Mm {
    /// An empty address space on a host described by `profile`.
    pub fn new(profile: Profile) -> Mm {
        Mm {
            profile,
            tree: VmaTree::new(),
            shmem: Arc::new(ShmemFs::new()),
            machine: Arc::new(Machine::new()),
            ptes: PageTable::default(),
            total_vm: 0,
            data_vm: 0,
            exec_vm: 0,
            stack_vm: 0,
            locked_vm: 0,
            committed: 0,
            def_flags: VmaFlags::EMPTY,
            next_anon_vma: 1,
            fail_alloc_in: None,
            events: EventLog::default(),
            bounds: None,
            spare_detached: Vec::new(),
        }
    }

    /// Turns the hook log on (or off, dropping it). While on, every call into a driver is
    /// recorded; [`Mm::take_events`] reads them.
    pub fn set_event_log(&mut self, on: bool) {
        self.events.enable(on);
    }

    /// The driver calls logged since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.take()
    }

    /// A handle on the hook log for a driver's own messages (`pr_info`): they land among the
    /// engine's calls into the driver, in the order they happen.
    pub fn event_sink(&self) -> crate::events::EventSink {
        self.events.sink()
    }

    /// The host profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The simulated memory of the system this address space belongs to.
    pub fn machine(&self) -> &Arc<Machine> {
        &self.machine
    }

    /// Number of pages currently mapped by page-table entries (`RSS`, counting shared pages once
    /// per mapping).
    pub fn resident_pages(&self) -> usize {
        self.ptes.len()
    }

    /// Does any page of `[start, end)` have a page-table entry (is resident)? Guard markers are
    /// not entries. For pictures of the address space (`mmprep render`).
    pub fn any_resident(&self, start: VirtAddr, end: VirtAddr) -> bool {
        self.ptes.any_in(start, end) || self.ptes.huge_runs().iter().any(|&(s, e, _)| s < end && start < e)
    }

    /// The shm mount, to create memfds that this address space can map.
    pub fn shmem(&self) -> &Arc<ShmemFs> {
        &self.shmem
    }

    /// `mm->map_count`: VMAs in this address space, counting those the profile says exist
    /// outside the model.
    pub fn map_count(&self) -> u64 {
        self.tree.len() as u64 + self.profile.unmodelled_map_count
    }

    /// The VMAs, lowest first.
    pub fn vmas(&self) -> impl DoubleEndedIterator<Item = &Vma> {
        self.tree.iter()
    }

    /// The VMAs overlapping `[start, end)`, lowest first. An empty or inverted range
    /// (`end <= start`) overlaps no VMA and yields none.
    pub fn vmas_in(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = &Vma> {
        self.tree.range(start, end)
    }

    /// `vma_lookup`: the VMA containing `addr`.
    pub fn vma_at(&self, addr: VirtAddr) -> Option<&Vma> {
        self.tree.lookup(addr)
    }

    /// `find_vma`: the first VMA ending above `addr`.
    pub fn find_vma(&self, addr: VirtAddr) -> Option<&Vma> {
        self.tree.find_vma(addr)
    }

    /// Counters, as `/proc/PID/status` shows them (in pages).
    pub fn stats(&self) -> MmStats {
        MmStats {
            map_count: self.map_count(),
            total_vm: self.total_vm,
            data_vm: self.data_vm,
            exec_vm: self.exec_vm,
            stack_vm: self.stack_vm,
            locked_vm: self.locked_vm,
            committed: self.committed,
        }
    }

    /// Test switch: make the `n`-th allocation from now (0 = the next) fail with `ENOMEM`, to
    /// run the paths where the kernel's `kmalloc` or maple-tree preallocation fails.
    pub fn fail_allocation_in(&mut self, n: u32) {
        self.fail_alloc_in = Some(n);
    }

    /// One kernel allocation (a VMA, a tree node). Fails only when the test switch says so.
    pub(crate) fn alloc(&mut self) -> Result<()> {
        alloc_from(&mut self.fail_alloc_in)
    }

    /// A fresh anon_vma (`anon_vma_alloc`), linked once.
    pub(crate) fn new_anon_vma(&mut self) -> AnonVmaRef {
        let id = AnonVmaId(self.next_anon_vma);
        self.next_anon_vma += 1;
        AnonVmaRef { id, chain: 1 }
    }

    /// `mm/mmap.c:vm_stat_account`: adds (or with negative `npages` removes) pages to the counter
    /// their flags belong in.
    pub(crate) fn vm_stat_account(&mut self, flags: VmaFlags, npages: i64) {
        fn add(c: &mut u64, n: i64) {
            *c = c.wrapping_add_signed(n);
        }
        add(&mut self.total_vm, npages);
        if flags::is_exec_mapping(flags) {
            add(&mut self.exec_vm, npages);
        } else if flags::is_stack_mapping(flags) {
            add(&mut self.stack_vm, npages);
        } else if flags::is_data_mapping(flags) {
            add(&mut self.data_vm, npages);
        }
    }

    /// `mm/mmap.c:may_expand_vm`: would `npages` more pages with `flags` stay within
    /// `RLIMIT_AS` and (for data mappings) `RLIMIT_DATA`?
    pub(crate) fn may_expand_vm(&self, flags: VmaFlags, npages: u64) -> bool {
        let limit = |bytes: u64| bytes >> PAGE_SHIFT;
        if self.total_vm.saturating_add(npages) > limit(self.profile.rlimit_as) {
            return false;
        }
        if flags::is_data_mapping(flags) && self.data_vm.saturating_add(npages) > limit(self.profile.rlimit_data) {
            return false;
        }
        true
    }

    /// `security_vm_enough_memory_mm` → `mm/util.c:__vm_enough_memory`, then the charge.
    ///
    /// `OVERCOMMIT_GUESS` refuses one charge larger than RAM plus swap; `OVERCOMMIT_ALWAYS`
    /// never refuses. `OVERCOMMIT_NEVER` is modelled against this mm's own charges only (the
    /// host's system-wide `Committed_AS` is not visible to the engine).
    pub(crate) fn charge(&mut self, npages: u64) -> Result<()> {
        let p = &self.profile;
        let ok = match p.overcommit {
            Overcommit::Always => true,
            Overcommit::Guess => npages <= p.total_ram_pages.saturating_add(p.total_swap_pages),
            Overcommit::Never => {
                let limit = p.total_ram_pages / 100 * p.overcommit_ratio + p.total_swap_pages;
                self.committed.saturating_add(npages) <= limit
            }
        };
        if !ok {
            return Err(err(Errno::ENOMEM, "the commit charge was refused (overcommit policy)"));
        }
        self.committed += npages;
        Ok(())
    }

    /// `vm_unacct_memory`.
    pub(crate) fn uncharge(&mut self, npages: u64) {
        debug_assert!(npages <= self.committed, "uncharge {npages} of {}", self.committed);
        self.committed = self.committed.saturating_sub(npages);
    }

    /// Recomputes everything `Mm` caches and checks every VMA; panics with the bad values.
    ///
    /// Tests call it after every operation (`mm/vma.c:validate_mm` in the kernel's debug
    /// builds).
    pub fn check_invariants(&self) {
        let mut prev_end = 0u64;
        let (mut total, mut data, mut exec, mut stack, mut locked, mut acct) = (0, 0, 0, 0, 0, 0);
        self.tree.check();
        for v in self.tree.iter() {
            assert!(v.start().0 < v.end().0, "empty or inverted VMA {v:?}\n{self:?}");
            assert!(
                self.is_page_aligned(v.start()) && self.is_page_aligned(v.end()),
                "VMA {v:?} not aligned to the guest page ({:#x})\n{self:?}",
                self.page_size()
            );
            assert!(
                v.start().0 >= prev_end,
                "VMA {v:?} overlaps the one before it\n{self:?}"
            );
            assert_eq!(
                self.tree.get(v.start()).map(|x| x.end()),
                Some(v.end()),
                "tree key is not the VMA start"
            );
            assert!(v.end().0 <= self.profile.task_size, "VMA {v:?} above TASK_SIZE");
            v.check_representation();
            // Page-table entries only where a VMA is (checked from the VMA side below).
            if v.is_anonymous() && v.file().is_none() {
                assert!(
                    !v.test(VmaBit::MayShare),
                    "anonymous VMA {v:?} is shared but has no shmem file"
                );
            }
            if v.test(VmaBit::Shared) {
                assert!(v.test(VmaBit::MayShare), "VM_SHARED without VM_MAYSHARE: {v:?}");
            }
            prev_end = v.end().0;
            let n = v.pages();
            total += n;
            if flags::is_exec_mapping(v.flags()) {
                exec += n;
            } else if flags::is_stack_mapping(v.flags()) {
                stack += n;
            } else if flags::is_data_mapping(v.flags()) {
                data += n;
            }
            if v.test(VmaBit::Locked) {
                locked += n;
            }
            if v.test(VmaBit::Account) {
                acct += n;
            }
        }
        let got = (
            self.total_vm,
            self.data_vm,
            self.exec_vm,
            self.stack_vm,
            self.locked_vm,
            self.committed,
        );
        let want = (total, data, exec, stack, locked, acct);
        assert_eq!(
            got, want,
            "counters (total, data, exec, stack, locked, committed): got {got:?} want {want:?}\n{self:?}"
        );
        // A huge block lies wholly inside one anonymous VMA with an anon_vma
        // (do_huge_pmd_anonymous_page prepared it; every boundary that cuts a block splits it).
        // Runs of blocks may span VMAs whose boundaries are block-aligned.
        for (start, end, _) in self.ptes.huge_runs() {
            let mut a = start;
            while a < end {
                let v = self.tree.lookup(a);
                assert!(
                    v.is_some_and(|v| v.is_anonymous()
                        && v.anon_vma().is_some()
                        && (v.end() >= end || v.end().0.is_multiple_of(crate::addr::PMD_SIZE))),
                    "huge block at {a:?} (run {start:?}-{end:?}) not inside one anonymous VMA \
                     with an anon_vma\n{self:?}"
                );
                a = v.expect("checked").end();
            }
        }
    }

    /// The maps text of every VMA, in the kernel's format (`/proc/PID/maps`).
    pub fn maps(&self) -> String {
        let mut s = String::new();
        for v in self.tree.iter() {
            s.push_str(&crate::procfs::maps_line_in(v, self.bounds));
            s.push('\n');
        }
        s
    }
}

/// The counters of an [`Mm`], in pages (see [`Mm::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmStats {
    pub map_count: u64,
    pub total_vm: u64,
    pub data_vm: u64,
    pub exec_vm: u64,
    pub stack_vm: u64,
    pub locked_vm: u64,
    pub committed: u64,
}

impl fmt::Debug for Mm {
    /// The address space as `/proc/PID/maps` would print it, so a failing test shows the layout.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Mm ({} VMAs):", self.tree.len())?;
        for v in self.tree.iter() {
            writeln!(f, "  {}  | {:?}", crate::procfs::maps_line_in(v, self.bounds), v)?;
        }
        Ok(())
    }
}

/// Pages of a list of VMAs.
pub(crate) fn total_pages(vmas: &[Vma]) -> u64 {
    vmas.iter().map(Vma::pages).sum()
}

/// (`#[track_caller]`: its errors are located at the caller, `Error::site` names `madvise` or
/// `mseal`.) The range checks `madvise` and `mseal` share (`mm/madvise.c:check_input_range`,
/// `mm/mseal.c:do_mseal`): `start` page aligned, `len` rounded up to pages without wrapping to 0,
/// the end not wrapping. Returns the end; a zero `len` gives `start`.
#[track_caller]
pub(crate) fn checked_range_end(mm: &Mm, start: VirtAddr, len: u64) -> Result<VirtAddr> {
    if !mm.is_page_aligned(start) {
        return Err(err(Errno::EINVAL, "address is not page aligned"));
    }
    let aligned = mm.page_align_wrapping(len);
    if len != 0 && aligned == 0 {
        return Err(err(Errno::EINVAL, "length rounds up past the end of the address space"));
    }
    let end = VirtAddr(start.0.wrapping_add(aligned));
    if end < start {
        return Err(err(Errno::EINVAL, "range wraps around the end of the address space"));
    }
    Ok(end)
}

/// [`Mm::alloc`] on the test switch alone, for code that holds a cursor into the tree (a
/// borrow of another field of `Mm`) while it allocates.
pub(crate) fn alloc_from(fail_alloc_in: &mut Option<u32>) -> Result<()> {
    match *fail_alloc_in {
        Some(0) => {
            *fail_alloc_in = None;
            Err(err(Errno::ENOMEM, "allocation failed (test switch)"))
        }
        Some(n) => {
            *fail_alloc_in = Some(n - 1);
            Ok(())
        }
        None => Ok(()),
    }
}

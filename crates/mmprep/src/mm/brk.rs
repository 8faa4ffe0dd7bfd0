//! `brk(2)`: the program break, and the `[heap]` VMA it grows and shrinks.
//!
//! A process's heap is the range `[start_brk, brk)` (page-rounded up) just above its data
//! segment. `brk(addr)` moves the break: growing maps anonymous memory with the data flags
//! (`VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT`, "rd wr mr mw me ac"), extending the VMA just below
//! when it can (`do_brk_flags`); shrinking unmaps. It never fails with an errno: it returns the
//! new break, or the old one when it refuses.
//!
//! ```text
//!   start_brk          oldbrk      newbrk           next
//!   |---- [heap] ------|+++++++++++|  >= 1 page gap  |---- next VMA (its guard gap, if a stack)
//! ```
//!
//! Refused (the old break is returned, nothing changes):
//! - `addr < start_brk` (including `brk(0)`, the usual query);
//! - `RLIMIT_DATA` is finite and `(addr - start_brk) + (end_data - start_data)` exceeds it
//!   (`check_data_rlimit`, checked before anything else, even for a shrink);
//! - a shrink where no VMA is left in `[newbrk, oldbrk)`, or whose unmap fails (a sealed VMA);
//! - a growth past `TASK_SIZE`, over `RLIMIT_MEMLOCK` with `mlockall(MCL_FUTURE)`, or that would
//!   not leave one free page below the next VMA's `vm_start_gap` (`newbrk + PAGE_SIZE >
//!   vm_start_gap(next)`);
//! - `RLIMIT_AS`/`RLIMIT_DATA` (`may_expand_vm`), `max_map_count`, the commit charge.
//!
//! A break that stays in the same page only updates `mm->brk`.
//!
//! Host-verified (Linux 6.18.44, `setarch -R`, a C probe with a one-page heap and a VMA 4 pages
//! above its end): growing to one page below that VMA succeeds, one byte more is refused;
//! `brk(start_brk + 0x3801)` inside the last heap page returns `0x...c801` and leaves the VMA;
//! `brk(start_brk - 0x1000)` returns the old break; `brk(start_brk)` unmaps the whole heap.
//!
//! Mirrors `mm/mmap.c:SYSCALL_DEFINE1(brk)`, `check_brk_limits`, `mm/vma.c:do_brk_flags`,
//! `include/linux/mm.h:check_data_rlimit`, `arch/x86/include/asm/page_types.h:
//! VM_DATA_DEFAULT_FLAGS` (the `READ_IMPLIES_EXEC` personality, which adds `VM_EXEC`, is not
//! modelled).

use crate::addr::{PAGE_SHIFT, PageRange, PgOff, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::flags::{VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::mm::merge::{MergeOutcome, MergeState};
use crate::vma::Vma;
use crate::vma_flags;

/// `VM_DATA_FLAGS_NON_EXEC` (x86_64 `VM_DATA_DEFAULT_FLAGS` without `READ_IMPLIES_EXEC`).
pub const DATA_DEFAULT_FLAGS: VmaFlags = vma_flags![Read, Write, MayRead, MayWrite, MayExec];

/// The addresses `mm_struct` keeps about the program it runs (`start_code`... `start_stack`):
/// where the data segment and the heap are, and the stack's initial pointer. `/proc/PID/stat`
/// prints all of them but `brk`.
///
/// # Invariants (checked by [`Mm::set_bounds`])
/// `start_brk` is page aligned, `start_brk <= brk`, `start_data <= end_data`, and every value is
/// at most `TASK_SIZE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmBounds {
    /// `mm->start_data`.
    pub start_data: u64,
    /// `mm->end_data`.
    pub end_data: u64,
    /// `mm->start_brk`: the start of the heap.
    pub start_brk: u64,
    /// `mm->brk`: the current break (may be unaligned).
    pub brk: u64,
    /// `mm->start_stack`: the initial stack pointer; the VMA containing it is `[stack]`.
    pub start_stack: u64,
}

impl Mm {
    /// The program's addresses, if a program layout was set ([`Mm::set_bounds`]).
    pub fn bounds(&self) -> Option<MmBounds> {
        self.bounds
    }

    /// Sets the program's addresses (what `execve` or an import decides). Until this is called
    /// the address space has no heap: `brk` refuses everything and answers 0, and no VMA is
    /// named `[heap]` or `[stack]`.
    ///
    /// # Errors
    /// `EINVAL` if the values break [`MmBounds`]' invariants.
    pub fn set_bounds(&mut self, b: MmBounds) -> Result<()> {
        let task_size = self.profile.task_size;
        if !self.is_page_aligned(VirtAddr(b.start_brk)) {
            return Err(err(Errno::EINVAL, "start_brk is not page aligned"));
        }
        if b.brk < b.start_brk || b.end_data < b.start_data {
            return Err(err(Errno::EINVAL, "brk below start_brk, or end_data below start_data"));
        }
        if [b.start_data, b.end_data, b.start_brk, b.brk, b.start_stack]
            .iter()
            .any(|a| *a > task_size)
        {
            return Err(err(Errno::EINVAL, "an address above TASK_SIZE"));
        }
        self.bounds = Some(b);
        Ok(())
    }

    /// `brk(addr)`: moves the program break and returns the new one, or the old one if the
    /// kernel would refuse (see the module doc). Without bounds ([`Mm::set_bounds`]) it returns
    /// 0 and changes nothing.
    pub fn brk(&mut self, addr: VirtAddr) -> VirtAddr {
        let Some(b) = self.bounds else {
            return VirtAddr(0);
        };
        let brk = addr.0;
        let origbrk = b.brk;
        if brk < b.start_brk {
            return VirtAddr(origbrk);
        }
        if check_data_rlimit(self.profile.rlimit_data, brk, b.start_brk, b.end_data, b.start_data).is_err() {
            return VirtAddr(origbrk);
        }
        let newbrk = self.page_align_wrapping(brk);
        let oldbrk = self.page_align_wrapping(b.brk);
        if oldbrk == newbrk {
            self.set_brk(brk);
            return VirtAddr(brk);
        }
        if brk <= b.brk {
            // Always allow shrinking, if something is there to unmap.
            let found = self
                .tree
                .find_vma(VirtAddr(newbrk))
                .is_some_and(|v| v.start().0 < oldbrk);
            if !found {
                return VirtAddr(origbrk);
            }
            self.set_brk(brk);
            if self.do_munmap(VirtAddr(newbrk), VirtAddr(oldbrk)).is_err() {
                self.set_brk(origbrk);
                return VirtAddr(origbrk);
            }
            return VirtAddr(brk);
        }
        let len = newbrk.wrapping_sub(oldbrk);
        if self.check_brk_limits(oldbrk, len).is_err() {
            return VirtAddr(origbrk);
        }
        // Only a next VMA within the stack guard gap of the expansion matters.
        let gap = self.profile.stack_guard_gap;
        let page = self.page_size();
        let limit = newbrk.saturating_add(page).saturating_add(gap);
        if let Some(next) = self.tree.find_vma(VirtAddr(oldbrk)).filter(|v| v.start().0 < limit)
            && newbrk + page > next.start_gap(gap).0
        {
            return VirtAddr(origbrk);
        }
        // vma_prev_limit(&vmi, start_brk): the VMA just below oldbrk, if it reaches start_brk.
        let brkvma = self
            .tree
            .prev_before(VirtAddr(oldbrk))
            .filter(|v| v.end().0 > b.start_brk)
            .map(|v| v.start());
        if self
            .do_brk_flags(brkvma, VirtAddr(oldbrk), len, VmaFlags::EMPTY)
            .is_err()
        {
            return VirtAddr(origbrk);
        }
        self.set_brk(brk);
        if self.def_flags.test(VmaBit::Locked) {
            self.mm_populate(VirtAddr(oldbrk), VirtAddr(newbrk));
        }
        VirtAddr(brk)
    }

    /// `vm_brk_flags(addr, len, flags)`: anonymous heap-like memory at `[addr, addr + len)`
    /// (the bss `execve` maps), extending the VMA just below when it can.
    pub(crate) fn vm_brk_flags(&mut self, addr: VirtAddr, len: u64, flags: VmaFlags) -> Result<()> {
        self.check_brk_limits(addr.0, len)?;
        if self.tree.find_intersection(addr, VirtAddr(addr.0 + len)).is_some() {
            return Err(err(Errno::ENOMEM, "the bss range is already mapped"));
        }
        let prev = self
            .tree
            .prev_before(addr)
            .filter(|v| v.end() == addr)
            .map(|v| v.start());
        self.do_brk_flags(prev, addr, len, flags)
    }

    fn set_brk(&mut self, brk: u64) {
        if let Some(b) = self.bounds.as_mut() {
            b.brk = brk;
        }
    }

    /// `check_brk_limits(addr, len)`: `get_unmapped_area(NULL, addr, len, 0, MAP_FIXED)`, then
    /// `mlock_future_ok` with `mm->def_flags`.
    fn check_brk_limits(&self, addr: u64, len: u64) -> Result<()> {
        let task_size = self.profile.task_size;
        if len > task_size || addr > task_size - len {
            return Err(err(Errno::ENOMEM, "the break would pass TASK_SIZE"));
        }
        // A host-reserved range is outside the guest's space, as if beyond TASK_SIZE.
        if self.profile.is_reserved(addr, addr + len) {
            return Err(err(Errno::ENOMEM, "the break would reach into a host-reserved range"));
        }
        if addr < self.profile.dac_mmap_min_addr && !self.profile.cap_sys_rawio {
            return Err(err(Errno::EPERM, "the break is below vm.mmap_min_addr"));
        }
        if !self.mlock_future_ok(self.def_flags, len) {
            return Err(err(Errno::EAGAIN, "locking the heap would exceed RLIMIT_MEMLOCK"));
        }
        Ok(())
    }

    /// `do_brk_flags(vmi, vma, addr, len, flags)`: map `[addr, addr + len)` as heap, extending
    /// `brkvma` when it ends at `addr` and is compatible, else as a new VMA.
    fn do_brk_flags(&mut self, brkvma: Option<VirtAddr>, addr: VirtAddr, len: u64, flags: VmaFlags) -> Result<()> {
        let mut vm_flags = flags
            .with(DATA_DEFAULT_FLAGS)
            .with(vma_flags![Account])
            .with(self.def_flags);
        let npages = len >> PAGE_SHIFT;
        if !self.may_expand_vm(vm_flags, npages) {
            return Err(err(Errno::ENOMEM, "the heap would exceed RLIMIT_AS or RLIMIT_DATA"));
        }
        if self.map_count() > self.profile.max_map_count {
            return Err(err(Errno::ENOMEM, "too many mappings (vm.max_map_count)"));
        }
        self.charge(npages)?;
        let end = VirtAddr(addr.0 + len);
        let pgoff = PgOff(addr.page_index());
        let mut merged = false;
        if let Some(prev) = brkvma.filter(|k| self.tree.get(*k).is_some_and(|v| v.end() == addr)) {
            let mut vmg = MergeState::new_range(addr, end, pgoff, vm_flags, None, Some(prev), None);
            vmg.just_expand = true;
            merged = self.merge_new_range(&mut vmg).is_some();
            if vmg.outcome == MergeOutcome::ErrorNoMem {
                self.uncharge(npages);
                return Err(err(Errno::ENOMEM, "extending the heap VMA failed (allocation)"));
            }
        }
        if !merged {
            if self.alloc().and_then(|()| self.alloc()).is_err() {
                // vm_area_alloc or vma_iter_store_gfp
                self.uncharge(npages);
                return Err(err(Errno::ENOMEM, "allocating the heap VMA failed"));
            }
            if self.profile.soft_dirty {
                vm_flags.set(VmaBit::SoftDirty);
            }
            let range = PageRange::new(addr, end).expect("heap range is aligned and non-empty");
            self.tree.insert(Vma::new(range, pgoff, vm_flags));
        } else if self.profile.soft_dirty
            && let Some(key) = self.tree.lookup(addr).map(|v| v.start())
            && let Some(v) = self.tree.get_mut(key)
        {
            v.set_flag(VmaBit::SoftDirty);
        }
        self.vm_stat_account(vm_flags, npages as i64);
        if vm_flags.test(VmaBit::Locked) {
            self.locked_vm += npages;
        }
        Ok(())
    }
}

/// `check_data_rlimit(rlim, new, start, end_data, start_data)`: `ENOSPC` when a finite
/// `RLIMIT_DATA` is smaller than the heap plus the data segment (unsigned, wrapping, as in C).
fn check_data_rlimit(rlim: u64, new: u64, start: u64, end_data: u64, start_data: u64) -> Result<()> {
    if rlim < u64::MAX && new.wrapping_sub(start).wrapping_add(end_data.wrapping_sub(start_data)) > rlim {
        return Err(err(Errno::ENOSPC, "the heap and data segment would exceed RLIMIT_DATA"));
    }
    Ok(())
}

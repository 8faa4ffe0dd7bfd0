//! `mlock(2)`, `mlock2(2)`, `munlock(2)`, `mlockall(2)`, `munlockall(2)`: keep the pages of a range in memory, or stop keeping them.
//!
//! A locked VMA (`VM_LOCKED`, `lo` in smaps) has its pages faulted in at once and never paged
//! out; with `MLOCK_ONFAULT` (`VM_LOCKONFAULT`, `lf`) pages are locked as they are touched, and
//! nothing is faulted in up front. The lock is a VMA flag like any other: locking part of a VMA
//! splits it, unlocking it again merges the pieces back. `Mm::locked_vm` counts the pages of
//! locked VMAs and is held to `RLIMIT_MEMLOCK` unless the process has `CAP_IPC_LOCK`.
//!
//! Mirrors `mm/mlock.c` ([H] 6.18): `do_mlock` (limits, then the walk, then populate),
//! `SYSCALL_DEFINE1(mlockall)` and `apply_mlockall_flags` (`def_flags`, then every VMA),
//! `apply_vma_lock_flags` (the walk), `mlock_fixup` (one VMA: skip, or split/merge through
//! [`Mm::vma_modify`] and count), `count_mm_mlocked_page_nr`, `__mlock_posix_error_return`, and
//! `mm/gup.c:__mm_populate` for the populate step.
//!
//! ```text
//!   before   |--------- A rw- ---------|
//!   mlock            <--- lo --->
//!   after    |- A --|---- A' lo ---|- A -|   split twice; A' is populated (written: anon_vma)
//!   munlock          <---------->
//!   after    |--------- A rw- ---------|     the flags match again: one VMA
//! ```
//!
//! Unlike most calls, the address is **not** checked for alignment: `start` is rounded down to
//! its page and `len` becomes `PAGE_ALIGN(len + offset in page)`, so `mlock(p + 1, 0)` locks the
//! page at `p` ([H]).
//!
//! # Checks, in the kernel's order (the first failure decides the errno)
//! `mlock2` only: flags other than `MLOCK_ONFAULT` → `EINVAL`. Then for `mlock`/`mlock2`:
//! 1. `RLIMIT_MEMLOCK` is 0 and no `CAP_IPC_LOCK` (`can_do_mlock`) → `EPERM`
//! 2. without `CAP_IPC_LOCK`: `locked_vm` plus the new pages (those already locked in the range
//!    not counted twice) above `RLIMIT_MEMLOCK` → `ENOMEM`
//! 3. the range end wraps → `EINVAL`; a length of 0 (after rounding) → success
//! 4. no VMA contains `start` → `ENOMEM`
//!
//! Then, VMA by VMA: a split at `max_map_count` → `ENOMEM`; a hole, or the range running past the
//! last VMA → `ENOMEM`. `munlock` runs steps 3 and 4 and the walk only (it never fails with
//! `EPERM`). VMAs with `VM_SPECIAL` bits, hugetlb and `VM_DROPPABLE` VMAs are skipped silently:
//! they keep their flags and count for nothing ([H]: `mlock` of `[vvar]` is 0 and adds no `lo`).
//!
//! Last, `mlock` faults the range in (`__mm_populate`): writing private writable VMAs (so they get
//! an anon_vma and private copies of file pages), reading the others, skipping `VM_LOCKONFAULT`
//! VMAs and I/O or PFN mappings. A page that cannot be faulted (`SIGBUS` past the end of a file,
//! a guard page, a `PROT_NONE` VMA) fails the call with `ENOMEM` (`EFAULT` turned into `ENOMEM`
//! by `__mlock_posix_error_return`; an allocation failure would become `EAGAIN`).
//!
//! # On failure
//! The walk does not roll back: VMAs before a hole keep their new lock state. A populate failure
//! comes after the walk, so every VMA of the range stays locked ([H]:
//! `tests/scenarios/mlock-populate-fault.scn`).

use crate::addr::{PAGE_MASK, PAGE_SHIFT, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::flags::{self, VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::uapi::mlock::ONFAULT;
use crate::vma_flags;

impl Mm {
    /// `mlock(start, len)`.
    pub fn mlock(&mut self, start: VirtAddr, len: u64) -> Result<()> {
        self.do_mlock(start, len, vma_flags![Locked])
    }

    /// `mlock2(start, len, flags)`: `flags` is 0 or `MLOCK_ONFAULT`.
    pub fn mlock2(&mut self, start: VirtAddr, len: u64, flags: u32) -> Result<()> {
        if flags & !ONFAULT != 0 {
            return Err(err(Errno::EINVAL, "unknown mlock2 flags"));
        }
        let lock = if flags & ONFAULT != 0 {
            vma_flags![Locked, LockOnFault]
        } else {
            vma_flags![Locked]
        };
        self.do_mlock(start, len, lock)
    }

    /// `munlock(start, len)`: clears `VM_LOCKED` and `VM_LOCKONFAULT` in the range.
    pub fn munlock(&mut self, start: VirtAddr, len: u64) -> Result<()> {
        let (start, len) = lock_range(start, len, self.page_size());
        self.apply_vma_lock_flags(start, len, VmaFlags::EMPTY)
    }

    /// `mlockall(flags)`: `MCL_CURRENT` locks every VMA now (and faults them in), `MCL_FUTURE`
    /// every VMA made from now on (`mm->def_flags`), `MCL_ONFAULT` makes either lock on fault.
    ///
    /// Checks, in the kernel's order: no flag, an unknown flag or `MCL_ONFAULT` alone →
    /// `EINVAL`; `RLIMIT_MEMLOCK` 0 without `CAP_IPC_LOCK` → `EPERM`; with `MCL_CURRENT`,
    /// `total_vm` above `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK` → `ENOMEM`. The walk ignores a
    /// VMA it cannot change (a split at the map limit) and goes on; so does the populate
    /// (`mm/mlock.c:SYSCALL_DEFINE1(mlockall)`, `apply_mlockall_flags`).
    pub fn mlockall(&mut self, flags: i32) -> Result<()> {
        use crate::uapi::mlock::{MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT};
        if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT {
            return Err(err(
                Errno::EINVAL,
                "mlockall needs MCL_CURRENT or MCL_FUTURE, and no unknown flag",
            ));
        }
        if !self.can_do_mlock() {
            return Err(err(Errno::EPERM, "RLIMIT_MEMLOCK is 0 and there is no CAP_IPC_LOCK"));
        }
        let lock_limit = self.profile.rlimit_memlock >> PAGE_SHIFT;
        if flags & MCL_CURRENT != 0 && self.total_vm > lock_limit && !self.profile.cap_ipc_lock {
            return Err(err(Errno::ENOMEM, "the address space is larger than RLIMIT_MEMLOCK"));
        }
        self.apply_mlockall_flags(flags);
        if flags & MCL_CURRENT != 0 {
            self.mm_populate(VirtAddr(0), VirtAddr(self.profile.task_size));
        }
        Ok(())
    }

    /// `munlockall()`: unlocks every VMA and stops locking new ones. Never fails.
    pub fn munlockall(&mut self) -> Result<()> {
        self.apply_mlockall_flags(0);
        Ok(())
    }

    /// `apply_mlockall_flags`: `def_flags`, then every VMA's lock bits (errors ignored).
    fn apply_mlockall_flags(&mut self, flags: i32) {
        use crate::uapi::mlock::{MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT};
        let lock = if flags & MCL_ONFAULT != 0 {
            vma_flags![Locked, LockOnFault]
        } else {
            vma_flags![Locked]
        };
        self.def_flags = self.def_flags.without(flags::LOCKED_MASK);
        if flags & MCL_FUTURE != 0 {
            self.def_flags = self.def_flags.with(lock);
            if flags & MCL_CURRENT == 0 {
                return;
            }
        }
        let to_add = if flags & MCL_CURRENT != 0 {
            lock
        } else {
            VmaFlags::EMPTY
        };
        let mut prev = None;
        let mut next = self.tree.next_from(VirtAddr(0)).map(|v| v.start());
        while let Some(key) = next {
            let v = self.tree.get(key).expect("VMA in tree");
            let (start, end) = (v.start(), v.end());
            let newflags = v.flags().without(flags::LOCKED_MASK).with(to_add);
            let after = match self.mlock_fixup(key, &mut prev, start, end, newflags) {
                Ok(covering) => self.tree.get(covering).expect("VMA in tree").end(),
                Err(_) => {
                    // "Ignore errors, but prev needs fixing up."
                    prev = Some(key);
                    end
                }
            };
            next = self.tree.next_from(after).map(|v| v.start());
        }
    }

    /// `do_mlock`: limits, the walk, then populate.
    fn do_mlock(&mut self, start: VirtAddr, len: u64, lock: VmaFlags) -> Result<()> {
        if !self.can_do_mlock() {
            return Err(err(Errno::EPERM, "RLIMIT_MEMLOCK is 0 and there is no CAP_IPC_LOCK"));
        }
        let (start, len) = lock_range(start, len, self.page_size());
        let lock_limit = self.profile.rlimit_memlock >> PAGE_SHIFT;
        let capable = self.profile.cap_ipc_lock;
        let mut locked = (len >> PAGE_SHIFT) + self.locked_vm;
        if locked > lock_limit && !capable {
            // Pages of the range that are locked already do not count twice.
            locked -= self.count_mm_mlocked_page_nr(start, len);
        }
        if locked > lock_limit && !capable {
            return Err(err(Errno::ENOMEM, "locking the range would exceed RLIMIT_MEMLOCK"));
        }
        self.apply_vma_lock_flags(start, len, lock)?;
        let end = VirtAddr(start.0.wrapping_add(len));
        self.mm_populate_locked(start, end).map_err(|e| match e.errno {
            // __mlock_posix_error_return
            Errno::EFAULT => err(Errno::ENOMEM, "a page of the range could not be faulted in"),
            Errno::ENOMEM => err(Errno::EAGAIN, "out of memory while faulting the range in"),
            _ => e,
        })
    }

    /// `count_mm_mlocked_page_nr`: pages of `[start, start + len)` in `VM_LOCKED` VMAs.
    fn count_mm_mlocked_page_nr(&self, start: VirtAddr, len: u64) -> u64 {
        let end = VirtAddr(start.0.saturating_add(len));
        if start >= end {
            return 0;
        }
        self.tree
            .range(start, end)
            .filter(|v| v.test(VmaBit::Locked))
            .map(|v| v.end().min(end).pages_from(v.start().max(start)))
            .sum()
    }

    /// `apply_vma_lock_flags`: give every VMA of `[start, start + len)` the lock bits `lock`
    /// (none for munlock), VMA by VMA.
    ///
    /// # Preconditions
    /// `start` and `len` are page aligned.
    fn apply_vma_lock_flags(&mut self, start: VirtAddr, len: u64, lock: VmaFlags) -> Result<()> {
        debug_assert!(start.is_page_aligned() && len & !PAGE_MASK == 0);
        let end = VirtAddr(start.0.wrapping_add(len));
        if end < start {
            return Err(err(Errno::EINVAL, "range wraps around the end of the address space"));
        }
        if end == start {
            return Ok(());
        }
        let Some(first) = self.tree.lookup(start) else {
            return Err(err(Errno::ENOMEM, "the range starts in a hole"));
        };
        let mut key = first.start();
        let mut prev = if start > first.start() {
            Some(first.start())
        } else {
            self.tree.prev_before(first.start()).map(|v| v.start())
        };
        let mut nstart = start;
        let mut tmp = first.start();
        loop {
            let vma = self.tree.get(key).expect("VMA in tree");
            if vma.start() != tmp {
                return Err(err(Errno::ENOMEM, "the range has a hole"));
            }
            let newflags = vma.flags().without(flags::LOCKED_MASK).with(lock);
            tmp = vma.end().min(end);
            let covering = self.mlock_fixup(key, &mut prev, nstart, tmp, newflags)?;
            // vma_iter_end: a merge may have reached past this VMA.
            tmp = self.tree.get(covering).expect("VMA in tree").end();
            nstart = tmp;
            if tmp >= end {
                return Ok(());
            }
            match self.tree.next_from(tmp) {
                Some(n) if n.start() < end => key = n.start(),
                _ => return Err(err(Errno::ENOMEM, "the range runs past the last mapping")),
            }
        }
    }

    /// `mlock_fixup`: give `[start, end)` of the VMA at `key` the flags `newflags` (its lock bits
    /// changed), splitting or merging, and count the pages in `locked_vm`. Returns the VMA now
    /// covering the range; `prev` becomes it.
    fn mlock_fixup(
        &mut self,
        key: VirtAddr,
        prev: &mut Option<VirtAddr>,
        start: VirtAddr,
        end: VirtAddr,
        newflags: VmaFlags,
    ) -> Result<VirtAddr> {
        let oldflags = self.tree.get(key).expect("VMA in tree").flags();
        // The gate VMA, DAX and secretmem VMAs are not modelled.
        if newflags == oldflags
            || oldflags.test_any(flags::SPECIAL)
            || oldflags.test_any(vma_flags![HugeTlb, Droppable])
        {
            // Neither VM_LOCKED nor VM_LOCKONFAULT is set, and nothing is counted.
            *prev = Some(key);
            return Ok(key);
        }
        let sticky = flags::sticky_flags(self.profile.soft_dirty);
        let pos = self.tree.pos_of(key).expect("VMA in tree");
        let mut c = self.vma_modify(*prev, pos, start, end, newflags)?;
        // The sticky bits a merge brought stay.
        let v = c.get_mut().expect("the VMA covering the range");
        v.set_flags(newflags.with(v.flags().and(sticky)));
        let target = v.start();
        let nr_pages = end.pages_from(start);
        // INVARIANT: `locked_vm` counts the pages of `[start, end)` exactly when the VMA now
        // covering them has VM_LOCKED.
        if !newflags.test(VmaBit::Locked) {
            self.locked_vm -= nr_pages;
        } else if !oldflags.test(VmaBit::Locked) {
            self.locked_vm += nr_pages;
        }
        *prev = Some(target);
        Ok(target)
    }

    /// `__mm_populate(start, len, ignore_errors = 0)`: fault in every VMA of `[start, end)` after
    /// `mlock`, skipping I/O and PFN mappings; the first page that fails ends it with `EFAULT`
    /// (or `ENOMEM` for an allocation).
    fn mm_populate_locked(&mut self, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let mut nstart = start;
        while nstart < end {
            let Some(v) = self.tree.find_intersection(nstart, end) else {
                break;
            };
            let (key, nend) = (v.start(), v.end().min(end));
            if !v.flags().test_any(vma_flags![Io, PfnMap]) {
                self.populate_vma_page_range(key, nstart.max(key), nend)?;
            }
            nstart = nend;
        }
        Ok(())
    }
}

/// The range `mlock` and `munlock` work on: `start` rounded down to its page, and `len` grown by
/// the part of the page below `start`, then rounded up (`PAGE_ALIGN(len + offset_in_page(start))`,
/// wrapping as the kernel's `size_t` arithmetic does).
/// `page` is the guest page size.
fn lock_range(start: VirtAddr, len: u64, page: u64) -> (VirtAddr, u64) {
    let mask = !(page - 1);
    let offset = start.0 & !mask;
    (
        VirtAddr(start.0 & mask),
        len.wrapping_add(offset).wrapping_add(page - 1) & mask,
    )
}

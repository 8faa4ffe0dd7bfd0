//! `mmap(2)`: map a file or anonymous memory, the mmap_prepare way.
//!
//! Mirrors, [H] 6.18 for everything a scenario observes and [N] for the mmap_prepare pipeline
//! (`docs/reference/mmap-prepare-pipeline.md`):
//! `arch/x86/kernel/sys_x86_64.c` (offset check) → `mm/mmap.c:ksys_mmap_pgoff` (descriptor) →
//! `mm/util.c:vm_mmap_pgoff` (populate) → `mm/mmap.c:do_mmap` (checks, flags, address) →
//! `mm/vma.c:mmap_region` → `__mmap_region`:
//!
//! ```text
//!  __mmap_setup       unmap what MAP_FIXED replaces (gather), limits, commit charge, close()
//!  call_mmap_prepare  the driver sees a VmAreaDesc; permitted fields are copied back;
//!                     flags that would break the counters are refused or followed
//!  merge_new_range    only if a neighbour exists
//!  mmap_new_vma       only if nothing merged
//!  user fields        vm_ops (if set) and private_data (always), merged or not
//!  mmap_complete      free the replaced VMAs, statistics, VM_LOCKED, page protection
//!  action_complete    new VMA of an mmap_prepare file only: mapped(), success hook;
//!                     a failure unmaps the new VMA and goes through the error hook
//! ```
//!
//! # On failure (what the caller sees)
//! - any argument check: nothing changed;
//! - the gather (seal, `map_count`, `may_split`): the replaced VMAs stay, a split at the start of
//!   the range stays;
//! - `RLIMIT_AS`/`RLIMIT_DATA`, commit charge: the replaced VMAs stay, splits stay;
//! - `mmap_prepare`, the engine's checks of the flags it left (`check_prepared_flags`), VMA
//!   allocation: the replaced VMAs are gone (their `close` ran): a hole;
//! - completion (page tables of the action, `mapped`, success hook): the new VMA is unmapped
//!   again: a hole.
//!
//! Departure: when a `MAP_FIXED` replacement fails after its commit charge, the kernel never
//! releases that charge (nor the replaced VMAs' charge it took over); the engine releases both,
//! so its `committed` counter always equals the `VM_ACCOUNT` pages.

use alloc::sync::Arc;

use crate::action::MmapAction;
use crate::addr::{PAGE_SHIFT, PageRange, PgOff, VirtAddr};
use crate::desc::VmAreaDesc;
use crate::driver::pipeline::{self, Completion};
use crate::errno::{Errno, Result, err};
use crate::events::Event;
use crate::file::{File, MmapHook};
use crate::flags::{self, VmaBit, VmaFlags, calc_vm_flag_bits, calc_vm_prot_bits};
use crate::legacy::LegacyVma;
use crate::mm::Mm;
use crate::mm::merge::MergeState;
use crate::mm::munmap::MunmapGather;
use crate::profile::Overcommit;
use crate::uapi::{MapFlags, Prot};
use crate::vma::{PageProt, PrivateData, VmHooks, VmOperations, VmOps, Vma};
use crate::vma_flags;

/// Everything `__mmap_region` carries from step to step (`struct mmap_state`).
struct MmapState {
    addr: VirtAddr,
    end: VirtAddr,
    pgoff: PgOff,
    pglen: u64,
    flags: VmaFlags,
    /// The file the VMA points at (the hook may swap it).
    vm_file: Option<Arc<File>>,
    page_prot: PageProt,
    /// Pages newly charged to the commit limit.
    charged: u64,
    /// Charged pages taken over from replaced VMAs.
    transferred: u64,
    /// What `MAP_FIXED` replaces.
    gather: MunmapGather,
    prev: Option<VirtAddr>,
    next: Option<VirtAddr>,
    // From mmap_prepare.
    vm_ops: Option<Arc<dyn VmOperations>>,
    private_data: Option<PrivateData>,
    action: MmapAction,
}

impl Mm {
    /// `mmap(addr, len, prot, flags, fd, offset)` on x86_64. `file` is the open file behind `fd`,
    /// or `None` for an invalid descriptor (ignored with `MAP_ANONYMOUS`). `offset` is in bytes.
    pub fn mmap(
        &mut self,
        addr: VirtAddr,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        file: Option<&Arc<File>>,
        offset: u64,
    ) -> Result<VirtAddr> {
        if offset & !self.page_mask() != 0 {
            return Err(err(Errno::EINVAL, "offset is not page aligned"));
        }
        self.mmap_pgoff(addr, len, prot, flags, file, offset >> PAGE_SHIFT)
    }

    /// `mmap_pgoff`: like [`Mm::mmap`] with the offset in 4096-byte units (`ksys_mmap_pgoff`,
    /// as i386's `mmap2` passes it; the engine's pgoff unit). With a larger guest page, an
    /// offset that is not a whole number of guest pages is `EINVAL`, as `mmap` refuses it.
    pub fn mmap_pgoff(
        &mut self,
        addr: VirtAddr,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        file: Option<&Arc<File>>,
        pgoff: u64,
    ) -> Result<VirtAddr> {
        if pgoff & ((1 << self.unit_shift()) - 1) != 0 {
            return Err(err(Errno::EINVAL, "offset is not page aligned"));
        }
        let file = if !flags.contains(MapFlags::ANONYMOUS) {
            let Some(f) = file else {
                return Err(err(Errno::EBADF, "the descriptor is not open"));
            };
            if flags.contains(MapFlags::HUGETLB) {
                return Err(err(Errno::EINVAL, "MAP_HUGETLB on a file that is not on hugetlbfs"));
            }
            Some(f.clone())
        } else {
            if flags.contains(MapFlags::HUGETLB) {
                let size_log = (flags.bits() >> 26) & 0x3f;
                if !matches!(size_log, 0 | 21 | 30) {
                    return Err(err(Errno::EINVAL, "unsupported huge page size"));
                }
                return Err(err(
                    Errno::ENOMEM,
                    "no huge pages are reserved (hugetlb is not modelled)",
                ));
            }
            None
        };
        let (addr, populate) = self.do_mmap(file, addr, len, prot, flags, pgoff)?;
        if populate != 0 {
            self.mm_populate(addr, VirtAddr(addr.0 + populate));
        }
        Ok(addr)
    }

    /// `can_do_mlock`.
    pub(crate) fn can_do_mlock(&self) -> bool {
        self.profile.rlimit_memlock != 0 || self.profile.cap_ipc_lock
    }

    /// `mlock_future_ok`: may `bytes` more be locked?
    pub(crate) fn mlock_future_ok(&self, flags: VmaFlags, bytes: u64) -> bool {
        if !flags.test(VmaBit::Locked) || self.profile.cap_ipc_lock {
            return true;
        }
        let locked = (bytes >> PAGE_SHIFT) + self.locked_vm;
        locked <= self.profile.rlimit_memlock >> PAGE_SHIFT
    }

    /// `mm/mmap.c:do_mmap`. Returns the address and how many bytes to populate.
    fn do_mmap(
        &mut self,
        file: Option<Arc<File>>,
        addr: VirtAddr,
        len: u64,
        prot: Prot,
        mut flags: MapFlags,
        mut pgoff: u64,
    ) -> Result<(VirtAddr, u64)> {
        if len == 0 {
            return Err(err(Errno::EINVAL, "length is zero"));
        }
        if flags.contains(MapFlags::FIXED_NOREPLACE) {
            flags = flags | MapFlags::FIXED;
        }
        let mut addr = addr;
        if !flags.contains(MapFlags::FIXED) {
            addr = self.round_hint_to_min(addr);
        }
        let Some(len) = self.page_align(len).filter(|l| *l != 0) else {
            return Err(err(Errno::ENOMEM, "length rounds up past the end of the address space"));
        };
        // In guest pages, as the kernel counts them (the engine's pgoff is in 4 KiB units).
        let shift = self.unit_shift();
        if (pgoff >> shift).checked_add(len >> (PAGE_SHIFT + shift)).is_none() {
            return Err(err(Errno::EOVERFLOW, "offset plus length wraps"));
        }
        if self.map_count() > self.profile.max_map_count {
            return Err(err(Errno::ENOMEM, "too many mappings (vm.max_map_count)"));
        }
        let mut vm_flags = calc_vm_prot_bits(prot)
            .with(calc_vm_flag_bits(flags))
            .with(self.def_flags)
            .with(vma_flags![MayRead, MayWrite, MayExec]);
        let addr = self.get_unmapped_area(file.as_ref(), addr, len, pgoff, flags, vm_flags)?;
        let end = VirtAddr(addr.0 + len);
        if flags.contains(MapFlags::FIXED_NOREPLACE) && self.tree.find_intersection(addr, end).is_some() {
            return Err(err(Errno::EEXIST, "MAP_FIXED_NOREPLACE and the range is mapped"));
        }
        if flags.contains(MapFlags::LOCKED) && !self.can_do_mlock() {
            return Err(err(Errno::EPERM, "MAP_LOCKED without RLIMIT_MEMLOCK or CAP_IPC_LOCK"));
        }
        if !self.mlock_future_ok(vm_flags, len) {
            return Err(err(Errno::EAGAIN, "locking it would exceed RLIMIT_MEMLOCK"));
        }
        if let Some(f) = &file {
            if !f.mmap_ok(pgoff, len) {
                return Err(err(
                    Errno::EOVERFLOW,
                    "offset plus length is beyond what the file can map",
                ));
            }
            let mut legacy = MapFlags::LEGACY_MASK;
            if !matches!(
                self.profile.arch.isa(),
                crate::arch::Isa::X86_64 | crate::arch::Isa::I386
            ) {
                // MAP_32BIT is x86's; elsewhere include/linux/mman.h defines it as 0.
                legacy = legacy.without(MapFlags::BIT32);
            }
            let mut mask = legacy;
            if f.ops().fop_flags().contains(crate::file::FopFlags::MMAP_SYNC) {
                mask = mask | MapFlags::SYNC;
            }
            let ty = flags.map_type();
            if ty == MapFlags::SHARED || ty == MapFlags::SHARED_VALIDATE {
                if ty == MapFlags::SHARED {
                    // Plain MAP_SHARED silently drops what MAP_SHARED_VALIDATE would refuse.
                    flags = flags.intersection(legacy);
                }
                if flags.without(mask).bits() != 0 {
                    return Err(err(
                        Errno::EOPNOTSUPP,
                        "MAP_SHARED_VALIDATE with a flag this file does not support",
                    ));
                }
                if prot.contains(Prot::WRITE) && !f.mode().write {
                    return Err(err(
                        Errno::EACCES,
                        "shared writable mapping of a file not open for writing",
                    ));
                }
                if f.inode().is_append_only() && f.mode().write {
                    return Err(err(
                        Errno::EACCES,
                        "shared mapping of an append-only file open for writing",
                    ));
                }
                vm_flags.set_mask(vma_flags![Shared, MayShare]);
                if !f.mode().write {
                    vm_flags.clear_mask(vma_flags![MayWrite, Shared]);
                }
            } else if ty != MapFlags::PRIVATE {
                return Err(err(Errno::EINVAL, "mapping type is neither shared nor private"));
            }
            if !f.mode().read {
                return Err(err(Errno::EACCES, "file is not open for reading"));
            }
            if f.is_noexec() {
                if vm_flags.test(VmaBit::Exec) {
                    return Err(err(Errno::EPERM, "PROT_EXEC on a noexec mount"));
                }
                vm_flags.clear(VmaBit::MayExec);
            }
            if !matches!(f.ops().mmap_hook(), MmapHook::Prepare | MmapHook::Legacy) {
                return Err(err(Errno::ENODEV, "the file cannot be mapped"));
            }
            if vm_flags.test(VmaBit::GrowsDown) {
                return Err(err(Errno::EINVAL, "MAP_GROWSDOWN on a file mapping"));
            }
        } else {
            let ty = flags.map_type();
            if ty == MapFlags::SHARED {
                if vm_flags.test(VmaBit::GrowsDown) {
                    return Err(err(Errno::EINVAL, "MAP_GROWSDOWN on a shared anonymous mapping"));
                }
                pgoff = 0;
                vm_flags.set_mask(vma_flags![Shared, MayShare]);
            } else if ty == MapFlags::DROPPABLE || ty == MapFlags::PRIVATE {
                if ty == MapFlags::DROPPABLE {
                    if flags.intersects(MapFlags::LOCKED | MapFlags::HUGETLB) {
                        return Err(err(Errno::EINVAL, "MAP_DROPPABLE cannot be locked or hugetlb"));
                    }
                    if vm_flags.test(VmaBit::GrowsDown) {
                        return Err(err(Errno::EINVAL, "MAP_DROPPABLE cannot grow down"));
                    }
                    vm_flags.set_mask(vma_flags![Droppable, NoReserve, WipeOnFork, DontDump]);
                }
                // The page index of the address makes adjacent anonymous mappings contiguous.
                pgoff = addr.page_index();
            } else {
                return Err(err(
                    Errno::EINVAL,
                    "anonymous mapping type is neither shared nor private",
                ));
            }
        }
        if flags.contains(MapFlags::NORESERVE) && self.profile.overcommit != Overcommit::Never {
            vm_flags.set(VmaBit::NoReserve);
        }
        let addr = self.mmap_region(file, addr, len, vm_flags, pgoff)?;
        let populate = vm_flags.test(VmaBit::Locked)
            || flags.intersection(MapFlags::POPULATE | MapFlags::NONBLOCK) == MapFlags::POPULATE;
        Ok((addr, if populate { len } else { 0 }))
    }

    /// `mm/vma.c:mmap_region` → `__mmap_region`.
    fn mmap_region(
        &mut self,
        file: Option<Arc<File>>,
        addr: VirtAddr,
        len: u64,
        flags: VmaFlags,
        pgoff: u64,
    ) -> Result<VirtAddr> {
        // Memory-deny-write-execute (prctl) and memfd seals are not modelled: nothing sets them.
        let hook = file.as_ref().map(|f| f.ops().mmap_hook());
        let have_prepare = hook == Some(MmapHook::Prepare);
        let end = VirtAddr(addr.0 + len);
        let mut map = MmapState {
            addr,
            end,
            pgoff: PgOff(pgoff),
            pglen: len >> PAGE_SHIFT,
            flags,
            vm_file: file.clone(),
            page_prot: PageProt::from_flags(flags),
            charged: 0,
            transferred: 0,
            gather: MunmapGather::default(),
            prev: None,
            next: None,
            vm_ops: None,
            private_data: None,
            action: MmapAction::default(),
        };
        self.mmap_setup(&mut map)?;
        if have_prepare && let Err(e) = self.call_mmap_prepare(&mut map, file.as_ref().expect("prepare has a file")) {
            self.abort_mmap(map);
            return Err(e);
        }
        let mut merged = None;
        if map.prev.is_some() || map.next.is_some() {
            let mut vmg = MergeState::new_range(
                map.addr,
                map.end,
                map.pgoff,
                map.flags,
                map.vm_file.clone(),
                map.prev,
                map.next,
            );
            merged = self.merge_new_range(&mut vmg);
        }
        let (key, is_new) = match merged {
            Some(k) => (k, false),
            None => match self.mmap_new_vma(&map) {
                Ok(k) => (k, true),
                Err(e) => {
                    self.abort_mmap(map);
                    return Err(e);
                }
            },
        };
        if have_prepare {
            // set_vma_user_defined_fields: ops only if set; private data always.
            let v = self.tree.get_mut(key).expect("mapped VMA in tree");
            if let Some(ops) = map.vm_ops.take() {
                v.set_ops(VmOps::Driver(ops));
            }
            v.set_private_data(map.private_data.take());
        }
        self.mmap_complete(&mut map, key);
        if have_prepare && is_new {
            let action = core::mem::take(&mut map.action);
            // The state goes before the driver's hooks run, as it did in `mmap_complete`.
            drop(map);
            let driver = file.as_ref().expect("prepare has a file").ops().name();
            self.mmap_action_complete(addr, end, action, driver)?;
        }
        Ok(addr)
    }

    /// `__mmap_setup` ([H] `__mmap_prepare`): gather what `MAP_FIXED` replaces, check limits,
    /// charge, and call `close` on the replaced VMAs.
    fn mmap_setup(&mut self, map: &mut MmapState) -> Result<()> {
        // One look-up: the first VMA ending above the start, and the one before it.
        let (vma, prev) = self.tree.find_vma_prev(map.addr);
        let next = if vma.is_some_and(|v| v.start() < map.end) {
            // MAP_FIXED over mappings: the gather finds the VMAs around the range.
            map.gather = self.gather_munmap_vmas(map.addr, map.end)?;
            map.prev = map.gather.prev;
            (map.gather.ceiling != VirtAddr(u64::MAX)).then_some(map.gather.ceiling)
        } else {
            map.prev = prev.map(|v| v.start());
            vma.map(|v| v.start())
        };
        // Only an adjacent next VMA can take part in a merge.
        map.next = next.filter(|&n| n == map.end);
        if !self.may_expand_vm(map.flags, map.pglen - map.gather.nr_pages) {
            let g = core::mem::take(&mut map.gather);
            self.reattach(g);
            return Err(err(Errno::ENOMEM, "the mapping would exceed RLIMIT_AS or RLIMIT_DATA"));
        }
        // accountable_mapping: private writable, not NORESERVE (hugetlb is not modelled).
        if map.flags.test(VmaBit::Write) && !map.flags.test_any(vma_flags![NoReserve, Shared]) {
            let charged = map.pglen - map.gather.nr_accounted;
            if charged != 0
                && let Err(e) = self.charge(charged)
            {
                let g = core::mem::take(&mut map.gather);
                self.reattach(g);
                return Err(e);
            }
            map.charged = charged;
            map.transferred = map.gather.nr_accounted;
            map.gather.nr_accounted = 0;
            map.flags.set(VmaBit::Account);
        }
        if !map.gather.detached.is_empty() {
            self.clean_up_area(&mut map.gather);
        }
        Ok(())
    }

    /// `vms_abort_munmap_vmas` after `close` ran: the replaced VMAs cannot come back, so the range
    /// is left empty. The commit charge is released (see the module doc).
    fn abort_mmap(&mut self, mut map: MmapState) {
        let g = core::mem::take(&mut map.gather);
        self.complete_munmap_vmas(g);
        self.uncharge(map.charged + map.transferred);
    }

    /// `call_mmap_prepare`: run the driver's hook on a descriptor, then copy back the fields it
    /// may change (`pgoff`, `vm_file`, flags, page protection, `vm_ops`, private data, action).
    fn call_mmap_prepare(&mut self, map: &mut MmapState, file: &Arc<File>) -> Result<()> {
        let shmem = self.shmem.clone();
        let desc = VmAreaDesc::new(file.clone(), map.addr, map.end, map.pgoff, map.flags, &shmem);
        let parts = pipeline::call_mmap_prepare(file, desc, &self.events)?;
        let driver = file.ops().name();
        let before = map.flags;
        map.pgoff = parts.pgoff;
        map.vm_file = Some(parts.vm_file);
        map.flags = parts.flags;
        map.page_prot = parts.page_prot;
        map.vm_ops = parts.vm_ops;
        map.private_data = parts.private_data;
        map.action = parts.action;
        self.check_prepared_flags(map, before).map_err(|e| e.by_driver(driver))
    }

    /// What the engine does with the flags `mmap_prepare` (and its action's prepare step) left,
    /// where they could break the counters it keeps.
    ///
    /// In the kernel a driver may set or clear any flag in the descriptor:
    /// `mm/vma.c:call_mmap_prepare` → `set_vma_from_desc` copies them all back, and nothing
    /// checks them. Where a flag change would make the kernel's own bookkeeping wrong, the
    /// kernel goes wrong (silently, or with a `WARN`); the engine instead either refuses the
    /// mapping as the driver's error, leaving the address space as any `mmap_prepare` failure
    /// leaves it (`EINVAL`, [`crate::Error::driver`] naming the driver; what a `MAP_FIXED`
    /// mapping replaced is gone, a hole, and the commit charge is released), or follows the
    /// flags the VMA really ends with. Per flag:
    ///
    /// - `VM_SHARED` without `VM_MAYSHARE` (a shared mapping whose `VM_MAYSHARE` was cleared, or
    ///   `VM_SHARED` added to a private one): **refused**. The kernel sets the two together
    ///   (`do_mmap`) and tests either one for "shared" in different places (`VM_SHARED` for
    ///   copy-on-write and writeback, `VM_MAYSHARE` for `/proc/PID/maps` and `mremap`), so such
    ///   a VMA is shared to some code and private to the rest; the engine's invariant is
    ///   `VM_SHARED` ⇒ `VM_MAYSHARE`. Clearing both (a private mapping) is allowed: `mmap_setup`
    ///   charged nothing for a shared mapping, and a private writable VMA without `VM_ACCOUNT`
    ///   is an ordinary `MAP_NORESERVE` one.
    /// - `VM_LOCKONFAULT` without `VM_LOCKED`: **refused**. The kernel only ever sets it with
    ///   `VM_LOCKED` (`mlock2(MLOCK_ONFAULT)`, `mlockall(MCL_ONFAULT)`); `__mmap_complete` counts
    ///   no locked pages for such a VMA, yet `munlock` (`mlock_fixup`: the lock bits change,
    ///   `VM_LOCKED` is not in the new flags) subtracts its pages from `locked_vm`, which then
    ///   underflows, in the kernel too. There is no true value to keep.
    /// - `VM_LOCKED` set or cleared (with `VM_LOCKONFAULT` or without): **followed**, as in the
    ///   kernel: `__mmap_complete` counts `locked_vm` from the VMA's final flags (and clears the
    ///   lock bits of a special mapping). `RLIMIT_MEMLOCK` was checked on the flags before the
    ///   hook, so a driver can lock past it, as in the kernel.
    /// - `VM_ACCOUNT` set or cleared: **followed**, with the charge moved to match. The kernel
    ///   charges in `__mmap_setup`, before the hook, from `accountable_mapping`, and never looks
    ///   again: an added `VM_ACCOUNT` is uncharged by `munmap` without ever having been charged
    ///   (`Committed_AS` drifts down; the engine's `committed` would underflow), a cleared one
    ///   leaks its charge. The engine charges the pages of an added `VM_ACCOUNT` (a refused
    ///   charge fails the mapping with `ENOMEM`, like any charge) and releases the charge of a
    ///   cleared one (with what it took over from the VMAs a `MAP_FIXED` mapping replaces), so
    ///   `committed` stays the `VM_ACCOUNT` pages and the `mmap` succeeds as in the kernel.
    ///
    /// Every other flag a driver may change is counted from the final flags anyway
    /// (`total_vm`, `data_vm`, `exec_vm`, `stack_vm` by `vm_stat_account` in `mmap_complete`).
    /// A remap whose physical range wraps is refused when the action completes
    /// (`action::install_ptes`), where the kernel's `pfnmap_track` refuses it.
    fn check_prepared_flags(&mut self, map: &mut MmapState, before: VmaFlags) -> Result<()> {
        let f = map.flags;
        if f.test(VmaBit::Shared) && !f.test(VmaBit::MayShare) {
            return Err(err(Errno::EINVAL, "mmap_prepare left VM_SHARED without VM_MAYSHARE"));
        }
        if f.test(VmaBit::LockOnFault) && !f.test(VmaBit::Locked) {
            return Err(err(Errno::EINVAL, "mmap_prepare left VM_LOCKONFAULT without VM_LOCKED"));
        }
        match (before.test(VmaBit::Account), f.test(VmaBit::Account)) {
            (false, true) => {
                // The pages a MAP_FIXED mapping replaces keep their own charge: the gather
                // releases it when they go (mmap_setup took it over only for an accountable
                // mapping).
                self.charge(map.pglen)?;
                map.charged = map.pglen;
            }
            (true, false) => {
                self.uncharge(map.charged + map.transferred);
                map.charged = 0;
                map.transferred = 0;
            }
            _ => {}
        }
        Ok(())
    }

    /// `__mmap_new_vma`: a VMA of its own for the range.
    fn mmap_new_vma(&mut self, map: &MmapState) -> Result<VirtAddr> {
        self.alloc()?; // vm_area_alloc
        self.alloc()?; // vma_iter_prealloc
        let range = PageRange::new(map.addr, map.end).expect("mmap range is aligned and non-empty");
        let mut vma = Vma::new(range, map.pgoff, map.flags);
        vma.set_page_prot(map.page_prot);
        if let Some(f) = &map.vm_file {
            vma.set_file(Some(f.clone()));
            vma.set_ops(VmOps::Dummy);
            if f.ops().mmap_hook() == MmapHook::Legacy {
                self.call_legacy_mmap(f, &mut vma)?;
            }
        } else if map.flags.test(VmaBit::Shared) {
            // shmem_zero_setup: shared anonymous memory is a new shmem object.
            let (file, ops) = self.shmem.zero_setup(map.end.bytes_from(map.addr));
            vma.set_file(Some(file));
            vma.set_ops(VmOps::Driver(ops));
        }
        self.tree.insert(vma);
        Ok(map.addr)
    }

    /// `__mmap_complete`: free what was replaced, account the new pages, settle `VM_LOCKED`.
    fn mmap_complete(&mut self, map: &mut MmapState, key: VirtAddr) {
        if !map.gather.detached.is_empty() {
            let g = core::mem::take(&mut map.gather);
            self.complete_munmap_vmas(g);
        }
        let soft_dirty = self.profile.soft_dirty;
        let v = self.tree.get_mut(key).expect("mapped VMA in tree");
        let vflags = v.flags();
        let mut lock = false;
        if vflags.test(VmaBit::Locked) {
            if vflags.test_any(flags::SPECIAL) || vflags.test(VmaBit::HugeTlb) {
                v.clear_flag_bits(flags::LOCKED_MASK);
            } else {
                lock = true;
            }
        }
        if soft_dirty {
            v.set_flag(VmaBit::SoftDirty);
        }
        v.set_page_prot_from_flags();
        self.vm_stat_account(vflags, map.pglen as i64);
        if lock {
            self.locked_vm += map.pglen;
        }
    }

    /// `mm/vma.c:call_action_complete` ([N]): for a new VMA of an mmap_prepare file, the
    /// pipeline's `mmap_action_complete` (page tables, `mapped`, success hook); a failure unmaps
    /// the VMA (its `close` runs), then the error hook may change the errno.
    fn mmap_action_complete(
        &mut self,
        start: VirtAddr,
        end: VirtAddr,
        action: MmapAction,
        driver: &'static str,
    ) -> Result<()> {
        let vma = self.tree.get_mut(start).expect("new VMA in tree");
        let Err(e) = pipeline::mmap_action_complete(vma, &mut self.ptes, &self.events, &action, driver) else {
            return Ok(());
        };
        // The kernel ignores this munmap's own result (only an injected allocation failure can
        // make it fail here; the VMA then stays, as it would in the kernel).
        let _ = self.do_munmap(start, end);
        Err(pipeline::mmap_action_error(&self.events, &action, Completion::Mmap, e))
    }

    /// `mmap_file` → `f_op->mmap(file, vma)` on the new VMA before it is linked
    /// (`__mmap_new_file_vma`). On error its page-table entries are zapped and the VMA is not
    /// made (the caller leaves a hole). A hook that installs ops with `mapped` is refused
    /// (`__vma_check_mmap_hook`, [N]).
    fn call_legacy_mmap(&mut self, file: &Arc<File>, vma: &mut Vma) -> Result<()> {
        let (start, end, pgoff) = (vma.start(), vma.end(), vma.pgoff());
        let shmem = self.shmem.clone();
        let machine = self.machine.clone();
        let mark = self.events.mark();
        let mut result = {
            let mut lv = LegacyVma {
                vma: &mut *vma,
                ptes: &mut self.ptes,
                machine: &machine,
                shmem: &shmem,
                events: &mut self.events,
            };
            match file.ops().mmap() {
                Some(hook) => hook.mmap(&mut lv),
                None => Err(err(Errno::ENODEV, "the file has no mmap hook")),
            }
        };
        if result.is_ok() && vma.ops().hooks().contains(VmHooks::MAPPED) {
            result = Err(err(
                Errno::EINVAL,
                "a legacy ->mmap hook may not install vm_ops->mapped",
            ));
        }
        let driver = file.ops().name();
        self.events.insert_at(mark, || Event::LegacyMmap {
            driver,
            start,
            end,
            pgoff,
            result: result.map_err(|e| e.errno),
        });
        if result.is_err() {
            // mmap_file's failure path: no further hooks; unmap_region undoes any entries.
            self.ptes.zap(start, end);
        }
        result
    }
}

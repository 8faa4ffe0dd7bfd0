//! `madvise(2)`: tell the kernel how a range will be used, or act on its pages now.
//!
//! The advices fall in three groups. *Hints* change VMA flags, splitting and merging like
//! `mprotect` (`sequential` sets `sr`, `dontfork` sets `dc`...). *Actions* work on the pages and
//! leave the VMAs alone: `dontneed` drops the page-table entries (private anonymous memory reads
//! zeros again, a private file mapping reads the file again, shared memory keeps its data),
//! `remove` punches a hole in the file behind a shared mapping, `populate_read`/`_write` fault
//! the range in, `willneed`/`cold`/`pageout`/`free`/`collapse` change nothing a program can see
//! here. *Guards* turn pages into guard pages (any access is `SIGSEGV`) and back, marking the
//! whole VMA `VM_MAYBE_GUARD` (`gu`) without splitting it.
//!
//! Mirrors `mm/madvise.c` ([H] 6.18 with the `VM_MAYBE_GUARD` backport; see below):
//! `do_madvise` (up-front checks), `madvise_walk_vmas` (the walk), `madvise_vma_behavior` (one
//! VMA), `madvise_update_vma` → `mm/vma.c:vma_modify_flags` (here [`Mm::vma_modify`]),
//! `can_madvise_modify` (seals), `madvise_dontneed_free`, `madvise_remove`,
//! `madvise_guard_install`, `madvise_guard_remove`, `madvise_populate` →
//! `mm/gup.c:faultin_page_range`, `mm/ksm.c:ksm_madvise`, `mm/huge_memory.c:hugepage_madvise`,
//! `mm/khugepaged.c:madvise_collapse`.
//!
//! ```text
//!   before   |---- A ----|      |---- B ----|
//!   call         <--------- dontdump -------->      the range has a hole and runs past B
//!   after    |A-|-A' dd -|      |--- B' dd -|       every VMA in the range changed; ENOMEM
//! ```
//!
//! # Checks, in the kernel's order (the first failure decides the errno)
//! 1. unknown advice → `EINVAL` (also `MADV_HWPOISON`/`MADV_SOFT_OFFLINE`, see below)
//! 2. `start` not page aligned → `EINVAL`
//! 3. `len` rounds up to 0 from a non-zero value, or `start + len` wraps → `EINVAL`
//! 4. `len == 0` → success, nothing changes (even on unmapped memory)
//!
//! Then the walk, VMA by VMA (`populate_*` walk on their own, see `madvise_populate`):
//! a hole (at the start, inside, or at the end of the range) is remembered as `ENOMEM` and the
//! walk goes on; an error from one VMA stops the walk and is returned instead. Per VMA, in order:
//!
//! | advice | refused with |
//! | --- | --- |
//! | discarding advices on a sealed, read-only, private anonymous VMA | `EPERM` |
//! | `remove` | `VM_LOCKED` or no file → `EINVAL`; not shared-writable → `EACCES`; the file refuses the hole punch (device → `ENODEV`) |
//! | `cold`, `pageout` | `VM_LOCKED`, `VM_PFNMAP`, hugetlb → `EINVAL` |
//! | `dontneed`, `free` | `VM_LOCKED` (`dontneed_locked`: allowed), `VM_PFNMAP`, hugetlb → `EINVAL`; `free` on a file or shared mapping → `EINVAL` |
//! | `collapse` | no 2 MiB-aligned huge page fits the VMA, `nh`, no anon_vma, a file that is not shmem → `EINVAL`; a block that cannot be collapsed (anonymous: no page table, a guard marker; shmem: nothing cached, a private copy) → `EINVAL` |
//! | `guard_install` | `VM_SPECIAL`, hugetlb, `VM_LOCKED` → `EINVAL` |
//! | `guard_remove` | `VM_SPECIAL`, hugetlb → `EINVAL` |
//! | `dofork` | `VM_IO` → `EINVAL` |
//! | `wipeonfork` | a file (private `/dev/zero` included) or shared mapping → `EINVAL` |
//! | `keeponfork` | `VM_DROPPABLE` → `EINVAL` |
//! | `dodump` | `VM_SPECIAL` (not hugetlb) or `VM_DROPPABLE` → `EINVAL` |
//! | `mergeable` | ignored (0, no flag) on shared, special, hugetlb and droppable VMAs |
//! | any hint | a split at `max_map_count` → `EAGAIN` (the split's `ENOMEM`, rewritten) |
//!
//! # On failure
//! VMAs walked before the failing one keep their change, including the one before a hole; the
//! failing VMA and those after it are untouched. `populate_*` leaves the pages it faulted in.
//!
//! # Host notes
//! The reference host (6.18.44) carries the `VM_MAYBE_GUARD` series from 6.19: `guard_install`
//! prepares an anon_vma only for anonymous VMAs ([H]: a guarded private file mapping still
//! merges with a written neighbour on one side and an unwritten one on the other), and
//! `can_madvise_modify` asks `vma_is_anonymous`, so a sealed read-only private `/dev/zero`
//! mapping refuses discards too ([H]). `MADV_HWPOISON` and `MADV_SOFT_OFFLINE` inject memory
//! failures, which the engine does not model: it answers `EINVAL`, as a kernel built without
//! `CONFIG_MEMORY_FAILURE` does (a departure from the root host, which would poison the page).

use crate::addr::{PAGE_SHIFT, PMD_SIZE, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::file::{File, InodeKind, MAX_LFS_FILESIZE};
use crate::flags::{self, VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::shmem::SHMEM_DEV;
use crate::tree::VmaPos;
use crate::uapi::madv;
use crate::vma::Vma;
use crate::vma_flags;

/// The advices `madvise_behavior_valid` accepts on the reference host (KSM and transparent
/// hugepages built in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Advice {
    Normal,
    Random,
    Sequential,
    WillNeed,
    DontNeed,
    Free,
    Remove,
    DontFork,
    DoFork,
    Mergeable,
    Unmergeable,
    HugePage,
    NoHugePage,
    DontDump,
    DoDump,
    WipeOnFork,
    KeepOnFork,
    Cold,
    PageOut,
    PopulateRead,
    PopulateWrite,
    DontNeedLocked,
    Collapse,
    GuardInstall,
    GuardRemove,
}

impl Advice {
    /// `madvise_behavior_valid`.
    fn from_raw(advice: u32) -> Option<Advice> {
        use Advice::*;
        Some(match advice {
            madv::NORMAL => Normal,
            madv::RANDOM => Random,
            madv::SEQUENTIAL => Sequential,
            madv::WILLNEED => WillNeed,
            madv::DONTNEED => DontNeed,
            madv::FREE => Free,
            madv::REMOVE => Remove,
            madv::DONTFORK => DontFork,
            madv::DOFORK => DoFork,
            madv::MERGEABLE => Mergeable,
            madv::UNMERGEABLE => Unmergeable,
            madv::HUGEPAGE => HugePage,
            madv::NOHUGEPAGE => NoHugePage,
            madv::DONTDUMP => DontDump,
            madv::DODUMP => DoDump,
            madv::WIPEONFORK => WipeOnFork,
            madv::KEEPONFORK => KeepOnFork,
            madv::COLD => Cold,
            madv::PAGEOUT => PageOut,
            madv::POPULATE_READ => PopulateRead,
            madv::POPULATE_WRITE => PopulateWrite,
            madv::DONTNEED_LOCKED => DontNeedLocked,
            madv::COLLAPSE => Collapse,
            madv::GUARD_INSTALL => GuardInstall,
            madv::GUARD_REMOVE => GuardRemove,
            _ => return None,
        })
    }

    /// `is_discard`: does the advice throw data away (what a seal protects)?
    fn is_discard(self) -> bool {
        use Advice::*;
        matches!(
            self,
            Free | DontNeed | DontNeedLocked | Remove | DontFork | WipeOnFork | GuardInstall
        )
    }
}

/// `can_madvise_modify`: a sealed VMA refuses advices that discard data, but only where the
/// program could not simply overwrite that data itself: anonymous memory it may not write.
fn can_madvise_modify(vma: &Vma, advice: Advice) -> bool {
    !vma.is_sealed() || !advice.is_discard() || !vma.is_anonymous() || vma.test(VmaBit::Write)
}

impl Mm {
    /// `madvise(start, len, advice)`; `advice` is a `MADV_*` number.
    pub fn madvise(&mut self, start: VirtAddr, len: u64, advice: u32) -> Result<()> {
        let Some(advice) = Advice::from_raw(advice) else {
            return Err(err(Errno::EINVAL, "unknown advice"));
        };
        // check_input_range
        let end = super::checked_range_end(self, start, len)?;
        if len == 0 {
            return Ok(());
        }
        match advice {
            Advice::PopulateRead | Advice::PopulateWrite => {
                self.madvise_populate(start, end, advice == Advice::PopulateWrite)
            }
            _ => self.madvise_walk_vmas(advice, start, end),
        }
    }

    /// `madvise_walk_vmas`: apply `advice` to every VMA of `[start, last_end)`, walking on from
    /// one look-up (`find_vma_prev`) by position, as the kernel's `for_each_vma_range` does.
    fn madvise_walk_vmas(&mut self, advice: Advice, start: VirtAddr, last_end: VirtAddr) -> Result<()> {
        let mut unmapped_error = Ok(());
        let mut range_start = start;
        // find_vma_prev
        let c = self.tree.cursor(start);
        let mut vma = c.pos();
        let mut prev = match c.get() {
            Some(v) if start > v.start() => Some(v.start()),
            Some(_) => c.peek_prev().map(|p| p.start()),
            None => None,
        };
        loop {
            let Some(pos) = vma else {
                return Err(err(Errno::ENOMEM, "the range runs past the last mapping"));
            };
            let v = self.tree.vma_at(pos);
            let (v_start, v_end) = (v.start(), v.end());
            if range_start < v_start {
                // A hole: remembered, and the walk goes on.
                unmapped_error = Err(err(Errno::ENOMEM, "the range has a hole"));
                range_start = v_start;
                if range_start >= last_end {
                    break;
                }
            }
            let mut range_end = v_end.min(last_end);
            let covering = self.madvise_vma_behavior(advice, pos, prev, range_start, range_end)?;
            // The advices that drop the mmap lock (remove, willneed on a file, collapse) make the
            // kernel look the next VMA up afresh with no prev; they never change VMAs, so
            // carrying on from this VMA finds the same one.
            let v = self.tree.vma_at(covering);
            prev = Some(v.start());
            let v_end = v.end();
            if range_end < v_end {
                range_end = v_end;
            }
            if range_end >= last_end {
                break;
            }
            vma = self.tree.pos_after(covering);
            range_start = range_end;
        }
        unmapped_error
    }

    /// `madvise_vma_behavior`: `advice` on `[start, end)` of the VMA at `pos`. Returns the
    /// position of the VMA now covering the range (a hint may have merged it into a neighbour).
    fn madvise_vma_behavior(
        &mut self,
        advice: Advice,
        pos: VmaPos,
        prev: Option<VirtAddr>,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Result<VmaPos> {
        use Advice::*;
        let vma = self.tree.vma_at(pos);
        let key = vma.start();
        // The advices below that act on pages look their VMA up by start; they move no VMA, and
        // the walk goes on from the same VMA, found again by start (the leaf it is in is the
        // look-up hint, so that costs no descent).
        let again = |mm: &Mm| mm.tree.pos_of(key).expect("VMA in tree");
        if !can_madvise_modify(vma, advice) {
            return Err(err(
                Errno::EPERM,
                "discarding the data of a sealed read-only anonymous mapping",
            ));
        }
        let flags = vma.flags();
        let mut new_flags = flags;
        match advice {
            Remove => return self.madvise_remove(key, start, end).map(|()| again(self)),
            // Read-ahead (or swap-in) only: nothing visible.
            WillNeed => return Ok(pos),
            Cold | PageOut => {
                // can_madv_lru_vma. Deactivating or reclaiming pages keeps their data (no swap,
                // clean file pages are read back).
                if flags.test_any(vma_flags![Locked, PfnMap, HugeTlb]) {
                    return Err(err(
                        Errno::EINVAL,
                        "cold and pageout refuse locked, PFN and hugetlb mappings",
                    ));
                }
                return Ok(pos);
            }
            Free | DontNeed | DontNeedLocked => {
                return self
                    .madvise_dontneed_free(advice, key, start, end)
                    .map(|()| again(self));
            }
            Collapse => return self.madvise_collapse(key, start, end).map(|()| again(self)),
            GuardInstall => return self.madvise_guard_install(key, start, end).map(|()| again(self)),
            GuardRemove => return self.madvise_guard_remove(key, start, end).map(|()| again(self)),
            PopulateRead | PopulateWrite => unreachable!("populate does not walk VMAs this way"),
            Normal => new_flags.clear_mask(vma_flags![RandRead, SeqRead]),
            Sequential => {
                new_flags.clear(VmaBit::RandRead);
                new_flags.set(VmaBit::SeqRead);
            }
            Random => {
                new_flags.clear(VmaBit::SeqRead);
                new_flags.set(VmaBit::RandRead);
            }
            DontFork => new_flags.set(VmaBit::DontCopy),
            DoFork => {
                if flags.test(VmaBit::Io) {
                    return Err(err(Errno::EINVAL, "dofork on an I/O mapping"));
                }
                new_flags.clear(VmaBit::DontCopy);
            }
            WipeOnFork => {
                // Only private anonymous memory; a private /dev/zero mapping still has its file.
                if vma.file().is_some() || flags.test(VmaBit::Shared) {
                    return Err(err(Errno::EINVAL, "wipeonfork on a file or shared mapping"));
                }
                new_flags.set(VmaBit::WipeOnFork);
            }
            KeepOnFork => {
                if flags.test(VmaBit::Droppable) {
                    return Err(err(Errno::EINVAL, "keeponfork on a droppable mapping"));
                }
                new_flags.clear(VmaBit::WipeOnFork);
            }
            DontDump => new_flags.set(VmaBit::DontDump),
            DoDump => {
                if (!flags.test(VmaBit::HugeTlb) && flags.test_any(flags::SPECIAL)) || flags.test(VmaBit::Droppable) {
                    return Err(err(Errno::EINVAL, "dodump on a special or droppable mapping"));
                }
                new_flags.clear(VmaBit::DontDump);
            }
            Mergeable => {
                // ksm_madvise: an incompatible VMA ignores the advice.
                let incompatible = vma_flags![Shared, MayShare, PfnMap, Io, DontExpand, HugeTlb, MixedMap, Droppable];
                if !flags.test_any(incompatible) {
                    new_flags.set(VmaBit::Mergeable);
                }
            }
            // Unmerging KSM pages cannot fail here: nothing merges them.
            Unmergeable => new_flags.clear(VmaBit::Mergeable),
            HugePage => {
                new_flags.clear(VmaBit::NoHugePage);
                new_flags.set(VmaBit::HugePage);
            }
            NoHugePage => {
                new_flags.clear(VmaBit::HugePage);
                new_flags.set(VmaBit::NoHugePage);
            }
        }
        if new_flags == flags {
            return Ok(pos);
        }
        self.madvise_update_vma(pos, prev, start, end, new_flags).map_err(|e| {
            // "madvise() returns EAGAIN if kernel resources, such as slab, are temporarily
            // unavailable": a refused split included.
            if e.errno == Errno::ENOMEM {
                err(Errno::EAGAIN, e.reason)
            } else {
                e
            }
        })
    }

    /// `madvise_update_vma`: give `[start, end)` of the VMA at `pos` the flags `new_flags`,
    /// splitting or merging through [`Mm::vma_modify`], and write them at the position it
    /// returns. Returns that position.
    fn madvise_update_vma(
        &mut self,
        pos: VmaPos,
        prev: Option<VirtAddr>,
        start: VirtAddr,
        end: VirtAddr,
        new_flags: VmaFlags,
    ) -> Result<VmaPos> {
        debug_assert_ne!(
            self.tree.vma_at(pos).flags(),
            new_flags,
            "the caller returns early when the flags stay"
        );
        let sticky = flags::sticky_flags(self.profile.soft_dirty);
        let mut c = self.vma_modify(prev, pos, start, end, new_flags)?;
        // INVARIANT: the range has the new flags; the sticky bits a merge brought stay.
        let v = c.get_mut().expect("the VMA covering the range");
        v.set_flags(new_flags.with(v.flags().and(sticky)));
        Ok(c.pos().expect("the VMA covering the range"))
    }

    /// `madvise_dontneed_free`: drop the pages of `[start, end)` (`dontneed`,
    /// `dontneed_locked`), or mark them free to reclaim (`free`).
    ///
    /// `free` leaves the data in place until memory runs short, which never happens here: a
    /// page read before it is written again shows its old bytes, as on a host with memory to
    /// spare.
    fn madvise_dontneed_free(&mut self, advice: Advice, key: VirtAddr, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let vma = self.tree.get(key).expect("VMA in tree");
        // madvise_dontneed_free_valid_vma (hugetlb VMAs are not modelled: mmap refuses them).
        let mut forbidden = vma_flags![PfnMap];
        if advice != Advice::DontNeedLocked {
            forbidden.set(VmaBit::Locked);
        }
        if vma.flags().test_any(forbidden) || vma.test(VmaBit::HugeTlb) {
            return Err(err(Errno::EINVAL, "the mapping is locked or maps raw page frames"));
        }
        if advice == Advice::Free {
            // madvise_free_single_vma
            if !vma.is_anonymous() {
                return Err(err(Errno::EINVAL, "free works on anonymous private memory only"));
            }
            return Ok(());
        }
        // zap_page_range_single: the entries go, guard markers stay; emptied page tables of
        // whole blocks go too with CONFIG_PT_RECLAIM.
        self.ptes.zap_pages(start, end, self.profile.pt_reclaim);
        Ok(())
    }

    /// `madvise_remove` → `vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`: free the
    /// file's pages behind `[start, end)`; every mapping of the file reads zeros there afterwards
    /// (private copies already made stay).
    fn madvise_remove(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let vma = self.tree.get(key).expect("VMA in tree");
        if vma.test(VmaBit::Locked) {
            return Err(err(Errno::EINVAL, "remove on a locked mapping"));
        }
        let Some(file) = vma.file().cloned() else {
            return Err(err(Errno::EINVAL, "remove needs a file"));
        };
        if !flags::is_shared_maywrite(vma.flags()) {
            return Err(err(
                Errno::EACCES,
                "remove needs a shared mapping the file may be written through",
            ));
        }
        let offset = vma.pgoff().bytes().wrapping_add(start.bytes_from(vma.start()));
        let len = end.bytes_from(start);
        // vfs_fallocate
        if !file.mode().write {
            return Err(err(Errno::EBADF, "the file is not open for writing"));
        }
        let inode = file.inode();
        if inode.is_append_only() {
            return Err(err(Errno::EPERM, "hole punch in an append-only file"));
        }
        match inode.kind() {
            InodeKind::Regular => {}
            InodeKind::CharDevice => return Err(err(Errno::ENODEV, "a device file has no blocks to punch")),
            InodeKind::BlockDevice => {
                return Err(err(Errno::EOPNOTSUPP, "hole punch in a block device is not modelled"));
            }
        }
        if offset.checked_add(len).is_none_or(|e| e > s_maxbytes(&file)) {
            return Err(err(Errno::EFBIG, "the hole reaches past the largest file offset"));
        }
        inode.punch_hole(offset >> PAGE_SHIFT, (offset + len) >> PAGE_SHIFT);
        Ok(())
    }

    /// `madvise_guard_install`: turn every page of `[start, end)` into a guard page. The VMA gets
    /// `VM_MAYBE_GUARD` as a whole (no split); anonymous VMAs get an anon_vma (page tables then
    /// hold something fork must copy); pages present are dropped first.
    fn madvise_guard_install(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let vma = self.tree.get(key).expect("VMA in tree");
        // is_valid_guard_vma(allow_locked = false)
        if vma.flags().test_any(flags::SPECIAL) || vma.flags().test_any(vma_flags![HugeTlb, Locked]) {
            return Err(err(Errno::EINVAL, "guard pages need a plain, unlocked mapping"));
        }
        let anonymous = vma.is_anonymous();
        // vma_set_atomic_flag: whole VMA, no split, no merge.
        self.tree
            .get_mut(key)
            .expect("VMA in tree")
            .set_flag(VmaBit::MaybeGuard);
        if anonymous {
            self.anon_vma_prepare(key)?;
        }
        self.ptes.install_guards(start, end);
        Ok(())
    }

    /// `madvise_guard_remove`: guard pages of `[start, end)` become ordinary (empty) pages again.
    /// `VM_MAYBE_GUARD` stays.
    fn madvise_guard_remove(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let vma = self.tree.get(key).expect("VMA in tree");
        // is_valid_guard_vma(allow_locked = true): removing guards destroys nothing.
        if vma.flags().test_any(flags::SPECIAL) || vma.test(VmaBit::HugeTlb) {
            return Err(err(Errno::EINVAL, "guard pages need a plain mapping"));
        }
        self.ptes.remove_guards(start, end);
        Ok(())
    }

    /// `madvise_collapse`: build 2 MiB transparent huge pages over `[start, end)`.
    ///
    /// Only whether the call succeeds is visible (contents stay the same). What decides it ([H]
    /// for each case):
    /// - `thp_vma_allowable_order`: the VMA must be able to hold an aligned huge page (checked
    ///   at its end), not be `nh`, special or hugetlb; an anonymous VMA needs an anon_vma; a file
    ///   VMA must be shmem (memfd, shared anonymous) with a huge-page-aligned file offset;
    ///   otherwise `EINVAL`;
    /// - the range holds no whole aligned huge page: `EINVAL` if its rounded bounds cross,
    ///   success if they meet;
    /// - anonymous memory, block by block (`hpage_collapse_scan_pmd`, [H]
    ///   `thp/collapse-anon.scn`): a block without a page table fails, one mapped huge (the
    ///   huge zero page too) is done, a guard marker fails it, any other page table collapses -
    ///   even one holding only small zero-page entries or emptied by a partial `dontneed`. A
    ///   collapsed block is a huge page afterwards;
    /// - shmem (memfd, shared `/dev/zero` and anonymous), block by block
    ///   (`hpage_collapse_scan_file`, [H] `thp/collapse-shmem.scn`): the file's page cache must
    ///   hold some page of the block's file range - written or faulted through any mapping of
    ///   the object, this one or another - and a private mapping must hold no private copy in
    ///   the block.
    fn madvise_collapse(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let vma = self.tree.get(key).expect("VMA in tree");
        let no_thp = || err(Errno::EINVAL, "the mapping cannot hold a transparent huge page");
        let pmd_pages = PMD_SIZE >> PAGE_SHIFT;
        if self.unit_shift() != 0 {
            // The engine's huge pages are 2 MiB blocks of 4 KiB entries (docs/profiles.md).
            return Err(err(
                Errno::EINVAL,
                "MADV_COLLAPSE is modelled for 4K guest pages only (not modelled: a larger PMD)",
            ));
        }
        if vma.flags().test_any(flags::SPECIAL) || vma.flags().test_any(vma_flags![HugeTlb, NoHugePage]) {
            return Err(no_thp());
        }
        // thp_vma_suitable_order at the VMA's end.
        let haddr = vma.end().0.saturating_sub(PMD_SIZE) & !(PMD_SIZE - 1);
        if haddr < vma.start().0 || haddr + PMD_SIZE > vma.end().0 {
            return Err(no_thp());
        }
        if vma.is_anonymous() {
            if vma.anon_vma().is_none() {
                return Err(no_thp());
            }
        } else {
            let shmem = vma.file().is_some_and(|f| f.inode().dev() == SHMEM_DEV);
            let aligned = (vma.start().page_index().wrapping_sub(vma.pgoff().get())).is_multiple_of(pmd_pages);
            if !shmem || !aligned {
                return Err(no_thp());
            }
        }
        let hstart = start.0.div_ceil(PMD_SIZE).saturating_mul(PMD_SIZE);
        let hend = end.0 & !(PMD_SIZE - 1);
        if hend < hstart {
            return Err(err(Errno::EINVAL, "the range holds no whole huge page"));
        }
        if vma.is_anonymous() {
            // Every block is tried (the failures here are ones madvise_collapse goes on after);
            // one that fails makes the call fail (madvise_collapse_errno: EINVAL).
            let mut failed = false;
            let mut block = hstart;
            while block < hend {
                failed |= !self.ptes.collapse_anon_block(VirtAddr(block));
                block += PMD_SIZE;
            }
            if failed {
                return Err(err(
                    Errno::EINVAL,
                    "a block of the range has no page table or holds a guard marker",
                ));
            }
            return Ok(());
        }
        // shmem (hpage_collapse_scan_file): the file's page cache decides, not this mapping's
        // page table; a private copy in the block keeps the huge page from being mapped
        // (collapse_pte_mapped_thp).
        let vma = self.tree.get(key).expect("VMA in tree");
        let inode = vma.file().expect("a file VMA").inode().clone();
        let private = !vma.test(VmaBit::Shared);
        let mut failed = false;
        let mut block = hstart;
        while block < hend {
            let (b, e) = (VirtAddr(block), VirtAddr(block + PMD_SIZE));
            let first = vma.pgoff_at(b).get();
            if !inode.has_pages_in(first, first + pmd_pages) || (private && self.ptes.any_anon_in(b, e)) {
                failed = true;
            }
            block += PMD_SIZE;
        }
        if failed {
            return Err(err(
                Errno::EINVAL,
                "a block of the range has no page in the file's cache, or a private copy",
            ));
        }
        Ok(())
    }

    /// `madvise_populate` → `faultin_page_range`: fault `[start, end)` in, VMA by VMA, for
    /// writing or for reading, as an access of the program would (no `FOLL_FORCE`).
    ///
    /// # On failure
    /// Unmapped memory → `ENOMEM`; a VMA the access is not allowed on (no `VM_READ` for reading,
    /// no `VM_WRITE` for writing, I/O or PFN mappings) → `EINVAL`; a page that cannot be faulted
    /// in (`SIGBUS` past the end of a file, a guard page) → `EFAULT`. Pages faulted in before the
    /// failure stay.
    fn madvise_populate(&mut self, start: VirtAddr, end: VirtAddr, write: bool) -> Result<()> {
        let mut addr = start;
        while addr < end {
            // __get_user_pages with FOLL_MADV_POPULATE: vma_lookup, then check_vma_flags.
            let Some(vma) = self.tree.lookup(addr) else {
                return Err(err(Errno::ENOMEM, "part of the range is not mapped"));
            };
            let (key, vma_end, flags) = (vma.start(), vma.end(), vma.flags());
            let allowed = !flags.test_any(vma_flags![Io, PfnMap])
                && if write {
                    flags.test(VmaBit::Write)
                } else {
                    flags.test(VmaBit::Read)
                };
            if !allowed {
                return Err(err(Errno::EINVAL, "the mapping does not allow that access"));
            }
            let stop = vma_end.min(end);
            self.faultin_pages(key, addr, stop, write)
                .map_err(|_| err(Errno::EFAULT, "a page of the range could not be faulted in"))?;
            addr = stop;
        }
        Ok(())
    }
}

/// `inode->i_sb->s_maxbytes`, the largest offset a file of the filesystem may reach: ext4 with
/// 4 KiB blocks addresses `2^32 - 1` blocks (`fs/ext4/super.c:ext4_max_size`, [H]: a hole
/// punched up to 16 TiB - 4 KiB is fine, one page further is `EFBIG`); shmem allows
/// `MAX_LFS_FILESIZE`. The engine knows filesystems only by their file operations' name.
fn s_maxbytes(file: &File) -> u64 {
    match file.ops().name() {
        "ext4" => ((1 << 32) - 1) << PAGE_SHIFT,
        _ => MAX_LFS_FILESIZE,
    }
}

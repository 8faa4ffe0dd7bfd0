//! Memory accesses and page faults: what a load or store does, byte by byte.
//!
//! A first access to a page faults. The fault handler finds the VMA (growing a stack VMA
//! downwards if the address lies just below one), checks the access against the VMA's flags
//! (`SIGSEGV` if refused), and supplies a page: zero-filled for anonymous memory, from the
//! driver's `fault` hook otherwise (`SIGBUS` if there is none, or beyond the end of a file). A
//! write to a private mapping of a page others also map copies it first (copy-on-write).
//!
//! For VMAs the *anon_vma* matters most: the first write to a private page creates one (or
//! reuses a compatible neighbour's), and from then on it decides which merges are possible.
//!
//! Mirrors `arch/x86/mm/fault.c:do_user_addr_fault` / `access_error`,
//! `mm/mmap_lock.c:lock_mm_and_find_vma` (there since it left `mm/memory.c`; checked on 6.18),
//! `mm/vma.c:expand_downwards`, `acct_stack_growth` (moved there from `mm/mmap.c`),
//! `mm/memory.c:handle_pte_fault` (`do_anonymous_page`, `do_read_fault`, `do_cow_fault`,
//! `do_shared_fault`, `do_wp_page`), `mm/rmap.c:__anon_vma_prepare`,
//! `mm/vma.c:find_mergeable_anon_vma`, `mm/gup.c:__mm_populate` / `populate_vma_page_range`
//! ([H] 6.18).
//!
//! A read of never-written anonymous memory maps the shared zero page in the kernel; here it
//! reads zeros and stores no entry, which is indistinguishable, but the 2 MiB block gets its
//! page table, which decides whether later faults there may take the huge path. In a VMA that
//! may use transparent huge pages, a fault in a block without a page table takes that path
//! (`mm/huge_memory.c:do_huge_pmd_anonymous_page`, see `mm/huge_memory.rs`): the huge zero page
//! on a read, a huge page on a write, and an anon_vma either way.

use crate::addr::Pfn;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::events::Event;
use crate::file::same_file;
use crate::flags::{ACCESS_FLAGS, VmaBit};
use crate::mm::Mm;
use crate::mm::huge_memory::huge_block;
use crate::pagetable::{Pmd, Pte, PteTarget, WpAnon};
use crate::phys::FrameRef;
use crate::shmem::SHMEM_DEV;
use crate::vma::{AnonVmaId, AnonVmaRef, FaultResult, VmFault, VmOps, Vma};
use crate::vma_flags;

/// The kind of memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
}

/// The signal a refused access raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `SIGSEGV`: no VMA, or the VMA does not allow the access.
    Segv,
    /// `SIGBUS`: the VMA allows it but nothing can be mapped (past the end of the file, no
    /// `fault` hook).
    Bus,
}

/// What an access reaches.
#[derive(Clone, Debug)]
pub(crate) enum PageRef {
    /// Never-written anonymous memory: reads as zeros (the kernel's shared zero page).
    Zero,
    /// A page frame.
    Frame(FrameRef),
    /// A physical page of a PFN mapping.
    Pfn(Pfn),
}

/// Why a fault under the shared lock stopped.
pub(crate) enum Stop {
    /// The access raises this signal.
    Signal(Signal),
    /// The VMA needs its first anon_vma, which only the exclusive path may give it.
    NeedsAnonVma,
}

impl From<Signal> for Stop {
    fn from(s: Signal) -> Stop {
        Stop::Signal(s)
    }
}

/// A fault under the shared lock that must be retried under the exclusive one (see
/// [`Mm::try_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedsExclusive {
    /// Bytes read or written before it.
    pub done: usize,
}

/// A read or write that stopped at a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessFault {
    /// The first byte that could not be accessed.
    pub addr: VirtAddr,
    /// What the access raised.
    pub signal: Signal,
    /// Bytes accessed before it.
    pub done: usize,
}

impl Mm {
    /// One access to the byte at `addr`, as a CPU makes it: `Ok` or the signal it raises.
    pub fn access(&mut self, addr: VirtAddr, access: Access) -> core::result::Result<(), Signal> {
        self.user_page(addr, access).map(|_| ())
    }

    /// Reads `buf.len()` bytes at `addr` as loads from this process would: lowest first,
    /// stopping at the first page that faults.
    pub fn read(&mut self, addr: VirtAddr, buf: &mut [u8]) -> core::result::Result<(), AccessFault> {
        let mut done = 0;
        while done < buf.len() {
            let a = VirtAddr(addr.0.wrapping_add(done as u64));
            let chunk = chunk_len(a, buf.len() - done);
            match self.user_page(a, Access::Read) {
                Ok(page) => self.read_page(&page, page_offset(a), &mut buf[done..done + chunk]),
                Err(signal) => return Err(AccessFault { addr: a, signal, done }),
            }
            done += chunk;
        }
        Ok(())
    }

    /// Writes `data` at `addr` as stores from this process would.
    pub fn write(&mut self, addr: VirtAddr, data: &[u8]) -> core::result::Result<(), AccessFault> {
        let mut done = 0;
        while done < data.len() {
            let a = VirtAddr(addr.0.wrapping_add(done as u64));
            let chunk = chunk_len(a, data.len() - done);
            match self.user_page(a, Access::Write) {
                Ok(page) => self.write_page(&page, page_offset(a), &data[done..done + chunk]),
                Err(signal) => return Err(AccessFault { addr: a, signal, done }),
            }
            done += chunk;
        }
        Ok(())
    }

    /// Stores `byte` in every byte of `[addr, addr + len)` (a `memset` from this process).
    pub fn fill(&mut self, addr: VirtAddr, len: u64, byte: u8) -> core::result::Result<(), AccessFault> {
        let mut done = 0u64;
        let block = [byte; PAGE_SIZE as usize];
        while done < len {
            let a = VirtAddr(addr.0.wrapping_add(done));
            let chunk = chunk_len(a, usize::try_from(len - done).unwrap_or(usize::MAX));
            match self.user_page(a, Access::Write) {
                Ok(page) => self.write_page(&page, page_offset(a), &block[..chunk]),
                Err(signal) => {
                    return Err(AccessFault {
                        addr: a,
                        signal,
                        done: done as usize,
                    });
                }
            }
            done += chunk as u64;
        }
        Ok(())
    }

    /// `access_process_vm` / `__access_remote_vm`: another process (ptrace, `/proc/PID/mem`)
    /// reads (`write == false`) or writes `buf` at `addr`. Page by page it goes through
    /// `get_user_pages` with `FOLL_FORCE`: reading needs `VM_MAYREAD`, writing a non-writable
    /// mapping is allowed only where it is private (the page is copied). I/O and PFN mappings
    /// are reached through the driver's `access` hook instead. Returns the bytes done; it stops
    /// at the first page it cannot reach.
    pub fn access_remote(&mut self, addr: VirtAddr, buf: &mut [u8], write: bool) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let a = VirtAddr(addr.0.wrapping_add(done as u64));
            let chunk = chunk_len(a, buf.len() - done);
            let Some(vma) = self.tree.lookup(a) else { break };
            let (key, flags) = (vma.start(), vma.flags());
            let gup_ok = !flags.test_any(vma_flags![Io, PfnMap])
                && if write {
                    flags.test(VmaBit::Write) || crate::flags::is_cow_mapping(flags)
                } else {
                    flags.test(VmaBit::Read) || flags.test(VmaBit::MayRead)
                };
            let page = if gup_ok {
                self.handle_page(key, a, write).ok()
            } else {
                None
            };
            match page {
                Some(page) if write => self.write_page(&page, page_offset(a), &buf[done..done + chunk]),
                Some(page) => self.read_page(&page, page_offset(a), &mut buf[done..done + chunk]),
                None => {
                    let n = self.hook_access(key, a, &mut buf[done..done + chunk], write);
                    if n == 0 {
                        break;
                    }
                    done += n;
                    continue;
                }
            }
            done += chunk;
        }
        done
    }

    /// Calls the VMA's `access` hook; the bytes it did (0 on error or without a hook).
    fn hook_access(&mut self, key: VirtAddr, addr: VirtAddr, buf: &mut [u8], write: bool) -> usize {
        let vma = self.tree.get(key).expect("VMA in tree");
        let Some(ops) = vma.ops().driver() else {
            return 0;
        };
        let Some(hook) = ops.access() else {
            return 0;
        };
        let result = hook.access(vma, addr, buf, write).map(|n| n.min(buf.len()));
        let (name, len) = (ops.ops_name(), buf.len());
        self.events.push(|| Event::RemoteAccess {
            ops: name,
            addr,
            len,
            write,
            result: result.map_err(|e| e.errno),
        });
        result.unwrap_or(0)
    }

    fn read_page(&self, page: &PageRef, offset: usize, buf: &mut [u8]) {
        match page {
            PageRef::Zero => buf.fill(0),
            PageRef::Frame(f) => f.read(offset, buf),
            PageRef::Pfn(pfn) => self.machine.read_phys(*pfn, offset, buf),
        }
    }

    fn write_page(&self, page: &PageRef, offset: usize, data: &[u8]) {
        match page {
            PageRef::Zero => unreachable!("a write never reaches the zero page"),
            PageRef::Frame(f) => f.write(offset, data),
            PageRef::Pfn(pfn) => self.machine.write_phys(*pfn, offset, data),
        }
    }

    /// `access` as a fault under the per-VMA lock: through `&self`, so callers holding the
    /// address space shared (an `RwLock` read guard, as `lock_vma_under_rcu` holds a VMA) can
    /// fault pages of different VMAs at once. `Err(NeedsExclusive)` means the fault would have
    /// to change the address space - grow a stack, give a VMA its first anon_vma - and must be
    /// retried with [`Mm::access`] under the exclusive lock, as the kernel retries under
    /// `mmap_lock` (`VM_FAULT_RETRY`). Nothing was done in that case.
    pub fn try_access(
        &self,
        addr: VirtAddr,
        access: Access,
    ) -> core::result::Result<core::result::Result<(), Signal>, NeedsExclusive> {
        match self.user_page_shared(addr, access) {
            Ok(_) => Ok(Ok(())),
            Err(Stop::Signal(s)) => Ok(Err(s)),
            Err(Stop::NeedsAnonVma) => Err(NeedsExclusive { done: 0 }),
        }
    }

    /// [`Mm::read`] under the shared lock; see [`Mm::try_access`]. On `NeedsExclusive`, `done`
    /// bytes were read.
    pub fn try_read(
        &self,
        addr: VirtAddr,
        buf: &mut [u8],
    ) -> core::result::Result<core::result::Result<(), AccessFault>, NeedsExclusive> {
        let mut done = 0;
        while done < buf.len() {
            let a = VirtAddr(addr.0.wrapping_add(done as u64));
            let chunk = chunk_len(a, buf.len() - done);
            match self.user_page_shared(a, Access::Read) {
                Ok(page) => self.read_page(&page, page_offset(a), &mut buf[done..done + chunk]),
                Err(Stop::Signal(signal)) => return Ok(Err(AccessFault { addr: a, signal, done })),
                Err(Stop::NeedsAnonVma) => return Err(NeedsExclusive { done }),
            }
            done += chunk;
        }
        Ok(Ok(()))
    }

    /// [`Mm::write`] under the shared lock; see [`Mm::try_access`]. On `NeedsExclusive`, `done`
    /// bytes were written.
    pub fn try_write(
        &self,
        addr: VirtAddr,
        data: &[u8],
    ) -> core::result::Result<core::result::Result<(), AccessFault>, NeedsExclusive> {
        let mut done = 0;
        while done < data.len() {
            let a = VirtAddr(addr.0.wrapping_add(done as u64));
            let chunk = chunk_len(a, data.len() - done);
            match self.user_page_shared(a, Access::Write) {
                Ok(page) => self.write_page(&page, page_offset(a), &data[done..done + chunk]),
                Err(Stop::Signal(signal)) => return Ok(Err(AccessFault { addr: a, signal, done })),
                Err(Stop::NeedsAnonVma) => return Err(NeedsExclusive { done }),
            }
            done += chunk;
        }
        Ok(Ok(()))
    }

    /// `lock_vma_under_rcu` + `access_error` + the fault, without changing the address space.
    fn user_page_shared(&self, addr: VirtAddr, access: Access) -> core::result::Result<PageRef, Stop> {
        let vma = match self.tree.find_vma(addr) {
            Some(v) if v.start() <= addr => v,
            // Growing a stack changes the VMA: only under the exclusive lock.
            Some(v) if v.test(VmaBit::GrowsDown) => return Err(Stop::NeedsAnonVma),
            _ => return Err(Stop::Signal(Signal::Segv)),
        };
        let allowed = match access {
            Access::Write => vma.test(VmaBit::Write),
            Access::Read => vma.is_accessible(),
        };
        if !allowed {
            return Err(Stop::Signal(Signal::Segv));
        }
        let (key, write) = (vma.start(), access == Access::Write);
        let page = self.handle_page_shared(key, addr, write)?;
        // The rest of a larger guest page, as `handle_page` does.
        if self.unit_shift() != 0 {
            let first = addr.0 & self.page_mask();
            for unit in (first..first + self.page_size()).step_by(PAGE_SIZE as usize) {
                if unit != addr.page_down().0 {
                    let _ = self.handle_page_shared(key, VirtAddr(unit), write);
                }
            }
        }
        Ok(page)
    }

    /// The page an access at `addr` reaches, faulting it in.
    fn user_page(&mut self, addr: VirtAddr, access: Access) -> core::result::Result<PageRef, Signal> {
        // lock_mm_and_find_vma
        let key = match self.tree.find_vma(addr) {
            Some(v) if v.start() <= addr => v.start(),
            Some(v) if v.test(VmaBit::GrowsDown) => {
                let key = v.start();
                self.expand_downwards(key, addr).map_err(|_| Signal::Segv)?;
                VirtAddr(addr.0 & self.page_mask())
            }
            _ => return Err(Signal::Segv),
        };
        let vma = self.tree.get(key).expect("VMA in tree");
        // access_error: a write needs VM_WRITE; a read any of read, write, exec (x86 page tables
        // cannot express write-only or execute-only).
        let allowed = match access {
            Access::Write => vma.test(VmaBit::Write),
            Access::Read => vma.is_accessible(),
        };
        if !allowed {
            return Err(Signal::Segv);
        }
        self.handle_page(key, addr, access == Access::Write)
    }

    /// `handle_mm_fault` for an access the VMA at `key` allows (also `get_user_pages`' path),
    /// with the address space held exclusively: a fault that needs the VMA's first anon_vma
    /// prepares it here and runs again.
    ///
    /// A guest page larger than the engine's 4 KiB unit is faulted whole: the units around
    /// `addr` in the same guest page get their entries too, as the kernel maps one page
    /// (`docs/profiles.md`). A unit that cannot be had (past a file's 4 KiB end) is left out.
    fn handle_page(&mut self, key: VirtAddr, addr: VirtAddr, write: bool) -> core::result::Result<PageRef, Signal> {
        let page = self.handle_unit(key, addr, write)?;
        if self.unit_shift() != 0 {
            let first = addr.0 & self.page_mask();
            for unit in (first..first + self.page_size()).step_by(PAGE_SIZE as usize) {
                if unit != addr.page_down().0 {
                    let _ = self.handle_unit(key, VirtAddr(unit), write);
                }
            }
        }
        Ok(page)
    }

    /// [`Mm::handle_page`] for one 4 KiB unit.
    fn handle_unit(&mut self, key: VirtAddr, addr: VirtAddr, write: bool) -> core::result::Result<PageRef, Signal> {
        loop {
            match self.handle_page_shared(key, addr, write) {
                Ok(page) => return Ok(page),
                Err(Stop::Signal(s)) => return Err(s),
                Err(Stop::NeedsAnonVma) => self.anon_vma_prepare(key).map_err(|_| Signal::Bus)?,
            }
        }
    }

    /// `handle_mm_fault` as it runs under the per-VMA lock (`FAULT_FLAG_VMA_LOCK`): the address
    /// space is only read, so faults on different VMAs (and on different pages of one) may run
    /// at once. Page-table entries are installed under the page table's own lock, first one
    /// wins, and a copy replaces an entry only if it is still the one copied (`pte_same`);
    /// a fault that lost a race starts over. A fault that would give the VMA its first anon_vma
    /// stops before it does anything ([`Stop::NeedsAnonVma`]), as `vmf_anon_prepare` returns
    /// `VM_FAULT_RETRY` under the VMA lock.
    fn handle_page_shared(&self, key: VirtAddr, addr: VirtAddr, write: bool) -> core::result::Result<PageRef, Stop> {
        // A guard marker (MADV_GUARD_INSTALL): handle_pte_marker refuses every access.
        if self.ptes.is_guard(addr) {
            return Err(Stop::Signal(Signal::Segv));
        }
        let vma = self.tree.get(key).expect("VMA in tree");
        let shared = vma.test(VmaBit::Shared);
        let anonymous = vma.is_anonymous();
        let has_anon = vma.anon_vma().is_some();
        let need_anon = || if has_anon { Ok(()) } else { Err(Stop::NeedsAnonVma) };
        loop {
            if write && !shared {
                // An anonymous page: reuse or copy, decided under the page-table lock with the
                // entry (do_wp_page). No clone of the entry may be held here: it would count as
                // another user of the frame.
                match self.ptes.wp_anon(addr, &self.machine, has_anon) {
                    WpAnon::Frame(frame) => return Ok(PageRef::Frame(frame)),
                    WpAnon::NeedsCopy => return Err(Stop::NeedsAnonVma),
                    WpAnon::NotAnon => {}
                }
            }
            if let Some(pte) = self.ptes.get(addr) {
                match pte.target.clone() {
                    PteTarget::Pfn(pfn) if !write => return Ok(PageRef::Pfn(pfn)),
                    PteTarget::Pfn(pfn) if shared => {
                        // wp_pfn_shared: the first write asks the driver.
                        if !pte.dirty {
                            self.call_mkwrite(key, addr, true)?;
                            self.ptes.mark_dirty(addr);
                        }
                        return Ok(PageRef::Pfn(pfn));
                    }
                    PteTarget::Pfn(pfn) => {
                        // A private PFN mapping: the write copies the page (wp_page_copy).
                        need_anon()?;
                        let copy = self.machine.copy_phys(pfn);
                        if self
                            .ptes
                            .replace_if_same(addr, &pte.target, Pte::new_anon(copy.clone()))
                        {
                            return Ok(PageRef::Frame(copy));
                        }
                    }
                    PteTarget::Frame(frame) if !write => return Ok(PageRef::Frame(frame)),
                    PteTarget::Frame(frame) if shared && !pte.anon => {
                        // wp_page_shared: the first write asks the filesystem.
                        if !pte.dirty {
                            self.call_mkwrite(key, addr, false)?;
                            self.ptes.mark_dirty(addr);
                        }
                        return Ok(PageRef::Frame(frame));
                    }
                    // An anonymous page of a private mapping became a page of another kind
                    // after wp_anon looked: look again.
                    PteTarget::Frame(_) if pte.anon && !shared => {}
                    PteTarget::Frame(frame) => {
                        // do_wp_page → wp_page_copy: private copy of a page-cache page.
                        need_anon()?;
                        let copy = self.machine.copy_frame(&frame);
                        if self
                            .ptes
                            .replace_if_same(addr, &pte.target, Pte::new_anon(copy.clone()))
                        {
                            return Ok(PageRef::Frame(copy));
                        }
                    }
                }
                // Another fault changed the entry meanwhile: look again.
                continue;
            }
            if anonymous {
                match self.ptes.pmd(addr) {
                    // A page of a huge block that has no entry of its own: a page of the huge
                    // zero page, or a subpage of a huge page not written yet. Both read as
                    // zeros; a write gets the page its own frame (do_huge_zero_wp_pmd turns
                    // the huge zero page into a huge page first).
                    Pmd::HugeZero | Pmd::HugeAnon if !write => return Ok(PageRef::Zero),
                    Pmd::HugeZero | Pmd::HugeAnon => {
                        need_anon()?;
                        let frame = self.machine.alloc_frame();
                        return Ok(self.install(addr, Pte::new_anon(frame)));
                    }
                    Pmd::None if self.thp_fault_huge(vma, addr) => {
                        // do_huge_pmd_anonymous_page: the anon_vma first, for a read too;
                        // then the huge zero page on a read, or a huge page.
                        need_anon()?;
                        let zero = !write && self.profile.thp_use_zero_page;
                        if !self.ptes.install_huge(addr, zero) {
                            continue;
                        }
                        if !write {
                            return Ok(PageRef::Zero);
                        }
                        let frame = self.machine.alloc_frame();
                        return Ok(self.install(addr, Pte::new_anon(frame)));
                    }
                    Pmd::None | Pmd::Table => {}
                }
                // do_anonymous_page: a read maps the zero page (the page table it needs is all
                // that is stored); a write needs an anon_vma.
                if !write {
                    let page = VirtAddr(addr.0 & !(PAGE_SIZE - 1));
                    self.ptes.alloc_tables(page, VirtAddr(page.0 + PAGE_SIZE));
                    return Ok(PageRef::Zero);
                }
                need_anon()?;
                let frame = self.machine.alloc_frame();
                return Ok(self.install(addr, Pte::new_anon(frame)));
            }
            if write && !shared {
                // do_cow_fault prepares the anon_vma before it asks the driver for the page, so
                // even a write past the end of the file leaves one behind.
                need_anon()?;
                let page = self.call_fault(key, addr, write)?;
                let copy = self.machine.copy_frame(&page);
                return Ok(self.install(addr, Pte::new_anon(copy)));
            }
            // do_read_fault / do_shared_fault: map the driver's page itself.
            let page = self.call_fault(key, addr, write)?;
            if write {
                self.call_mkwrite(key, addr, false)?;
            }
            return Ok(self.install(addr, Pte::frame(page, false, write)));
        }
    }

    /// Installs `pte` for a page that had none, unless a racing fault installed one first; the
    /// page the access then reaches.
    fn install(&self, addr: VirtAddr, pte: Pte) -> PageRef {
        match self.ptes.set_if_none(addr, pte).target {
            PteTarget::Frame(f) => PageRef::Frame(f),
            PteTarget::Pfn(p) => PageRef::Pfn(p),
        }
    }

    /// `__do_fault`: asks the VMA's driver for the page at `addr`.
    fn call_fault(&self, key: VirtAddr, addr: VirtAddr, write: bool) -> core::result::Result<FrameRef, Signal> {
        let vma = self.tree.get(key).expect("VMA in tree");
        let VmOps::Driver(ops) = vma.ops() else {
            return Err(Signal::Bus);
        };
        let Some(fault) = ops.fault() else {
            return Err(Signal::Bus);
        };
        let pgoff = vma.pgoff_at(addr);
        let mut vmf = VmFault::new(vma, pgoff, write, &self.machine).with_page_size(self.page_size());
        let mark = self.events.mark();
        let result = fault.fault(&mut vmf);
        let page = vmf.take_page();
        let name = ops.ops_name();
        let text = match (result, &page) {
            (FaultResult::Ok, Some(_)) => "page",
            (FaultResult::Ok, None) => "no page (SIGBUS)",
            (FaultResult::Sigbus, _) => "SIGBUS",
            (FaultResult::Oom, _) => "OOM",
        };
        self.events.insert_at(mark, || Event::Fault {
            ops: name,
            addr: addr.page_down(),
            pgoff,
            write,
            result: text,
        });
        match result {
            FaultResult::Ok => page.ok_or(Signal::Bus),
            FaultResult::Sigbus | FaultResult::Oom => Err(Signal::Bus),
        }
    }

    /// `do_page_mkwrite` / `wp_pfn_shared`: tells the driver a shared page is about to be
    /// written, if it wants to know. An error is `SIGBUS`.
    fn call_mkwrite(&self, key: VirtAddr, addr: VirtAddr, pfn: bool) -> core::result::Result<(), Signal> {
        let vma = self.tree.get(key).expect("VMA in tree");
        let Some(ops) = vma.ops().driver() else {
            return Ok(());
        };
        // The member the write needs: a missing one means the driver does not want to know.
        let (pfn_hook, page_hook) = (ops.pfn_mkwrite(), ops.page_mkwrite());
        if (pfn && pfn_hook.is_none()) || (!pfn && page_hook.is_none()) {
            return Ok(());
        }
        let pgoff = vma.pgoff_at(addr);
        let mut vmf = VmFault::new(vma, pgoff, true, &self.machine).with_page_size(self.page_size());
        let result = match (pfn_hook, page_hook) {
            (Some(hook), _) if pfn => hook.pfn_mkwrite(&mut vmf),
            (_, Some(hook)) => hook.page_mkwrite(&mut vmf),
            _ => unreachable!("checked above"),
        };
        let (name, at) = (ops.ops_name(), addr.page_down());
        let r = match result {
            FaultResult::Ok => Ok(()),
            FaultResult::Sigbus => Err(crate::Errno::EFAULT),
            FaultResult::Oom => Err(crate::Errno::ENOMEM),
        };
        self.events.push(|| {
            if pfn {
                Event::PfnMkwrite {
                    ops: name,
                    addr: at,
                    result: r,
                }
            } else {
                Event::PageMkwrite {
                    ops: name,
                    addr: at,
                    pgoff,
                    result: r,
                }
            }
        });
        r.map_err(|_| Signal::Bus)
    }

    /// `__anon_vma_prepare`: give the VMA at `key` an anon_vma, reusing a neighbour's if it is
    /// compatible, else a new one.
    pub(crate) fn anon_vma_prepare(&mut self, key: VirtAddr) -> Result<()> {
        if self.tree.get(key).expect("VMA in tree").anon_vma().is_some() {
            return Ok(());
        }
        self.alloc()?; // anon_vma_chain_alloc
        let anon = match self.find_mergeable_anon_vma(key) {
            Some(id) => AnonVmaRef { id, chain: 1 },
            None => self.new_anon_vma(),
        };
        self.tree.get_mut(key).expect("VMA in tree").set_anon(Some(anon));
        Ok(())
    }

    /// `find_mergeable_anon_vma`: the anon_vma of the next, then the previous, neighbour, if it
    /// could share one with this VMA (`reusable_anon_vma`).
    fn find_mergeable_anon_vma(&self, key: VirtAddr) -> Option<AnonVmaId> {
        let vma = self.tree.get(key).expect("VMA in tree");
        let reusable = |old: &Vma, a: &Vma, b: &Vma| -> Option<AnonVmaId> {
            let anon = old.anon_vma().filter(|x| !x.is_fork_child())?;
            anon_vma_compatible(a, b).then_some(anon.id)
        };
        if let Some(next) = self.tree.get(vma.end())
            && let Some(id) = reusable(next, vma, next)
        {
            return Some(id);
        }
        let prev = self.tree.prev_before(vma.start())?;
        reusable(prev, prev, vma)
    }

    /// `expand_downwards`: grow the grows-down VMA at `key` so that it covers `addr`.
    fn expand_downwards(&mut self, key: VirtAddr, addr: VirtAddr) -> Result<()> {
        let address = VirtAddr(addr.0 & self.page_mask());
        if address.0 < self.profile.mmap_min_addr {
            return Err(err(Errno::EPERM, "stack would grow below mmap_min_addr"));
        }
        let gap = self.profile.stack_guard_gap;
        if let Some(prev) = self.tree.prev_before(key)
            && !prev.test(VmaBit::GrowsDown)
            && prev.is_accessible()
            && address.0 - prev.end().0 < gap
        {
            return Err(err(
                Errno::ENOMEM,
                "stack would grow into the guard gap above another mapping",
            ));
        }
        // Not the kernel's check: a host-reserved range is never the guest's.
        if self.profile.is_reserved(address.0, key.0) {
            return Err(err(Errno::ENOMEM, "stack would grow into a host-reserved range"));
        }
        self.alloc()?; // vma_iter_prealloc
        self.anon_vma_prepare(key)?;
        let vma = self.tree.get(key).expect("VMA in tree");
        let grow = key.pages_from(address);
        let size = vma.end().0 - address.0;
        if grow > vma.pgoff().get() {
            return Err(err(Errno::ENOMEM, "stack pgoff would go below zero"));
        }
        // acct_stack_growth
        let flags = vma.flags();
        if !self.may_expand_vm(flags, grow) {
            return Err(err(Errno::ENOMEM, "stack growth exceeds RLIMIT_AS"));
        }
        if size > self.profile.rlimit_stack {
            return Err(err(Errno::ENOMEM, "stack growth exceeds RLIMIT_STACK"));
        }
        if !self.mlock_future_ok(flags, grow << PAGE_SHIFT) {
            return Err(err(Errno::ENOMEM, "stack growth exceeds RLIMIT_MEMLOCK"));
        }
        // The kernel charges the growth whatever the flags; the engine charges what it will
        // later release, the pages of a VM_ACCOUNT stack.
        if flags.test(VmaBit::Account) {
            self.charge(grow)?;
        }
        let mut v = self.tree.remove(key).expect("VMA in tree");
        v.set_bounds(address, v.end(), v.pgoff().sub(grow));
        self.tree.insert(v);
        if flags.test(VmaBit::Locked) {
            self.locked_vm += grow;
        }
        self.vm_stat_account(flags, grow as i64);
        Ok(())
    }

    /// `mm_populate` → `__mm_populate(start, len, ignore_errors)`: fault in every VMA of the
    /// range (not I/O or PFN mappings), writing where the mapping is private and writable.
    pub(crate) fn mm_populate(&mut self, start: VirtAddr, end: VirtAddr) {
        let mut nstart = start;
        while nstart < end {
            let Some(v) = self.tree.find_intersection(nstart, end) else {
                break;
            };
            let (key, v_start, nend) = (v.start(), v.start(), v.end().min(end));
            if !v.flags().test_any(vma_flags![Io, PfnMap]) {
                self.populate_vma_range(key, nstart.max(v_start), nend);
            }
            nstart = nend;
        }
    }

    /// `populate_vma_page_range` with its errors ignored, as `__mm_populate(..., ignore_errors)`
    /// (`MAP_POPULATE`, `MAP_LOCKED`) and mprotect's populate of a locked VMA do.
    pub(crate) fn populate_vma_range(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) {
        let _ = self.populate_vma_page_range(key, start, end);
    }

    /// `populate_vma_page_range`: fault in `[start, end)` of the VMA at `key` as
    /// `get_user_pages` does (no stack growth). Private writable mappings are written, to break
    /// copy-on-write; everything else is read (with `FOLL_FORCE`, so write-only and exec-only
    /// pages are read too). A `VM_LOCKONFAULT` VMA is left alone.
    ///
    /// # On failure
    /// `EFAULT`: a `PROT_NONE` VMA (`check_vma_flags` without `FOLL_FORCE`), or a page that
    /// cannot be faulted in (`SIGBUS` past the end of a file, a guard page). The pages before it
    /// stay faulted in.
    pub(crate) fn populate_vma_page_range(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) -> Result<()> {
        let v = self.tree.get(key).expect("VMA in tree");
        if v.test(VmaBit::LockOnFault) || start >= end {
            return Ok(());
        }
        if !v.is_accessible() {
            return Err(err(Errno::EFAULT, "a PROT_NONE mapping cannot be faulted in"));
        }
        let write = v.test(VmaBit::Write) && !v.test(VmaBit::Shared);
        self.faultin_pages(key, start, end, write)
            .map_err(|_| err(Errno::EFAULT, "a page of the range could not be faulted in"))
    }

    /// The page loop of `__get_user_pages` over `[start, end)` of the VMA at `key`, whose flags
    /// allow the access: fault every page in, for writing or for reading, and stop at the first
    /// that cannot be (its signal is returned: `SIGSEGV` for a guard page, `SIGBUS` when the
    /// driver has no page).
    ///
    /// Every page goes through the fault path a touch takes, but the engine does in one step
    /// what the same fault would do to many pages alike:
    /// - in an anonymous VMA without huge pages, the first page faults (giving the anon_vma
    ///   where one is due) and the range gets its page tables: the other pages' faults would only
    ///   install small zero-page entries (read) or zero-filled private pages (write), which read
    ///   as they would anyway and are not stored;
    /// - in an anonymous VMA that may hold huge pages, the part of the first block and the part
    ///   of the last go through the fault path at their first page (the huge path maps a whole
    ///   block, and the rest of its pages find it mapped, `follow_page_mask`; the page path
    ///   gives the part its table); the whole blocks between take the huge path together where
    ///   they are `pmd_none` (`PageTable::populate_huge`) and the page path where they have a
    ///   table. So a populate costs runs, not pages or blocks;
    /// - in a private file mapping written, page by page (each copy keeps the file's data as of
    ///   now);
    /// - in any other file mapping, the first and the last page, on the assumption that a driver
    ///   that refuses a page refuses every page above it (the end of the file). Which page failed
    ///   is not visible, only that one did.
    pub(crate) fn faultin_pages(
        &mut self,
        key: VirtAddr,
        start: VirtAddr,
        end: VirtAddr,
        write: bool,
    ) -> core::result::Result<(), Signal> {
        let v = self.tree.get(key).expect("VMA in tree");
        debug_assert!(v.start() <= start && end <= v.end() && start <= end);
        let (anonymous, shared) = (v.is_anonymous(), v.test(VmaBit::Shared));
        let huge = anonymous && self.thp_vma_allowable(v);
        let stop = self.ptes.first_guard(start, end).unwrap_or(end);
        if anonymous && start < stop && !huge {
            // The page path everywhere: the first fault gives the anon_vma where one is due,
            // the rest of the range gets its page tables (blocks still mapped huge stay so).
            self.handle_page(key, start, write)?;
            self.ptes.alloc_tables(start, stop);
        } else if anonymous && start < stop {
            // The first block's part and the last one's go through the fault path; the whole
            // blocks between take the huge path (or find a page table: the page path) together.
            let head_end = match huge_block(start).1 {
                VirtAddr(0) => stop,
                e => e.min(stop),
            };
            self.faultin_segment(key, start, head_end, write)?;
            let mid_end = VirtAddr(stop.0 & !(PMD_SIZE - 1)).max(head_end);
            if head_end < mid_end {
                // do_huge_pmd_anonymous_page prepares the anon_vma, if any block goes huge.
                if self.ptes.any_pmd_none(head_end, mid_end) {
                    self.anon_vma_prepare(key).map_err(|_| Signal::Bus)?;
                }
                let zero = !write && self.profile.thp_use_zero_page;
                self.ptes.populate_huge(head_end, mid_end, write, zero);
            }
            if mid_end < stop {
                self.faultin_segment(key, mid_end, stop, write)?;
            }
        } else if write && !shared && !anonymous {
            let mut a = start;
            while a < stop {
                self.handle_page(key, a, true)?;
                a = VirtAddr(a.0 + PAGE_SIZE);
            }
        } else if start < stop {
            self.handle_page(key, start, write)?;
            // Every page between, up to the end of the file, is in a shmem object's page cache
            // now, as the kernel's faults leave it (what MADV_COLLAPSE asks about).
            let v = self.tree.get(key).expect("VMA in tree");
            if let Some(file) = v.file().filter(|f| f.inode().dev() == SHMEM_DEV) {
                let eof = file.inode().size().div_ceil(PAGE_SIZE);
                let (first, end) = (v.pgoff_at(start).get(), v.pgoff_at(stop).get());
                file.inode().populated(first, end.min(eof));
            }
            let last = VirtAddr(stop.0 - PAGE_SIZE);
            if last > start {
                self.handle_page(key, last, write)?;
            }
        }
        if stop < end {
            return Err(Signal::Segv);
        }
        Ok(())
    }
}

impl Mm {
    /// Populate of `[start, end)`, part of one 2 MiB block of the anonymous VMA at `key`: the
    /// first page faults as a touch would; if that took the page path, the rest of the part
    /// gets its page table with it (its pages' small entries are not stored). A huge path maps
    /// the whole block.
    fn faultin_segment(
        &mut self,
        key: VirtAddr,
        start: VirtAddr,
        end: VirtAddr,
        write: bool,
    ) -> core::result::Result<(), Signal> {
        self.handle_page(key, start, write)?;
        if self.ptes.pmd(start) == Pmd::Table {
            self.ptes.alloc_tables(start, end);
        }
        Ok(())
    }
}

/// Bytes from `a` to the end of its page, at most `left`.
fn chunk_len(a: VirtAddr, left: usize) -> usize {
    ((PAGE_SIZE - (a.0 & (PAGE_SIZE - 1))) as usize).min(left)
}

/// `a`'s offset in its page.
fn page_offset(a: VirtAddr) -> usize {
    (a.0 & (PAGE_SIZE - 1)) as usize
}

/// `anon_vma_compatible(a, b)`, `a` just before `b`: same file, flags equal but for access
/// bits and the bits merges ignore (`VM_IGNORE_MERGE`: soft-dirty, `VM_MAYBE_GUARD`), contiguous
/// offsets.
fn anon_vma_compatible(a: &Vma, b: &Vma) -> bool {
    let ignore = ACCESS_FLAGS.with(crate::flags::sticky_flags(true));
    a.end() == b.start()
        && same_file(a.file(), b.file())
        && a.flags().diff(b.flags()).without(ignore).is_empty()
        && b.pgoff() == a.pgoff().add(a.pages())
}

//! Memory accesses and page faults, as far as they change VMAs.
//!
//! A first access to a page faults. The fault handler finds the VMA (growing a stack VMA
//! downwards if the address lies just below one), checks the access against the VMA's flags
//! (`SIGSEGV` if refused), and supplies a page: zero-filled for anonymous memory, from the
//! driver's `fault` hook otherwise (`SIGBUS` if there is none, or beyond the end of a file).
//! What matters for VMAs is the *anon_vma*: the first write to a private page creates one (or
//! reuses a compatible neighbour's), and from then on it decides which merges are possible.
//!
//! Mirrors `arch/x86/mm/fault.c:do_user_addr_fault` / `access_error`,
//! `mm/mmap.c:lock_mm_and_find_vma`, `expand_downwards`, `acct_stack_growth`,
//! `mm/memory.c:handle_pte_fault` (`do_anonymous_page`, `do_read_fault`, `do_cow_fault`,
//! `do_shared_fault`), `mm/rmap.c:__anon_vma_prepare`, `mm/vma.c:find_mergeable_anon_vma`,
//! `mm/gup.c:__mm_populate` / `populate_vma_page_range` ([H] 6.18).
//!
//! Page tables are not modelled yet, so an access is judged as if its page were not present.
//! That gives the same answer for VMAs: a page that is present was faulted in under the same
//! rules, and the fault that made it present already created any anon_vma.

use crate::addr::{PAGE_SHIFT, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::file::same_file;
use crate::flags::{ACCESS_FLAGS, VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::vma::{AnonVmaId, AnonVmaRef, FaultResult, VmHooks, VmOps, Vma};
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

impl Mm {
    /// One access to the byte at `addr`, as a CPU makes it: `Ok` or the signal it raises.
    pub fn access(&mut self, addr: VirtAddr, access: Access) -> core::result::Result<(), Signal> {
        // lock_mm_and_find_vma
        let key = match self.tree.find_vma(addr) {
            Some(v) if v.start <= addr => v.start,
            Some(v) if v.test(VmaBit::GrowsDown) => {
                let key = v.start;
                self.expand_downwards(key, addr).map_err(|_| Signal::Segv)?;
                addr.page_down()
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
        self.fault_in(key, addr, access == Access::Write)
    }

    /// `handle_mm_fault` for an access already allowed by the VMA at `key`.
    fn fault_in(&mut self, key: VirtAddr, addr: VirtAddr, write: bool) -> core::result::Result<(), Signal> {
        let vma = self.tree.get(key).expect("VMA in tree");
        if vma.is_anonymous() {
            // do_anonymous_page: a read maps the zero page; a write needs an anon_vma.
            if write {
                self.anon_vma_prepare(key).map_err(|_| Signal::Bus)?;
            }
            return Ok(());
        }
        // do_fault: a private write copies the page (do_cow_fault), which prepares the
        // anon_vma before it asks the driver for the page, so even a write past the end of the
        // file leaves one behind.
        if write && !vma.test(VmaBit::Shared) {
            self.anon_vma_prepare(key).map_err(|_| Signal::Bus)?;
        }
        let vma = self.tree.get(key).expect("VMA in tree");
        let pgoff = vma.pgoff_at(addr);
        let result = match &vma.ops {
            VmOps::Driver(ops) if ops.hooks().contains(VmHooks::FAULT) => ops.fault(vma, pgoff, write),
            _ => FaultResult::Sigbus,
        };
        match result {
            FaultResult::Ok => Ok(()),
            FaultResult::Sigbus | FaultResult::Oom => Err(Signal::Bus),
        }
    }

    /// `__anon_vma_prepare`: give the VMA at `key` an anon_vma, reusing a neighbour's if it is
    /// compatible, else a new one.
    pub(crate) fn anon_vma_prepare(&mut self, key: VirtAddr) -> Result<()> {
        if self.tree.get(key).expect("VMA in tree").anon.is_some() {
            return Ok(());
        }
        self.alloc()?; // anon_vma_chain_alloc
        let anon = match self.find_mergeable_anon_vma(key) {
            Some(id) => AnonVmaRef { id, chain: 1 },
            None => self.new_anon_vma(),
        };
        self.tree.get_mut(key).expect("VMA in tree").anon = Some(anon);
        Ok(())
    }

    /// `find_mergeable_anon_vma`: the anon_vma of the next, then the previous, neighbour, if it
    /// could share one with this VMA (`reusable_anon_vma`).
    fn find_mergeable_anon_vma(&self, key: VirtAddr) -> Option<AnonVmaId> {
        let vma = self.tree.get(key).expect("VMA in tree");
        let reusable = |old: &Vma, a: &Vma, b: &Vma| -> Option<AnonVmaId> {
            let anon = old.anon.filter(|x| !x.is_fork_child())?;
            anon_vma_compatible(a, b).then_some(anon.id)
        };
        if let Some(next) = self.tree.get(vma.end)
            && let Some(id) = reusable(next, vma, next)
        {
            return Some(id);
        }
        let prev = self.tree.prev_before(vma.start)?;
        reusable(prev, prev, vma)
    }

    /// `expand_downwards`: grow the grows-down VMA at `key` so that it covers `addr`.
    fn expand_downwards(&mut self, key: VirtAddr, addr: VirtAddr) -> Result<()> {
        let address = addr.page_down();
        if address.0 < self.profile.mmap_min_addr {
            return Err(err(Errno::EPERM, "stack would grow below mmap_min_addr"));
        }
        let gap = self.profile.stack_guard_gap;
        if let Some(prev) = self.tree.prev_before(key)
            && !prev.test(VmaBit::GrowsDown)
            && prev.is_accessible()
            && address.0 - prev.end.0 < gap
        {
            return Err(err(
                Errno::ENOMEM,
                "stack would grow into the guard gap above another mapping",
            ));
        }
        self.alloc()?; // vma_iter_prealloc
        self.anon_vma_prepare(key)?;
        let vma = self.tree.get(key).expect("VMA in tree");
        let grow = key.pages_from(address);
        let size = vma.end.0 - address.0;
        if grow > vma.pgoff.get() {
            return Err(err(Errno::ENOMEM, "stack pgoff would go below zero"));
        }
        // acct_stack_growth
        let flags = vma.flags;
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
        v.start = address;
        v.pgoff = v.pgoff.sub(grow);
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
            let (key, v_start, nend) = (v.start, v.start, v.end.min(end));
            if !v.flags.test_any(vma_flags![Io, PfnMap]) {
                self.populate_vma_range(key, nstart.max(v_start), nend);
            }
            nstart = nend;
        }
    }

    /// `populate_vma_page_range`: fault in `[start, end)` of the VMA at `key` as `get_user_pages`
    /// does (no stack growth). Errors end the VMA's population silently. Only the first page
    /// can change anything the engine models (see the module doc), so only it is faulted.
    pub(crate) fn populate_vma_range(&mut self, key: VirtAddr, start: VirtAddr, end: VirtAddr) {
        let v = self.tree.get(key).expect("VMA in tree");
        if v.test(VmaBit::LockOnFault) || !v.is_accessible() || start >= end {
            return;
        }
        // Private writable mappings are written to break copy-on-write; everything else is
        // read, with FOLL_FORCE (so write-only and exec-only pages are read too).
        let write = v.test(VmaBit::Write) && !v.test(VmaBit::Shared);
        let _ = self.fault_in(key, start, write);
    }
}

/// `anon_vma_compatible(a, b)`, `a` just before `b`: same file, flags equal but for access
/// bits (and soft-dirty), contiguous offsets.
fn anon_vma_compatible(a: &Vma, b: &Vma) -> bool {
    let ignore = ACCESS_FLAGS.with(VmaFlags::from_bits(&[VmaBit::SoftDirty]));
    a.end == b.start
        && same_file(a.file.as_ref(), b.file.as_ref())
        && a.flags.diff(b.flags).without(ignore).is_empty()
        && b.pgoff == a.pgoff.add(a.pages())
}

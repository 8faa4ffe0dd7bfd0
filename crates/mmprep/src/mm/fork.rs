//! `fork(2)`: the child's copy of the address space.
//!
//! Mirrors `kernel/fork.c:dup_mm` → `mm/mmap.c:dup_mmap` and `mm/rmap.c:anon_vma_fork`
//! ([H] 6.18; `docs/reference/vma-rules.md` section 7). VMAs are copied one for one, never
//! re-merged, except:
//!
//! - `VM_DONTCOPY` VMAs (`MADV_DONTFORK`) are left out;
//! - `VM_LOCKED` and `VM_LOCKONFAULT` are cleared (locks are not inherited);
//! - a `VM_WIPEONFORK` VMA starts without an anon_vma (its pages are not copied);
//! - every other VMA with an anon_vma gets a new one of its own, chained to the parent's: the
//!   child's VMA is a *fork child*, which refuses several merges (`mm/merge.rs`).
//!
//! Each child VMA's driver sees `open`. A `VM_ACCOUNT` VMA is charged again for the child. The
//! child's page tables map the parent's frames; a write on either side then copies the page.
//! Guard pages (`MADV_GUARD_INSTALL`) are guard pages in the child too (`copy_page_range` copies
//! the markers), except in a `VM_WIPEONFORK` VMA, which starts empty.

use crate::errno::Result;
use crate::flags::{self, VmaBit};
use crate::mm::Mm;
use crate::vma::AnonVmaRef;
use crate::vma_flags;

impl Mm {
    /// `fork()`: the child's address space. The parent's VMAs are unchanged; its anonymous
    /// pages become shared with the child (copy-on-write on both sides).
    ///
    /// Takes `&mut self`: `dup_mmap` holds the parent's mmap write lock for the whole copy, so
    /// no fault of the parent (not even one under the shared lock, [`Mm::try_write`]) can run
    /// meanwhile, and the child is a snapshot of one moment. A fork through a read guard does
    /// not compile:
    ///
    /// ```compile_fail
    /// # use std::sync::RwLock;
    /// # use mmprep::{Mm, Profile};
    /// let mm = RwLock::new(Mm::new(Profile::reference_host()));
    /// let child = mm.read().unwrap().fork(); // needs the write guard
    /// ```
    ///
    /// # On failure
    /// `ENOMEM` if a commit charge for the child is refused; the parent is unchanged.
    pub fn fork(&mut self) -> Result<Mm> {
        let mut child = Mm::new(self.profile.clone());
        child.shmem = self.shmem.clone();
        child.machine = self.machine.clone();
        child.events.enable(self.events.is_on());
        child.next_anon_vma = self.next_anon_vma;
        child.bounds = self.bounds;
        // mm_init: only VM_NOHUGEPAGE of def_flags is inherited (VM_INIT_DEF_MASK).
        child.def_flags = self.def_flags.and(crate::vma_flags![NoHugePage]);
        child.tree.reserve_like(&self.tree);
        for v in self.tree.iter() {
            if v.test(VmaBit::DontCopy) {
                continue;
            }
            if v.test(VmaBit::Account) {
                child.charge(v.pages())?;
            }
            let mut c = v.clone();
            c.clear_flag_bits(flags::LOCKED_MASK);
            c.set_anon(if v.test(VmaBit::WipeOnFork) {
                None
            } else {
                v.anon_vma().map(|parent| {
                    let own = child.new_anon_vma();
                    AnonVmaRef {
                        id: own.id,
                        chain: parent.chain + 1,
                    }
                })
            });
            let (key, flags, pages) = (c.start(), c.flags(), c.pages());
            // copy_page_range: the child maps the same frames (anonymous ones become
            // copy-on-write for both, since now two address spaces map them) and the same
            // guard markers. A VM_WIPEONFORK child starts empty.
            if !v.test(VmaBit::WipeOnFork) {
                // vma_needs_copy: page tables are copied for VMAs with an anon_vma, PFN
                // entries or guard markers.
                let needs_copy = v.anon_vma().is_some() || v.flags().test_any(vma_flags![PfnMap, MixedMap, MaybeGuard]);
                self.ptes.fork_into(&child.ptes, v.start(), v.end(), needs_copy);
            }
            child.tree.insert(c);
            child.vm_stat_account(flags, pages as i64);
            child.hook_open(key);
        }
        Ok(child)
    }
}

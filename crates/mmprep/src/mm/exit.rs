//! Teardown: what happens to an address space when the last task using it goes away (the
//! process exits, a fork child ends, the embedder drops its `Mm`).
//!
//! Mirrors `mm/mmap.c:exit_mmap` ([H] 6.18), reached from `kernel/fork.c:mmput` → `__mmput`:
//!
//! ```text
//!   unmap_vmas          every page-table entry of every VMA is zapped (guard markers too)
//!   free_pgtables       (nothing to free here)
//!   remove_vma, each    vma_close (vm_ops->close), fput(vm_file), the VMA freed — lowest first
//!   vm_unacct_memory    the commit charge of every VM_ACCOUNT VMA is released
//! ```
//!
//! [`Mm::exit`] does this explicitly (the hook log records every `close`, for an embedder or
//! the scenario runner to read with [`Mm::take_events`]); `Drop for Mm` calls it, so dropping an
//! `Mm` closes every VMA exactly once and drops every driver reference a VMA held (its file,
//! its private data, its `vm_ops`). An exited `Mm` is an empty address space.
//!
//! Departure, invisible from outside: the kernel leaves `total_vm`, `locked_vm` and the other
//! counters as they were (the `mm_struct` is freed right after); the engine brings them to zero
//! with the VMAs, so [`Mm::check_invariants`] still holds after `exit`.

use crate::flags::VmaBit;
use crate::mm::Mm;

impl Mm {
    /// `exit_mmap`: unmaps every VMA, calling its driver's `close` (lowest VMA first), drops the
    /// VMAs with their file references and private data, and releases the counters and the
    /// commit charge. Afterwards the address space is empty; calling it again does nothing.
    ///
    /// `Drop` runs this too; call it explicitly to read the `close` calls from the event log
    /// ([`Mm::take_events`]) before the `Mm` goes.
    pub fn exit(&mut self) {
        if self.tree.is_empty() {
            return;
        }
        let tree = core::mem::take(&mut self.tree);
        // unmap_vmas: the whole address space's page tables first, then the VMAs go, one leaf
        // of the tree at a time (no copy of a million VMAs at the peak of a run's memory).
        for v in tree.iter() {
            self.ptes.zap(v.start(), v.end());
        }
        let mut nr_accounted = 0;
        for v in tree.into_vmas() {
            let n = v.pages();
            if v.test(VmaBit::Account) {
                nr_accounted += n;
            }
            if v.test(VmaBit::Locked) {
                // Saturating, like every counter here: `exit` also runs from `Drop`, possibly
                // while a failed test unwinds, and must not panic a second time.
                self.locked_vm = self.locked_vm.saturating_sub(n);
            }
            self.vm_stat_account(v.flags(), -(n as i64));
            // remove_vma: vma_close, then fput and the free (dropping `v` drops the file, the
            // private data and the driver's ops).
            self.hook_close(&v);
        }
        self.committed = self.committed.saturating_sub(nr_accounted);
    }
}

impl Drop for Mm {
    /// `mmput` of the last user: [`Mm::exit`].
    fn drop(&mut self) {
        self.exit();
    }
}

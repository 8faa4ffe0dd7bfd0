//! Follow-up work a driver asks for in `mmap_prepare` (`struct mmap_action`).
//!
//! `mmap_prepare` runs before the VMA exists, so a driver that must do something *to* the new
//! mapping (install page-table entries, take a reference, make it anonymous) records it in the
//! descriptor's action. After a new, un-merged VMA is in place, the kernel completes the action,
//! calls `vm_ops->mapped`, then the success hook; if any of them fails it unmaps the VMA again
//! and passes the errno through the error hook (`mm/util.c:mmap_action_complete`,
//! `mmap_action_finish`, [N]). A mapping that merged gets none of this.
//!
//! This file holds the action value and its hooks. The page-table actions (`remap`, `ioremap`,
//! `simple_ioremap`, `map_kernel_pages`) are not built yet: they need simulated page tables and
//! come with the driver-model work; a driver cannot request them through this API today.

use alloc::sync::Arc;
use core::fmt;

use crate::errno::{Errno, Result};
use crate::vma::{VmOps, Vma};

/// The page-table work an action asks for (`enum mmap_action_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ActionKind {
    /// `MMAP_NOTHING`.
    #[default]
    Nothing,
}

/// The new VMA as a success hook sees it.
///
/// The kernel's hook gets a `const` VMA, and the one hook that must change it (private
/// `/dev/zero`, `drivers/char/mem.c:mmap_zero_private_success`) casts the `const` away to make
/// the VMA anonymous. Rust cannot cast it away, so that single change is offered here by name.
pub struct NewVma<'a> {
    pub(crate) vma: &'a mut Vma,
}

impl NewVma<'_> {
    /// The new VMA.
    pub fn vma(&self) -> &Vma {
        self.vma
    }
    /// `vma_set_anonymous`: drop the `vm_ops`, so faults fill zero pages as in anonymous memory.
    /// The file stays (`/proc/PID/maps` still names it).
    pub fn set_anonymous(&mut self) {
        self.vma.ops = VmOps::Anonymous;
    }
}

/// `action.success_hook`: runs after a new mapping is complete; an error unmaps it.
pub type SuccessHook = Arc<dyn Fn(&mut NewVma<'_>) -> Result<()> + Send + Sync>;

/// `action.error_hook`: turns the completion error into the errno `mmap` returns (it may not
/// turn it into success).
pub type ErrorHook = Arc<dyn Fn(Errno) -> Errno + Send + Sync>;

/// The action recorded in a descriptor (`struct mmap_action`).
#[derive(Clone, Default)]
pub struct MmapAction {
    /// What to do to the page tables.
    pub kind: ActionKind,
    /// Run after success.
    pub success_hook: Option<SuccessHook>,
    /// Filter the errno after failure.
    pub error_hook: Option<ErrorHook>,
}

impl MmapAction {
    /// Does completing it do anything at all?
    pub fn is_empty(&self) -> bool {
        self.kind == ActionKind::Nothing && self.success_hook.is_none() && self.error_hook.is_none()
    }
}

impl fmt::Debug for MmapAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapAction")
            .field("kind", &self.kind)
            .field("success_hook", &self.success_hook.is_some())
            .field("error_hook", &self.error_hook.is_some())
            .finish()
    }
}

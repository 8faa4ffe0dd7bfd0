//! The one mmap_prepare pipeline: every step that runs a driver's `mmap_prepare`, its action and
//! its `mapped` hook, whoever maps.
//!
//! Two callers run a file's `mmap_prepare`: `mmap(2)` itself (`mm/vma.c:__mmap_region`, in
//! [`crate::mm`]) and a stacked file's legacy `->mmap` that maps the file below it
//! (`mm/util.c:compat_vma_mmap`, [`crate::legacy::LegacyVma::compat_mmap_prepare`]). Rust
//! drivers and C drivers (`mmprep-c`) are both plain [`FileOperations`](crate::file::FileOperations)
//! here, so they take the same path. Each step below is written once; the callers differ only
//! in where the descriptor's fields go afterwards (`set_vma_user_defined_fields` after a merge
//! decision, or `compat_set_vma_from_desc` on the VMA the outer hook holds) and in who cleans
//! up after a failed completion ([`Completion`]).
//!
//! ```text
//!  call_mmap_prepare     hook → event → mmap_action_prepare → copy-back parts
//!  (caller)              merge / new VMA, or write the parts into the outer VMA
//!  mmap_action_complete  page tables of the action → call_vma_mapped → success_hook
//!  (caller)              on failure: Mmap unmaps the new VMA, Compat leaves it to the outer hook
//!  mmap_action_error     Mmap: error_hook filters the errno; Compat: returned as it is
//! ```
//!
//! Mirrors `mm/vma.c:call_mmap_prepare`, `mm/util.c:mmap_action_prepare`,
//! `mmap_action_complete`, `mmap_action_finish`, `call_vma_mapped` (\[N\]) and the `is_compat`
//! argument of the 7.1-rc hotfix (\[N+\]).

use alloc::sync::Arc;

use crate::driver::action::{self, ActionKind, MmapAction, NewVma};
use crate::driver::desc::{DescParts, VmAreaDesc};
use crate::errno::{Errno, Error, Result, err};
use crate::events::{Event, EventLog};
use crate::file::File;
use crate::pagetable::PageTable;
use crate::vma::Vma;

/// Who completes an action, and so who cleans up when it fails (`mmap_action_complete`'s
/// `is_compat`, \[N+\]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    /// `mm/vma.c:__mmap_region`: the caller unmaps the new VMA, then the action's error hook
    /// filters the errno.
    Mmap,
    /// `mm/util.c:compat_vma_mmap`: the outer `->mmap`'s failure path cleans up; the errno goes
    /// back unfiltered (`mmap_action_finish` returns before the unmap and the error hook).
    Compat,
}

/// `mm/vma.c:call_mmap_prepare`: runs `file`'s `mmap_prepare` on `desc`, logs it, prepares the
/// action (`mm/util.c:mmap_action_prepare`, before any merge decision, so the flags it sets
/// count), and returns what the kernel copies back.
///
/// The hook's event goes before anything the driver logs from inside it (`pr_info`).
///
/// # On failure
/// The hook's or the action's errno; nothing outside `desc` changed.
pub(crate) fn call_mmap_prepare(file: &Arc<File>, mut desc: VmAreaDesc<'_>, events: &EventLog) -> Result<DescParts> {
    let (start, end, pgoff) = (desc.start(), desc.end(), desc.pgoff());
    let mark = events.mark();
    let result = match file.ops().mmap_prepare() {
        Some(hook) => hook.mmap_prepare(&mut desc),
        None => Err(err(Errno::ENODEV, "the file has no mmap_prepare hook")),
    };
    let (driver, flags) = (file.ops().name(), desc.flags());
    events.insert_at(mark, || Event::MmapPrepare {
        driver,
        start,
        end,
        pgoff,
        flags,
        result: result.map_err(|e| e.errno),
    });
    result?;
    let mut act = desc.take_action();
    if !matches!(act.kind, ActionKind::Nothing) {
        let name = act.kind.name();
        let r = action::prepare(&mut desc, &mut act);
        events.push(|| Event::ActionPrepare {
            action: name,
            result: r.map_err(|e| e.errno),
        });
        r?;
    }
    desc.restore_action(act);
    Ok(desc.into_parts())
}

/// `mm/util.c:mmap_action_complete` and the success half of `mmap_action_finish`, on the new
/// VMA `vma`: the action's page-table entries (`remap_pfn_range_complete`,
/// `map_kernel_pages_complete`), then `vm_ops->mapped` ([`call_vma_mapped`]), then the success
/// hook. The first failure stops the rest.
///
/// # On failure
/// The errno, unfiltered: the caller cleans up as its [`Completion`] says, then passes the error
/// through [`mmap_action_error`]. A request the page tables refuse is blamed on `driver`.
pub(crate) fn mmap_action_complete(
    vma: &mut Vma,
    ptes: &mut PageTable,
    events: &EventLog,
    action: &MmapAction,
    driver: &'static str,
) -> Result<()> {
    let (start, end) = (vma.start(), vma.end());
    if !matches!(action.kind, ActionKind::Nothing) {
        let r = action::install_ptes(ptes, &action.kind);
        let name = action.kind.name();
        events.push(|| Event::ActionComplete {
            action: name,
            start,
            end,
            result: r.map_err(|e| e.errno),
        });
        r.map_err(|e| e.by_driver(driver))?;
    }
    call_vma_mapped(vma, events)?;
    if let Some(hook) = &action.success_hook {
        let mark = events.mark();
        let r = hook(&mut NewVma { vma: &mut *vma });
        events.insert_at(mark, || Event::SuccessHook {
            start,
            end,
            result: r.map_err(|e| e.errno),
        });
        r?;
    }
    Ok(())
}

/// `mm/util.c:call_vma_mapped`: if the VMA's ops have `mapped`, call it with a copy of the private
/// data, which is written back only on success.
fn call_vma_mapped(vma: &mut Vma, events: &EventLog) -> Result<()> {
    let Some(ops) = vma.ops().driver().filter(|o| o.mapped().is_some()).cloned() else {
        return Ok(());
    };
    let mut private = vma.private_data().cloned();
    let (start, end, pgoff) = (vma.start(), vma.end(), vma.pgoff());
    let mark = events.mark();
    let r = ops
        .mapped()
        .map_or(Ok(()), |hook| hook.mapped(start, end, pgoff, vma.file(), &mut private));
    let name = ops.ops_name();
    events.insert_at(mark, || Event::Mapped {
        ops: name,
        start,
        end,
        pgoff,
        result: r.map_err(|e| e.errno),
    });
    r?;
    vma.set_private_data(private);
    Ok(())
}

/// The error half of `mm/util.c:mmap_action_finish`, after the caller cleaned up: for `mmap`,
/// the action's error hook may change the errno (not into success); the compat layer returns it
/// as it is.
pub(crate) fn mmap_action_error(events: &EventLog, action: &MmapAction, completion: Completion, mut e: Error) -> Error {
    if completion == Completion::Compat {
        return e;
    }
    if let Some(filter) = &action.error_hook {
        let from = e.errno;
        e.errno = filter(from);
        let to = e.errno;
        events.push(|| Event::ErrorHook { from, to });
    }
    e
}

//! The hook log: every call the engine makes into a driver, in order, with its arguments and
//! result.
//!
//! The mmap_prepare model is about *when* a driver is called: `mmap_prepare` before the merge
//! decision, `mapped` only for a new VMA, `close` exactly once per VMA, `open` for every split
//! piece. The log makes that order observable: a test, or the scenario `events` line, reads it
//! back. Logging is off until [`crate::mm::Mm::set_event_log`] turns it on, so it costs
//! nothing otherwise.
//!
//! Each [`Event`] prints in one line with [`Event::render`], addresses through a caller-supplied
//! function (the scenario runner prints them as window offsets).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::addr::{PgOff, VirtAddr};
use crate::errno::Errno;
use crate::flags::VmaFlags;

/// One call into a driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `f_op->mmap_prepare(desc)`: the driver's view before any merge.
    MmapPrepare {
        driver: &'static str,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        flags: VmaFlags,
        result: Result<(), Errno>,
    },
    /// The action's prepare step (`mmap_action_prepare`), when the action is not "nothing".
    ActionPrepare {
        action: &'static str,
        result: Result<(), Errno>,
    },
    /// The action's complete step (`mmap_action_complete`), on the new VMA.
    ActionComplete {
        action: &'static str,
        start: VirtAddr,
        end: VirtAddr,
        result: Result<(), Errno>,
    },
    /// `vm_ops->mapped`.
    Mapped {
        ops: &'static str,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        result: Result<(), Errno>,
    },
    /// `action.success_hook`.
    SuccessHook {
        start: VirtAddr,
        end: VirtAddr,
        result: Result<(), Errno>,
    },
    /// `action.error_hook`: the completion error and what the hook turned it into.
    ErrorHook { from: Errno, to: Errno },
    /// `f_op->mmap` (legacy), on the new VMA.
    LegacyMmap {
        driver: &'static str,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        result: Result<(), Errno>,
    },
    /// `vm_ops->open`.
    Open {
        ops: &'static str,
        start: VirtAddr,
        end: VirtAddr,
    },
    /// `vm_ops->close`.
    Close {
        ops: &'static str,
        start: VirtAddr,
        end: VirtAddr,
    },
    /// `vm_ops->may_split`.
    MaySplit {
        ops: &'static str,
        start: VirtAddr,
        end: VirtAddr,
        addr: VirtAddr,
        result: Result<(), Errno>,
    },
    /// `vm_ops->fault`.
    Fault {
        ops: &'static str,
        addr: VirtAddr,
        pgoff: PgOff,
        write: bool,
        result: &'static str,
    },
    /// `vm_ops->page_mkwrite`: the first write to a shared page.
    PageMkwrite {
        ops: &'static str,
        addr: VirtAddr,
        pgoff: PgOff,
        result: Result<(), Errno>,
    },
    /// `vm_ops->pfn_mkwrite`: the first write to a PFN-mapped page.
    PfnMkwrite {
        ops: &'static str,
        addr: VirtAddr,
        result: Result<(), Errno>,
    },
    /// `vm_ops->access`: another process (or ptrace) reaching into an I/O mapping.
    RemoteAccess {
        ops: &'static str,
        addr: VirtAddr,
        len: usize,
        write: bool,
        result: Result<usize, Errno>,
    },
    /// `vm_ops->mremap`.
    Mremap {
        ops: &'static str,
        start: VirtAddr,
        end: VirtAddr,
        result: Result<(), Errno>,
    },
    /// A driver's own message (`pr_info`, `pr_warn`, `pr_err`), printed as `LEVEL TEXT`.
    Printk { level: &'static str, text: String },
}

fn res(r: &Result<(), Errno>) -> String {
    match r {
        Ok(()) => String::from("0"),
        Err(e) => format!("-{}", e.name()),
    }
}

fn flags_text(f: VmaFlags) -> String {
    let mut s = String::new();
    for (i, c) in f.smaps_codes(true).enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(c);
    }
    s
}

impl Event {
    /// One line of text; `addr` formats an address.
    pub fn render(&self, addr: &dyn Fn(VirtAddr) -> String) -> String {
        match self {
            Event::MmapPrepare {
                driver,
                start,
                end,
                pgoff,
                flags,
                result,
            } => format!(
                "mmap_prepare {driver} {}-{} pgoff={:#x} flags={} = {}",
                addr(*start),
                addr(*end),
                pgoff.get(),
                flags_text(*flags),
                res(result)
            ),
            Event::ActionPrepare { action, result } => format!("action_prepare {action} = {}", res(result)),
            Event::ActionComplete {
                action,
                start,
                end,
                result,
            } => {
                format!(
                    "action_complete {action} {}-{} = {}",
                    addr(*start),
                    addr(*end),
                    res(result)
                )
            }
            Event::Mapped {
                ops,
                start,
                end,
                pgoff,
                result,
            } => {
                format!(
                    "mapped {ops} {}-{} pgoff={:#x} = {}",
                    addr(*start),
                    addr(*end),
                    pgoff.get(),
                    res(result)
                )
            }
            Event::SuccessHook { start, end, result } => {
                format!("success_hook {}-{} = {}", addr(*start), addr(*end), res(result))
            }
            Event::ErrorHook { from, to } => format!("error_hook -{} = -{}", from.name(), to.name()),
            Event::LegacyMmap {
                driver,
                start,
                end,
                pgoff,
                result,
            } => {
                format!(
                    "mmap {driver} {}-{} pgoff={:#x} = {}",
                    addr(*start),
                    addr(*end),
                    pgoff.get(),
                    res(result)
                )
            }
            Event::Open { ops, start, end } => format!("open {ops} {}-{}", addr(*start), addr(*end)),
            Event::Close { ops, start, end } => format!("close {ops} {}-{}", addr(*start), addr(*end)),
            Event::MaySplit {
                ops,
                start,
                end,
                addr: at,
                result,
            } => {
                format!(
                    "may_split {ops} {}-{} at {} = {}",
                    addr(*start),
                    addr(*end),
                    addr(*at),
                    res(result)
                )
            }
            Event::Fault {
                ops,
                addr: at,
                pgoff,
                write,
                result,
            } => format!(
                "fault {ops} {} pgoff={:#x} {} = {result}",
                addr(*at),
                pgoff.get(),
                if *write { "write" } else { "read" }
            ),
            Event::PageMkwrite {
                ops,
                addr: at,
                pgoff,
                result,
            } => {
                format!(
                    "page_mkwrite {ops} {} pgoff={:#x} = {}",
                    addr(*at),
                    pgoff.get(),
                    res(result)
                )
            }
            Event::PfnMkwrite { ops, addr: at, result } => format!("pfn_mkwrite {ops} {} = {}", addr(*at), res(result)),
            Event::RemoteAccess {
                ops,
                addr: at,
                len,
                write,
                result,
            } => format!(
                "access {ops} {} len={len} {} = {}",
                addr(*at),
                if *write { "write" } else { "read" },
                match result {
                    Ok(n) => format!("{n}"),
                    Err(e) => format!("-{}", e.name()),
                }
            ),
            Event::Mremap {
                ops,
                start,
                end,
                result,
            } => {
                format!("mremap {ops} {}-{} = {}", addr(*start), addr(*end), res(result))
            }
            Event::Printk { level, text } => format!("{level} {text}"),
        }
    }
}

/// The log an [`crate::mm::Mm`] keeps while logging is on. It takes its own lock, so faults
/// under a shared lock of the address space can log too.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    events: Arc<spin::Mutex<Option<Vec<Event>>>>,
}

/// A handle on an address space's hook log that a driver keeps, to log its own messages
/// ([`Event::Printk`]) in order with the engine's calls into it ([`crate::mm::Mm::event_sink`]).
#[derive(Clone, Debug, Default)]
pub struct EventSink {
    events: Arc<spin::Mutex<Option<Vec<Event>>>>,
}

impl EventSink {
    /// A sink that drops everything (for a driver opened outside any address space).
    pub fn discard() -> EventSink {
        EventSink::default()
    }

    /// Records an event, if the log it belongs to is on.
    pub fn push(&self, event: Event) {
        if let Some(v) = &mut *self.events.lock() {
            v.push(event);
        }
    }
}

impl EventLog {
    /// A handle drivers can log through.
    pub fn sink(&self) -> EventSink {
        EventSink {
            events: self.events.clone(),
        }
    }

    /// Turns logging on or off (off drops what was logged).
    pub fn enable(&self, on: bool) {
        let mut e = self.events.lock();
        *e = if on { Some(e.take().unwrap_or_default()) } else { None };
    }

    /// Is logging on?
    pub fn is_on(&self) -> bool {
        self.events.lock().is_some()
    }

    /// Records an event (built only when logging is on).
    pub fn push(&self, make: impl FnOnce() -> Event) {
        if let Some(v) = &mut *self.events.lock() {
            v.push(make());
        }
    }

    /// Where the next event will go (to insert an outer call's event before its nested ones).
    pub fn mark(&self) -> usize {
        self.events.lock().as_ref().map_or(0, Vec::len)
    }

    /// Records an event at `mark`, before the ones logged since.
    pub fn insert_at(&self, mark: usize, make: impl FnOnce() -> Event) {
        if let Some(v) = &mut *self.events.lock() {
            v.insert(mark.min(v.len()), make());
        }
    }

    /// The events since the last take.
    pub fn take(&self) -> Vec<Event> {
        self.events.lock().as_mut().map(core::mem::take).unwrap_or_default()
    }
}

//! The failure matrix: a driver that fails at each point of the mmap_prepare pipeline, mapped on
//! a fresh range and over an existing mapping (`MAP_FIXED`), checked for the caller's errno, the
//! resulting layout, and that every `mapped`/`open` is balanced by a `close`.
//!
//! Expected outcomes (`docs/reference/mmap-prepare-pipeline.md` 4.1 and 10, [N]):
//!
//! | failing step | errno | range afterwards |
//! | --- | --- | --- |
//! | `mmap_prepare`, action prepare | the step's | fresh: empty; `MAP_FIXED`: a hole (the old VMAs were already closed) |
//! | action complete, `mapped`, success hook | the step's, or the error hook's | a hole (the new VMA is unmapped again, its `close` runs) |
//! | `may_split` (`MAP_FIXED` over part of a VMA) | the hook's | unchanged (the gather failed before anything was closed) |
//! | any allocation | `ENOMEM` | unchanged before the old VMAs are closed, a hole after |

mod common;

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMapped, VmMaySplit, VmOpen};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use mmprep::action::NewVma;
use mmprep::addr::{Pfn, PgOff};
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::vma::{FaultResult, PrivateData, VmFault, VmOperations, Vma};
use mmprep::{Errno, Error, Mm, Prot, Result, VirtAddr};

/// Where the driver fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailAt {
    Nowhere,
    Prepare,
    ActionPrepare,
    ActionComplete,
    Mapped,
    SuccessHook,
    SuccessHookFiltered,
    MaySplit,
}

const ALL: [FailAt; 8] = [
    FailAt::Nowhere,
    FailAt::Prepare,
    FailAt::ActionPrepare,
    FailAt::ActionComplete,
    FailAt::Mapped,
    FailAt::SuccessHook,
    FailAt::SuccessHookFiltered,
    FailAt::MaySplit,
];

/// References the driver's VMAs hold: +1 per successful `mapped` or `open`, -1 per `close` of a
/// VMA that holds one.
#[derive(Default)]
struct Counters {
    refs: AtomicI64,
    log: Mutex<Vec<String>>,
}

struct Driver {
    fail: Arc<Mutex<FailAt>>,
    c: Arc<Counters>,
}

struct Ops {
    /// The failure point when this mapping was made (for its completion hooks).
    fail: FailAt,
    /// The driver's current failure point (for hooks on existing VMAs: may_split).
    now: Arc<Mutex<FailAt>>,
    c: Arc<Counters>,
}

/// Marks a VMA that holds a reference.
struct Held;

fn holds(vma: &Vma) -> bool {
    vma.private_data().is_some_and(|p| p.downcast_ref::<Held>().is_some())
}

impl FileOperations for Driver {
    fn name(&self) -> &'static str {
        "matrix"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Driver {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        let fail = *self.fail.lock().unwrap();
        match fail {
            FailAt::Prepare => return Err(Error::new(Errno::ENODEV, "prepare fails")),
            // A remap reaching past the mapping: action prepare refuses it with EFAULT.
            FailAt::ActionPrepare => desc.mmap_action_remap(desc.start(), Pfn(0x1234), desc.size() + 4096),
            // A remap starting inside a page: prepare accepts the range, completion refuses it.
            FailAt::ActionComplete => {
                desc.mmap_action_remap(VirtAddr(desc.start().get() + 1), Pfn(0x1234), 4096);
            }
            FailAt::SuccessHook | FailAt::SuccessHookFiltered => {
                desc.set_success_hook(Arc::new(|_: &mut NewVma<'_>| {
                    Err(Error::new(Errno::EIO, "success hook"))
                }));
                if fail == FailAt::SuccessHookFiltered {
                    desc.set_error_hook(Arc::new(|_| Errno::EAGAIN));
                }
            }
            _ => {}
        }
        // Like TCMU: never merge (a merge would overwrite a neighbour's private data, and with it
        // the record of the reference it holds).
        desc.set_flag_bits(mmprep::vma_flags![DontExpand]);
        desc.set_vm_ops(Arc::new(Ops {
            fail,
            now: self.fail.clone(),
            c: self.c.clone(),
        }));
        Ok(())
    }
}

impl VmOperations for Ops {
    fn ops_name(&self) -> &'static str {
        "matrix_ops"
    }
    fn mapped(&self) -> Option<&dyn VmMapped> {
        Some(self)
    }
    fn open(&self) -> Option<&dyn VmOpen> {
        Some(self)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        Some(self)
    }
    fn may_split(&self) -> Option<&dyn VmMaySplit> {
        Some(self)
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
}

impl VmMapped for Ops {
    fn mapped(
        &self,
        _start: VirtAddr,
        _end: VirtAddr,
        _pgoff: PgOff,
        _file: Option<&Arc<File>>,
        private: &mut Option<PrivateData>,
    ) -> Result<()> {
        if self.fail == FailAt::Mapped {
            return Err(Error::new(Errno::ENOSPC, "mapped fails"));
        }
        self.c.refs.fetch_add(1, Ordering::SeqCst);
        *private = Some(Arc::new(Held));
        Ok(())
    }
}

impl VmOpen for Ops {
    fn open(&self, vma: &Vma) {
        if holds(vma) {
            self.c.refs.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl VmClose for Ops {
    fn close(&self, vma: &Vma) {
        self.c
            .log
            .lock()
            .unwrap()
            .push(format!("close {:#x}", vma.start().get() - BASE));
        if holds(vma) {
            self.c.refs.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl VmMaySplit for Ops {
    fn may_split(&self, _vma: &Vma, _addr: VirtAddr) -> Result<()> {
        if *self.now.lock().unwrap() == FailAt::MaySplit {
            Err(Error::new(Errno::EINVAL, "no splits"))
        } else {
            Ok(())
        }
    }
}

impl VmFaultHandler for Ops {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let page = vmf.machine().alloc_frame();
        vmf.set_page(page);
        FaultResult::Ok
    }
}

fn driver() -> (Arc<File>, Arc<Counters>, Arc<Driver>) {
    let c = Arc::new(Counters::default());
    let d = Arc::new(Driver {
        fail: Arc::new(Mutex::new(FailAt::Nowhere)),
        c: c.clone(),
    });
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 77 }, 1, InodeKind::CharDevice, 0));
    let file = File::new(inode, FileMode::READ_WRITE, d.clone(), "/dev/matrix".into(), false);
    (file, c, d)
}

/// The errno a failing step gives `mmap`.
fn expected_errno(f: FailAt) -> Option<Errno> {
    match f {
        FailAt::Nowhere | FailAt::MaySplit => None,
        FailAt::Prepare => Some(Errno::ENODEV),
        FailAt::ActionPrepare => Some(Errno::EFAULT),
        FailAt::ActionComplete => Some(Errno::EINVAL),
        FailAt::Mapped => Some(Errno::ENOSPC),
        FailAt::SuccessHook => Some(Errno::EIO),
        FailAt::SuccessHookFiltered => Some(Errno::EAGAIN),
    }
}

/// The mapped pages, one (page, perms, file page) each: a layout regardless of how it is split.
fn page_view(mm: &Mm) -> Vec<(u64, &'static str, u64)> {
    let mut out = Vec::new();
    for v in mm.vmas() {
        let r = mmprep::procfs::maps_row(v);
        let perms = match &r.perms {
            b"rw-s" => "rw-s",
            b"r--s" => "r--s",
            _ => "other",
        };
        for i in 0..v.pages() {
            out.push(((r.start - BASE) / 4096 + i, perms, r.offset / 4096 + i));
        }
    }
    out
}

/// The references still held must equal the driver VMAs that hold one.
fn assert_balanced(mm: &Mm, c: &Counters, what: &str) {
    let held = mm.vmas().filter(|v| holds(v)).count() as i64;
    assert_eq!(
        c.refs.load(Ordering::SeqCst),
        held,
        "{what}: references vs VMAs holding one\n{mm:?}"
    );
    mm.check_invariants();
}

/// Each failure point on a fresh range: the errno, nothing left behind, references balanced.
#[test]
fn fresh_range() {
    for fail in ALL {
        let mut mm = new_mm();
        let (file, c, d) = driver();
        *d.fail.lock().unwrap() = fail;
        let r = mm.mmap(page(0), pages(2), Prot::RW, SHARED_FIXED, Some(&file), 0);
        assert_eq!(r.err().map(|e| e.errno), expected_errno(fail), "{fail:?}");
        let what = format!("{fail:?} fresh");
        if expected_errno(fail).is_some() {
            assert_maps!(mm, "");
        } else {
            assert_eq!(mm.vmas().count(), 1, "{what}");
        }
        assert_balanced(&mm, &c, &what);
        mm.munmap(page(0), pages(16)).unwrap();
        assert_eq!(c.refs.load(Ordering::SeqCst), 0, "{what}: after unmapping everything");
    }
}

/// Each failure point as a MAP_FIXED replacement of the middle of an existing driver mapping:
//  AAAA          an existing mapping of the driver (holds a reference)
//   **           MAP_FIXED over pages 1-2 with the driver failing at one point
#[test]
fn fixed_over_an_existing_mapping() {
    for fail in ALL {
        let mut mm = new_mm();
        let (file, c, d) = driver();
        map_file(&mut mm, 0, 4, Prot::RW, SHARED_FIXED, &file, 0);
        *d.fail.lock().unwrap() = fail;
        let what = format!("{fail:?} fixed");
        let r = mm.mmap(page(1), pages(2), Prot::RW, SHARED_FIXED, Some(&file), pages(1));
        match fail {
            FailAt::Nowhere => {
                assert!(r.is_ok(), "{what}");
                assert_eq!(
                    mm.vmas().count(),
                    3,
                    "{what}: the driver's VMAs never merge (VM_DONTEXPAND)"
                );
            }
            FailAt::MaySplit => {
                // The split at the start of the range is refused before anything was closed.
                assert_eq!(r.unwrap_err().errno, Errno::EINVAL, "{what}");
                assert_maps!(mm, "00000000-00004000 rw-s 00000000");
            }
            _ => {
                assert_eq!(r.err().map(|e| e.errno), expected_errno(fail), "{what}");
                // The middle was replaced, then the replacement failed: a hole.
                assert_maps!(
                    mm,
                    "00000000-00001000 rw-s 00000000
                     00003000-00004000 rw-s 00003000"
                );
            }
        }
        assert_balanced(&mm, &c, &what);
        mm.munmap(page(0), pages(16)).unwrap();
        assert_eq!(c.refs.load(Ordering::SeqCst), 0, "{what}: after unmapping everything");
    }
}

/// Every allocation of a MAP_FIXED replacement across two driver VMAs failing in turn: ENOMEM,
/// the invariants hold, no reference leaks, and the range is either as before or a hole.
#[test]
fn every_allocation_fails_in_turn() {
    let mut completed = false;
    let (mut restored, mut holes) = (0, 0);
    for n in 0..64 {
        let mut mm = new_mm();
        let (file, c, _d) = driver();
        map_file(&mut mm, 0, 3, Prot::RW, SHARED_FIXED, &file, 0);
        map_file(&mut mm, 4, 7, Prot::READ, SHARED_FIXED, &file, 4);
        let page_view_before = page_view(&mm);
        mm.fail_allocation_in(n);
        let r = mm.mmap(page(1), pages(5), Prot::RW, SHARED_FIXED, Some(&file), pages(1));
        let what = format!("allocation {n}");
        match r {
            Ok(_) => {
                completed = true;
                assert_balanced(&mm, &c, &what);
                break;
            }
            Err(e) => {
                assert_eq!(e.errno, Errno::ENOMEM, "{what}");
                // Before anything was closed the old VMAs come back (splits at the edges may
                // stay, the pages are as before); afterwards the range is a hole.
                let hole = vec![(0, "rw-s", 0), (6, "r--s", 6)];
                let now = page_view(&mm);
                assert!(
                    now == page_view_before || now == hole,
                    "{what}: unexpected layout\n{mm:?}"
                );
                if now == hole {
                    holes += 1;
                } else {
                    restored += 1;
                }
            }
        }
        assert_balanced(&mm, &c, &what);
    }
    assert!(completed, "some allocation count lets the mmap succeed");
    assert!(
        restored > 0 && holes > 0,
        "both kinds of failure were reached ({restored} restored, {holes} holes)"
    );
}

//! The mmap_prepare pipeline with a test driver: when the hook runs, when `mapped` runs, and
//! what every failure leaves behind.
//!
//! The host kernel (6.18) has `mmap_prepare` but not `mapped` or the action hooks, so these
//! rules come from the newer source as written up in
//! `docs/reference/mmap-prepare-pipeline.md` ([N]; sections cited per test). The limit
//! tests follow host-verified rows of `docs/reference/vma-rules.md` section 3.2.

mod common;

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMapped, VmMaySplit, VmOpen};
use std::sync::{Arc, Mutex};

use common::*;
use mmprep::action::NewVma;
use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::vma::{PrivateData, VmOperations, Vma};
use mmprep::{Errno, Error, Mm, Profile, Prot, Result, VirtAddr};

/// What the test driver should do.
#[derive(Clone, Default)]
struct Behaviour {
    fail_prepare: Option<Errno>,
    fail_mapped: Option<Errno>,
    fail_success_hook: Option<Errno>,
    error_hook_to: Option<Errno>,
    refuse_split: bool,
    clear_maywrite: bool,
    private: Option<u32>,
}

type Log = Arc<Mutex<Vec<String>>>;

struct Driver {
    log: Log,
    how: Behaviour,
}

struct Ops {
    log: Log,
    how: Behaviour,
}

fn off(a: VirtAddr) -> u64 {
    (a.get() - BASE) / 4096
}

impl FileOperations for Driver {
    fn name(&self) -> &'static str {
        "testdrv"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Driver {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("prepare {}-{}", off(desc.start()), off(desc.end())));
        if let Some(e) = self.how.fail_prepare {
            return Err(Error::new(e, "test driver refuses"));
        }
        if self.how.clear_maywrite {
            desc.try_clear_maywrite()?;
        }
        desc.set_vm_ops(Arc::new(Ops {
            log: self.log.clone(),
            how: self.how.clone(),
        }));
        if self.how.private.is_some() {
            // Numbered by call (test-only state), so a test can tell which call's data stayed.
            let n = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with("prepare"))
                .count() as u32;
            desc.set_private_data(Arc::new(n));
        }
        if let Some(e) = self.how.fail_success_hook {
            desc.set_success_hook(Arc::new(move |_: &mut NewVma<'_>| {
                Err(Error::new(e, "success hook fails"))
            }));
        }
        if let Some(to) = self.how.error_hook_to {
            desc.set_error_hook(Arc::new(move |_| to));
        }
        Ok(())
    }
}

impl VmOperations for Ops {
    fn ops_name(&self) -> &'static str {
        "testdrv_vm_ops"
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
        start: VirtAddr,
        end: VirtAddr,
        _pgoff: PgOff,
        _file: Option<&Arc<File>>,
        _private: &mut Option<PrivateData>,
    ) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("mapped {}-{}", off(start), off(end)));
        match self.how.fail_mapped {
            Some(e) => Err(Error::new(e, "mapped fails")),
            None => Ok(()),
        }
    }
}

impl VmOpen for Ops {
    fn open(&self, vma: &Vma) {
        self.log
            .lock()
            .unwrap()
            .push(format!("open {}-{}", off(vma.start()), off(vma.end())));
    }
}

impl VmClose for Ops {
    fn close(&self, vma: &Vma) {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {}-{}", off(vma.start()), off(vma.end())));
    }
}

impl VmMaySplit for Ops {
    fn may_split(&self, _vma: &Vma, _addr: VirtAddr) -> Result<()> {
        if self.how.refuse_split {
            Err(Error::new(Errno::EINVAL, "no splits"))
        } else {
            Ok(())
        }
    }
}

impl VmFaultHandler for Ops {
    fn fault(&self, vmf: &mut mmprep::vma::VmFault<'_>) -> mmprep::vma::FaultResult {
        let page = vmf.machine().alloc_frame();
        vmf.set_page(page);
        mmprep::vma::FaultResult::Ok
    }
}

fn driver_file(how: Behaviour) -> (Arc<File>, Log) {
    let log: Log = Arc::default();
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 99 }, 7, InodeKind::CharDevice, 0));
    let file = File::new(
        inode,
        FileMode::READ_WRITE,
        Arc::new(Driver { log: log.clone(), how }),
        "/dev/test".into(),
        false,
    );
    (file, log)
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// The hook runs for every mapping, before the merge; `mapped` only for a new VMA
/// (pipeline 6, 10; checklist 3).
#[test]
fn prepare_always_mapped_only_when_new() {
    let mut mm = new_mm();
    let (f, log) = driver_file(Behaviour::default());
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    assert_eq!(take(&log), ["prepare 0-2", "mapped 0-2"]);
    // |AA|bb  the second mapping continues the first: merged, no `mapped`
    map_file(&mut mm, 2, 4, Prot::RW, SHARED_FIXED, &f, 2);
    assert_eq!(take(&log), ["prepare 2-4"]);
    assert_maps!(mm, "00000000-00004000 rw-s 00000000");
    mm.munmap(page(0), pages(4)).unwrap();
    assert_eq!(take(&log), ["close 0-4"]);
}

/// A failing `mapped` unmaps the new VMA (its `close` runs) and `mmap` fails (pipeline 10).
#[test]
fn mapped_failure_unmaps_and_closes() {
    let mut mm = new_mm();
    let (f, log) = driver_file(Behaviour {
        fail_mapped: Some(Errno::ENOSPC),
        ..Default::default()
    });
    let e = mm
        .mmap(page(0), pages(2), Prot::RW, SHARED_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::ENOSPC);
    assert_eq!(take(&log), ["prepare 0-2", "mapped 0-2", "close 0-2"]);
    assert_maps!(mm, "");
}

/// A failing success hook unmaps too, and the error hook chooses the errno (pipeline 10.6-7).
#[test]
fn success_hook_failure_goes_through_error_hook() {
    let mut mm = new_mm();
    let how = Behaviour {
        fail_success_hook: Some(Errno::EIO),
        error_hook_to: Some(Errno::EAGAIN),
        ..Default::default()
    };
    let (f, log) = driver_file(how);
    let e = mm
        .mmap(page(0), pages(1), Prot::RW, SHARED_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EAGAIN);
    assert_eq!(take(&log), ["prepare 0-1", "mapped 0-1", "close 0-1"]);
    assert_maps!(mm, "");
}

/// MAP_FIXED over mapped pages unmaps them (close runs) before the hook; if the hook then fails,
/// the range is left empty: a hole, not the old mapping (pipeline 4.1, checklist 1).
#[test]
fn fixed_replace_then_prepare_failure_leaves_a_hole() {
    let mut mm = new_mm();
    let (good, log) = driver_file(Behaviour::default());
    map_file(&mut mm, 0, 3, Prot::RW, SHARED_FIXED, &good, 0);
    take(&log);
    let (bad, bad_log) = driver_file(Behaviour {
        fail_prepare: Some(Errno::ENODEV),
        ..Default::default()
    });
    let e = mm
        .mmap(page(1), pages(1), Prot::RW, SHARED_FIXED, Some(&bad), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::ENODEV);
    // The split at page 1 called open() on the new lower piece; the detached middle was closed.
    assert_eq!(take(&log), ["open 0-1", "open 2-3", "close 1-2"]);
    assert_eq!(take(&bad_log), ["prepare 1-2"]);
    // A.A: the replaced page is gone.
    assert_maps!(
        mm,
        "00000000-00001000 rw-s 00000000
         00002000-00003000 rw-s 00002000"
    );
}

/// A VMA with `close` may be extended by a merge but never deleted by one: filling the gap
/// between two such VMAs merges with the left one only (vma-rules 2.1 item 9, 2.4 (d)).
#[test]
fn close_hook_blocks_deleting_merges() {
    let mut mm = new_mm();
    let (f, log) = driver_file(Behaviour::default());
    map_file(&mut mm, 0, 1, Prot::RW, SHARED_FIXED, &f, 0);
    map_file(&mut mm, 2, 3, Prot::RW, SHARED_FIXED, &f, 2);
    map_file(&mut mm, 1, 2, Prot::RW, SHARED_FIXED, &f, 1);
    assert_maps!(
        mm,
        "00000000-00002000 rw-s 00000000
         00002000-00003000 rw-s 00002000"
    );
    // mprotect of the right VMA to r--, then back: its whole-VMA merge would delete it.
    mm.mprotect(page(2), pages(1), Prot::READ).unwrap();
    mm.mprotect(page(2), pages(1), Prot::RW).unwrap();
    assert_eq!(mm.vmas().count(), 2);
    drop(take(&log));
}

/// `may_split` refusing stops munmap and mprotect before anything changes.
#[test]
fn may_split_refusal() {
    let mut mm = new_mm();
    let (f, _log) = driver_file(Behaviour {
        refuse_split: true,
        ..Default::default()
    });
    map_file(&mut mm, 0, 3, Prot::RW, SHARED_FIXED, &f, 0);
    assert_eq!(mm.munmap(page(1), pages(1)).unwrap_err().errno, Errno::EINVAL);
    assert_eq!(
        mm.mprotect(page(0), pages(1), Prot::READ).unwrap_err().errno,
        Errno::EINVAL
    );
    // Unmapping all of it needs no split.
    mm.munmap(page(0), pages(3)).unwrap();
    assert_maps!(mm, "");
}

/// `try_clear_maywrite` refuses while VM_WRITE is set; once cleared, mprotect cannot add write.
#[test]
fn clearing_maywrite_is_final() {
    let mut mm = new_mm();
    let (f, _) = driver_file(Behaviour {
        clear_maywrite: true,
        ..Default::default()
    });
    let e = mm
        .mmap(page(0), pages(1), Prot::RW, SHARED_FIXED, Some(&f), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL);
    map_file(&mut mm, 0, 1, Prot::READ, SHARED_FIXED, &f, 0);
    assert_eq!(
        mm.mprotect(page(0), pages(1), Prot::RW).unwrap_err().errno,
        Errno::EACCES
    );
}

/// Private data set in the hook lands on the VMA, and a merged mapping overwrites it
/// (pipeline 8).
#[test]
fn private_data_is_applied_even_when_merged() {
    let mut mm = new_mm();
    let (a, _) = driver_file(Behaviour {
        private: Some(1),
        ..Default::default()
    });
    map_file(&mut mm, 0, 1, Prot::RW, SHARED_FIXED, &a, 0);
    let get = |mm: &Mm| {
        *mm.vmas()
            .next()
            .unwrap()
            .private_data()
            .unwrap()
            .downcast_ref::<u32>()
            .unwrap()
    };
    assert_eq!(get(&mm), 1);
    // The second mapping merges into the first, and its private data replaces the old one.
    map_file(&mut mm, 1, 2, Prot::RW, SHARED_FIXED, &a, 1);
    assert_eq!(mm.vmas().count(), 1);
    assert_eq!(
        get(&mm),
        2,
        "set_vma_user_defined_fields overwrites private data on a merge"
    );
}

/// map_count limits (vma-rules 3.2, host-verified): mmap fails only above the limit; a split of
/// the middle of a VMA fails at the limit; a head or tail unmap never does.
#[test]
fn map_count_limits() {
    let mut mm = Mm::new(Profile {
        max_map_count: 4,
        ..Profile::reference_host()
    });
    for i in 0..4u64 {
        let prot = if i.is_multiple_of(2) { Prot::RW } else { Prot::READ };
        map_anon(&mut mm, 2 * i, 2 * i + 2, prot);
    }
    assert_eq!(mm.map_count(), 4);
    // At the limit mmap still works (the check is `map_count > max`).
    map_anon(&mut mm, 16, 17, Prot::RW);
    assert_eq!(mm.map_count(), 5);
    // Above it, even a mapping that would merge is refused (the check comes first).
    assert_eq!(
        mm.mmap(page(18), pages(1), Prot::RW, ANON, None, 0).unwrap_err().errno,
        Errno::ENOMEM
    );
    assert_eq!(
        mm.mmap(page(17), pages(1), Prot::RW, ANON, None, 0).unwrap_err().errno,
        Errno::ENOMEM
    );
    mm.munmap(page(16), pages(1)).unwrap();
    // Back at the limit: map three pages (count 5).
    map_anon(&mut mm, 20, 23, Prot::RW);
    // Two splits of one VMA: refused, as is any split for mprotect. Head or tail: fine.
    assert_eq!(mm.munmap(page(21), pages(1)).unwrap_err().errno, Errno::ENOMEM);
    assert_eq!(
        mm.mprotect(page(21), pages(1), Prot::READ).unwrap_err().errno,
        Errno::ENOMEM
    );
    assert_eq!(
        mm.mprotect(page(20), pages(1), Prot::READ).unwrap_err().errno,
        Errno::ENOMEM
    );
    mm.munmap(page(20), pages(1)).unwrap();
    mm.munmap(page(22), pages(1)).unwrap();
    assert_maps!(
        mm,
        "00000000-00002000 rw-p 00000000
         00002000-00004000 r--p 00000000
         00004000-00006000 rw-p 00000000
         00006000-00008000 r--p 00000000
         00015000-00016000 rw-p 00000000"
    );
}

/// An allocation failing while a MAP_FIXED mapping is made leaves a hole; one failing while
/// munmap gathers leaves everything in place.
#[test]
fn allocation_failures() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 3, Prot::RW);
    // gather: split at the start (2 allocations), split at the end (2), detach (1); then the
    // new VMA's first allocation fails, after the old page was closed: a hole.
    mm.fail_allocation_in(5);
    let e = mm.mmap(page(1), pages(1), Prot::READ, ANON, None, 0).unwrap_err();
    assert_eq!(e.errno, Errno::ENOMEM);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00002000-00003000 rw-p 00000000"
    );
    map_anon(&mut mm, 8, 11, Prot::RW);
    // The first split's allocation fails: nothing changed at all.
    mm.fail_allocation_in(0);
    assert_eq!(mm.munmap(page(9), pages(1)).unwrap_err().errno, Errno::ENOMEM);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00002000-00003000 rw-p 00000000
         00008000-0000b000 rw-p 00000000"
    );
}

/// A failure after the split at the start of a munmap range leaves that split behind, as the
/// kernel does (vma-rules 4.2: "start split persists").
#[test]
fn failed_gather_keeps_the_start_split() {
    let mut mm = new_mm();
    map_anon(&mut mm, 0, 3, Prot::RW);
    // Start split (2 allocations) succeeds; the end split's first allocation fails.
    mm.fail_allocation_in(2);
    assert_eq!(mm.munmap(page(1), pages(1)).unwrap_err().errno, Errno::ENOMEM);
    assert_maps!(
        mm,
        "00000000-00001000 rw-p 00000000
         00001000-00003000 rw-p 00000000"
    );
}

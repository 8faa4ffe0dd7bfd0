//! Teardown of an address space (issue 12 finding 3): dropping an `Mm`, or `Mm::exit`, does what
//! `mm/mmap.c:exit_mmap` does: `close` on every VMA, every driver reference dropped, the
//! counters and the commit charge released.
//!
//! Each test here fails against the old behaviour, where dropping an `Mm` only dropped its
//! memory: no `close` ran, so the counting driver's `closes` stayed below `mapped + opens` (and
//! `Mm::exit` did not exist). The per-driver version, over every example driver, is
//! `crates/mmprep-drivers/tests/teardown.rs`.

mod common;

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMapped, VmOpen};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::events::Event;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::mm::MmStats;
use mmprep::vma::{FaultResult, PrivateData, VmFault, VmOperations, Vma};
use mmprep::{Access, MapFlags, Mm, Prot, Result, VirtAddr};

/// How often the driver's hooks ran, and a reference it hands out as private data.
#[derive(Default)]
struct Counts {
    mapped: AtomicU64,
    opens: AtomicU64,
    closes: AtomicU64,
}

impl Counts {
    fn get(&self) -> (u64, u64, u64) {
        (
            self.mapped.load(Ordering::SeqCst),
            self.opens.load(Ordering::SeqCst),
            self.closes.load(Ordering::SeqCst),
        )
    }
    /// Every VMA the driver saw come (a new one in `mapped`, a copy in `open`) went.
    fn balanced(&self) -> bool {
        let (m, o, c) = self.get();
        m + o == c
    }
}

struct Driver {
    counts: Arc<Counts>,
    /// Handed to every mapping as private data: its strong count shows leaked VMAs.
    token: Arc<u32>,
}

struct Ops {
    counts: Arc<Counts>,
}

impl FileOperations for Driver {
    fn name(&self) -> &'static str {
        "countdrv"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for Driver {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        desc.set_vm_ops(Arc::new(Ops {
            counts: self.counts.clone(),
        }));
        desc.set_private_data(self.token.clone());
        Ok(())
    }
}

impl VmOperations for Ops {
    fn ops_name(&self) -> &'static str {
        "countdrv_vm_ops"
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
        _private: &mut Option<PrivateData>,
    ) -> Result<()> {
        self.counts.mapped.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl VmOpen for Ops {
    fn open(&self, _vma: &Vma) {
        self.counts.opens.fetch_add(1, Ordering::SeqCst);
    }
}

impl VmClose for Ops {
    fn close(&self, _vma: &Vma) {
        self.counts.closes.fetch_add(1, Ordering::SeqCst);
    }
}

impl VmFaultHandler for Ops {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let page = vmf.machine().alloc_frame();
        vmf.set_page(page);
        FaultResult::Ok
    }
}

fn driver_file() -> (Arc<File>, Arc<Counts>, Arc<u32>) {
    let counts = Arc::new(Counts::default());
    let token = Arc::new(7u32);
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 98 }, 8, InodeKind::CharDevice, 0));
    let ops = Driver {
        counts: counts.clone(),
        token: token.clone(),
    };
    let file = File::new(inode, FileMode::READ_WRITE, Arc::new(ops), "/dev/count".into(), false);
    (file, counts, token)
}

const ZERO: MmStats = MmStats {
    map_count: 0,
    total_vm: 0,
    data_vm: 0,
    exec_vm: 0,
    stack_vm: 0,
    locked_vm: 0,
    committed: 0,
};

/// ```text
///   0123456789
///   DDDD aaaa     D the driver, shared rw; a private anonymous rw-, locked, written
/// ```
fn driver_and_anon(file: &Arc<File>) -> Mm {
    let mut mm = new_mm();
    map_file(&mut mm, 0, 4, Prot::RW, SHARED_FIXED, file, 0);
    let locked = MapFlags(ANON.0 | MapFlags::LOCKED.0);
    mm.mmap(page(5), pages(4), Prot::RW, locked, None, 0).unwrap();
    write_touch(&mut mm, 5, 9);
    assert_maps!(
        mm,
        "00000000-00004000 rw-s 00000000
         00005000-00009000 rw-p 00000000"
    );
    mm
}

/// Dropping the `Mm` closes its VMAs and drops the file and private-data references they held.
#[test]
fn drop_closes_every_vma() {
    let (f, counts, token) = driver_file();
    let mm = driver_and_anon(&f);
    assert_eq!(counts.get(), (1, 0, 0));
    assert_eq!(Arc::strong_count(&token), 3, "the driver, the VMA, the test");
    drop(mm);
    assert_eq!(counts.get(), (1, 0, 1));
    assert_eq!(Arc::strong_count(&f), 1, "no VMA keeps the file");
    assert_eq!(Arc::strong_count(&token), 2, "no VMA keeps the private data");
}

/// Splits (`mprotect` of the middle: two `open`s) and a fork (one `open` per copied VMA): when
/// the child is dropped, exactly its VMAs close; when the parent goes, the rest.
#[test]
fn drop_after_split_and_fork() {
    let (f, counts, _token) = driver_file();
    let mut mm = driver_and_anon(&f);
    // DdDD: two splits, two opens.
    mm.mprotect(page(1), pages(1), Prot::READ).unwrap();
    assert_maps!(
        mm,
        "00000000-00001000 rw-s 00000000
         00001000-00002000 r--s 00001000
         00002000-00004000 rw-s 00002000
         00005000-00009000 rw-p 00000000"
    );
    assert_eq!(counts.get(), (1, 2, 0));
    let child = mm.fork().unwrap();
    child.check_invariants();
    assert_eq!(counts.get(), (1, 5, 0), "the child's three driver VMAs were opened");
    drop(child);
    assert_eq!(counts.get(), (1, 5, 3), "the child's three driver VMAs were closed");
    mm.check_invariants();
    assert_eq!(mm.vmas().count(), 4, "the parent keeps its VMAs");
    drop(mm);
    assert_eq!(counts.get(), (1, 5, 6));
    assert!(counts.balanced());
    assert_eq!(Arc::strong_count(&f), 1);
}

/// `exit` logs the `close` calls lowest first, empties the address space, zaps its pages and
/// brings every counter back to zero (the commit charge of the anonymous VMA, its locked pages).
/// A second `exit` (and the `Drop`) does nothing more.
#[test]
fn exit_logs_closes_and_releases_counters() {
    let (f, counts, _token) = driver_file();
    let mut mm = driver_and_anon(&f);
    mm.mprotect(page(2), pages(1), Prot::READ).unwrap();
    mm.check_invariants();
    let before = mm.stats();
    assert_eq!((before.total_vm, before.locked_vm, before.committed), (8, 4, 4));
    assert!(mm.resident_pages() > 0);
    mm.set_event_log(true);
    mm.exit();
    mm.check_invariants();
    let at = page;
    assert_eq!(
        mm.take_events(),
        [
            Event::Close {
                ops: "countdrv_vm_ops",
                start: at(0),
                end: at(2)
            },
            Event::Close {
                ops: "countdrv_vm_ops",
                start: at(2),
                end: at(3)
            },
            Event::Close {
                ops: "countdrv_vm_ops",
                start: at(3),
                end: at(4)
            },
        ]
    );
    assert_maps!(mm, "");
    assert_eq!(mm.stats(), ZERO);
    assert_eq!(mm.resident_pages(), 0);
    assert_eq!(counts.get(), (1, 2, 3));
    mm.exit();
    mm.check_invariants();
    assert!(mm.take_events().is_empty());
    drop(mm);
    assert_eq!(counts.get(), (1, 2, 3), "Drop after exit closes nothing twice");
}

/// An exited address space is an empty one: it maps again as a fresh `Mm` would.
#[test]
fn exited_mm_maps_again() {
    let (f, counts, _token) = driver_file();
    let mut mm = driver_and_anon(&f);
    mm.exit();
    mm.check_invariants();
    map_file(&mut mm, 0, 2, Prot::RW, SHARED_FIXED, &f, 0);
    mm.access(page(0), Access::Write).unwrap();
    assert_maps!(mm, "00000000-00002000 rw-s 00000000");
    drop(mm);
    assert_eq!(counts.get(), (2, 0, 2));
}

/// A driver mapping `munmap`ped before the drop is closed once, by the `munmap`, not again.
#[test]
fn munmap_then_drop_closes_once() {
    let (f, counts, _token) = driver_file();
    let mut mm = driver_and_anon(&f);
    mm.munmap(page(0), pages(2)).unwrap();
    assert_maps!(
        mm,
        "00002000-00004000 rw-s 00002000
         00005000-00009000 rw-p 00000000"
    );
    assert_eq!(counts.get(), (1, 1, 1));
    drop(mm);
    assert_eq!(counts.get(), (1, 1, 2));
}

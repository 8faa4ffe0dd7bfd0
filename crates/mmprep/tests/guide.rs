//! The driver of `docs/driver-guide.md`, compiled and run: a device with one page of registers,
//! mapped uncached through `mmap_action_simple_ioremap`, with a reference per mapping taken in
//! `mapped` and given back in `close`.

mod common;

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmMapped, VmOpen};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use mmprep::addr::Pfn;
use mmprep::desc::VmAreaDesc;
use mmprep::events::Event;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::phys::DeviceMemory;
use mmprep::vma::{CacheMode, PageProt, PrivateData, VmOperations, Vma};
use mmprep::{Errno, Error, PgOff, Prot, Result, VirtAddr, vma_flags};

struct MyDevice {
    regs_phys: u64,
    refs: Arc<AtomicI64>,
}

impl FileOperations for MyDevice {
    fn name(&self) -> &'static str {
        "mydev"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for MyDevice {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        if desc.pages() != 1 || !desc.test(mmprep::flags::VmaBit::MayShare) {
            return Err(Error::new(Errno::EINVAL, "map exactly the one register page, shared"));
        }
        let prot = desc.page_prot();
        desc.set_page_prot(PageProt {
            cache: CacheMode::Uncached,
            ..prot
        });
        desc.set_flag_bits(vma_flags![DontDump]);
        desc.mmap_action_simple_ioremap(self.regs_phys, 4096);
        desc.set_vm_ops(Arc::new(MyVmOps {
            refs: self.refs.clone(),
        }));
        Ok(())
    }
}

struct MyVmOps {
    refs: Arc<AtomicI64>,
}
struct Held;

fn holds(vma: &Vma) -> bool {
    vma.private_data().is_some_and(|p| p.downcast_ref::<Held>().is_some())
}

impl VmOperations for MyVmOps {
    fn ops_name(&self) -> &'static str {
        "mydev_vm_ops"
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
}

impl VmMapped for MyVmOps {
    fn mapped(
        &self,
        _s: VirtAddr,
        _e: VirtAddr,
        _p: PgOff,
        _f: Option<&Arc<File>>,
        private: &mut Option<PrivateData>,
    ) -> Result<()> {
        self.refs.fetch_add(1, Ordering::SeqCst);
        *private = Some(Arc::new(Held));
        Ok(())
    }
}

impl VmOpen for MyVmOps {
    fn open(&self, vma: &Vma) {
        if holds(vma) {
            self.refs.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl VmClose for MyVmOps {
    fn close(&self, vma: &Vma) {
        if holds(vma) {
            self.refs.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The registers: bytes that read back what was written.
struct Regs(Mutex<Vec<u8>>);

impl DeviceMemory for Regs {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        let r = self.0.lock().unwrap();
        buf.copy_from_slice(&r[offset as usize..offset as usize + buf.len()]);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.0.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }
}

#[test]
fn the_guide_driver() {
    let mut mm = new_mm();
    mm.set_event_log(true);
    let regs_phys = 0xfe00_0000;
    let regs = Arc::new(Regs(Mutex::new(vec![0x5a; 4096])));
    mm.machine()
        .add_device_at(Pfn(regs_phys >> 12), 1, regs)
        .expect("free physical page");
    let refs = Arc::new(AtomicI64::new(0));
    let inode = Arc::new(Inode::new(
        DevId { major: 0x10, minor: 99 },
        1,
        InodeKind::CharDevice,
        0,
    ));
    let dev = Arc::new(MyDevice {
        regs_phys,
        refs: refs.clone(),
    });
    let file = File::new(inode, FileMode::READ_WRITE, dev, "/dev/mydev".into(), false);

    // Two pages: refused in the hook.
    let e = mm
        .mmap(page(0), pages(2), Prot::RW, SHARED_FIXED, Some(&file), 0)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL);
    // One page: mapped; the registers are reachable; the pipeline ran in the documented order.
    map_file(&mut mm, 0, 1, Prot::RW, SHARED_FIXED, &file, 0);
    map_file(&mut mm, 1, 2, Prot::RW, SHARED_FIXED, &file, 0);
    let mut buf = [0u8; 2];
    mm.read(page(0), &mut buf).unwrap();
    assert_eq!(buf, [0x5a, 0x5a]);
    mm.write(page(1), &[1]).unwrap();
    mm.read(page(0), &mut buf).unwrap();
    assert_eq!(buf, [1, 0x5a], "both mappings reach the same register page");
    let kinds: Vec<&str> = mm
        .take_events()
        .iter()
        .map(|e| match e {
            Event::MmapPrepare { .. } => "mmap_prepare",
            Event::ActionPrepare { .. } => "action_prepare",
            Event::ActionComplete { .. } => "action_complete",
            Event::Mapped { .. } => "mapped",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "mmap_prepare", // the two-page request, refused
            "mmap_prepare",
            "action_prepare",
            "action_complete",
            "mapped",
            "mmap_prepare",
            "action_prepare",
            "action_complete",
            "mapped",
        ]
    );
    assert_eq!(refs.load(Ordering::SeqCst), 2);
    let flags = mmprep::procfs::vmflags(mm.vmas().next().unwrap(), false).join(" ");
    assert_eq!(flags, "rd wr sh mr mw me ms pf io de dd");
    // Unmapping gives the references back.
    mm.munmap(page(0), pages(2)).unwrap();
    assert_eq!(refs.load(Ordering::SeqCst), 0);
    mm.check_invariants();
}

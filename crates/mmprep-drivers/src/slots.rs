//! `slots`: a device with a limited number of mapping slots, taken in `mapped`, returned in
//! `close`.
//!
//! Models drivers that hold a reference per mapping (TCMU's `tcmu_mmap_prepare` with a device
//! reference taken in `vm_ops->mapped`, uio): `mmap_prepare` stays stateless, because the
//! mapping may still merge or fail; the reference is taken in `mapped`, which runs only for a
//! new VMA, and dropped in `close`, which runs once per VMA. Splits and fork call `open`, which
//! takes another reference (a split VMA is two VMAs, each closed once). When all `slots` are in
//! use `mapped` fails with `EBUSY`, the engine unmaps the new VMA and `mmap` fails.
//!
//! The pitfall this driver shows: `close` runs on that failed VMA too (the kernel's
//! `mmap_action_finish` unmaps it with a real `do_munmap`), although `mapped` took nothing. So
//! `mapped` records what it took in the VMA's private data, `open` copies the record with the
//! VMA, and `close` gives back only what the record says is held.
//!
//! A second pitfall: a mapping that merges into a neighbour overwrites the neighbour's private
//! data with whatever its own `mmap_prepare` set (`set_vma_user_defined_fields`), losing the
//! record. Like TCMU, the driver sets `VM_DONTEXPAND` (one of the special flags), so its
//! mappings never merge.

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMapped, VmOpen};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::vma::{FaultResult, PrivateData, VmFault, VmOperations, Vma};
use mmprep::{Errno, Error, Result, VirtAddr, vma_flags};

use crate::registry::{DriverEnv, DriverInfo, Params};

pub const INFO: DriverInfo = DriverInfo {
    name: "slots",
    summary: "device with N mapping slots (TCMU-style): reference taken in mapped, dropped in close; mapped fails EBUSY when full",
    params: &["slots=2: how many mappings may exist at once"],
    open,
};

/// The device: its slots in use.
struct Device {
    slots: u64,
    used: AtomicU64,
}

/// The record, in a VMA's private data, that it holds a slot.
struct SlotHeld;

fn holds_slot(vma: &Vma) -> bool {
    vma.private_data()
        .is_some_and(|p| p.downcast_ref::<SlotHeld>().is_some())
}

struct SlotsFile {
    dev: Arc<Device>,
}

struct SlotsVmOps {
    dev: Arc<Device>,
}

impl FileOperations for SlotsFile {
    fn name(&self) -> &'static str {
        "slots"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for SlotsFile {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        // As tcmu_mmap_prepare: VM_DONTEXPAND (a special flag: the mapping never merges) and
        // VM_DONTDUMP.
        desc.set_flag_bits(vma_flags![DontExpand, DontDump]);
        desc.set_vm_ops(Arc::new(SlotsVmOps { dev: self.dev.clone() }));
        Ok(())
    }
}

impl SlotsVmOps {
    fn take(&self) -> Result<()> {
        let dev = &self.dev;
        let mut cur = dev.used.load(Ordering::Relaxed);
        loop {
            if cur >= dev.slots {
                return Err(Error::new(Errno::EBUSY, "every mapping slot of the device is in use"));
            }
            match dev
                .used
                .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }
}

impl VmOperations for SlotsVmOps {
    fn ops_name(&self) -> &'static str {
        "slots_vm_ops"
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

impl VmMapped for SlotsVmOps {
    fn mapped(
        &self,
        _start: VirtAddr,
        _end: VirtAddr,
        _pgoff: PgOff,
        _file: Option<&Arc<File>>,
        private: &mut Option<PrivateData>,
    ) -> Result<()> {
        self.take()?;
        *private = Some(Arc::new(SlotHeld));
        Ok(())
    }
}

impl VmOpen for SlotsVmOps {
    fn open(&self, vma: &Vma) {
        // A split or fork makes another VMA that will be closed on its own: it holds a slot too
        // (over the limit if need be: open cannot fail).
        if holds_slot(vma) {
            self.dev.used.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl VmClose for SlotsVmOps {
    fn close(&self, vma: &Vma) {
        if holds_slot(vma) {
            self.dev.used.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl VmFaultHandler for SlotsVmOps {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let page = vmf.machine().alloc_frame();
        vmf.set_page(page);
        FaultResult::Ok
    }
}

fn open(params: &Params, _env: &DriverEnv<'_>) -> std::result::Result<Arc<File>, String> {
    let slots = params.number("slots", 2)?;
    let dev = Arc::new(Device {
        slots,
        used: AtomicU64::new(0),
    });
    Ok(crate::registry::open_file(
        DevId { major: 0x10, minor: 2 },
        InodeKind::CharDevice,
        0,
        FileMode::READ_WRITE,
        Arc::new(SlotsFile { dev }),
        "/dev/mmprep-slots",
    ))
}

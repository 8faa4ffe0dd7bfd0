//! A driver whose hooks do what the fuzz input says: any flag set or cleared in
//! `mmap_prepare`, any file page, any action (remaps of any physical range and size, kernel pages
//! too few or many), an error from any hook. The engine must answer with an errno (reported as
//! the driver's fault where it is), keep its invariants and its counters true, and never panic
//! (issue 12, finding 6).

use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMapped, VmMaySplit, VmMremap, VmOpen};
use std::sync::Arc;

use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, InodeKind};
use mmprep::flags::{VmaBit, VmaFlags};
use mmprep::phys::Machine;
use mmprep::vma::{FaultResult, PrivateData, VmFault, VmOperations, Vma};
use mmprep::{Errno, Error, Pfn, Result, VirtAddr};

use crate::input::Input;

/// What `mmap_prepare` asks for after it ran.
#[derive(Clone, Debug)]
enum Action {
    None,
    RemapFull(u64),
    /// Start (pages from the mapping's start), frame, size in bytes.
    Remap(u64, u64, u64),
    IoremapFull(u64),
    SimpleIoremap(u64, u64),
    /// Kernel pages over the whole mapping (maybe too few).
    KernelPagesFull(usize),
}

/// Everything the driver will do, decided when it is opened.
#[derive(Debug)]
pub struct Plan {
    set: Vec<VmaBit>,
    clear: Vec<VmaBit>,
    pgoff: Option<u64>,
    action: Action,
    prepare_error: Option<Errno>,
    /// `vm_ops` with these hooks failing: `mapped`, `may_split`, `mremap`.
    ops: Option<(bool, bool, bool)>,
}

const ERRNOS: [Errno; 5] = [Errno::EINVAL, Errno::ENOMEM, Errno::EBUSY, Errno::EPERM, Errno::EAGAIN];

impl Plan {
    pub fn decode(input: &mut Input) -> Plan {
        let bits = |n: usize, input: &mut Input| -> Vec<VmaBit> {
            (0..n)
                .filter_map(|_| VmaBit::from_number(u32::from(input.u8() % 64)))
                .collect()
        };
        let set_n = input.below(4);
        let set = bits(set_n, input);
        let clear_n = input.below(3);
        let clear = bits(clear_n, input);
        let pgoff = match input.below(4) {
            0 => Some(input.u64()),
            1 => Some(u64::from(input.u16())),
            _ => None,
        };
        let frame = |input: &mut Input| match input.below(4) {
            0 => u64::from(input.u16()),
            1 => u64::MAX - u64::from(input.u8()),
            2 => 0x1_0000_0000 + u64::from(input.u8()),
            _ => input.u64(),
        };
        let action = match input.below(8) {
            0 => Action::RemapFull(frame(input)),
            1 => Action::Remap(u64::from(input.u8() % 8), frame(input), input.u64()),
            2 => Action::IoremapFull(frame(input)),
            3 => Action::SimpleIoremap(input.u64(), input.u64()),
            4 => Action::KernelPagesFull(input.below(6)),
            _ => Action::None,
        };
        let prepare_error = (input.u8() < 24).then(|| ERRNOS[input.below(ERRNOS.len())]);
        let ops = input
            .bool()
            .then(|| (input.u8() < 48, input.u8() < 48, input.u8() < 48));
        Plan {
            set,
            clear,
            pgoff,
            action,
            prepare_error,
            ops,
        }
    }
}

struct HostileFile {
    plan: Plan,
    machine: Arc<Machine>,
}

struct HostileVmOps {
    mapped_fails: bool,
    may_split_fails: bool,
    mremap_fails: bool,
}

/// Opens a file served by a driver that follows `plan`.
pub fn open(plan: Plan, machine: &Arc<Machine>, ino: u64) -> Arc<File> {
    let inode = Arc::new(mmprep::file::Inode::new(
        DevId { major: 0x42, minor: 0 },
        ino,
        InodeKind::CharDevice,
        0,
    ));
    let ops = Arc::new(HostileFile {
        plan,
        machine: machine.clone(),
    });
    File::new(inode, FileMode::READ_WRITE, ops, "/dev/hostile".into(), false)
}

impl FileOperations for HostileFile {
    fn name(&self) -> &'static str {
        "hostile"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for HostileFile {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        let p = &self.plan;
        desc.set_flag_bits(VmaFlags::from_bits(&p.set));
        desc.clear_flag_bits(VmaFlags::from_bits(&p.clear));
        if let Some(pgoff) = p.pgoff {
            desc.set_pgoff(PgOff(pgoff));
        }
        match p.action {
            Action::None => {}
            Action::RemapFull(pfn) => desc.mmap_action_remap_full(Pfn(pfn)),
            Action::Remap(page, pfn, size) => {
                let start = VirtAddr(desc.start().0.wrapping_add(page << 12));
                desc.mmap_action_remap(start, Pfn(pfn), size);
            }
            Action::IoremapFull(pfn) => desc.mmap_action_ioremap_full(Pfn(pfn)),
            Action::SimpleIoremap(phys, size) => desc.mmap_action_simple_ioremap(phys, size),
            Action::KernelPagesFull(n) => {
                let pages = self.machine.alloc_kernel_pages(n);
                desc.mmap_action_map_kernel_pages_full(pages);
            }
        }
        if let Some((mapped_fails, may_split_fails, mremap_fails)) = p.ops {
            desc.set_vm_ops(Arc::new(HostileVmOps {
                mapped_fails,
                may_split_fails,
                mremap_fails,
            }));
        }
        match p.prepare_error {
            Some(errno) => Err(Error::new(errno, "the hostile driver refuses")),
            None => Ok(()),
        }
    }
}

impl VmOperations for HostileVmOps {
    fn ops_name(&self) -> &'static str {
        "hostile_vm_ops"
    }
    fn mapped(&self) -> Option<&dyn VmMapped> {
        Some(self)
    }
    fn may_split(&self) -> Option<&dyn VmMaySplit> {
        Some(self)
    }
    fn mremap(&self) -> Option<&dyn VmMremap> {
        Some(self)
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
    fn open(&self) -> Option<&dyn VmOpen> {
        Some(self)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        Some(self)
    }
}

impl VmClose for HostileVmOps {
    /// Present only so that merges see a `close` and must keep the VMA.
    fn close(&self, _vma: &Vma) {}
}

impl VmOpen for HostileVmOps {
    /// Present only so that the engine calls it (and its merges see an `open`).
    fn open(&self, _vma: &Vma) {}
}

impl VmMapped for HostileVmOps {
    fn mapped(
        &self,
        _start: VirtAddr,
        _end: VirtAddr,
        _pgoff: PgOff,
        _file: Option<&Arc<File>>,
        _private: &mut Option<PrivateData>,
    ) -> Result<()> {
        if self.mapped_fails {
            return Err(Error::new(Errno::EBUSY, "the hostile driver's mapped refuses"));
        }
        Ok(())
    }
}

impl VmMaySplit for HostileVmOps {
    fn may_split(&self, _vma: &Vma, _addr: VirtAddr) -> Result<()> {
        if self.may_split_fails {
            return Err(Error::new(Errno::EINVAL, "the hostile driver's may_split refuses"));
        }
        Ok(())
    }
}

impl VmMremap for HostileVmOps {
    fn mremap(&self, _new_vma: &Vma) -> Result<()> {
        if self.mremap_fails {
            return Err(Error::new(Errno::EINVAL, "the hostile driver's mremap refuses"));
        }
        Ok(())
    }
}

impl VmFaultHandler for HostileVmOps {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        let page = vmf.machine().alloc_frame();
        vmf.set_page(page);
        FaultResult::Ok
    }
}

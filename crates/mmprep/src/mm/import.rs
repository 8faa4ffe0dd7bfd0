//! Importing VMAs: build an address space from what another process's `/proc/PID/smaps` shows.
//!
//! The engine's other entry points make VMAs the way system calls do. An import instead puts a
//! VMA in place as it already is in a live process (its range, flags, file, anon_vma), so that
//! the engine can take over from that point and answer the process's next system calls as the
//! kernel will. [`Mm::import_vma`] checks each VMA against the tree and keeps every counter
//! true, as `mm/vma.c:insert_vm_struct` and `vm_stat_account` do for a VMA the kernel makes
//! itself; nothing is merged (the kernel's VMAs are already as merged as they will be).
//!
//! What smaps does not show, the caller decides:
//! - the `vm_ops` of a file VMA: the file's own `mmap_prepare` is asked for them
//!   ([`ImportOps::File`]), as when the mapping was made; its other changes are ignored (the
//!   flags given are the truth);
//! - anon_vma identity: a VMA may share the anon_vma of one imported before it
//!   ([`ImportAnon::SameAs`]), as the pieces of one split VMA do; fork-chain depth is 1;
//! - the page offset of anonymous memory (maps prints 0): usually `start >> PAGE_SHIFT`.
//!
//! The commit charge of `VM_ACCOUNT` VMAs is taken over as it is (never refused: the kernel has
//! already granted it).

use alloc::sync::Arc;

use crate::addr::{PageRange, PgOff, VirtAddr};
use crate::desc::VmAreaDesc;
use crate::errno::{Errno, Result, err};
use crate::file::{File, MmapHook};
use crate::flags::{VmaBit, VmaFlags};
use crate::mm::Mm;
use crate::mm::special::SpecialMapping;
use crate::vma::{PageProt, VmOps, Vma};

/// Where an imported VMA's `vm_ops` come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOps {
    /// None: anonymous memory (`vm_ops == NULL`). The VMA must have no file.
    Anonymous,
    /// The file's: its `mmap_prepare` is run on a descriptor of the VMA and the `vm_ops` it sets
    /// are kept (a legacy or hook-less file gets the dummy ops). The VMA must have a file.
    File,
    /// A special mapping named so (`"[vdso]"`, `"[vvar]"`, `"[vvar_vclock]"`). No file.
    Special(&'static str),
}

/// The anon_vma of an imported VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportAnon {
    /// None: no private page was ever written.
    None,
    /// A new anon_vma of its own.
    New,
    /// The anon_vma of the VMA already imported at this start address.
    SameAs(VirtAddr),
}

/// One VMA to import.
#[derive(Clone, Debug)]
pub struct ImportVma {
    pub start: VirtAddr,
    pub end: VirtAddr,
    /// The file page at `start` (for anonymous memory, the page index it was given).
    pub pgoff: PgOff,
    pub flags: VmaFlags,
    pub file: Option<Arc<File>>,
    pub ops: ImportOps,
    pub anon: ImportAnon,
}

impl Mm {
    /// Puts one VMA in place as a live process has it (see the module doc).
    ///
    /// # Errors
    /// `EINVAL` for an unaligned or empty range, one past `TASK_SIZE`, `VM_SHARED` without
    /// `VM_MAYSHARE`, a shared VMA without a file, ops that do not fit the file (anonymous or
    /// special with a file, file ops without one), or `ImportAnon::SameAs` naming no imported
    /// VMA with an anon_vma; `EEXIST` if it overlaps a VMA already there. Nothing changes on
    /// error.
    pub fn import_vma(&mut self, spec: ImportVma) -> Result<()> {
        let Some(range) = PageRange::new(spec.start, spec.end) else {
            return Err(err(Errno::EINVAL, "the range is unaligned or empty"));
        };
        if spec.end.0 > self.profile.task_size {
            return Err(err(Errno::EINVAL, "the range reaches past TASK_SIZE"));
        }
        let flags = spec.flags;
        if flags.test(VmaBit::Shared) && !flags.test(VmaBit::MayShare) {
            return Err(err(Errno::EINVAL, "VM_SHARED without VM_MAYSHARE"));
        }
        if flags.test(VmaBit::MayShare) && spec.file.is_none() {
            return Err(err(Errno::EINVAL, "a shared VMA without a file"));
        }
        if self.tree.find_intersection(spec.start, spec.end).is_some() {
            return Err(err(Errno::EEXIST, "the range overlaps a VMA already imported"));
        }
        let anon = match spec.anon {
            ImportAnon::None => None,
            ImportAnon::New => Some(()),
            ImportAnon::SameAs(at) => {
                if self.tree.get(at).and_then(|v| v.anon_vma()).is_none() {
                    return Err(err(Errno::EINVAL, "SameAs names no imported VMA with an anon_vma"));
                }
                Some(())
            }
        };
        let ops = match (spec.ops, &spec.file) {
            (ImportOps::Anonymous, None) => VmOps::Anonymous,
            (ImportOps::Special(name), None) => VmOps::Driver(Arc::new(SpecialMapping::new(name))),
            (ImportOps::File, Some(file)) => self.file_vm_ops(file, &spec)?,
            _ => return Err(err(Errno::EINVAL, "the ops do not fit the file (or its absence)")),
        };
        let mut vma = Vma::new(range, spec.pgoff, flags);
        vma.set_file(spec.file);
        vma.set_ops(ops);
        vma.set_page_prot(PageProt::from_flags(flags));
        vma.set_anon(match (anon, spec.anon) {
            (None, _) => None,
            (Some(()), ImportAnon::SameAs(at)) => self.tree.get(at).and_then(|v| v.anon_vma()),
            (Some(()), _) => Some(self.new_anon_vma()),
        });
        let pages = vma.pages();
        self.tree.insert(vma);
        self.vm_stat_account(flags, pages as i64);
        if flags.test(VmaBit::Locked) {
            self.locked_vm += pages;
        }
        if flags.test(VmaBit::Account) {
            self.committed += pages;
        }
        Ok(())
    }

    /// The `vm_ops` the file's `mmap_prepare` gives a mapping like `spec`.
    fn file_vm_ops(&self, file: &Arc<File>, spec: &ImportVma) -> Result<VmOps> {
        if file.ops().mmap_hook() != MmapHook::Prepare {
            return Ok(VmOps::Dummy);
        }
        let mut desc = VmAreaDesc::new(file.clone(), spec.start, spec.end, spec.pgoff, spec.flags, &self.shmem);
        if let Some(hook) = file.ops().mmap_prepare() {
            hook.mmap_prepare(&mut desc)?;
        }
        Ok(match desc.into_parts().vm_ops {
            Some(ops) => VmOps::Driver(ops),
            None => VmOps::Dummy,
        })
    }
}

/// The flags a `VmFlags` line of smaps names (codes it does not know are ignored).
pub fn flags_from_smaps_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> VmaFlags {
    let mut f = VmaFlags::EMPTY;
    for code in codes {
        if let Some(bit) = VmaBit::ALL.iter().find(|b| !code.is_empty() && b.smaps_code() == code) {
            f.set(*bit);
        }
    }
    f
}

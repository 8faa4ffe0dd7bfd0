//! The engine's driver traits, served by C: [`CFile`] is a `FileOperations` whose
//! `mmap_prepare` runs the driver's, [`CVmOps`] a `VmOperations` whose hooks are the non-NULL
//! members of the driver's `struct vm_operations_struct`.
//!
//! `mmap_prepare` gets a C `struct vm_area_desc` built from the engine's descriptor; afterwards
//! only what the kernel copies back comes back (`pgoff`, `vma_flags`, `page_prot`, `vm_ops`,
//! `private_data`, the action): a change to `start`, `end`, `mm` or `file` is ignored and
//! reported in the scenario's `events` as a broken rule.

use mmprep::file::{LegacyMmap, MmapPrepare};
use mmprep::vma::{
    VmAccess, VmClose, VmFaultHandler, VmMapped, VmMaySplit, VmMremap, VmName, VmOpen, VmPageMkwrite, VmPfnMkwrite,
};
use std::sync::Arc;

use mmprep::action::NewVma;
use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{File, FileOperations, FopFlags};
use mmprep::flags::{VmaBit, VmaFlags};
use mmprep::legacy::LegacyVma;
use mmprep::vma::{CacheMode, FaultResult, PageProt, PrivateData, VmFault, VmHooks, VmOperations, Vma};
use mmprep::{Errno, Error, Pfn, Result, VirtAddr};

use std::cell::Cell;
use std::ffi::{c_int, c_void};

use crate::ffi::{DescIo, Library, VmaIo, intern_c};

const PAGE_PRESENT: u64 = 0x1;
const PAGE_RW: u64 = 0x2;
const PAGE_USER: u64 = 0x4;
const PAGE_PWT: u64 = 0x8;
const PAGE_PCD: u64 = 0x10;
const PAGE_NX: u64 = 1 << 63;

const ENODEV: i32 = 19;
const EFAULT: i32 = 14;

const VM_FAULT_OOM: u32 = 0x1;
const VM_FAULT_SIGBUS: u32 = 0x2;

/// `fop_flags` bits of `include/linux/fs.h`.
const FOP_MMAP_SYNC_C: u32 = 1 << 2;
const FOP_UNSIGNED_OFFSET_C: u32 = 1 << 5;

const FOP_MMAP_PREPARE: u32 = 1;
const FOP_MMAP: u32 = 2;

/// The engine's page protection as an x86 `pgprot_t`.
fn prot_to_c(p: PageProt) -> u64 {
    let mut v = PAGE_USER;
    if p.read {
        v |= PAGE_PRESENT;
    }
    if p.write {
        v |= PAGE_RW;
    }
    if !p.exec {
        v |= PAGE_NX;
    }
    v | match p.cache {
        CacheMode::WriteBack => 0,
        CacheMode::WriteCombine => PAGE_PWT,
        CacheMode::Uncached => PAGE_PCD,
    }
}

/// A `pgprot_t` back: the cache mode from PWT/PCD, the rest from the bits.
fn prot_from_c(v: u64) -> PageProt {
    PageProt {
        read: v & PAGE_PRESENT != 0,
        write: v & PAGE_RW != 0,
        exec: v & PAGE_NX == 0,
        cache: if v & PAGE_PCD != 0 {
            CacheMode::Uncached
        } else if v & PAGE_PWT != 0 {
            CacheMode::WriteCombine
        } else {
            CacheMode::WriteBack
        },
    }
}

/// `vma_flags_t` words from the engine's flags.
fn flags_to_c(f: VmaFlags) -> [u64; 2] {
    let mut w = [0u64; 2];
    for b in f.iter() {
        let n = b.number() as usize;
        w[n / 64] |= 1 << (n % 64);
    }
    w
}

/// The engine's flags from `vma_flags_t` words (bits x86_64 does not define are dropped).
fn flags_from_c(w: [u64; 2]) -> VmaFlags {
    let mut f = VmaFlags::EMPTY;
    for n in 0..128u32 {
        if w[(n / 64) as usize] & (1 << (n % 64)) != 0
            && let Some(b) = VmaBit::from_number(n)
        {
            f.set(b);
        }
    }
    f
}

/// A C `int` result: 0 or a negative errno.
fn c_result(ret: i32, reason: &'static str) -> Result<()> {
    if ret >= 0 {
        return Ok(());
    }
    let errno = Errno::from_raw(ret.checked_neg().unwrap_or(0)).unwrap_or(Errno::EINVAL);
    Err(Error::new(errno, reason))
}

/// The driver's `void *` private data, kept in the VMA.
#[derive(Debug)]
struct CPrivate(u64);

fn private_to_c(p: Option<&PrivateData>) -> u64 {
    p.and_then(|p| p.downcast_ref::<CPrivate>()).map_or(0, |c| c.0)
}

fn private_from_c(p: u64) -> Option<PrivateData> {
    (p != 0).then(|| Arc::new(CPrivate(p)) as PrivateData)
}

/// A file served by a C driver (`struct file_operations`).
pub(crate) struct CFile {
    pub(crate) lib: Arc<Library>,
    /// The C `struct file *`.
    pub(crate) cfile: u64,
    pub(crate) name: &'static str,
    /// The source's `vm_operations_struct` tables that set `.mapped` ([`crate::compile::mapped_tables`]).
    pub(crate) mapped_tables: Vec<String>,
}

impl CFile {
    /// Which of `mmap_prepare` (`FOP_MMAP_PREPARE`), `mmap` (`FOP_MMAP`) the driver's table has
    /// non-NULL.
    fn c_hooks(&self) -> u32 {
        // SAFETY: fops_hooks reads the driver's file_operations table, which is static data of
        // the loaded library.
        self.lib.call(FOP_MMAP_PREPARE, |s| unsafe { (s.fops_hooks)() })
    }
}

impl FileOperations for CFile {
    fn name(&self) -> &'static str {
        self.name
    }
    fn area_policy(&self, flags: mmprep::MapFlags) -> mmprep::file::AreaPolicy {
        let _ = flags;
        // SAFETY: area_policy compares a member of the driver's static file_operations table.
        match self.lib.call(0, |s| unsafe { (s.area_policy)() }) {
            1 => mmprep::file::AreaPolicy::Thp,
            _ => mmprep::file::AreaPolicy::Default,
        }
    }
    fn fop_flags(&self) -> FopFlags {
        // SAFETY: fop_flags reads a member of the driver's static file_operations table.
        let flags = self.lib.call(0, |s| unsafe { (s.fop_flags)() });
        let mut out = FopFlags::default();
        if flags & FOP_MMAP_SYNC_C != 0 {
            out = FopFlags(out.0 | FopFlags::MMAP_SYNC.0);
        }
        if flags & FOP_UNSIGNED_OFFSET_C != 0 {
            out = FopFlags(out.0 | FopFlags::UNSIGNED_OFFSET.0);
        }
        out
    }
    fn mmap(&self) -> Option<&dyn LegacyMmap> {
        (self.c_hooks() & FOP_MMAP != 0).then_some(self as &dyn LegacyMmap)
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        (self.c_hooks() & FOP_MMAP_PREPARE != 0).then_some(self as &dyn MmapPrepare)
    }
}

impl LegacyMmap for CFile {
    fn mmap(&self, vma: &mut LegacyVma<'_>) -> Result<()> {
        let mut io = vma_io(vma.vma(), self.cfile, 0);
        let lib = &self.lib;
        let ret = with_legacy(vma, || {
            // SAFETY: cfile is this library's struct file *; io is valid for the call. The
            // driver's remap_pfn_range / vm_insert_page reach `vma` through LEGACY, set for
            // exactly this call on this thread.
            lib.call(-ENODEV, |s| unsafe { (s.legacy_mmap)(self.cfile, &mut io) })
        });
        if self.lib.runtime().crash().is_some() {
            return Err(Error::new(Errno::EFAULT, "the C driver crashed"));
        }
        c_result(ret, "the C driver's mmap failed")?;
        // What the driver left in the VMA.
        apply_flags(vma, flags_from_c(io.flags));
        vma.set_pgoff(PgOff(io.pgoff));
        vma.set_page_prot(prot_from_c(io.prot));
        if io.vm_ops != 0 {
            let ops = CVmOps::new(self.lib.clone(), io.vm_ops, self.cfile);
            if ops.hooks.contains(VmHooks::MAPPED) {
                self.lib.runtime().log(
                    "rule",
                    format!(
                        "->mmap installed {} with ->mapped, which only the mmap_prepare path calls (refused: EINVAL)",
                        ops.name
                    ),
                );
            }
            vma.set_vm_ops(Arc::new(ops));
        }
        if let Some(p) = private_from_c(io.private_data) {
            vma.set_private_data(p);
        }
        Ok(())
    }
}

impl MmapPrepare for CFile {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        let mut io = DescIo {
            start: desc.start().get(),
            end: desc.end().get(),
            pgoff: desc.pgoff().get(),
            flags: flags_to_c(desc.flags()),
            prot: prot_to_c(desc.page_prot()),
            ..DescIo::default()
        };
        // SAFETY: cfile is the struct file * this library's shim made; io is a valid, exclusive
        // DescIo for the call.
        let ret = self
            .lib
            .call(-ENODEV, |s| unsafe { (s.mmap_prepare)(self.cfile, &mut io) });
        if self.lib.runtime().crash().is_some() {
            // The crash is in `events` and on stderr; the mapping fails.
            return Err(Error::new(
                if ret == -EFAULT { Errno::EFAULT } else { Errno::ENODEV },
                "the C driver crashed",
            ));
        }
        c_result(ret, "the C driver's mmap_prepare failed")?;
        if io.vm_ops == 0 && !self.mapped_tables.is_empty() {
            // The HOWTO: vm_ops->mapped "should be set by the mmap_prepare hook". A table with
            // `mapped` that the hook did not put in desc->vm_ops never runs for this mapping.
            self.lib.runtime().log(
                "rule",
                format!(
                    "mmap_prepare left desc->vm_ops NULL: vm_ops->mapped of {} does not run for this mapping",
                    self.mapped_tables.join(", ")
                ),
            );
        }

        // What call_mmap_prepare copies back: the mutable and write-only fields.
        desc.set_pgoff(PgOff(io.pgoff));
        desc.set_flags(flags_from_c(io.flags));
        let rt = self.lib.runtime();
        if io.vm_file_changed != 0 {
            rt.log(
                "rule",
                "mmap_prepare pointed desc->vm_file at a file the harness does not know: ignored".into(),
            );
        }
        if io.vm_ops != 0 {
            desc.set_vm_ops(Arc::new(CVmOps::new(self.lib.clone(), io.vm_ops, self.cfile)));
        }
        if let Some(p) = private_from_c(io.private_data) {
            desc.set_private_data(p);
        }

        // The action, re-recorded through the engine's helpers with the protection it was
        // recorded with.
        let final_prot = prot_from_c(io.prot);
        // The HOWTO's rule the engine enforces with an errno: say which rule it was.
        let range = match io.kind {
            1 | 2 => Some((io.a_start, io.a_size)),
            4 => Some((io.a_start, io.a_nr.saturating_mul(mmprep::PAGE_SIZE))),
            _ => None,
        };
        if let Some((start, size)) = range
            && (start < io.start || start.checked_add(size).is_none_or(|end| end > io.end))
        {
            let helper = if io.kind == 4 { "map_kernel_pages" } else { "remap" };
            rt.log(
                "rule",
                format!(
                    "mmap_action_{helper}: {size:#x} bytes at {start:#x} reach outside the mapping {:#x}-{:#x}",
                    io.start, io.end
                ),
            );
        }
        match io.kind {
            0 => {}
            1 | 2 => {
                desc.set_page_prot(prot_from_c(io.a_prot));
                if io.kind == 1 {
                    desc.mmap_action_remap(VirtAddr(io.a_start), Pfn(io.a_pfn), io.a_size);
                } else {
                    desc.mmap_action_ioremap(VirtAddr(io.a_start), Pfn(io.a_pfn), io.a_size);
                }
            }
            3 => desc.mmap_action_simple_ioremap(io.a_phys, io.a_size),
            4 => {
                let mut pages = Vec::new();
                for i in 0..io.a_nr {
                    // SAFETY: a_pages is the driver's struct page * array, which the action
                    // says holds a_nr entries; the driver keeps it alive across the call.
                    let handle = self.lib.call(0, |s| unsafe { (s.page_at)(io.a_pages, i) });
                    match rt.page(handle) {
                        Some(f) => pages.push(f),
                        None => {
                            return Err(Error::new(
                                Errno::EINVAL,
                                "mmap_action_map_kernel_pages: a page that alloc_page did not return",
                            ));
                        }
                    }
                }
                desc.mmap_action_map_kernel_pages(VirtAddr(io.a_start), pages);
            }
            _ => return Err(Error::new(Errno::EINVAL, "the C driver set an unknown action type")),
        }
        desc.set_page_prot(final_prot);

        if io.success_hook != 0 {
            let (lib, hook, cfile, ops) = (self.lib.clone(), io.success_hook, self.cfile, io.vm_ops);
            desc.set_success_hook(Arc::new(move |new: &mut NewVma<'_>| {
                let mut vio = vma_io(new.vma(), cfile, ops);
                // SAFETY: hook is the driver's success_hook function pointer, from this library.
                let ret = lib.call(-EFAULT, |s| unsafe { (s.success_hook)(hook, &mut vio) });
                c_result(ret, "the C driver's success_hook failed")
            }));
        }
        if io.error_hook != 0 {
            let (lib, hook) = (self.lib.clone(), io.error_hook);
            desc.set_error_hook(Arc::new(move |e: Errno| {
                // SAFETY: hook is the driver's error_hook function pointer, from this library.
                let ret = lib.call(-e.raw(), |s| unsafe { (s.error_hook)(hook, -e.raw()) });
                Errno::from_raw(ret.checked_neg().unwrap_or(0)).unwrap_or(e)
            }));
        } else if io.error_override != 0 {
            let raw = (io.error_override as i64).unsigned_abs() as i32;
            if let Some(to) = Errno::from_raw(raw) {
                desc.set_error_hook(Arc::new(move |_| to));
            }
        }
        Ok(())
    }
}

/// A VMA as the shim takes it.
fn vma_io(vma: &Vma, cfile: u64, ops: u64) -> VmaIo {
    VmaIo {
        start: vma.start().get(),
        end: vma.end().get(),
        pgoff: vma.pgoff().get(),
        flags: flags_to_c(vma.flags()),
        prot: prot_to_c(vma.page_prot()),
        file: if vma.file().is_some() { cfile } else { 0 },
        private_data: private_to_c(vma.private_data()),
        vm_ops: ops,
    }
}

/// A driver's `struct vm_operations_struct`.
pub(crate) struct CVmOps {
    lib: Arc<Library>,
    ops: u64,
    cfile: u64,
    name: &'static str,
    hooks: VmHooks,
}

impl CVmOps {
    fn new(lib: Arc<Library>, ops: u64, cfile: u64) -> CVmOps {
        // SAFETY: ops is the vm_operations_struct pointer the driver stored in desc->vm_ops;
        // the shim only reads its members.
        let (hooks, name) = lib.call((0, None), |s| unsafe {
            ((s.vm_hooks)(ops), intern_c((s.vm_ops_name)(ops)))
        });
        CVmOps {
            lib,
            ops,
            cfile,
            name: name.unwrap_or("vm_ops"),
            hooks: VmHooks(hooks),
        }
    }

    fn io(&self, vma: &Vma) -> VmaIo {
        vma_io(vma, self.cfile, self.ops)
    }

    /// Calls fault (0), page_mkwrite (1) or pfn_mkwrite (2).
    fn fault_kind(&self, vmf: &mut VmFault<'_>, kind: i32) -> FaultResult {
        let mut io = self.io(vmf.vma());
        let address = vmf.vma().start().get() + ((vmf.pgoff().get() - vmf.vma().pgoff().get()) << 12);
        let mut page = 0u64;
        // SAFETY: io and page are valid for the call; the shim calls the hook the presence mask
        // says is non-NULL.
        let ret = self.lib.call(VM_FAULT_SIGBUS, |s| unsafe {
            (s.vm_fault)(
                &mut io,
                kind,
                vmf.pgoff().get(),
                address,
                i32::from(vmf.is_write()),
                &mut page,
            )
        });
        if ret & VM_FAULT_OOM != 0 {
            return FaultResult::Oom;
        }
        if ret & VM_FAULT_SIGBUS != 0 {
            return FaultResult::Sigbus;
        }
        if kind != 0 {
            return FaultResult::Ok;
        }
        match self.lib.runtime().take_page(page) {
            Some(frame) => {
                vmf.set_page(frame);
                FaultResult::Ok
            }
            None => FaultResult::Sigbus,
        }
    }
}

impl VmOperations for CVmOps {
    fn ops_name(&self) -> &'static str {
        self.name
    }
    fn open(&self) -> Option<&dyn VmOpen> {
        self.hooks.contains(VmHooks::OPEN).then_some(self as &dyn VmOpen)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        self.hooks.contains(VmHooks::CLOSE).then_some(self as &dyn VmClose)
    }
    fn mapped(&self) -> Option<&dyn VmMapped> {
        self.hooks.contains(VmHooks::MAPPED).then_some(self as &dyn VmMapped)
    }
    fn may_split(&self) -> Option<&dyn VmMaySplit> {
        self.hooks
            .contains(VmHooks::MAY_SPLIT)
            .then_some(self as &dyn VmMaySplit)
    }
    fn mremap(&self) -> Option<&dyn VmMremap> {
        self.hooks.contains(VmHooks::MREMAP).then_some(self as &dyn VmMremap)
    }
    fn name(&self) -> Option<&dyn VmName> {
        self.hooks.contains(VmHooks::NAME).then_some(self as &dyn VmName)
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        self.hooks
            .contains(VmHooks::FAULT)
            .then_some(self as &dyn VmFaultHandler)
    }
    fn page_mkwrite(&self) -> Option<&dyn VmPageMkwrite> {
        self.hooks
            .contains(VmHooks::PAGE_MKWRITE)
            .then_some(self as &dyn VmPageMkwrite)
    }
    fn pfn_mkwrite(&self) -> Option<&dyn VmPfnMkwrite> {
        self.hooks
            .contains(VmHooks::PFN_MKWRITE)
            .then_some(self as &dyn VmPfnMkwrite)
    }
    fn access(&self) -> Option<&dyn VmAccess> {
        self.hooks.contains(VmHooks::ACCESS).then_some(self as &dyn VmAccess)
    }
}

impl VmOpen for CVmOps {
    fn open(&self, vma: &Vma) {
        if self.hooks.contains(VmHooks::OPEN) {
            let mut io = self.io(vma);
            // SAFETY: open is non-NULL (the presence mask); io is valid for the call.
            self.lib.call((), |s| unsafe { (s.vm_open)(&mut io) });
        }
    }
}

impl VmClose for CVmOps {
    fn close(&self, vma: &Vma) {
        if self.hooks.contains(VmHooks::CLOSE) {
            let mut io = self.io(vma);
            // SAFETY: close is non-NULL (the presence mask); io is valid for the call.
            self.lib.call((), |s| unsafe { (s.vm_close)(&mut io) });
        }
    }
}

impl VmMapped for CVmOps {
    fn mapped(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        file: Option<&Arc<File>>,
        private: &mut Option<PrivateData>,
    ) -> Result<()> {
        if !self.hooks.contains(VmHooks::MAPPED) {
            return Ok(());
        }
        let mut p = private_to_c(private.as_ref());
        let cfile = if file.is_some() { self.cfile } else { 0 };
        // SAFETY: mapped is non-NULL (the presence mask); p is valid for the call.
        let ret = self.lib.call(-EFAULT, |s| unsafe {
            (s.vm_mapped)(self.ops, start.get(), end.get(), pgoff.get(), cfile, &mut p)
        });
        c_result(ret, "the C driver's vm_ops->mapped failed")?;
        *private = private_from_c(p);
        Ok(())
    }
}

impl VmMaySplit for CVmOps {
    fn may_split(&self, vma: &Vma, addr: VirtAddr) -> Result<()> {
        if !self.hooks.contains(VmHooks::MAY_SPLIT) {
            return Ok(());
        }
        let mut io = self.io(vma);
        // SAFETY: may_split is non-NULL (the presence mask); io is valid for the call.
        let ret = self.lib.call(0, |s| unsafe { (s.vm_may_split)(&mut io, addr.get()) });
        c_result(ret, "the C driver's vm_ops->may_split refused")
    }
}

impl VmMremap for CVmOps {
    fn mremap(&self, new_vma: &Vma) -> Result<()> {
        if !self.hooks.contains(VmHooks::MREMAP) {
            return Ok(());
        }
        let mut io = self.io(new_vma);
        // SAFETY: mremap is non-NULL (the presence mask); io is valid for the call.
        let ret = self.lib.call(0, |s| unsafe { (s.vm_mremap)(&mut io) });
        c_result(ret, "the C driver's vm_ops->mremap refused")
    }
}

impl VmName for CVmOps {
    fn vma_name(&self, vma: &Vma) -> Option<&'static str> {
        if !self.hooks.contains(VmHooks::NAME) {
            return None;
        }
        let mut io = self.io(vma);
        // SAFETY: name is non-NULL (the presence mask); the string it returns is the driver's,
        // read before the call lock is released.
        self.lib.call(None, |s| unsafe { intern_c((s.vm_name)(&mut io)) })
    }
}

impl VmFaultHandler for CVmOps {
    fn fault(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        if !self.hooks.contains(VmHooks::FAULT) {
            return FaultResult::Sigbus;
        }
        self.fault_kind(vmf, 0)
    }
}

impl VmPageMkwrite for CVmOps {
    fn page_mkwrite(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        if !self.hooks.contains(VmHooks::PAGE_MKWRITE) {
            return FaultResult::Ok;
        }
        self.fault_kind(vmf, 1)
    }
}

impl VmPfnMkwrite for CVmOps {
    fn pfn_mkwrite(&self, vmf: &mut VmFault<'_>) -> FaultResult {
        if !self.hooks.contains(VmHooks::PFN_MKWRITE) {
            return FaultResult::Ok;
        }
        self.fault_kind(vmf, 2)
    }
}

impl VmAccess for CVmOps {
    fn access(&self, vma: &Vma, addr: VirtAddr, buf: &mut [u8], write: bool) -> Result<usize> {
        if !self.hooks.contains(VmHooks::ACCESS) {
            return Ok(0);
        }
        let mut io = self.io(vma);
        let len = i32::try_from(buf.len()).unwrap_or(i32::MAX);
        // SAFETY: access is non-NULL (the presence mask); buf is valid for len bytes and only
        // used by the driver during the call.
        let ret = self.lib.call(-EFAULT, |s| unsafe {
            (s.vm_access)(&mut io, addr.get(), buf.as_mut_ptr().cast(), len, i32::from(write))
        });
        c_result(ret, "the C driver's vm_ops->access failed")?;
        Ok(usize::try_from(ret).unwrap_or(0).min(buf.len()))
    }
}

thread_local! {
    /// The VMA a legacy `->mmap` on this thread is setting up, while it runs.
    static LEGACY: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs `f` with `vma` reachable from the driver's `remap_pfn_range` / `vm_insert_page`.
fn with_legacy<R>(vma: &mut LegacyVma<'_>, f: impl FnOnce() -> R) -> R {
    let previous = LEGACY.with(|l| l.replace(vma as *mut LegacyVma<'_> as *mut c_void));
    let r = f();
    LEGACY.with(|l| l.set(previous));
    r
}

/// Sets exactly `flags` on a legacy VMA.
fn apply_flags(vma: &mut LegacyVma<'_>, flags: VmaFlags) {
    let old = vma.vma().flags();
    vma.clear_flags(old);
    vma.set_flags(flags);
}

/// Runs `f` on the legacy VMA being set up, with the driver's changes so far (`io`) applied
/// first and the harness's changes (flags, a private remap's pgoff) copied back after.
fn on_legacy(io: *mut VmaIo, f: impl FnOnce(&mut LegacyVma<'_>) -> Result<()>) -> c_int {
    let p = LEGACY.with(Cell::get);
    if p.is_null() || io.is_null() {
        // Called outside ->mmap (from mmap_prepare, say): the HOWTO's way is an action.
        return -(Errno::EINVAL.raw());
    }
    // SAFETY: `p` was set by `with_legacy` from a `&mut LegacyVma` that outlives the driver's
    // ->mmap call this callback runs inside, on this thread, and nothing else uses it meanwhile
    // (the Rust frame that holds it is waiting for that call). `io` is the shim's local.
    let (vma, io) = unsafe { (&mut *(p as *mut LegacyVma<'_>), &mut *io) };
    apply_flags(vma, flags_from_c(io.flags));
    vma.set_pgoff(PgOff(io.pgoff));
    let r = f(vma);
    io.flags = flags_to_c(vma.vma().flags());
    io.pgoff = vma.vma().pgoff().get();
    match r {
        Ok(()) => 0,
        Err(e) => -e.errno.raw(),
    }
}

pub(crate) extern "C" fn cb_legacy_remap(
    ctx: *mut c_void,
    io: *mut VmaIo,
    addr: u64,
    pfn: u64,
    size: u64,
    prot: u64,
) -> c_int {
    let _ = ctx;
    on_legacy(io, |vma| {
        let cache = prot_from_c(prot).cache;
        let now = vma.vma().page_prot();
        vma.set_page_prot(PageProt { cache, ..now });
        vma.remap_pfn_range(VirtAddr(addr), Pfn(pfn), size)
    })
}

pub(crate) extern "C" fn cb_legacy_insert_page(ctx: *mut c_void, io: *mut VmaIo, addr: u64, page: u64) -> c_int {
    // SAFETY: ctx comes from the library's own table.
    let rt = unsafe { crate::ffi::rt(ctx) };
    let Some(frame) = rt.page(page) else {
        return -(Errno::EINVAL.raw());
    };
    on_legacy(io, |vma| vma.vm_insert_page(VirtAddr(addr), frame))
}

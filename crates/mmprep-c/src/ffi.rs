//! The boundary with C: the plain structs both halves of the runtime agree on, the callbacks C
//! calls (parameters, printk, pages, simulated hardware), and a loaded driver library.
//!
//! Every call into the library goes through [`Library`], which holds a lock for the duration:
//! C driver code is written for the kernel's locking, not for two engine threads at once.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mmprep::events::{Event, EventSink};
use mmprep::file::Inode;
use mmprep::phys::{DeviceMemory, FrameRef, Machine};
use mmprep::{PAGE_SIZE, Pfn};
use mmprep_drivers::registry::Params;

/// `struct mmprep_desc_io` of `runtime/shim.c`.
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct DescIo {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub flags: [u64; 2],
    pub prot: u64,
    pub vm_file_changed: u64,
    pub vm_ops: u64,
    pub private_data: u64,
    pub kind: u64,
    pub a_start: u64,
    pub a_pfn: u64,
    pub a_size: u64,
    pub a_prot: u64,
    pub a_phys: u64,
    pub a_pages: u64,
    pub a_nr: u64,
    pub a_pgoff: u64,
    pub success_hook: u64,
    pub error_hook: u64,
    pub error_override: u64,
}

/// `struct mmprep_vma_io` of `runtime/shim.c`: a VMA as a hook gets it.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct VmaIo {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub flags: [u64; 2],
    pub prot: u64,
    pub file: u64,
    pub private_data: u64,
    pub vm_ops: u64,
}

/// `struct mmprep_rt` of `include/mmprep/runtime.h`.
#[repr(C)]
struct RtTable {
    ctx: *mut c_void,
    param_u64: extern "C" fn(*mut c_void, *const c_char, u64) -> u64,
    param_str: extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *const c_char,
    printk: extern "C" fn(*mut c_void, *const c_char, *const c_char),
    attach_device: extern "C" fn(*mut c_void, *const c_char, u64, u64, u64) -> c_int,
    alloc_page: extern "C" fn(*mut c_void) -> u64,
    put_page: extern "C" fn(*mut c_void, u64),
    get_page: extern "C" fn(*mut c_void, u64),
    filemap_page: extern "C" fn(*mut c_void, u64) -> u64,
    register_ram: extern "C" fn(*mut c_void, *mut c_void, u64) -> u64,
    phys_access: extern "C" fn(*mut c_void, u64, *mut c_void, u64, c_int) -> c_int,
    page_copy: extern "C" fn(*mut c_void, u64, u64, *mut c_void, u64, c_int) -> c_int,
    guard_set: unsafe extern "C" fn(*mut c_void),
    crashed: extern "C" fn(*mut c_void, *const c_char),
    legacy_remap: extern "C" fn(*mut c_void, *mut VmaIo, u64, u64, u64, u64) -> c_int,
    legacy_insert_page: extern "C" fn(*mut c_void, *mut VmaIo, u64, u64) -> c_int,
    place_device: extern "C" fn(*mut c_void, *const c_char, u64, u64) -> u64,
}

/// What C's callbacks reach: one per loaded library.
pub(crate) struct Runtime {
    params: Params,
    /// `mmprep_param_str` results, alive as long as the library.
    strings: Mutex<Vec<CString>>,
    sink: EventSink,
    machine: Arc<Machine>,
    /// Kernel pages handed to C as `struct page *` handles, with their reference counts.
    pages: Mutex<BTreeMap<u64, (FrameRef, u32)>>,
    next_page: AtomicU64,
    /// The inode of the open file (its page cache, for `filemap_fault`).
    inode: OnceLock<Arc<Inode>>,
    /// The driver file's name, for messages.
    name: String,
    /// How the driver crashed, once it has: it is not called again.
    crash: OnceLock<String>,
}

impl Runtime {
    /// The frame behind a `struct page *` handle.
    pub(crate) fn page(&self, handle: u64) -> Option<FrameRef> {
        self.pages.lock().ok()?.get(&handle).map(|(f, _)| f.clone())
    }

    /// A new handle on `frame`, holding one reference.
    fn add_page(&self, frame: FrameRef) -> u64 {
        // Handles are small odd numbers: never a real pointer, never NULL.
        let handle = self.next_page.fetch_add(2, Ordering::Relaxed);
        if let Ok(mut p) = self.pages.lock() {
            p.insert(handle, (frame, 1));
        }
        handle
    }

    /// `put_page`: drops one reference; the handle goes with the last.
    fn put_page(&self, handle: u64) {
        if let Ok(mut p) = self.pages.lock()
            && let Some((_, refs)) = p.get_mut(&handle)
        {
            *refs -= 1;
            if *refs == 0 {
                p.remove(&handle);
            }
        }
    }

    /// A fault handler's `vmf->page`: the frame, and the reference it carried is the mapping's
    /// now.
    pub(crate) fn take_page(&self, handle: u64) -> Option<FrameRef> {
        let frame = self.page(handle)?;
        self.put_page(handle);
        Some(frame)
    }

    /// How the driver crashed, if it has (`crashed in mmap_prepare: SIGSEGV at address 0x0`).
    pub(crate) fn crash(&self) -> Option<&str> {
        self.crash.get().map(String::as_str)
    }

    /// Sets the open file's inode (once, right after `f_op->open`).
    pub(crate) fn set_inode(&self, inode: Arc<Inode>) {
        let _ = self.inode.set(inode);
    }

    /// Logs a message in the scenario's `events`.
    pub(crate) fn log(&self, level: &'static str, text: String) {
        self.sink.push(Event::Printk { level, text });
    }
}

/// Reads a C string the driver passed (invalid UTF-8 is replaced).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string alive for the call.
unsafe fn c_str<'a>(p: *const c_char) -> Option<std::borrow::Cow<'a, str>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a NUL-terminated string that outlives this call.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy())
}

/// The runtime behind a callback's `ctx`.
///
/// # Safety
/// `ctx` is the pointer [`Library::load`] put in the table: a `Runtime` the library keeps alive.
pub(crate) unsafe fn rt<'a>(ctx: *mut c_void) -> &'a Runtime {
    // SAFETY: the table's ctx is `Arc::as_ptr` of the Runtime that the Library (and so every
    // caller into C) holds, and it is only read through shared references.
    unsafe { &*(ctx as *const Runtime) }
}

extern "C" fn cb_param_u64(ctx: *mut c_void, key: *const c_char, def: u64) -> u64 {
    // SAFETY: ctx comes from our own table; key is a C string from the driver.
    let (rt, key) = unsafe { (rt(ctx), c_str(key)) };
    let Some(key) = key else { return def };
    match rt.params.number(&key, def) {
        Ok(v) => v,
        Err(e) => {
            rt.log("rule", format!("mmprep_param_u64: {e}; using {def:#x}"));
            def
        }
    }
}

extern "C" fn cb_param_str(ctx: *mut c_void, key: *const c_char, def: *const c_char) -> *const c_char {
    // SAFETY: ctx comes from our own table; key is a C string from the driver.
    let (rt, key) = unsafe { (rt(ctx), c_str(key)) };
    let Some(value) = key.and_then(|k| rt.params.get(&k).map(str::to_string)) else {
        return def;
    };
    let Ok(c) = CString::new(value) else { return def };
    let p = c.as_ptr();
    // The CString's heap buffer does not move when the CString is moved into the vector.
    if let Ok(mut s) = rt.strings.lock() {
        s.push(c);
        p
    } else {
        def
    }
}

extern "C" fn cb_printk(ctx: *mut c_void, level: *const c_char, text: *const c_char) {
    // SAFETY: ctx comes from our own table; level and text are C strings from the shim.
    let (rt, level, text) = unsafe { (rt(ctx), c_str(level), c_str(text)) };
    let level = match level.as_deref() {
        Some("pr_emerg") => "pr_emerg",
        Some("pr_alert") => "pr_alert",
        Some("pr_crit") => "pr_crit",
        Some("pr_err") => "pr_err",
        Some("pr_warn") => "pr_warn",
        Some("pr_notice") => "pr_notice",
        Some("pr_debug") => "pr_debug",
        Some("WARN_ON") => "WARN_ON",
        Some("rule") => "rule",
        _ => "pr_info",
    };
    rt.log(level, text.map(|t| t.into_owned()).unwrap_or_default());
}

/// The simulated hardware `model` of `size` bytes (`arg`: the fill byte of `ram`).
fn device_model(model: Option<&str>, size: u64, arg: u64) -> Option<Arc<dyn DeviceMemory>> {
    let pages = size.div_ceil(PAGE_SIZE);
    match model {
        Some("hpet") => Some(Arc::new(mmprep_drivers::hpet::Registers::new())),
        Some("ram") => Some(Arc::new(mmprep_drivers::memory::MemoryRegion::new(
            pages * PAGE_SIZE,
            arg as u8,
        ))),
        _ => None,
    }
}

extern "C" fn cb_place_device(ctx: *mut c_void, model: *const c_char, size: u64, arg: u64) -> u64 {
    // SAFETY: ctx comes from our own table; model is a C string from the driver.
    let (rt, model) = unsafe { (rt(ctx), c_str(model)) };
    if size == 0 {
        return 0;
    }
    let Some(mem) = device_model(model.as_deref(), size, arg) else {
        return 0;
    };
    rt.machine.add_device(size.div_ceil(PAGE_SIZE), mem).get() * PAGE_SIZE
}

extern "C" fn cb_attach_device(ctx: *mut c_void, model: *const c_char, phys: u64, size: u64, arg: u64) -> c_int {
    const EBUSY: c_int = 16;
    // SAFETY: ctx comes from our own table; model is a C string from the driver.
    let (rt, model) = unsafe { (rt(ctx), c_str(model)) };
    if !phys.is_multiple_of(PAGE_SIZE) || size == 0 {
        return -EINVAL;
    }
    let pages = size.div_ceil(PAGE_SIZE);
    let Some(mem) = device_model(model.as_deref(), size, arg) else {
        return -EINVAL;
    };
    match rt.machine.add_device_at(Pfn(phys / PAGE_SIZE), pages, mem) {
        Some(_) => 0,
        None => -EBUSY,
    }
}

extern "C" fn cb_alloc_page(ctx: *mut c_void) -> u64 {
    // SAFETY: ctx comes from our own table.
    let rt = unsafe { rt(ctx) };
    match rt.machine.alloc_kernel_pages(1).pop() {
        Some(frame) => rt.add_page(frame),
        None => 0,
    }
}

extern "C" fn cb_put_page(ctx: *mut c_void, handle: u64) {
    // SAFETY: ctx comes from our own table.
    unsafe { rt(ctx) }.put_page(handle);
}

extern "C" fn cb_get_page(ctx: *mut c_void, handle: u64) {
    // SAFETY: ctx comes from our own table.
    let rt = unsafe { rt(ctx) };
    if let Ok(mut p) = rt.pages.lock()
        && let Some((_, refs)) = p.get_mut(&handle)
    {
        *refs += 1;
    }
}

/// `filemap_fault`'s page: the page-cache page `pgoff` of the open file, created zero-filled;
/// 0 (SIGBUS) at or past the end of the file.
extern "C" fn cb_filemap_page(ctx: *mut c_void, pgoff: u64) -> u64 {
    // SAFETY: ctx comes from our own table.
    let rt = unsafe { rt(ctx) };
    let Some(inode) = rt.inode.get() else { return 0 };
    if pgoff >= inode.size().div_ceil(PAGE_SIZE) {
        return 0;
    }
    rt.add_page(inode.find_or_create_page(pgoff, &rt.machine))
}

/// Memory from the driver's `kmalloc`, given physical pages by `virt_to_phys`.
struct DriverRam {
    base: usize,
    len: usize,
}

impl DriverRam {
    fn range(&self, offset: u64, len: usize) -> Option<usize> {
        let offset = usize::try_from(offset).ok()?;
        (offset.checked_add(len)? <= self.len).then_some(self.base + offset)
    }
}

impl DeviceMemory for DriverRam {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        match self.range(offset, buf.len()) {
            // SAFETY: [base, base + len) is a live allocation of the driver's kmalloc that the
            // shim never frees once it has physical pages (kfree keeps it), and the range
            // checked above lies inside it.
            Some(at) => unsafe { std::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) },
            None => buf.fill(0xff),
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if let Some(at) = self.range(offset, data.len()) {
            // SAFETY: as in `read`: a kept allocation, the range checked inside it.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) }
        }
    }
}

extern "C" fn cb_register_ram(ctx: *mut c_void, virt: *mut c_void, size: u64) -> u64 {
    // SAFETY: ctx comes from our own table.
    let rt = unsafe { rt(ctx) };
    let pages = size.div_ceil(PAGE_SIZE);
    let ram = DriverRam {
        base: virt as usize,
        len: (pages * PAGE_SIZE) as usize,
    };
    rt.machine.add_device(pages, Arc::new(ram)).get() * PAGE_SIZE
}

const EINVAL: c_int = 22;

/// A byte buffer of the driver's, as a slice.
///
/// # Safety
/// `buf` points at `len` bytes the driver owns and does not touch during the borrow.
unsafe fn driver_bytes<'a>(buf: *mut c_void, len: u64) -> Option<&'a mut [u8]> {
    let len = usize::try_from(len).ok()?;
    if buf.is_null() || len == 0 {
        return None;
    }
    // SAFETY: as the caller guarantees.
    Some(unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, len) })
}

/// `generic_access_phys`: LEN bytes at physical address PHYS (within one page).
extern "C" fn cb_phys_access(ctx: *mut c_void, phys: u64, buf: *mut c_void, len: u64, write: c_int) -> c_int {
    // SAFETY: ctx comes from our own table; the shim passes the driver's buffer of len bytes
    // (the ->access caller's), clamped to the page.
    let (rt, bytes) = unsafe { (rt(ctx), driver_bytes(buf, len)) };
    let Some(bytes) = bytes else { return 0 };
    let (pfn, offset) = (Pfn(phys / PAGE_SIZE), (phys % PAGE_SIZE) as usize);
    if offset + bytes.len() > PAGE_SIZE as usize {
        return -EINVAL;
    }
    if write != 0 {
        rt.machine.write_phys(pfn, offset, bytes);
    } else {
        rt.machine.read_phys(pfn, offset, bytes);
    }
    bytes.len() as c_int
}

/// `memcpy_to_page` / `memcpy_from_page` on a page handle.
extern "C" fn cb_page_copy(
    ctx: *mut c_void,
    page: u64,
    offset: u64,
    buf: *mut c_void,
    len: u64,
    write: c_int,
) -> c_int {
    // SAFETY: ctx comes from our own table; buf is the driver's buffer of len bytes.
    let (rt, bytes) = unsafe { (rt(ctx), driver_bytes(buf, len)) };
    let (Some(frame), Some(bytes)) = (rt.page(page), bytes) else {
        return -EINVAL;
    };
    let Ok(offset) = usize::try_from(offset) else {
        return -EINVAL;
    };
    if offset
        .checked_add(bytes.len())
        .is_none_or(|end| end > PAGE_SIZE as usize)
    {
        rt.log(
            "rule",
            format!(
                "a page copy of {} bytes at offset {offset} leaves the page",
                bytes.len()
            ),
        );
        return -EINVAL;
    }
    if write != 0 {
        frame.write(offset, bytes);
    } else {
        frame.read(offset, bytes);
    }
    0
}

/// The crash guard (`runtime/guard.c`): loaded once, never unloaded, its signal handlers
/// installed for the life of the process.
struct Guard {
    set: unsafe extern "C" fn(*mut c_void),
    last: unsafe extern "C" fn(*mut *mut c_void) -> c_int,
}

fn guard() -> Result<&'static Guard, String> {
    static GUARD: OnceLock<Result<Guard, String>> = OnceLock::new();
    GUARD
        .get_or_init(|| {
            let so = crate::compile::build_guard()?;
            // SAFETY: the library is runtime/guard.c, compiled by this crate; loading it runs no
            // code. It is leaked below: its handlers stay installed as long as the process.
            let lib =
                unsafe { libloading::Library::new(&so) }.map_err(|e| format!("cannot load the crash guard: {e}"))?;
            // SAFETY: guard.c defines these with exactly these signatures; the library is never
            // unloaded, so the pointers stay valid.
            let (install, set, last) = unsafe {
                let install: unsafe extern "C" fn() = *lib
                    .get(b"mmprep_guard_install\0")
                    .map_err(|e| format!("crash guard: {e}"))?;
                let set: unsafe extern "C" fn(*mut c_void) = *lib
                    .get(b"mmprep_guard_set\0")
                    .map_err(|e| format!("crash guard: {e}"))?;
                let last: unsafe extern "C" fn(*mut *mut c_void) -> c_int = *lib
                    .get(b"mmprep_guard_last\0")
                    .map_err(|e| format!("crash guard: {e}"))?;
                (install, set, last)
            };
            std::mem::forget(lib);
            // SAFETY: installs the guard's handlers, chaining to the ones there before (Rust's
            // stack-overflow handler): a fault outside driver code behaves as before.
            unsafe { install() };
            Ok(Guard { set, last })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn signal_name(sig: c_int) -> String {
    match sig {
        4 => "SIGILL (a trap: BUG() or an invalid instruction)".into(),
        7 => "SIGBUS".into(),
        8 => "SIGFPE".into(),
        11 => "SIGSEGV".into(),
        n => format!("signal {n}"),
    }
}

extern "C" fn cb_crashed(ctx: *mut c_void, hook: *const c_char) {
    // SAFETY: ctx comes from our own table; hook is a string literal of the shim.
    let (rt, hook) = unsafe { (rt(ctx), c_str(hook)) };
    let hook = hook.map(|h| h.into_owned()).unwrap_or_default();
    let mut address: *mut c_void = std::ptr::null_mut();
    let sig = match guard() {
        // SAFETY: reads this thread's last caught crash into `address`.
        Ok(g) => unsafe { (g.last)(&mut address) },
        Err(_) => 0,
    };
    // The event has no address, so that a transcript does not change from run to run.
    rt.log("crash", format!("in {hook}: {}", signal_name(sig)));
    let text = format!("in {hook}: {} at address {:#x}", signal_name(sig), address as usize);
    eprintln!(
        "mmprep: the C driver {} crashed {text}; it is not called again",
        rt.name
    );
    let _ = rt.crash.set(format!("crashed {text}"));
}

type Fn0<R> = unsafe extern "C" fn() -> R;

/// The shim's entry points, copied out of the library.
#[derive(Clone, Copy)]
pub(crate) struct Shim {
    pub fops_hooks: Fn0<u32>,
    pub fop_flags: Fn0<u32>,
    pub area_policy: Fn0<u32>,
    pub open: unsafe extern "C" fn(c_int, u64, *mut c_int, *mut u64, *mut u32) -> u64,
    pub mmap_prepare: unsafe extern "C" fn(u64, *mut DescIo) -> c_int,
    pub page_at: unsafe extern "C" fn(u64, u64) -> u64,
    pub vm_hooks: unsafe extern "C" fn(u64) -> u32,
    pub vm_ops_name: unsafe extern "C" fn(u64) -> *const c_char,
    pub vm_open: unsafe extern "C" fn(*mut VmaIo),
    pub vm_close: unsafe extern "C" fn(*mut VmaIo),
    pub vm_may_split: unsafe extern "C" fn(*mut VmaIo, u64) -> c_int,
    pub vm_mremap: unsafe extern "C" fn(*mut VmaIo) -> c_int,
    pub vm_name: unsafe extern "C" fn(*mut VmaIo) -> *const c_char,
    pub vm_mapped: unsafe extern "C" fn(u64, u64, u64, u64, u64, *mut u64) -> c_int,
    pub vm_fault: unsafe extern "C" fn(*mut VmaIo, c_int, u64, u64, c_int, *mut u64) -> u32,
    pub vm_access: unsafe extern "C" fn(*mut VmaIo, u64, *mut c_void, c_int, c_int) -> c_int,
    pub legacy_mmap: unsafe extern "C" fn(u64, *mut VmaIo) -> c_int,
    pub success_hook: unsafe extern "C" fn(u64, *mut VmaIo) -> c_int,
    pub error_hook: unsafe extern "C" fn(u64, c_int) -> c_int,
}

/// One loaded copy of a driver library, with its runtime.
pub(crate) struct Library {
    /// Serialises every call into C.
    lock: Mutex<()>,
    shim: Shim,
    // Dropped before the runtime: C code never runs after the library is gone.
    _lib: libloading::Library,
    runtime: Arc<Runtime>,
}

impl Library {
    /// Loads a private copy of `so` (each `file` line is a device of its own, with its own
    /// static state) and hands it its runtime.
    pub(crate) fn load(
        so: &Path,
        keep_copy: bool,
        name: &str,
        params: Params,
        sink: EventSink,
        machine: Arc<Machine>,
    ) -> Result<Library, String> {
        let guard = guard()?;
        static N: AtomicU64 = AtomicU64::new(0);
        let copy = so.with_file_name(format!(
            "instance-{}-{}.so",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::copy(so, &copy).map_err(|e| format!("cannot copy {}: {e}", so.display()))?;
        // SAFETY: the library is one this crate compiled from the driver and the shim; loading
        // runs no constructors beyond the C runtime's (and the sanitizers'). The copy is removed
        // once mapped, unless a sanitizer may need to read its symbols for a report.
        let lib = unsafe { libloading::Library::new(&copy) };
        if !keep_copy {
            let _ = std::fs::remove_file(&copy);
        }
        let lib = lib.map_err(|e| format!("cannot load the compiled driver: {e}"))?;

        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the shim defines this symbol with exactly the signature of the field
                // it is stored in (runtime/shim.c), and the pointer is used only while `lib` is
                // loaded (the Library owns both).
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("the compiled driver lacks {}: {e}", $name))?
            };
        }
        let shim = Shim {
            fops_hooks: sym!("mmprep_shim_fops_hooks"),
            fop_flags: sym!("mmprep_shim_fop_flags"),
            area_policy: sym!("mmprep_shim_area_policy"),
            open: sym!("mmprep_shim_open"),
            mmap_prepare: sym!("mmprep_shim_mmap_prepare"),
            page_at: sym!("mmprep_shim_page_at"),
            vm_hooks: sym!("mmprep_shim_vm_hooks"),
            vm_ops_name: sym!("mmprep_shim_vm_ops_name"),
            vm_open: sym!("mmprep_shim_vm_open"),
            vm_close: sym!("mmprep_shim_vm_close"),
            vm_may_split: sym!("mmprep_shim_vm_may_split"),
            vm_mremap: sym!("mmprep_shim_vm_mremap"),
            vm_name: sym!("mmprep_shim_vm_name"),
            vm_mapped: sym!("mmprep_shim_vm_mapped"),
            vm_fault: sym!("mmprep_shim_vm_fault"),
            vm_access: sym!("mmprep_shim_vm_access"),
            legacy_mmap: sym!("mmprep_shim_legacy_mmap"),
            success_hook: sym!("mmprep_shim_success_hook"),
            error_hook: sym!("mmprep_shim_error_hook"),
        };
        let init: unsafe extern "C" fn(*const RtTable) = sym!("mmprep_shim_init");

        let runtime = Arc::new(Runtime {
            params,
            strings: Mutex::new(Vec::new()),
            sink,
            machine,
            pages: Mutex::new(BTreeMap::new()),
            next_page: AtomicU64::new(1),
            inode: OnceLock::new(),
            name: name.to_string(),
            crash: OnceLock::new(),
        });
        let table = RtTable {
            ctx: Arc::as_ptr(&runtime) as *mut c_void,
            param_u64: cb_param_u64,
            param_str: cb_param_str,
            printk: cb_printk,
            attach_device: cb_attach_device,
            alloc_page: cb_alloc_page,
            put_page: cb_put_page,
            get_page: cb_get_page,
            filemap_page: cb_filemap_page,
            register_ram: cb_register_ram,
            phys_access: cb_phys_access,
            page_copy: cb_page_copy,
            guard_set: guard.set,
            crashed: cb_crashed,
            legacy_remap: crate::ops::cb_legacy_remap,
            legacy_insert_page: crate::ops::cb_legacy_insert_page,
            place_device: cb_place_device,
        };
        // SAFETY: mmprep_shim_init copies the table; ctx points at the Runtime this Library
        // keeps alive for as long as C code can run.
        unsafe { init(&table) };
        let start: unsafe extern "C" fn() -> c_int = sym!("mmprep_shim_start");
        // SAFETY: runs the driver's module_init (under the crash guard) with the runtime in place.
        let started = unsafe { start() };
        if let Some(crash) = runtime.crash() {
            return Err(format!("module_init {crash}"));
        }
        match started {
            0 => {}
            -19 => {
                return Err("no struct file_operations: the file defines none and module_init registered none".into());
            }
            e => {
                let name = mmprep::Errno::from_raw(-e).map_or_else(|| format!("{e}"), |e| format!("-{}", e.name()));
                return Err(format!("module_init failed: {name}"));
            }
        }
        Ok(Library {
            lock: Mutex::new(()),
            shim,
            _lib: lib,
            runtime,
        })
    }

    /// Runs `f` with the shim's entry points, holding the call lock; `dead` instead once the
    /// driver has crashed (its state cannot be trusted: it is not called again).
    pub(crate) fn call<R>(&self, dead: R, f: impl FnOnce(&Shim) -> R) -> R {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.runtime.crash().is_some() {
            return dead;
        }
        f(&self.shim)
    }

    /// The runtime.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

// SAFETY: the raw function pointers are only called through `call`, which serialises them; the
// library stays loaded as long as this value exists.
unsafe impl Send for Library {}
// SAFETY: as for Send.
unsafe impl Sync for Library {}

/// Interns a name for `&'static str` uses (events, `/proc/PID/maps`): each distinct name leaks
/// once per process.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// A C string from the shim as an interned name.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn intern_c(p: *const c_char) -> Option<&'static str> {
    // SAFETY: as the caller guarantees.
    unsafe { c_str(p) }.map(|s| intern(&s))
}

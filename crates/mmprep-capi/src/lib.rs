//! A C ABI for the mmprep engine, for emulators and sandboxes written in C or C++.
//!
//! One [`MmprepMm`] handle is one guest process as far as memory goes: its address space (an
//! [`mmprep::Mm`]) and its open descriptors (an [`mmprep::abi::FdTable`]), which the embedder
//! fills as its guest opens files. The header is `include/mmprep.h`, generated from this file
//! by cbindgen (checked in; `tests/header.rs` regenerates it and fails when it drifts): the doc
//! comments here, with each pointer's ownership, are its comments. `docs/c-api.md` is the
//! guide.
//!
//! # Conventions
//! Every entry returns an `int64_t`: `0` (or a length, or the Linux return value for
//! [`mmprep_syscall`]) on success, a negative errno on failure:
//!
//! | errno | meaning |
//! | --- | --- |
//! | `-EFAULT` (-14) | a pointer argument that must not be null is null; or a guest access faulted ([`mmprep_read`], [`mmprep_write`]) |
//! | `-EINVAL` (-22) | an argument is out of range: an unknown profile name, a negative descriptor, a name that is not UTF-8, bounds the engine refuses |
//! | `-ENOMEM` (-12) | the engine refused to allocate (a `fork` over the commit limit) |
//! | `-EIO` (-5) | the engine panicked during this call, or an earlier call on this handle: the handle is poisoned, only [`mmprep_free`] is still useful |
//!
//! No panic unwinds into C: every entry runs under [`std::panic::catch_unwind`]. A panic in the
//! middle of a call may have left the address space half changed, so the handle is marked
//! poisoned and refuses every later call with `-EIO`.
//!
//! # The backend
//! [`mmprep_set_backend`] gives a handle a table of callbacks ([`MmprepBackend`]); from then on
//! [`mmprep_syscall`] hands every call's host operations ([`mmprep::backend`]) to it, in order,
//! before it returns. `docs/backend.md` is the guide.

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use mmprep::abi::{self, FdTable, Outcome};
use mmprep::backend::{Backing, Conflict, HostMapping, HostOp, Planner, Sharing};
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::mm::MmBounds;
use mmprep::{Mm, PAGE_SIZE, Profile, Signal, VirtAddr};

/// `EIO`: the engine panicked (now or before) on this handle.
pub const EIO: i64 = 5;
/// `EBADF`.
pub const EBADF: i64 = 9;
/// `ENOMEM`.
pub const ENOMEM: i64 = 12;
/// `EFAULT`: a null pointer, or a guest access that faulted.
pub const EFAULT: i64 = 14;
/// `EINVAL`: an argument out of range.
pub const EINVAL: i64 = 22;
/// `EOPNOTSUPP`: a call the backend has no operations for (`MMPREP_BACKEND_UNSUPPORTED`).
pub const EOPNOTSUPP: i64 = 95;
/// `ENOSYS`: what [`mmprep_syscall`] returns for a call it does not answer when the caller
/// passed no status pointer.
pub const ENOSYS: i64 = 38;

/// [`mmprep_syscall`]'s status: the call ran on the engine, the return value is Linux's.
pub const MMPREP_RETURNED: i32 = 0;
/// A memory call the engine does not model (`mincore`, `pkey_alloc`...): nothing changed.
pub const MMPREP_NOT_MODELLED: i32 = 1;
/// Not a memory call at all (`getpid`): nothing changed; the embedder answers it.
pub const MMPREP_NOT_MEMORY: i32 = 2;
/// The call did not run: a bad handle, a poisoned handle, or a panic (the return value is
/// `-EFAULT` or `-EIO`, not the kernel's).
pub const MMPREP_API_ERROR: i32 = 3;
/// A backend is set and has no operations for this call (`MADV_REMOVE`, the guard advices):
/// the call did not run, nothing changed, the value is `-EOPNOTSUPP` (-95).
pub const MMPREP_BACKEND_UNSUPPORTED: i32 = 4;
/// The call ran on the model but a backend callback failed: the value is that callback's
/// `-errno`. The operations before it were done and the rest were not: the host is out of step
/// with the model (the handle itself stays usable).
pub const MMPREP_BACKEND_FAILED: i32 = 5;

/// [`MmprepBacking::kind`]: private anonymous memory (also a private `/dev/zero` mapping and
/// the special mappings such as `[vdso]`): reads zero until written.
pub const MMPREP_BACKING_ANON: i32 = 0;
/// [`MmprepBacking::kind`]: the pages of a file (`dev_major`, `dev_minor`, `ino`) from byte
/// `offset`; shared anonymous memory and memfds are shmem files.
pub const MMPREP_BACKING_FILE: i32 = 1;

/// [`MmprepFile::kind`]: a regular file on a disk filesystem (ext4's mapping rules).
pub const MMPREP_FILE_REGULAR: i32 = 0;
/// [`MmprepFile::kind`]: a tmpfs, `/dev/shm` or memfd file (shmem's rules).
pub const MMPREP_FILE_SHMEM: i32 = 1;
/// [`MmprepFile::kind`]: `/dev/zero`.
pub const MMPREP_FILE_DEV_ZERO: i32 = 2;
/// [`MmprepFile::kind`]: a descriptor that cannot be mapped (pipe, socket, directory):
/// `mmap` fails with `ENODEV`.
pub const MMPREP_FILE_NO_MMAP: i32 = 3;

/// An open file as the embedder describes it to [`mmprep_fd_file`]: what `fstat` and the open
/// flags of the guest's descriptor say.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmprepFile {
    /// `MMPREP_FILE_REGULAR`, `MMPREP_FILE_SHMEM`, `MMPREP_FILE_DEV_ZERO` or `MMPREP_FILE_NO_MMAP`.
    pub kind: i32,
    /// `major(st_dev)`.
    pub dev_major: u32,
    /// `minor(st_dev)`.
    pub dev_minor: u32,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// Open for reading (`O_RDONLY` or `O_RDWR`): 0 or 1.
    pub readable: u8,
    /// Open for writing (`O_WRONLY` or `O_RDWR`): 0 or 1.
    pub writable: u8,
    /// On a `noexec` mount: 0 or 1.
    pub noexec: u8,
    /// The path `/proc/PID/maps` prints for it; NUL-terminated UTF-8, or null for none. Copied:
    /// the caller keeps ownership.
    pub path: *const c_char,
}

/// What a host mapping shows before the guest writes to it (a [`mmprep::backend::Backing`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmprepBacking {
    /// `MMPREP_BACKING_ANON` or `MMPREP_BACKING_FILE`.
    pub kind: i32,
    /// For a file: 1 for `MAP_SHARED` (stores reach the file), 0 for `MAP_PRIVATE`.
    pub shared: i32,
    /// For a file: `major(st_dev)`.
    pub dev_major: u32,
    /// For a file: `minor(st_dev)`.
    pub dev_minor: u32,
    /// For a file: `st_ino`.
    pub ino: u64,
    /// For a file: the byte offset in the file at the operation's first address.
    pub offset: u64,
}

/// One guest piece of a host granule in a [`MmprepConflict`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmprepPiece {
    /// First guest address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// 1 if the guest has memory mapped there, 0 if nothing (then `prot` and `backing` are 0).
    pub mapped: i32,
    /// The protection the guest piece wants (`PROT_*`).
    pub prot: i32,
    /// The backing it wants, at `start`.
    pub backing: MmprepBacking,
}

/// A host granule whose guest pages want different things (a host page larger than the
/// guest's). The operations that follow apply the default policy, `prot` and `backing`; see
/// `docs/backend.md`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmprepConflict {
    /// First address of the granule.
    pub start: u64,
    /// One past its last.
    pub end: u64,
    /// The guest pieces, lowest first, covering the granule: `npieces` of them. Borrowed for
    /// the callback only: the library frees them when it returns.
    pub pieces: *const MmprepPiece,
    /// How many pieces.
    pub npieces: usize,
    /// The protection the operations give the granule (the union of the pieces').
    pub prot: i32,
    /// The backing they give it, at `start` (the lowest mapped piece's).
    pub backing: MmprepBacking,
}

/// The embedder's host memory, as callbacks. Every address is a guest address (the embedder
/// translates it to its host window); `len` is in bytes. A callback returns 0, or `-errno` if
/// the host refused (the call then ends with `MMPREP_BACKEND_FAILED`). Every callback but
/// `conflict` is required. A callback must not call into the library with the same handle.
///
/// Every operation but `zero` and `copy` covers whole host granules, as set by
/// [`mmprep_set_backend`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmprepBackend {
    /// Passed to every callback as it is. The library never reads or frees it; it must stay
    /// valid while the table is set on a handle.
    pub ctx: *mut c_void,
    /// Map `[start, start + len)` afresh with `prot` and `*backing`, replacing what was there
    /// in one step (`mmap(MAP_FIXED)`; never unmap first). `backing` is borrowed for the call.
    pub map: Option<
        unsafe extern "C" fn(ctx: *mut c_void, start: u64, len: u64, prot: i32, backing: *const MmprepBacking) -> i32,
    >,
    /// Unmap `[start, start + len)`.
    pub unmap: Option<unsafe extern "C" fn(ctx: *mut c_void, start: u64, len: u64) -> i32>,
    /// Change the protection of `[start, start + len)`, keeping its contents (`mprotect`).
    pub protect: Option<unsafe extern "C" fn(ctx: *mut c_void, start: u64, len: u64, prot: i32) -> i32>,
    /// Drop the private pages of `[start, start + len)` (`madvise(MADV_DONTNEED)`): private
    /// anonymous memory reads zero again, a private file mapping reads the file again.
    pub zap: Option<unsafe extern "C" fn(ctx: *mut c_void, start: u64, len: u64) -> i32>,
    /// Store zero in each byte of `[start, start + len)` whatever its protection (part of a
    /// granule that stays mapped: a new anonymous guest page in it).
    pub zero: Option<unsafe extern "C" fn(ctx: *mut c_void, start: u64, len: u64) -> i32>,
    /// Move the pages of `[from, from + len)` to `to` with their protection and contents,
    /// replacing what was there in one step (`mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`); the
    /// source is then unmapped, or, if `keep_source` is 1, stays mapped with its pages dropped
    /// (`MREMAP_DONTUNMAP`).
    pub mremap: Option<unsafe extern "C" fn(ctx: *mut c_void, from: u64, to: u64, len: u64, keep_source: i32) -> i32>,
    /// Copy the bytes of `[from, from + len)` to `to` whatever their protection (both are
    /// mapped): an `mremap` move the host cannot do on whole granules.
    pub copy: Option<unsafe extern "C" fn(ctx: *mut c_void, from: u64, to: u64, len: u64) -> i32>,
    /// Optional (may be null): learns of a conflicted granule before the call's operations.
    /// `*conflict` and its pieces are borrowed for the callback only.
    pub conflict: Option<unsafe extern "C" fn(ctx: *mut c_void, conflict: *const MmprepConflict)>,
}

/// One guest process's memory: an address space and its descriptor table. Opaque to C.
pub struct MmprepMm {
    mm: Mm,
    /// The embedder's host memory and the planner for its granule, once set.
    backend: Option<(MmprepBackend, Planner)>,
    fds: FdTable,
    /// One inode per (device, inode number), so that two opens of one file share a page cache.
    inodes: Vec<((u32, u32, u64), Arc<Inode>)>,
    /// A panic ran in the middle of a call: the state may be half changed.
    poisoned: bool,
}

impl MmprepMm {
    fn new(mm: Mm) -> MmprepMm {
        MmprepMm {
            mm,
            backend: None,
            fds: FdTable::new(),
            inodes: Vec::new(),
            poisoned: false,
        }
    }

    fn inode(&mut self, dev: DevId, ino: u64, kind: InodeKind, size: u64) -> Arc<Inode> {
        let key = (dev.major, dev.minor, ino);
        if let Some((_, i)) = self.inodes.iter().find(|(k, _)| *k == key) {
            i.set_size(size);
            return i.clone();
        }
        let i = Arc::new(Inode::new(dev, ino, kind, size));
        self.inodes.push((key, i.clone()));
        i
    }
}

/// The file operations of a descriptor that cannot be mapped (`ENODEV`).
struct NoMmap;

impl FileOperations for NoMmap {
    fn name(&self) -> &'static str {
        "no_mmap"
    }
}

/// Runs `f` on the handle behind `mm`, catching a panic (the handle is then poisoned).
/// `-EFAULT` for a null handle, `-EIO` for a poisoned one or a panic.
///
/// # Safety
/// `mm` is null or a live handle from [`mmprep_new`] or [`mmprep_fork`], not used by another
/// thread during the call.
unsafe fn with_mm(mm: *mut MmprepMm, f: impl FnOnce(&mut MmprepMm) -> i64) -> i64 {
    // SAFETY: the caller guarantees `mm` is null or a live, unaliased handle (see above).
    let Some(h) = (unsafe { mm.as_mut() }) else {
        return -EFAULT;
    };
    if h.poisoned {
        return -EIO;
    }
    match catch_unwind(AssertUnwindSafe(|| f(&mut *h))) {
        Ok(r) => r,
        Err(_) => {
            h.poisoned = true;
            -EIO
        }
    }
}

/// Runs `f`, turning a panic into `-EIO`.
fn guarded(f: impl FnOnce() -> i64) -> i64 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(-EIO)
}

/// The profile of a name: `"x86_64"` is the reference host's.
fn profile_named(name: &str) -> Option<Profile> {
    match name {
        "x86_64" => Some(Profile::reference_host()),
        _ => None,
    }
}

/// A NUL-terminated UTF-8 string, or `None` if it is not UTF-8.
///
/// # Safety
/// `s` is non-null and points to a NUL-terminated string.
unsafe fn utf8<'a>(s: *const c_char) -> Option<&'a str> {
    // SAFETY: the caller guarantees `s` is a valid NUL-terminated string.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

/// Creates an empty address space for the profile `profile` (`"x86_64"`: the x86_64 reference
/// host, 4K pages, 47-bit) and stores the new handle in `*out`.
///
/// Returns 0, `-EFAULT` (a null pointer), `-EINVAL` (an unknown profile name) or `-EIO`.
///
/// # Safety
/// `profile` is a NUL-terminated string; `out` points to writable storage for a pointer. The
/// handle belongs to the caller, who frees it with [`mmprep_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_new(profile: *const c_char, out: *mut *mut MmprepMm) -> i64 {
    if profile.is_null() || out.is_null() {
        return -EFAULT;
    }
    guarded(|| {
        // SAFETY: `profile` is non-null and NUL-terminated (the caller's contract).
        let Some(p) = (unsafe { utf8(profile) }).and_then(profile_named) else {
            return -EINVAL;
        };
        let h = Box::into_raw(Box::new(MmprepMm::new(Mm::new(p))));
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(h) };
        0
    })
}

/// Frees a handle from [`mmprep_new`] or [`mmprep_fork`], with its descriptor table. Null is
/// accepted and does nothing. A poisoned handle is freed too.
///
/// # Safety
/// `mm` is null or a live handle not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_free(mm: *mut MmprepMm) {
    if mm.is_null() {
        return;
    }
    // SAFETY: `mm` came from Box::into_raw in mmprep_new or mmprep_fork and is freed once.
    let h = unsafe { Box::from_raw(mm) };
    // Dropping the engine's state could panic only on a bug; never unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(h)));
}

/// Runs system call `nr` with the argument registers `a0`..`a5` (`rdi`, `rsi`, `rdx`, `r10`,
/// `r8`, `r9`) on the address space, as the x86_64 kernel would (`mmprep::abi::syscall`).
///
/// `*status` (if `status` is not null) says what the return value is:
/// - `MMPREP_RETURNED`: the call ran; the value is what Linux leaves in `rax`, an address or
///   `0`, or `-errno` (-4095..-1);
/// - `MMPREP_NOT_MODELLED`: a memory call the engine lacks (`mincore`...); nothing changed,
///   the value is `-ENOSYS` (not a kernel answer: the kernel has these calls);
/// - `MMPREP_NOT_MEMORY`: not a memory call; nothing changed, the value is `-ENOSYS`;
/// - `MMPREP_API_ERROR`: the call did not run (null or poisoned handle, or a panic):
///   `-EFAULT` or `-EIO`;
/// - with a backend set ([`mmprep_set_backend`]): `MMPREP_BACKEND_UNSUPPORTED` (the call did
///   not run: `-EOPNOTSUPP`), `MMPREP_BACKEND_FAILED` (a callback's `-errno`).
///
/// With a backend set, the call's host operations have been handed to it when this returns.
///
/// # Safety
/// `mm` is null or a live handle; `status` is null or points to a writable `int32_t`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mmprep_syscall(
    mm: *mut MmprepMm,
    nr: u64,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    status: *mut i32,
) -> i64 {
    let mut st = MMPREP_API_ERROR;
    let f = |h: &mut MmprepMm| {
        let regs = [a0, a1, a2, a3, a4, a5];
        let outcome = match &h.backend {
            None => abi::syscall(&mut h.mm, &h.fds, nr, regs),
            Some((table, planner)) => match planner.plan(&mut h.mm, &h.fds, nr, regs) {
                Err(_) => {
                    st = MMPREP_BACKEND_UNSUPPORTED;
                    return -EOPNOTSUPP;
                }
                Ok(plan) => {
                    for c in &plan.conflicts {
                        report_conflict(table, c);
                    }
                    for op in &plan.ops {
                        let r = apply(table, op);
                        if r != 0 {
                            st = MMPREP_BACKEND_FAILED;
                            return -i64::from(r.unsigned_abs());
                        }
                    }
                    plan.outcome
                }
            },
        };
        match outcome {
            Outcome::Return(v) => {
                st = MMPREP_RETURNED;
                v as i64
            }
            Outcome::NotModelled => {
                st = MMPREP_NOT_MODELLED;
                -ENOSYS
            }
            Outcome::NotMemory => {
                st = MMPREP_NOT_MEMORY;
                -ENOSYS
            }
        }
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    let r = unsafe { with_mm(mm, f) };
    if !status.is_null() {
        // SAFETY: `status` is non-null and writable (the caller's contract).
        unsafe { status.write(st) };
    }
    r
}

/// The C form of a backing.
fn c_backing(b: Backing) -> MmprepBacking {
    match b {
        Backing::Anon => MmprepBacking {
            kind: MMPREP_BACKING_ANON,
            shared: 0,
            dev_major: 0,
            dev_minor: 0,
            ino: 0,
            offset: 0,
        },
        Backing::File { file, offset, sharing } => MmprepBacking {
            kind: MMPREP_BACKING_FILE,
            shared: i32::from(sharing == Sharing::Shared),
            dev_major: file.dev.major,
            dev_minor: file.dev.minor,
            ino: file.ino,
            offset,
        },
    }
}

/// Protection bits as C's `int`.
fn c_prot(m: &HostMapping) -> i32 {
    m.prot.bits() as i32
}

/// Calls the table's conflict callback, if any.
fn report_conflict(t: &MmprepBackend, c: &Conflict) {
    let Some(cb) = t.conflict else { return };
    let pieces: Vec<MmprepPiece> = c
        .pieces
        .iter()
        .map(|p| {
            let (mapped, prot, backing) = match &p.want {
                Some(m) => (1, c_prot(m), c_backing(m.backing)),
                None => (0, 0, c_backing(Backing::Anon)),
            };
            MmprepPiece {
                start: p.start.get(),
                end: p.end.get(),
                mapped,
                prot,
                backing,
            }
        })
        .collect();
    let cc = MmprepConflict {
        start: c.start.get(),
        end: c.end.get(),
        pieces: pieces.as_ptr(),
        npieces: pieces.len(),
        prot: c_prot(&c.chosen),
        backing: c_backing(c.chosen.backing),
    };
    // SAFETY: the embedder registered `cb` with `ctx` (mmprep_set_backend's contract);
    // `cc` and `pieces` live until the callback returns.
    unsafe { cb(t.ctx, &cc) };
}

/// Hands one op to the table; its return value (0 or `-errno`).
fn apply(t: &MmprepBackend, op: &HostOp) -> i32 {
    // mmprep_set_backend checked that every callback but `conflict` is set.
    let missing = -(ENOSYS as i32);
    // SAFETY (every call below): the embedder registered these callbacks with `ctx`
    // (mmprep_set_backend's contract); the pointers passed live until they return.
    match *op {
        HostOp::Map {
            start,
            end,
            prot,
            backing,
        } => {
            let b = c_backing(backing);
            t.map.map_or(missing, |f| unsafe {
                f(t.ctx, start.get(), end.get() - start.get(), prot.bits() as i32, &b)
            })
        }
        HostOp::Unmap { start, end } => t
            .unmap
            .map_or(missing, |f| unsafe { f(t.ctx, start.get(), end.get() - start.get()) }),
        HostOp::Protect { start, end, prot } => t.protect.map_or(missing, |f| unsafe {
            f(t.ctx, start.get(), end.get() - start.get(), prot.bits() as i32)
        }),
        HostOp::Zap { start, end } => t
            .zap
            .map_or(missing, |f| unsafe { f(t.ctx, start.get(), end.get() - start.get()) }),
        HostOp::Zero { start, end } => t
            .zero
            .map_or(missing, |f| unsafe { f(t.ctx, start.get(), end.get() - start.get()) }),
        HostOp::Move {
            from,
            to,
            len,
            keep_source,
        } => t.mremap.map_or(missing, |f| unsafe {
            f(t.ctx, from.get(), to.get(), len, i32::from(keep_source))
        }),
        HostOp::Copy { from, to, len } => t
            .copy
            .map_or(missing, |f| unsafe { f(t.ctx, from.get(), to.get(), len) }),
    }
}

/// Sets the host memory that realises the handle's address space: from now on every
/// [`mmprep_syscall`] (and [`mmprep_syscall_check`]) on `mm` hands its host operations, in
/// order, to `*backend`'s callbacks before it returns. `granule` is the host's page size in
/// bytes (4096, 16384, 65536...; at least the guest's 4 KiB). A null `backend` removes the
/// table. A handle from [`mmprep_fork`] starts with none: the child's host memory is the
/// embedder's to set up.
///
/// Returns 0, `-EINVAL` (a required callback is null, or `granule` is not a power of two of
/// at least 4096), `-EFAULT` or `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle; `backend` is null or points to a readable
/// `struct mmprep_backend`, which is copied (the caller keeps it). Its callbacks and `ctx`
/// must stay valid while the table is set on the handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_set_backend(mm: *mut MmprepMm, backend: *const MmprepBackend, granule: u64) -> i64 {
    // SAFETY: `backend` is null or readable (the caller's contract).
    let table = unsafe { backend.as_ref() }.copied();
    let f = |h: &mut MmprepMm| {
        let Some(t) = table else {
            h.backend = None;
            return 0;
        };
        let complete = t.map.is_some()
            && t.unmap.is_some()
            && t.protect.is_some()
            && t.zap.is_some()
            && t.zero.is_some()
            && t.mremap.is_some()
            && t.copy.is_some();
        match Planner::new(PAGE_SIZE, granule) {
            Ok(p) if complete => {
                h.backend = Some((t, p));
                0
            }
            _ => -EINVAL,
        }
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Registers descriptor `fd` as the open file `file` describes (replacing what `fd` was, as
/// `dup2` does). Two registrations with the same device and inode share one inode (one page
/// cache); each registration is a new open file (`struct file`), so register once per guest
/// `open`, not once per `mmap`.
///
/// Returns 0, `-EFAULT`, `-EINVAL` (a negative `fd`, an unknown kind, a path that is not
/// UTF-8) or `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle; `file` is null or points to a readable `struct mmprep_file`
/// whose `path` is null or NUL-terminated. Nothing is kept of `file` after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_fd_file(mm: *mut MmprepMm, fd: i32, file: *const MmprepFile) -> i64 {
    if file.is_null() {
        return -EFAULT;
    }
    // SAFETY: `file` is non-null and readable (the caller's contract).
    let d = unsafe { file.read() };
    let path = if d.path.is_null() {
        Some("")
    } else {
        // SAFETY: a non-null `path` is NUL-terminated (the caller's contract).
        unsafe { utf8(d.path) }
    };
    let f = |h: &mut MmprepMm| {
        let (Ok(fd), Some(path)) = (u32::try_from(fd), path) else {
            return -EINVAL;
        };
        let ops: Arc<dyn FileOperations> = match d.kind {
            MMPREP_FILE_REGULAR => Arc::new(mmprep_drivers::regular::Ext4File),
            MMPREP_FILE_SHMEM => Arc::new(mmprep::shmem::ShmemFileOps),
            MMPREP_FILE_DEV_ZERO => Arc::new(mmprep_drivers::zero::DevZero),
            MMPREP_FILE_NO_MMAP => Arc::new(NoMmap),
            _ => return -EINVAL,
        };
        let kind = if d.kind == MMPREP_FILE_DEV_ZERO {
            InodeKind::CharDevice
        } else {
            InodeKind::Regular
        };
        let dev = DevId {
            major: d.dev_major,
            minor: d.dev_minor,
        };
        let inode = h.inode(dev, d.ino, kind, d.size);
        let mode = FileMode {
            read: d.readable != 0,
            write: d.writable != 0,
        };
        let f = File::new(inode, mode, ops, path.to_string(), d.noexec != 0);
        h.fds.insert(fd, f);
        0
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Registers descriptor `fd` as a new memfd (`memfd_create(name)` then `ftruncate(size)`):
/// shared memory of `size` bytes, open read-write, named `/memfd:NAME (deleted)` in the maps.
///
/// Returns 0, `-EFAULT`, `-EINVAL` (a negative `fd`, a name that is not UTF-8) or `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle; `name` is null (an empty name) or NUL-terminated, and is
/// copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_fd_memfd(mm: *mut MmprepMm, fd: i32, name: *const c_char, size: u64) -> i64 {
    let name = if name.is_null() {
        Some("")
    } else {
        // SAFETY: a non-null `name` is NUL-terminated (the caller's contract).
        unsafe { utf8(name) }
    };
    let f = |h: &mut MmprepMm| {
        let (Ok(fd), Some(name)) = (u32::try_from(fd), name) else {
            return -EINVAL;
        };
        let f = h.mm.shmem().memfd_create(name, size);
        h.fds.insert(fd, f);
        0
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Closes descriptor `fd` in the model's table (mappings of it stay, as after `close`).
/// Returns 0, `-EBADF` if it was not registered, `-EFAULT`, `-EINVAL` or `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_fd_close(mm: *mut MmprepMm, fd: i32) -> i64 {
    let f = |h: &mut MmprepMm| match u32::try_from(fd) {
        Ok(fd) => h.fds.remove(fd).map_or(-EBADF, |_| 0),
        Err(_) => -EINVAL,
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Sets the program's addresses, as the embedder's ELF loader decided them (what `execve`
/// leaves in `mm_struct`): the data segment, the start of the heap and the current break (for
/// `brk`), and the initial stack pointer (the VMA holding it is `[stack]`). Until this is
/// called `brk` answers 0 and refuses to move.
///
/// Returns 0, `-EINVAL` (an unaligned `start_brk`, `brk < start_brk`, `end_data <
/// start_data`, a value past `TASK_SIZE`), `-EFAULT` or `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_set_bounds(
    mm: *mut MmprepMm,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
) -> i64 {
    let b = MmBounds {
        start_data,
        end_data,
        start_brk,
        brk,
        start_stack,
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, |h| h.mm.set_bounds(b).map_or(-EINVAL, |()| 0)) }
}

/// Forks the address space and its descriptor table (`dup_mmap`: private memory becomes
/// copy-on-write, shared memory stays shared, `MADV_DONTFORK` ranges are left out) and stores
/// the child's new handle in `*child`.
///
/// Returns 0, `-ENOMEM` (the engine refused, as `fork` fails), `-EFAULT` or `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle; `child` points to writable storage for a pointer. The child
/// handle belongs to the caller (free it with [`mmprep_free`]); it is independent of the
/// parent, which may be freed first.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_fork(mm: *mut MmprepMm, child: *mut *mut MmprepMm) -> i64 {
    if child.is_null() {
        return -EFAULT;
    }
    let f = |h: &mut MmprepMm| match h.mm.fork() {
        Ok(c) => {
            let mut new = MmprepMm::new(c);
            new.fds = h.fds.clone();
            new.inodes = h.inodes.clone();
            // SAFETY: `child` is non-null and writable (the caller's contract).
            unsafe { child.write(Box::into_raw(Box::new(new))) };
            0
        }
        Err(_) => -ENOMEM,
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Writes the address space's `/proc/PID/maps` text into `buf`, as `snprintf` does: at most
/// `len - 1` bytes and a terminating NUL (nothing if `len` is 0; `buf` may then be null).
/// Returns the full text's length without the NUL: when it is `>= len` the text was cut, and a
/// second call with a buffer of the returned length + 1 gets all of it. `-EFAULT` for a null
/// handle, or a null `buf` with a nonzero `len`; `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle; `buf` is null (with `len == 0`) or points to `len` writable
/// bytes, which stay the caller's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_maps(mm: *mut MmprepMm, buf: *mut c_char, len: usize) -> i64 {
    if buf.is_null() && len != 0 {
        return -EFAULT;
    }
    let f = |h: &mut MmprepMm| {
        let text = h.mm.maps();
        if len > 0 {
            let n = text.len().min(len - 1);
            // SAFETY: `buf` points to `len` writable bytes and `n + 1 <= len`; the text
            // is a separate allocation, so the ranges do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        text.len() as i64
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Stores where an access stopped in the optional out-parameters.
fn report(done: Option<&mut usize>, signo: Option<&mut i32>, n: usize, sig: i32) {
    if let Some(d) = done {
        *d = n;
    }
    if let Some(s) = signo {
        *s = sig;
    }
}

/// The signal number of a fault (`SIGSEGV` 11, `SIGBUS` 7).
fn signo_of(s: Signal) -> i32 {
    match s {
        Signal::Segv => 11,
        Signal::Bus => 7,
    }
}

/// Reads `len` guest bytes at `addr` into `buf` as the guest's own loads would (lowest address
/// first, faulting pages in: never-written anonymous memory reads zero).
///
/// Returns 0, or `-EFAULT` when a page faults: `*done` (if not null) is then the number of
/// bytes read before it and `*signo` (if not null) the signal the guest would get (11
/// `SIGSEGV`, 7 `SIGBUS`); both are 0 after a full read. `-EFAULT` also for a null handle or a
/// null `buf` with a nonzero `len`; `-EIO`.
///
/// # Safety
/// `mm` is null or a live handle; `buf` points to `len` writable bytes (or is null with `len ==
/// 0`); `done` and `signo` are null or writable. `buf` stays the caller's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_read(
    mm: *mut MmprepMm,
    addr: u64,
    buf: *mut u8,
    len: usize,
    done: *mut usize,
    signo: *mut i32,
) -> i64 {
    if buf.is_null() && len != 0 {
        return -EFAULT;
    }
    // SAFETY: `done` and `signo` are null or writable, and not aliased (the caller's contract).
    let (done, signo) = unsafe { (done.as_mut(), signo.as_mut()) };
    let f = |h: &mut MmprepMm| {
        let mut tmp = vec![0u8; len];
        let r = h.mm.read(VirtAddr(addr), &mut tmp);
        let n = match r {
            Ok(()) => len,
            Err(f) => f.done,
        };
        if n > 0 {
            // SAFETY: `buf` has `len >= n` writable bytes; `tmp` is our own allocation.
            unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), buf, n) };
        }
        match r {
            Ok(()) => {
                report(done, signo, len, 0);
                0
            }
            Err(f) => {
                report(done, signo, f.done, signo_of(f.signal));
                -EFAULT
            }
        }
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// Writes `len` bytes from `buf` at guest address `addr` as the guest's own stores would
/// (copy-on-write after `fork`, a first write to private file memory copies the page).
///
/// Returns as [`mmprep_read`] does.
///
/// # Safety
/// `mm` is null or a live handle; `buf` points to `len` readable bytes (or is null with `len
/// == 0`); `done` and `signo` are null or writable. Nothing is kept of `buf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmprep_write(
    mm: *mut MmprepMm,
    addr: u64,
    buf: *const u8,
    len: usize,
    done: *mut usize,
    signo: *mut i32,
) -> i64 {
    if buf.is_null() && len != 0 {
        return -EFAULT;
    }
    // SAFETY: `done` and `signo` are null or writable, and not aliased (the caller's contract).
    let (done, signo) = unsafe { (done.as_mut(), signo.as_mut()) };
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: `buf` is non-null with `len` readable bytes (the caller's contract).
        unsafe { std::slice::from_raw_parts(buf, len) }
    };
    let f = |h: &mut MmprepMm| match h.mm.write(VirtAddr(addr), data) {
        Ok(()) => {
            report(done, signo, len, 0);
            0
        }
        Err(f) => {
            report(done, signo, f.done, signo_of(f.signal));
            -EFAULT
        }
    };
    // SAFETY: `mm` is null or a live handle (the caller's contract).
    unsafe { with_mm(mm, f) }
}

/// The checking mode: runs the call on the model as [`mmprep_syscall`] does, with the value
/// the host kernel returned for the same call in `host_ret`, and compares them. The model's
/// value goes to `*model_ret` and its status to `*status` (both optional).
///
/// Returns 0 when the model ran the call and agrees with the host, 1 when it ran and returned
/// something else (a divergence: both values are in hand), 2 when it did not answer
/// (`*status` is `MMPREP_NOT_MODELLED` or `MMPREP_NOT_MEMORY`: nothing to compare), or the
/// negative value of [`mmprep_syscall`]'s `MMPREP_API_ERROR`, `MMPREP_BACKEND_UNSUPPORTED` or
/// `MMPREP_BACKEND_FAILED`.
///
/// # Safety
/// As [`mmprep_syscall`]; `model_ret` is null or points to a writable `int64_t`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mmprep_syscall_check(
    mm: *mut MmprepMm,
    nr: u64,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    host_ret: i64,
    model_ret: *mut i64,
    status: *mut i32,
) -> i64 {
    let mut st = MMPREP_API_ERROR;
    // SAFETY: `mm` is null or a live handle, `st` is a local (the caller's contract).
    let r = unsafe { mmprep_syscall(mm, nr, a0, a1, a2, a3, a4, a5, &mut st) };
    if !model_ret.is_null() {
        // SAFETY: `model_ret` is non-null and writable (the caller's contract).
        unsafe { model_ret.write(r) };
    }
    if !status.is_null() {
        // SAFETY: `status` is non-null and writable (the caller's contract).
        unsafe { status.write(st) };
    }
    match st {
        MMPREP_RETURNED => i64::from(r != host_ret),
        MMPREP_API_ERROR | MMPREP_BACKEND_UNSUPPORTED | MMPREP_BACKEND_FAILED => r,
        _ => 2,
    }
}

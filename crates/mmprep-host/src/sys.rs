//! Thin, checked wrappers over the host system calls the runner makes.
//!
//! The memory-map calls go through rustix, whose `linux_raw` backend makes the system call
//! itself: no C-library wrapper checks or rewrites the scenario's arguments first (glibc's
//! `mmap`, for one, refuses an unaligned offset itself). Flags are built with
//! `from_bits_retain`, so unknown bits reach the kernel, and addresses are plain pointers, so
//! null, unaligned and out-of-range ones do too. A thin raw path ([`raw`]: `libc::syscall` with
//! libc's *named* numbers) stays for exactly the calls rustix's types cannot express unchanged:
//!
//! - `mmap` without a descriptor (`-1`) unless it is a plain anonymous map: rustix's `mmap`
//!   takes a `BorrowedFd`, which is never `-1`, and `mmap_anonymous` adds `MAP_ANONYMOUS` and
//!   passes offset 0, so a closed file's `mmap` (`-1`, no `MAP_ANONYMOUS`) would change;
//! - `madvise` with an advice rustix's `Advice` enum has no variant for;
//! - `mremap` with `MREMAP_DONTUNMAP` but not `MREMAP_FIXED`: rustix's `mremap` passes four
//!   arguments and `mremap_fixed` adds `MREMAP_FIXED`;
//! - `mseal`: rustix (1.1) has no `mseal`.
//!
//! Everything else here (pipes, `fork`, `waitpid`, descriptors) is plumbing for [`crate::run`].

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use libc::c_long;
use rustix::mm::{Advice, MapFlags, MlockFlags, MprotectFlags, MremapFlags, ProtFlags};

/// A system call's failure: the kernel's positive error number.
pub type RawErrno = i32;

/// A rustix error as the kernel's error number.
fn errno(e: rustix::io::Errno) -> RawErrno {
    e.raw_os_error()
}

/// An address of the scenario as the pointer the kernel receives.
fn ptr(addr: u64) -> *mut core::ffi::c_void {
    core::ptr::with_exposed_provenance_mut(addr as usize)
}

/// A returned address as the scenario's number.
fn addr_of(p: *mut core::ffi::c_void) -> u64 {
    p.expose_provenance() as u64
}

/// Calls system call `nr` with six arguments; `Ok` is the kernel's (non-negative) result.
///
/// # Safety
/// The call must not break the Rust program's own memory: the caller makes sure that no
/// mapping Rust relies on (code, stack, heap) is unmapped, moved or protected by it. The
/// scenario runner only names addresses inside its window, which holds nothing of Rust's.
unsafe fn raw(nr: c_long, args: [u64; 6]) -> Result<u64, RawErrno> {
    let [a, b, c, d, e, f] = args;
    // SAFETY: passing plain integers to the kernel; what the call does to memory is the
    // caller's promise (see `# Safety`).
    let ret = unsafe { libc::syscall(nr, a, b, c, d, e, f) };
    if ret == -1 { Err(last_errno()) } else { Ok(ret as u64) }
}

// Every memory call below shares one safety contract, that of [`raw`]: it must not unmap,
// move or protect memory the Rust program relies on.

/// `mmap(addr, len, prot, flags, fd, offset)`; `fd` `None` passes `-1`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn mmap(
    addr: u64,
    len: u64,
    prot: u32,
    flags: u32,
    fd: Option<BorrowedFd<'_>>,
    offset: u64,
) -> Result<u64, RawErrno> {
    let (p, len) = (ptr(addr), len as usize);
    let (prot_f, flags_f) = (ProtFlags::from_bits_retain(prot), MapFlags::from_bits_retain(flags));
    // SAFETY: the caller's promise (see `# Safety`).
    let result = unsafe {
        match fd {
            Some(fd) => rustix::mm::mmap(p, len, prot_f, flags_f, fd, offset),
            None if flags & libc::MAP_ANONYMOUS as u32 != 0 && offset == 0 => {
                // Adds MAP_ANONYMOUS (already set) and passes -1 and 0: the same arguments.
                rustix::mm::mmap_anonymous(p, len, prot_f, flags_f)
            }
            None => {
                let args = [addr, len as u64, prot.into(), flags.into(), -1i64 as u64, offset];
                return raw(libc::SYS_mmap, args);
            }
        }
    };
    result.map(addr_of).map_err(errno)
}

/// `munmap(addr, len)`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn munmap(addr: u64, len: u64) -> Result<(), RawErrno> {
    // SAFETY: the caller's promise.
    unsafe { rustix::mm::munmap(ptr(addr), len as usize) }.map_err(errno)
}

/// `mprotect(addr, len, prot)`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn mprotect(addr: u64, len: u64, prot: u32) -> Result<(), RawErrno> {
    let prot = MprotectFlags::from_bits_retain(prot);
    // SAFETY: the caller's promise.
    unsafe { rustix::mm::mprotect(ptr(addr), len as usize, prot) }.map_err(errno)
}

/// Every advice rustix names; anything else takes the raw path.
const ADVICES: [Advice; 24] = [
    Advice::Normal,
    Advice::Sequential,
    Advice::Random,
    Advice::WillNeed,
    Advice::LinuxDontNeed,
    Advice::LinuxFree,
    Advice::LinuxRemove,
    Advice::LinuxDontFork,
    Advice::LinuxDoFork,
    Advice::LinuxHwPoison,
    Advice::LinuxSoftOffline,
    Advice::LinuxMergeable,
    Advice::LinuxUnmergeable,
    Advice::LinuxHugepage,
    Advice::LinuxNoHugepage,
    Advice::LinuxDontDump,
    Advice::LinuxDoDump,
    Advice::LinuxWipeOnFork,
    Advice::LinuxKeepOnFork,
    Advice::LinuxCold,
    Advice::LinuxPageOut,
    Advice::LinuxPopulateRead,
    Advice::LinuxPopulateWrite,
    Advice::LinuxDontneedLocked,
];

/// `madvise(addr, len, advice)`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn madvise(addr: u64, len: u64, advice: u32) -> Result<(), RawErrno> {
    match ADVICES.iter().find(|a| **a as u32 == advice) {
        // SAFETY: the caller's promise.
        Some(&known) => unsafe { rustix::mm::madvise(ptr(addr), len as usize, known) }.map_err(errno),
        // SAFETY: the caller's promise.
        None => unsafe { raw(libc::SYS_madvise, [addr, len, advice.into(), 0, 0, 0]) }.map(drop),
    }
}

/// `mlock(addr, len)`.
///
/// # Safety
/// As for [`raw`] (locking changes no mapping, but rustix marks it unsafe).
pub unsafe fn mlock(addr: u64, len: u64) -> Result<(), RawErrno> {
    // SAFETY: the caller's promise.
    unsafe { rustix::mm::mlock(ptr(addr), len as usize) }.map_err(errno)
}

/// `mlock2(addr, len, flags)`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn mlock2(addr: u64, len: u64, flags: u32) -> Result<(), RawErrno> {
    let flags = MlockFlags::from_bits_retain(flags);
    // SAFETY: the caller's promise.
    unsafe { rustix::mm::mlock_with(ptr(addr), len as usize, flags) }.map_err(errno)
}

/// `munlock(addr, len)`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn munlock(addr: u64, len: u64) -> Result<(), RawErrno> {
    // SAFETY: the caller's promise.
    unsafe { rustix::mm::munlock(ptr(addr), len as usize) }.map_err(errno)
}

/// `mremap(addr, old_len, new_len, flags, new_addr)`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn mremap(addr: u64, old_len: u64, new_len: u64, flags: u32, new_addr: u64) -> Result<u64, RawErrno> {
    let fixed = libc::MREMAP_FIXED as u32;
    let dontunmap = libc::MREMAP_DONTUNMAP as u32;
    let (old_len, new_len) = (old_len as usize, new_len as usize);
    // SAFETY: the caller's promise.
    let result = unsafe {
        if flags & fixed != 0 {
            // rustix adds MREMAP_FIXED back: the same five arguments.
            let rest = MremapFlags::from_bits_retain(flags & !fixed);
            rustix::mm::mremap_fixed(ptr(addr), old_len, new_len, rest, ptr(new_addr))
        } else if flags & dontunmap == 0 && new_addr == 0 {
            // Without FIXED or DONTUNMAP the kernel never reads the fifth argument.
            rustix::mm::mremap(ptr(addr), old_len, new_len, MremapFlags::from_bits_retain(flags))
        } else {
            let args = [addr, old_len as u64, new_len as u64, flags.into(), new_addr, 0];
            return raw(libc::SYS_mremap, args);
        }
    };
    result.map(addr_of).map_err(errno)
}

/// `mseal(addr, len, 0)`: raw, rustix has no `mseal`.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn mseal(addr: u64, len: u64) -> Result<(), RawErrno> {
    // SAFETY: the caller's promise.
    unsafe { raw(libc::SYS_mseal, [addr, len, 0, 0, 0, 0]) }.map(drop)
}

/// The calling thread's `errno`.
pub fn last_errno() -> RawErrno {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A system error as text: `EINVAL (Invalid argument)`-style, via the standard library.
pub fn errno_text(errno: RawErrno) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// Writes all of `bytes` to `fd`, retrying short writes and `EINTR`.
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), RawErrno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
    Ok(())
}

/// Creates a pipe; both ends close on exec. Returns `(read end, write end)`.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), RawErrno> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(errno)
}

/// Closes every descriptor from 3 up except `keep`.
///
/// The runner child inherits whatever its parent had open, including pipes that other threads
/// of the parent (parallel tests) created; closing them makes the child's descriptor table the
/// same on every run and lets those pipes reach end-of-file when their own writers exit.
/// Through libc: rustix has no `close_range`.
pub fn close_all_but(keep: BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    let close_range = |first: u32, last: u32| {
        if first <= last {
            // SAFETY: closes descriptors only; the child owns no Rust object that uses them
            // (`keep` is outside the ranges).
            unsafe { libc::close_range(first, last, 0) };
        }
    };
    let keep = u32::try_from(keep.as_raw_fd()).unwrap_or(0);
    if keep > 3 {
        close_range(3, keep - 1);
    }
    close_range(keep.max(2) + 1, u32::MAX);
}

/// The outcome of `fork`.
pub enum Forked {
    /// In the child.
    Child,
    /// In the parent: the child's pid.
    Parent(rustix::process::Pid),
}

/// `fork(2)`, through the C library: rustix's `kernel_fork` skips glibc's fork handlers (the
/// malloc locks the child relies on) and lives in its unstable, hidden runtime module.
pub fn fork() -> Result<Forked, RawErrno> {
    // SAFETY: the child only runs code that is safe after fork in a multi-threaded process
    // (glibc's malloc is fork-safe; the runner takes no other lock) and ends with `_exit`.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno()),
        0 => {
            // No mapping of the allocator's own in a child: it would count in the maps of the
            // scenario the child runs (`huge_alloc` module doc).
            crate::huge_alloc::disable();
            Ok(Forked::Child)
        }
        pid => rustix::process::Pid::from_raw(pid)
            .map(Forked::Parent)
            .ok_or(libc::ECHILD),
    }
}

/// How a waited-for child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// `_exit(status)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Waits for child `pid` to end, retrying `EINTR`.
pub fn wait(pid: rustix::process::Pid) -> Result<ChildEnd, RawErrno> {
    use rustix::process::{WaitOptions, waitpid};
    let status = loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(errno(e)),
        }
    };
    Ok(match status.terminating_signal() {
        Some(signal) => ChildEnd::Signaled(signal),
        None => ChildEnd::Exited(status.exit_status().unwrap_or(0)),
    })
}

/// Ends the process at once: no destructors, no `atexit` handlers, no unwinding. A forked
/// runner child must never return into the code that forked it. Through libc: rustix's
/// `exit_group` lives in its unstable, hidden runtime module.
pub fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(status) }
}

/// The name of a signal number, for messages (`SIGSEGV`), or its number.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

/// `(major, minor)` of a device number, as `/proc/PID/maps` prints it (`fe:01`).
pub fn dev_major_minor(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Calls the kernel refuses for their arguments alone: each must reach it unchanged, on the
    // rustix path or the raw one, and bring its own errno back.
    #[test]
    fn invalid_arguments_reach_the_kernel() {
        let (read, private, anon, fixed) = (
            libc::PROT_READ as u32,
            libc::MAP_PRIVATE as u32,
            libc::MAP_ANONYMOUS as u32,
            libc::MAP_FIXED as u32,
        );
        // SAFETY: every call below fails before it touches any mapping.
        unsafe {
            // Raw path: no descriptor and no MAP_ANONYMOUS.
            assert_eq!(mmap(0, 4096, read, private, None, 0), Err(libc::EBADF));
            // rustix path: an unaligned fixed address.
            assert_eq!(mmap(1, 4096, read, private | anon | fixed, None, 0), Err(libc::EINVAL));
            // Unknown bits are kept (from_bits_retain), so the kernel refuses them.
            assert_eq!(mprotect(0, 4096, read | 0x4000_0000), Err(libc::EINVAL));
            assert_eq!(mlock2(0, 0, 0x80), Err(libc::EINVAL));
            assert_eq!(munmap(1, 4096), Err(libc::EINVAL));
            // Raw path: an advice rustix has no name for.
            assert_eq!(madvise(0, 4096, 12345), Err(libc::EINVAL));
            // Raw path: DONTUNMAP without FIXED.
            let flags = (libc::MREMAP_MAYMOVE | libc::MREMAP_DONTUNMAP) as u32;
            assert_eq!(mremap(1, 4096, 4096, flags, 0), Err(libc::EINVAL));
            // rustix path with FIXED: unaligned.
            let flags = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u32;
            assert_eq!(mremap(1, 4096, 4096, flags, 0x2000), Err(libc::EINVAL));
            // Raw path (rustix has no mseal); ENOSYS on kernels before 6.10.
            assert!(matches!(mseal(1, 4096), Err(libc::EINVAL | libc::ENOSYS)));
        }
    }

    /// A forked child maps no block of its own (`huge_alloc` module doc): without this, the
    /// runner child at `vm.max_map_count` died of a failed allocation.
    #[test]
    fn forked_children_allocate_from_the_heap() {
        use crate::huge_alloc::{HugePageAlloc, enabled};
        use std::alloc::{GlobalAlloc, Layout};
        assert!(enabled());
        let (old, new) = (Layout::from_size_align(4 << 20, 8).unwrap(), 16 << 20);
        // SAFETY: a non-zero-sized layout; freed below (and in the child, its own copy).
        let block = unsafe { HugePageAlloc.alloc(old) };
        assert!(crate::huge_alloc::is_mapped(block), "a mapped block");
        match fork().expect("fork") {
            Forked::Child => {
                // An inherited block that grows is copied to the heap, not remapped (a remap
                // may add a mapping).
                // SAFETY: the child's copy of `block`, with its layout.
                let grown = unsafe { HugePageAlloc.realloc(block, old, new) };
                let heap = !grown.is_null() && !crate::huge_alloc::is_mapped(grown);
                exit_now(if !enabled() && heap { 0 } else { 1 })
            }
            Forked::Parent(pid) => assert_eq!(wait(pid), Ok(ChildEnd::Exited(0))),
        }
        assert!(enabled(), "the parent keeps it");
        // SAFETY: allocated above with `old`.
        unsafe { HugePageAlloc.dealloc(block, old) };
    }
}

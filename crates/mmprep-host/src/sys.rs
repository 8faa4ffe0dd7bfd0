//! Thin, checked wrappers over the host system calls the runner makes.
//!
//! The memory-map calls go through `syscall(2)` with the scenario's arguments exactly as
//! written, so no C-library wrapper checks or rewrites them first (glibc's `mmap`, for one,
//! refuses an unaligned offset itself). glibc's `syscall` turns a kernel return in
//! `-4095..=-1` into `-1` plus `errno`; [`raw`] turns that back into the error number. Everything
//! else here (pipes, `fork`, `waitpid`, descriptors) is plumbing for [`crate::run`].

use std::io;

use libc::{c_int, c_long};

/// A system call's failure: the kernel's positive error number.
pub type RawErrno = i32;

/// `mseal(2)` on x86_64 (`arch/x86/entry/syscalls/syscall_64.tbl`, \[H\] 6.18).
pub const SYS_MSEAL: c_long = 462;

/// Calls system call `nr` with six arguments; `Ok` is the kernel's (non-negative) result.
///
/// # Safety
/// The call must not break the Rust program's own memory: the caller makes sure that no
/// mapping Rust relies on (code, stack, heap) is unmapped, moved or protected by it. The
/// scenario runner only names addresses inside its window, which holds nothing of Rust's.
pub unsafe fn raw(nr: c_long, args: [u64; 6]) -> Result<u64, RawErrno> {
    let [a, b, c, d, e, f] = args;
    // SAFETY: passing plain integers to the kernel; what the call does to memory is the
    // caller's promise (see `# Safety`).
    let ret = unsafe { libc::syscall(nr, a, b, c, d, e, f) };
    if ret == -1 { Err(last_errno()) } else { Ok(ret as u64) }
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
pub fn write_all(fd: c_int, mut bytes: &[u8]) -> Result<(), RawErrno> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid, initialised buffer of `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let errno = last_errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(errno);
        }
        bytes = bytes.get(n as usize..).unwrap_or_default();
    }
    Ok(())
}

/// Creates a pipe; both ends close on exec. Returns `(read end, write end)`.
pub fn pipe() -> Result<(c_int, c_int), RawErrno> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 stores.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_errno());
    }
    Ok((fds[0], fds[1]))
}

/// Closes `fd`, ignoring errors (there is nothing useful to do about them here).
pub fn close(fd: c_int) {
    // SAFETY: closing a descriptor this module handed out and nobody else owns.
    unsafe { libc::close(fd) };
}

/// Closes every descriptor from 3 up except `keep`.
///
/// The runner child inherits whatever its parent had open, including pipes that other threads
/// of the parent (parallel tests) created; closing them makes the child's descriptor table the
/// same on every run and lets those pipes reach end-of-file when their own writers exit.
pub fn close_all_but(keep: c_int) {
    // Arguments to the variadic `syscall` are passed as 64-bit values: the kernel reads whole
    // registers.
    let close_range = |first: u64, last: u64| {
        if first <= last {
            // SAFETY: closes descriptors only; the child owns no Rust object that uses them.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u64) };
        }
    };
    let keep = u64::try_from(keep).unwrap_or(0);
    if keep > 3 {
        close_range(3, keep - 1);
    }
    close_range(keep.max(2) + 1, u64::from(u32::MAX));
}

/// The outcome of `fork`.
pub enum Forked {
    /// In the child.
    Child,
    /// In the parent: the child's pid.
    Parent(libc::pid_t),
}

/// `fork(2)`.
pub fn fork() -> Result<Forked, RawErrno> {
    // SAFETY: the child only runs code that is safe after fork in a multi-threaded process
    // (glibc's malloc is fork-safe; the runner takes no other lock) and ends with `_exit`.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
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
pub fn wait(pid: libc::pid_t) -> Result<ChildEnd, RawErrno> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid place for waitpid to store the status.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let errno = last_errno();
        if errno != libc::EINTR {
            return Err(errno);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(ChildEnd::Signaled(libc::WTERMSIG(status)))
    } else {
        Ok(ChildEnd::Exited(libc::WEXITSTATUS(status)))
    }
}

/// Ends the process at once: no destructors, no `atexit` handlers, no unwinding. A forked
/// runner child must never return into the code that forked it.
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
    (libc::major(dev), libc::minor(dev))
}

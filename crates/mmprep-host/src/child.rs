//! The runner child: runs a script's steps with real system calls and writes the transcript.
//!
//! [`crate::run`] forks; the child calls [`main`], which never returns. It checks that the
//! window `[W, W + window)` is free, installs the fault probes ([`crate::probe`]), then runs
//! the steps in order. Each result is printed with
//! [`format_step`](mmprep_scenario::format_step) and written straight to the pipe with
//! `write(2)`: no buffering, so a `fork` step cannot duplicate unwritten output, and the lines of
//! a forked child reach the same reader.
//!
//! The child says how the run ended through its exit status ([`EXIT_FINISHED`] and friends, the
//! CLI's statuses). A runner failure (a file it could not create, an errno mmprep does not know)
//! also sends one line starting with [`FAILURE_PREFIX`], which carries the message; transcript
//! lines start with `L` or two spaces, so the parent tells them apart. Before the first step it
//! sends one [`VMAS_PREFIX`] line: how many VMAs the child itself has then, outside the window.
//! Those count against `vm.max_map_count` with the scenario's, and the child has a few more
//! than the process that forked it (the room it reserves to read maps at the limit), so the
//! engine side of a diff takes this number as its `unmodelled_map_count`.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use mmprep::Errno;
use mmprep_scenario::format_step;
use mmprep_scenario::script::{Access, FileArg, FileId, FileKind, MmapAddr, Op, Script, Step, page_chunks};
use mmprep_scenario::transcript::{Fault, MapsEntry, Outcome, push_run};

use crate::probe;
use crate::procfs::{self, ProcVma};
use crate::sys::{self, ChildEnd, Forked};

/// Every step ran.
pub const EXIT_FINISHED: i32 = 0;
/// The runner failed; the message came as a [`FAILURE_PREFIX`] line.
pub const EXIT_FAILED: i32 = 1;
/// The steps before the script's parse error ran.
pub const EXIT_PARSE_ERROR: i32 = 2;
/// Something is already mapped in the window; nothing ran.
pub const EXIT_WINDOW_TAKEN: i32 = 4;

/// Starts the line that reports a runner failure.
pub const FAILURE_PREFIX: &str = "!runner-failed ";
/// Starts the line that reports the child's own VMAs when the steps begin.
pub const VMAS_PREFIX: &str = "!runner-vmas ";

/// Runs `script` in this (freshly forked) process, writing the transcript to `out`, and exits.
///
/// `tmpdir` is the fresh directory for the script's `tmpfile` files, if it has any.
pub fn main(script: &Script, out: OwnedFd, tmpdir: Option<&Path>) -> ! {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut child = Child {
            script,
            out: out.as_fd(),
            tmpdir,
            files: Vec::new(),
            maps_room: MapsRoom::reserve(),
        };
        child.run()
    }));
    let status = match result {
        Ok(Ok(status)) => status,
        Ok(Err(message)) => report_failure(out.as_fd(), &message),
        Err(_) => report_failure(out.as_fd(), "the runner child panicked"),
    };
    sys::exit_now(status)
}

/// Sends a failure message to the parent and returns [`EXIT_FAILED`].
fn report_failure(out: BorrowedFd<'_>, message: &str) -> i32 {
    let line = format!("{FAILURE_PREFIX}{}\n", message.replace('\n', " "));
    let _ = sys::write_all(out, line.as_bytes());
    EXIT_FAILED
}

/// A scenario file, open in the child.
struct HostFile {
    /// The descriptor; `None` after `close`.
    fd: Option<OwnedFd>,
    /// Device `(major, minor)` and inode, to recognise the file in `/proc/self/maps`.
    dev: (u32, u32),
    inode: u64,
}

/// The child's state while it runs the steps.
struct Child<'a> {
    script: &'a Script,
    /// The pipe's write end.
    out: BorrowedFd<'a>,
    tmpdir: Option<&'a Path>,
    /// The scenario's files by [`FileId`], once their `file` line has run.
    files: Vec<Option<HostFile>>,
    /// Memory set aside for reading maps at the map limit.
    maps_room: MapsRoom,
}

/// What reading `/proc/self/maps` needs, set aside before the scenario runs: a scenario may
/// take the process to `vm.max_map_count`, and then the runner cannot create a mapping of its
/// own (the allocator's `mmap` and `mremap` fail, and so does growing the heap).
struct MapsRoom {
    /// The chunk buffer [`procfs::read_self_in`] reads into.
    buf: Vec<u8>,
    /// Room for one entry per VMA the window can hold.
    vmas: Vec<ProcVma>,
}

impl MapsRoom {
    /// Bytes of heap grown and kept for the allocations of a maps or smaps line at the limit
    /// (its flag lists, its transcript text).
    const HEAP: usize = 96 << 20;

    fn reserve() -> MapsRoom {
        let max = ::procfs::sys::vm::max_map_count()
            .ok()
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(65530);
        let mut vmas = Vec::new();
        if unlimited(rustix::process::Resource::As) && unlimited(rustix::process::Resource::Data) {
            // glibc's allocator tunables: no rustix equivalent (it is not a system call).
            // SAFETY: mallopt only changes the allocator's tunables; this freshly forked child
            // runs one thread. Keep what the heap grows to, and take every later allocation
            // from the heap rather than from new mappings.
            unsafe {
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
                libc::mallopt(libc::M_MMAP_MAX, 0);
            }
            let mut grow: Vec<u8> = Vec::new();
            let _ = grow.try_reserve_exact(Self::HEAP);
        }
        // From the heap, after the tunables: a mapping of its own would change the map count
        // the scenario sees. A failed reservation only means that a scenario at the limit may
        // fail to print its maps.
        let _ = vmas.try_reserve_exact(max);
        MapsRoom {
            buf: vec![0; 64 << 10],
            vmas,
        }
    }
}

/// Is `resource` unlimited? (A set limit makes the heap the runner keeps count against it, and
/// so change what a scenario near that limit gets: then nothing is kept.)
fn unlimited(resource: rustix::process::Resource) -> bool {
    rustix::process::getrlimit(resource).current.is_none()
}

impl Child<'_> {
    /// Runs every step; returns the exit status, or a runner failure.
    fn run(&mut self) -> Result<i32, String> {
        sys::close_all_but(self.out);
        let (low, high) = self.script.window_range();
        let room = &mut self.maps_room;
        room.vmas.clear();
        procfs::read_self_in(false, low, high, &mut room.buf, &mut room.vmas)?;
        if !room.vmas.is_empty() {
            return Ok(EXIT_WINDOW_TAKEN);
        }
        probe::install()?;
        // The child's own VMAs, now that everything it maps for itself is mapped (the vsyscall
        // gate is not a VMA).
        room.vmas.clear();
        procfs::read_self_in(false, 0, u64::MAX, &mut room.buf, &mut room.vmas)?;
        let own = room.vmas.iter().filter(|v| v.name != "[vsyscall]").count();
        room.vmas.clear();
        sys::write_all(self.out, format!("{VMAS_PREFIX}{own}\n").as_bytes())
            .map_err(|e| format!("cannot write the transcript: {}", sys::errno_text(e)))?;
        for step in &self.script.steps {
            let outcome = self
                .step(step)
                .map_err(|e| format!("L{} {}: {e}", step.line, step.verb()))?;
            if let Some(outcome) = outcome {
                let mut text = format_step(step.line, step.verb(), &outcome, (low, high));
                text.push('\n');
                sys::write_all(self.out, text.as_bytes())
                    .map_err(|e| format!("cannot write the transcript: {}", sys::errno_text(e)))?;
            }
        }
        Ok(if self.script.error.is_some() {
            EXIT_PARSE_ERROR
        } else {
            EXIT_FINISHED
        })
    }

    /// Runs one step; `None` for the steps that print nothing (`file`, `close`).
    fn step(&mut self, step: &Step) -> Result<Option<Outcome>, String> {
        let at = Script::absolute;
        let outcome = match step.op {
            Op::File { id } => {
                self.open(id)?;
                return Ok(None);
            }
            Op::Close { id } => {
                if let Some(Some(file)) = self.files.get_mut(id) {
                    file.fd = None;
                }
                return Ok(None);
            }
            Op::Mmap {
                addr,
                len,
                prot,
                flags,
                file,
            } => {
                let addr = match addr {
                    MmapAddr::Any => 0,
                    MmapAddr::At(offset) => at(offset),
                };
                let (fd, offset) = match file {
                    Some(arg) => (self.fd(arg), arg.offset),
                    None => (None, 0),
                };
                // SAFETY: see `call`.
                call(unsafe { sys::mmap(addr, len, prot, flags, fd, offset) }.map(Outcome::Addr))?
            }
            // SAFETY (each call below): see `call`.
            Op::Munmap { addr, len } => call(unsafe { sys::munmap(at(addr), len) }.map(done))?,
            Op::Mprotect { addr, len, prot } => call(unsafe { sys::mprotect(at(addr), len, prot) }.map(done))?,
            Op::Madvise { addr, len, advice } => call(unsafe { sys::madvise(at(addr), len, advice) }.map(done))?,
            Op::Mlock { addr, len } => call(unsafe { sys::mlock(at(addr), len) }.map(done))?,
            Op::Mlock2 { addr, len, flags } => call(unsafe { sys::mlock2(at(addr), len, flags) }.map(done))?,
            Op::Munlock { addr, len } => call(unsafe { sys::munlock(at(addr), len) }.map(done))?,
            Op::Mremap {
                addr,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                let new_addr = new_addr.map_or(0, at);
                call(unsafe { sys::mremap(at(addr), old_len, new_len, flags, new_addr) }.map(Outcome::Addr))?
            }
            Op::Mseal { addr, len } => call(unsafe { sys::mseal(at(addr), len) }.map(done))?,
            Op::Touch { addr, len, access } => touch(at(addr), len, access),
            Op::Write { addr, len, byte } => write(at(addr), len, byte),
            Op::Read { addr, len } => read(at(addr), len),
            Op::Fork => self.fork(step)?,
            Op::Maps => self.maps(false)?,
            Op::Smaps => self.maps(true)?,
            Op::Events => return Err("`events` needs the engine".into()),
        };
        Ok(Some(outcome))
    }

    /// The descriptor an `mmap` of `arg` passes: the file's, or `None` (-1) once it is closed.
    fn fd(&self, arg: FileArg) -> Option<BorrowedFd<'_>> {
        match self.files.get(arg.file) {
            Some(Some(HostFile { fd: Some(fd), .. })) if arg.open => Some(fd.as_fd()),
            _ => None,
        }
    }

    /// Runs a `file` line: creates or opens the file and records its identity.
    fn open(&mut self, id: FileId) -> Result<(), String> {
        let Some(decl) = self.script.files.get(id) else {
            return Err(format!("file {id} is not declared"));
        };
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let file = match decl.kind {
            FileKind::Memfd { size } => {
                let name =
                    std::ffi::CString::new(decl.name.as_str()).map_err(|_| "the name has a NUL byte".to_string())?;
                let fd = rustix::fs::memfd_create(name.as_c_str(), rustix::fs::MemfdFlags::CLOEXEC)
                    .map_err(|e| format!("memfd_create: {}", sys::errno_text(e.raw_os_error())))?;
                let file = File::from(fd);
                file.set_len(size).map_err(|e| io("ftruncate", e))?;
                file
            }
            FileKind::Tmpfile { size, read_only } => {
                let Some(dir) = self.tmpdir else {
                    return Err("no temporary directory".into());
                };
                let path = dir.join(&decl.name);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| io(&format!("cannot create {}", path.display()), e))?;
                file.set_len(size).map_err(|e| io("ftruncate", e))?;
                if read_only {
                    drop(file);
                    File::open(&path).map_err(|e| io(&format!("cannot open {}", path.display()), e))?
                } else {
                    file
                }
            }
            FileKind::Zero => OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/zero")
                .map_err(|e| io("cannot open /dev/zero", e))?,
            FileKind::Driver { .. } | FileKind::C { .. } => {
                return Err("driver files exist only in the engine".into());
            }
        };
        let meta = file.metadata().map_err(|e| io("fstat", e))?;
        if self.files.len() <= id {
            self.files.resize_with(id + 1, || None);
        }
        if let Some(slot) = self.files.get_mut(id) {
            *slot = Some(HostFile {
                fd: Some(OwnedFd::from(file)),
                dev: sys::dev_major_minor(meta.dev()),
                inode: meta.ino(),
            });
        }
        Ok(())
    }

    /// Runs a `fork` line. The parent never returns: it waits for the child and exits with its
    /// status. The child prints the result line and runs the rest of the script.
    fn fork(&self, step: &Step) -> Result<Outcome, String> {
        match sys::fork() {
            Err(errno) => errno_outcome(errno),
            Ok(Forked::Child) => Ok(Outcome::Forked),
            Ok(Forked::Parent(pid)) => {
                let status = match sys::wait(pid) {
                    Ok(ChildEnd::Exited(status)) => status,
                    Ok(ChildEnd::Signaled(signal)) => report_failure(
                        self.out,
                        &format!(
                            "the child forked at line {} was killed by {}",
                            step.line,
                            sys::signal_name(signal)
                        ),
                    ),
                    Err(errno) => report_failure(
                        self.out,
                        &format!("waitpid after line {}: {}", step.line, sys::errno_text(errno)),
                    ),
                };
                sys::exit_now(status)
            }
        }
    }

    /// Runs `maps` or `smaps`: the VMAs that intersect the window, lowest first.
    fn maps(&mut self, smaps: bool) -> Result<Outcome, String> {
        let (low, high) = self.script.window_range();
        let mut vmas = std::mem::take(&mut self.maps_room.vmas);
        vmas.clear();
        let read = procfs::read_self_in(smaps, low, high, &mut self.maps_room.buf, &mut vmas);
        let mut entries = Vec::with_capacity(vmas.len());
        for vma in vmas.drain(..) {
            let name = self.name_of(&vma);
            let entry = MapsEntry {
                start: vma.start,
                end: vma.end,
                perms: vma.perms,
                offset: vma.offset,
                name,
            };
            entries.push((entry, vma.flags));
        }
        // The room goes back for the next maps line.
        self.maps_room.vmas = vmas;
        read?;
        Ok(if smaps {
            Outcome::Smaps(entries)
        } else {
            Outcome::Maps(entries.into_iter().map(|(entry, _)| entry).collect())
        })
    }

    /// The name column: the NAME of the first scenario file with the VMA's device and inode,
    /// else the kernel's own.
    fn name_of(&self, vma: &ProcVma) -> String {
        let ours = self.script.files.iter().zip(&self.files).find_map(|(decl, file)| {
            let file = file.as_ref()?;
            (vma.inode != 0 && file.dev == vma.dev && file.inode == vma.inode).then_some(decl)
        });
        match ours {
            Some(decl) => decl.name.clone(),
            None => vma.name.clone(),
        }
    }
}

/// The outcome of a memory-map system call (made through [`sys`]): what it returned, or its
/// errno.
///
/// Each call is `unsafe` for one reason: the scenario names only addresses in its window,
/// `[W, W + 16 TiB)`, where the runner keeps nothing (checked at start); calls that reach
/// further are refused by the kernel for their arguments alone (the contract's promise).
fn call(result: Result<Outcome, sys::RawErrno>) -> Result<Outcome, String> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(errno) => errno_outcome(errno),
    }
}

/// The outcome of a successful call that returns 0.
fn done(_: ()) -> Outcome {
    Outcome::Done
}

/// A failed call's outcome, or a runner failure for an errno mmprep does not know.
fn errno_outcome(errno: sys::RawErrno) -> Result<Outcome, String> {
    match Errno::from_raw(errno) {
        Some(known) => Ok(Outcome::Failed(known)),
        None => Err(format!(
            "the kernel returned errno {errno} ({}), which mmprep does not know",
            sys::errno_text(errno)
        )),
    }
}

/// `touch`: one read (and for `w`, a write of the same byte) per page.
fn touch(addr: u64, len: u64, access: Access) -> Outcome {
    for (first, _) in page_chunks(addr, len) {
        let result = match access {
            Access::Read => probe::read_byte(first).map(drop),
            Access::Write => probe::read_byte(first).and_then(|b| probe::write_byte(first, b)),
        };
        if let Err(signal) = result {
            return Outcome::Accessed(Some(Fault { signal, addr: first }));
        }
    }
    Outcome::Accessed(None)
}

/// `write`: the first byte of each page through the probe, the rest of the page directly.
fn write(addr: u64, len: u64, byte: u8) -> Outcome {
    for (first, n) in page_chunks(addr, len) {
        if let Err(signal) = probe::write_byte(first, byte) {
            return Outcome::Accessed(Some(Fault { signal, addr: first }));
        }
        for i in 1..n {
            let p = core::ptr::with_exposed_provenance_mut::<u8>((first + i) as usize);
            // SAFETY: the probe just wrote the first byte of this page, so the whole page is
            // mapped and writable; it lies in the window, which holds no Rust object.
            unsafe { p.write_volatile(byte) };
        }
    }
    Outcome::Accessed(None)
}

/// `read`: every byte, run-length encoded, stopping at the first page that faults.
fn read(addr: u64, len: u64) -> Outcome {
    let mut runs = Vec::new();
    for (first, n) in page_chunks(addr, len) {
        let mut current = match probe::read_byte(first) {
            Ok(b) => b,
            Err(signal) => {
                return Outcome::Read {
                    len,
                    runs,
                    fault: Some(Fault { signal, addr: first }),
                };
            }
        };
        let mut count = 1;
        for i in 1..n {
            let p = core::ptr::with_exposed_provenance::<u8>((first + i) as usize);
            // SAFETY: the probe just read the first byte of this page, so the whole page is
            // mapped and readable.
            let b = unsafe { p.read_volatile() };
            if b == current {
                count += 1;
            } else {
                push_run(&mut runs, current, count);
                (current, count) = (b, 1);
            }
        }
        push_run(&mut runs, current, count);
    }
    Outcome::Read { len, runs, fault: None }
}

//! The engine's post-`execve` layout of a program file on this machine ([`mmprep::exec`]),
//! and its comparison with a live process stopped right after its `execve`.
//!
//! The host part is reading the files: the program and its `PT_INTERP` interpreter (symlinks
//! followed), each made an engine [`File`] with its device and inode, as `import.rs` does. The
//! bytes of the argument strings (which size the stack) come from the caller: for a live
//! process, from its `/proc/PID/stat` `arg_start` ([`strings_len_of`]).

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use mmprep::exec::{ElfImage, ExecImage, ExecSpec, STRINGS_TOP_GAP, parse_elf};
use mmprep::file::{DevId, File, FileMode, Inode, InodeKind};
use mmprep::mm::VdsoLayout;
use mmprep::{Mm, Profile};
use mmprep_drivers::regular::Ext4File;

use crate::import::maps_with_flags;

fn open(path: &str) -> Result<(ElfImage, Arc<File>), String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
    let bytes = std::fs::read(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    let elf = parse_elf(&bytes).map_err(|e| format!("{}: {e}", real.display()))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    let (major, minor) = crate::sys::dev_major_minor(meta.dev());
    let inode = Arc::new(Inode::new(
        DevId { major, minor },
        meta.ino(),
        InodeKind::Regular,
        meta.len(),
    ));
    let file = File::new(
        inode,
        FileMode::READ_ONLY,
        Arc::new(Ext4File),
        real.to_string_lossy().into_owned(),
        false,
    );
    Ok((elf, file))
}

/// The bytes `execve` copied to the stack, from `mm->arg_start` (`/proc/PID/stat` field 48).
pub fn strings_len_of(stack_top: u64, arg_start: u64) -> u64 {
    (stack_top - STRINGS_TOP_GAP).saturating_sub(arg_start)
}

/// The engine's address space after `execve(path)` with `strings_len` bytes of strings, on
/// `profile` (which has the process's limits and layout).
pub fn exec_layout(path: &str, strings_len: u64, profile: Profile) -> Result<Mm, String> {
    let (elf, file) = open(path)?;
    let interp = match &elf.interp {
        Some(i) => Some(open(i)?),
        None => None,
    };
    let stack_top = profile.task_size;
    let mut mm = Mm::new(profile);
    let spec = ExecSpec {
        program: ExecImage { elf: &elf, file },
        interp: interp.as_ref().map(|(e, f)| ExecImage {
            elf: e,
            file: f.clone(),
        }),
        strings_len,
        stack_top,
        vdso: VdsoLayout::HOST_6_18,
    };
    mm.exec(&spec).map_err(|e| format!("exec {path}: {e}"))?;
    Ok(mm)
}

/// A differing line: the kernel's and the engine's (`None`: that side has no such line).
pub type LineDiff = (Option<String>, Option<String>);

/// Each VMA as `start-end perms offset dev inode path | VmFlags`: what [`compare`] compares.
pub fn engine_lines(mm: &Mm) -> Vec<String> {
    let maps: Vec<String> = mm.maps().lines().map(normalize).collect();
    let flags = crate::import::engine_maps_with_flags(mm);
    maps.iter()
        .zip(flags.lines())
        .map(|(m, f)| format!("{m} |{}", f.split_once('|').map_or("", |x| x.1)))
        .collect()
}

/// The same lines from smaps text.
pub fn kernel_lines(smaps: &str) -> Vec<String> {
    let maps: Vec<String> = crate::import::maps_of(smaps).lines().map(normalize).collect();
    let flags = maps_with_flags(smaps);
    maps.iter()
        .zip(flags.lines())
        .map(|(m, f)| format!("{m} |{}", f.split_once('|').map_or("", |x| x.1)))
        .collect()
}

/// A maps line with its columns separated by one space.
fn normalize(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The lines that differ: `(kernel, engine)`, `None` on the side that has no such line.
pub fn compare(kernel: &[String], engine: &[String]) -> Vec<LineDiff> {
    let mut out = Vec::new();
    for k in kernel {
        if !engine.contains(k) {
            out.push((Some(k.clone()), None));
        }
    }
    for e in engine {
        if !kernel.contains(e) {
            out.push((None, Some(e.clone())));
        }
    }
    out
}

/// The engine's exec layout of process `pid` (stopped right after its `execve`) against its
/// smaps and `start_brk`: the differing lines (empty when equal). The argument strings' size
/// comes from the process's `arg_start`, so the stack is compared for its placement rule, not
/// for the strings' bytes.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn check_pid(pid: u32, smaps: &str) -> Result<Vec<LineDiff>, String> {
    let (profile, _) = crate::import::process_profile(pid)?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| format!("/proc/{pid}/exe: {e}"))?;
    let stat = crate::import::read_stat(pid)?;
    let arg_start = stat.arg_start.ok_or("stat has no arg_start")?;
    let len = strings_len_of(profile.task_size, arg_start);
    let mm = exec_layout(&exe.to_string_lossy(), len, profile)?;
    let mut diffs = compare(&kernel_lines(smaps), &engine_lines(&mm));
    let start_brk = stat.start_brk.ok_or("stat has no start_brk")?;
    let engine_brk = mm.bounds().map_or(0, |b| b.start_brk);
    if start_brk != engine_brk {
        diffs.push((
            Some(format!("start_brk {start_brk:#x}")),
            Some(format!("start_brk {engine_brk:#x}")),
        ));
    }
    Ok(diffs)
}

/// Starts `cmd` (found on `PATH`) with address randomisation off, stops it at its first
/// instruction after `execve` (`PTRACE_O_TRACEEXEC`) and returns the engine-vs-kernel
/// differences of [`check_pid`] and the kernel's smaps. The process is killed afterwards.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn check_command(cmd: &[&str]) -> Result<(Vec<LineDiff>, String), String> {
    use std::ffi::CString;
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(*a).map_err(|_| format!("{a:?} holds a NUL byte")))
        .collect::<Result<_, _>>()?;
    if argv.is_empty() {
        return Err("no command".into());
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let pid = match crate::sys::fork() {
        Ok(crate::sys::Forked::Child) => {
            // SAFETY: only async-signal-safe calls with integer arguments, then execvp with a
            // NULL-terminated array of C strings that outlive it.
            unsafe {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    crate::sys::exit_now(125);
                }
                let current = libc::personality(0xffff_ffff);
                libc::personality(current as libc::c_ulong | libc::ADDR_NO_RANDOMIZE as libc::c_ulong);
                libc::raise(libc::SIGSTOP);
                libc::execvp(ptrs[0], ptrs.as_ptr());
            }
            crate::sys::exit_now(127);
        }
        Ok(crate::sys::Forked::Parent(pid)) => pid.as_raw_nonzero().get(),
        Err(e) => return Err(format!("fork: {}", crate::sys::errno_text(e))),
    };
    let mut status = 0;
    let result = (|| {
        // SAFETY: waitpid with a valid status pointer; ptrace calls take integers only.
        unsafe {
            if libc::waitpid(pid, &mut status, 0) != pid || !libc::WIFSTOPPED(status) {
                return Err("the child did not stop before its execve".to_string());
            }
            let opts = libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL;
            if libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts as libc::c_long) != 0 {
                return Err("PTRACE_SETOPTIONS refused".to_string());
            }
            libc::ptrace(libc::PTRACE_CONT, pid, 0, 0);
            if libc::waitpid(pid, &mut status, 0) != pid || status >> 16 != libc::PTRACE_EVENT_EXEC {
                return Err(format!("no exec stop (status {status:#x})"));
            }
        }
        let smaps =
            std::fs::read_to_string(format!("/proc/{pid}/smaps")).map_err(|e| format!("/proc/{pid}/smaps: {e}"))?;
        Ok((check_pid(pid as u32, &smaps)?, smaps))
    })();
    // SAFETY: `pid` is our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    result
}

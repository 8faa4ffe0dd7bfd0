//! A traced run as a list of [`Event`]s, the engine side that applies them ([`Session`]), the
//! saved-trace format and `mmprep replay`.
//!
//! `mmprep trace` (`trace.rs`) watches a real program and turns what it sees into events:
//! an import after each `execve`, a file behind a descriptor before a file `mmap`, a fault the
//! program took between two system calls, a memory system call with the kernel's result, a
//! `fork`'s copy of an address space, a process's end. It applies each one to its [`Session`]
//! as it goes, and saves the list with `--save`. [`replay`] applies a saved list again, on the
//! engine alone, and checks every call's result against the one the kernel gave: the trace
//! is then a regression test and the benchmark of the syscall layer (`mmprep::abi`).
//!
//! The format is text, one event a line (numbers in hex):
//!
//! ```text
//! mmprep-trace 1
//! import MM PID START_STACK START_DATA END_DATA START_BRK STACK DATA AS MEMLOCK LEGACY NLINES
//! ...NLINES lines of /proc/PID/smaps...
//! fd MM FD KIND MAJOR MINOR INODE SIZE RW NOEXEC PATH    (the file open as FD in MM)
//! closed MM FD                                            (FD is not open)
//! fault MM ADDR r|w                                       (an access between system calls)
//! call MM NR A0 A1 A2 A3 A4 A5 RET                        (a memory system call and the kernel's rax)
//! fork PARENT CHILD                                       (CHILD is a dup_mmap copy of PARENT)
//! drop MM                                                 (the last task of MM has gone)
//! ```
//!
//! `MM` numbers address spaces in the order they appear (threads and `vfork` children share
//! one). The imports use this machine's profile (`host_profile`) with the saved limits, so a
//! trace replays on the machine, or the same kind of machine, it was recorded on.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmprep::abi::{self, FdTable, Outcome};
use mmprep::file::{DevId, File, FileMode, Inode, InodeKind};
use mmprep::{Access, Mm, VirtAddr};
use mmprep_drivers::regular::Ext4File;

use crate::import::{ProcLimits, StatAddrs, import_text, profile_with};

/// What kind of file a descriptor is, as far as `mmap` cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file on a disk filesystem: ext4's page cache and THP placement.
    Regular,
    /// A tmpfs or memfd file: shmem's operations and placement.
    Shmem,
    /// `/dev/zero`.
    DevZero,
    /// Anything without an mmap hook here (pipes, sockets, directories, other devices):
    /// `ENODEV`.
    NoMmap,
}

impl FileKind {
    fn word(self) -> &'static str {
        match self {
            FileKind::Regular => "regular",
            FileKind::Shmem => "shmem",
            FileKind::DevZero => "zero",
            FileKind::NoMmap => "nommap",
        }
    }

    fn from_word(w: &str) -> Option<FileKind> {
        [FileKind::Regular, FileKind::Shmem, FileKind::DevZero, FileKind::NoMmap]
            .into_iter()
            .find(|k| k.word() == w)
    }
}

/// The file operations of a file that cannot be mapped (`can_mmap_file` is false: `ENODEV`).
struct NoMmap;

impl mmprep::file::FileOperations for NoMmap {
    fn name(&self) -> &'static str {
        "no_mmap"
    }
}

/// An open file's identity and mode, as `/proc/PID/fd/N`, `fdinfo` and `stat` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileId {
    pub kind: FileKind,
    pub dev: (u32, u32),
    pub ino: u64,
    pub size: u64,
    /// Open for writing (`O_WRONLY` or `O_RDWR`).
    pub write: bool,
    /// Open for reading (not `O_WRONLY`).
    pub read: bool,
    /// On a `noexec` mount.
    pub noexec: bool,
    pub path: String,
}

/// One thing that happened to the traced program's address spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Address space `mm` starts as process `pid` was imported (after its `execve`).
    Import {
        mm: usize,
        pid: u32,
        smaps: String,
        stat: StatAddrs,
        limits: ProcLimits,
    },
    /// Descriptor `fd` of `mm`'s process is `file`, or closed (`None`).
    Fd { mm: usize, fd: u32, file: Option<FileId> },
    /// An access the program made between system calls (a fault the engine must take too).
    Fault { mm: usize, addr: u64, write: bool },
    /// Memory system call `nr` with these registers; the kernel returned `ret`.
    Call {
        mm: usize,
        nr: u64,
        args: [u64; 6],
        ret: u64,
    },
    /// `child` is a copy of `parent` (`fork`).
    Fork { parent: usize, child: usize },
    /// `mm`'s last task is gone.
    Drop { mm: usize },
}

/// One engine address space and what it needs to answer calls.
pub struct Space {
    pub mm: Mm,
    /// The process's descriptors, as the `fd` events told them.
    pub fds: FdTable,
    /// One open file per (device, inode, read, write): mappings of one file compare equal.
    files: HashMap<(u32, u32, u64, bool, bool), Arc<File>>,
}

impl Space {
    fn new(mm: Mm) -> Space {
        let mut files = HashMap::new();
        for v in mm.vmas() {
            if let Some(f) = v.file() {
                let d = f.inode().dev();
                files
                    .entry((d.major, d.minor, f.inode().ino(), f.mode().read, f.mode().write))
                    .or_insert_with(|| f.clone());
            }
        }
        Space {
            mm,
            fds: FdTable::new(),
            files,
        }
    }

    /// The engine file for `id`: the one already known for this identity and mode, a new open
    /// file on the known inode, or a new inode.
    fn file(&mut self, id: &FileId) -> Arc<File> {
        let key = (id.dev.0, id.dev.1, id.ino, id.read, id.write);
        if let Some(f) = self.files.get(&key) {
            return f.clone();
        }
        let ops: Arc<dyn mmprep::file::FileOperations> = match id.kind {
            FileKind::Regular => Arc::new(Ext4File),
            FileKind::Shmem => Arc::new(mmprep::shmem::ShmemFileOps),
            FileKind::DevZero => Arc::new(mmprep_drivers::zero::DevZero),
            FileKind::NoMmap => Arc::new(NoMmap),
        };
        let inode_kind = match id.kind {
            FileKind::DevZero => InodeKind::CharDevice,
            _ => InodeKind::Regular,
        };
        let mode = FileMode {
            read: id.read,
            write: id.write,
        };
        let inode = self
            .files
            .iter()
            .find(|((ma, mi, ino, _, _), _)| (*ma, *mi, *ino) == (id.dev.0, id.dev.1, id.ino))
            .map(|(_, f)| f.inode().clone())
            .unwrap_or_else(|| {
                Arc::new(Inode::new(
                    DevId {
                        major: id.dev.0,
                        minor: id.dev.1,
                    },
                    id.ino,
                    inode_kind,
                    id.size,
                ))
            });
        let f = File::new(inode, mode, ops, id.path.clone(), id.noexec);
        self.files.insert(key, f.clone());
        f
    }
}

/// The engine's address spaces of one traced run.
#[derive(Default)]
pub struct Session {
    spaces: Vec<Option<Space>>,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// Address space `mm`, if it is live.
    pub fn space(&self, mm: usize) -> Option<&Space> {
        self.spaces.get(mm).and_then(Option::as_ref)
    }

    fn space_mut(&mut self, mm: usize) -> Result<&mut Space, String> {
        self.spaces
            .get_mut(mm)
            .and_then(Option::as_mut)
            .ok_or(format!("address space {mm} is not live"))
    }

    fn put(&mut self, mm: usize, space: Space) {
        if self.spaces.len() <= mm {
            self.spaces.resize_with(mm + 1, || None);
        }
        self.spaces[mm] = Some(space);
    }

    /// Applies `ev` to the engine. A call returns its [`Outcome`]; a fault the engine refuses
    /// or an event that names no live address space is an error.
    pub fn apply(&mut self, ev: &Event) -> Result<Option<Outcome>, String> {
        match ev {
            Event::Import {
                mm,
                smaps,
                stat,
                limits,
                ..
            } => {
                let m = import_text(smaps, *stat, None, profile_with(limits))?;
                self.put(*mm, Space::new(m));
            }
            Event::Fd { mm, fd, file } => {
                let s = self.space_mut(*mm)?;
                match file {
                    Some(id) => {
                        let f = s.file(id);
                        s.fds.insert(*fd, f);
                    }
                    None => {
                        s.fds.remove(*fd);
                    }
                }
            }
            Event::Fault { mm, addr, write } => {
                let s = self.space_mut(*mm)?;
                let access = if *write { Access::Write } else { Access::Read };
                s.mm.access(VirtAddr(*addr), access)
                    .map_err(|sig| format!("the engine refuses the access at {addr:#x}: {sig:?}"))?;
            }
            Event::Call { mm, nr, args, .. } => {
                let s = self.space_mut(*mm)?;
                return Ok(Some(abi::syscall(&mut s.mm, &s.fds, *nr, *args)));
            }
            Event::Fork { parent, child } => {
                let p = self.space_mut(*parent)?;
                let m = p.mm.fork().map_err(|e| format!("fork: {e}"))?;
                let copy = Space {
                    mm: m,
                    fds: p.fds.clone(),
                    files: p.files.clone(),
                };
                self.put(*child, copy);
            }
            Event::Drop { mm } => {
                self.space_mut(*mm)?;
                self.spaces[*mm] = None;
            }
        }
        Ok(None)
    }
}

/// The saved form of `events` (see the module documentation).
pub fn save(events: &[Event]) -> String {
    let mut out = String::from("mmprep-trace 1\n");
    for ev in events {
        match ev {
            Event::Import {
                mm,
                pid,
                smaps,
                stat,
                limits: l,
            } => {
                let lines: Vec<&str> = smaps.lines().collect();
                let _ = writeln!(
                    out,
                    "import {mm} {pid} {:x} {:x} {:x} {:x} {:x} {:x} {:x} {:x} {} {}",
                    stat.start_stack,
                    stat.start_data,
                    stat.end_data,
                    stat.start_brk,
                    l.stack,
                    l.data,
                    l.address_space,
                    l.memlock,
                    u8::from(l.legacy),
                    lines.len()
                );
                for line in lines {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Event::Fd { mm, fd, file: None } => {
                let _ = writeln!(out, "closed {mm} {fd}");
            }
            Event::Fd { mm, fd, file: Some(f) } => {
                let _ = writeln!(
                    out,
                    "fd {mm} {fd} {} {} {} {} {:x} {}{} {} {}",
                    f.kind.word(),
                    f.dev.0,
                    f.dev.1,
                    f.ino,
                    f.size,
                    if f.read { "r" } else { "-" },
                    if f.write { "w" } else { "-" },
                    u8::from(f.noexec),
                    f.path
                );
            }
            Event::Fault { mm, addr, write } => {
                let _ = writeln!(out, "fault {mm} {addr:x} {}", if *write { "w" } else { "r" });
            }
            Event::Call { mm, nr, args, ret } => {
                let [a, b, c, d, e, f] = args;
                let _ = writeln!(out, "call {mm} {nr} {a:x} {b:x} {c:x} {d:x} {e:x} {f:x} {ret:x}");
            }
            Event::Fork { parent, child } => {
                let _ = writeln!(out, "fork {parent} {child}");
            }
            Event::Drop { mm } => {
                let _ = writeln!(out, "drop {mm}");
            }
        }
    }
    out
}

/// Parses a saved trace. Errors name the line.
pub fn load(text: &str) -> Result<Vec<Event>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "mmprep-trace 1")) => {}
        _ => return Err("line 1: not a saved trace (it must start with `mmprep-trace 1`)".into()),
    }
    let mut events = Vec::new();
    while let Some((i, line)) = lines.next() {
        let bad = |what: &str| format!("line {}: {what}: {line:?}", i + 1);
        let w: Vec<&str> = line.splitn(11, ' ').collect();
        let dec = |k: usize| -> Result<u64, String> {
            w.get(k).and_then(|s| s.parse().ok()).ok_or_else(|| bad("a bad number"))
        };
        let hex = |k: usize| -> Result<u64, String> {
            w.get(k)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad("a bad hex number"))
        };
        let ev = match w[0] {
            "import" => {
                let w: Vec<&str> = line.split(' ').collect();
                if w.len() != 13 {
                    return Err(bad("an import line has 12 fields"));
                }
                let hex = |k: usize| u64::from_str_radix(w[k], 16).map_err(|_| bad("a bad hex number"));
                let n: usize = w[12].parse().map_err(|_| bad("a bad line count"))?;
                let mut smaps = String::new();
                for _ in 0..n {
                    let (_, l) = lines.next().ok_or_else(|| bad("the smaps text is cut short"))?;
                    smaps.push_str(l);
                    smaps.push('\n');
                }
                Event::Import {
                    mm: w[1].parse().map_err(|_| bad("a bad address-space number"))?,
                    pid: w[2].parse().map_err(|_| bad("a bad pid"))?,
                    smaps,
                    stat: StatAddrs {
                        start_stack: hex(3)?,
                        start_data: hex(4)?,
                        end_data: hex(5)?,
                        start_brk: hex(6)?,
                    },
                    limits: ProcLimits {
                        stack: hex(7)?,
                        data: hex(8)?,
                        address_space: hex(9)?,
                        memlock: hex(10)?,
                        legacy: w[11] == "1",
                        randomized: false,
                    },
                }
            }
            "closed" => Event::Fd {
                mm: dec(1)? as usize,
                fd: dec(2)? as u32,
                file: None,
            },
            "fd" => {
                if w.len() != 11 {
                    return Err(bad("an fd line has 10 fields"));
                }
                Event::Fd {
                    mm: dec(1)? as usize,
                    fd: dec(2)? as u32,
                    file: Some(FileId {
                        kind: FileKind::from_word(w[3]).ok_or_else(|| bad("an unknown file kind"))?,
                        dev: (dec(4)? as u32, dec(5)? as u32),
                        ino: dec(6)?,
                        size: hex(7)?,
                        read: w[8].starts_with('r'),
                        write: w[8].ends_with('w'),
                        noexec: w[9] == "1",
                        path: w[10].to_string(),
                    }),
                }
            }
            "fault" => Event::Fault {
                mm: dec(1)? as usize,
                addr: hex(2)?,
                write: w.get(3) == Some(&"w"),
            },
            "call" => {
                if w.len() != 10 {
                    return Err(bad("a call line has 9 fields"));
                }
                Event::Call {
                    mm: dec(1)? as usize,
                    nr: dec(2)?,
                    args: [hex(3)?, hex(4)?, hex(5)?, hex(6)?, hex(7)?, hex(8)?],
                    ret: hex(9)?,
                }
            }
            "fork" => Event::Fork {
                parent: dec(1)? as usize,
                child: dec(2)? as usize,
            },
            "drop" => Event::Drop { mm: dec(1)? as usize },
            _ => return Err(bad("an unknown event")),
        };
        events.push(ev);
    }
    Ok(events)
}

/// What [`replay`] found.
#[derive(Debug)]
pub struct ReplayReport {
    /// Memory calls run on the engine (modelled ones).
    pub calls: u64,
    /// Calls the engine does not model (skipped).
    pub not_modelled: u64,
    /// Calls whose result differs from the recorded one: the first few, as text.
    pub mismatches: Vec<String>,
    /// All of them.
    pub mismatch_count: u64,
    /// Time spent applying the events (the engine's work only).
    pub elapsed: Duration,
}

impl ReplayReport {
    /// Modelled calls per second.
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Applies `events` to a fresh [`Session`] and checks every call's result.
pub fn replay(events: &[Event]) -> Result<ReplayReport, String> {
    let mut session = Session::new();
    let mut report = ReplayReport {
        calls: 0,
        not_modelled: 0,
        mismatches: Vec::new(),
        mismatch_count: 0,
        elapsed: Duration::ZERO,
    };
    // Imports parse text and are not the syscall layer's work: they are left out of the time.
    for (i, ev) in events.iter().enumerate() {
        let timed = !matches!(ev, Event::Import { .. });
        let t = Instant::now();
        let r = session.apply(ev);
        if timed {
            report.elapsed += t.elapsed();
        }
        let outcome = r.map_err(|e| format!("event {}: {e}", i + 1))?;
        if let (Some(o), Event::Call { nr, args, ret, .. }) = (outcome, ev) {
            match o {
                Outcome::Return(v) => {
                    report.calls += 1;
                    if v != *ret {
                        report.mismatch_count += 1;
                        if report.mismatches.len() < 10 {
                            report.mismatches.push(format!(
                                "event {}: {}: kernel {}, engine {}",
                                i + 1,
                                call_text(*nr, args),
                                ret_text(*ret),
                                ret_text(v)
                            ));
                        }
                    }
                }
                Outcome::NotModelled | Outcome::NotMemory => report.not_modelled += 1,
            }
        }
    }
    Ok(report)
}

/// `mmap(0x0, 0x2000, 0x3, 0x22, -1, 0x0)`: a call as a person reads it.
pub fn call_text(nr: u64, args: &[u64; 6]) -> String {
    let name = abi::nr::name(nr).unwrap_or("syscall");
    let n = match nr {
        abi::nr::BRK => 1,
        abi::nr::MUNMAP | abi::nr::MLOCK | abi::nr::MUNLOCK => 2,
        abi::nr::MPROTECT | abi::nr::MADVISE | abi::nr::MSYNC | abi::nr::MLOCK2 | abi::nr::MSEAL => 3,
        abi::nr::PKEY_MPROTECT => 4,
        abi::nr::MREMAP => 5,
        _ => 6,
    };
    let shown: Vec<String> = args
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, a)| {
            if nr == abi::nr::MMAP && i == 4 {
                format!("{}", *a as i32)
            } else {
                format!("{a:#x}")
            }
        })
        .collect();
    format!("{name}({})", shown.join(", "))
}

/// A return value as a person reads it: an address in hex, or `-ENOMEM`.
pub fn ret_text(ret: u64) -> String {
    match abi::errno_of(ret) {
        Some(e) => format!("-{}", e.name()),
        None if (ret as i64) < 0 && (ret as i64) >= -4095 => format!("-{}", -(ret as i64)),
        None => format!("{ret:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let events = vec![
            Event::Fd {
                mm: 0,
                fd: 3,
                file: Some(FileId {
                    kind: FileKind::Shmem,
                    dev: (254, 0),
                    ino: 42,
                    size: 0x1234,
                    write: false,
                    read: true,
                    noexec: false,
                    path: "/usr/lib/a file.so".into(),
                }),
            },
            Event::Fd {
                mm: 0,
                fd: 4,
                file: None,
            },
            Event::Fault {
                mm: 1,
                addr: 0x7fff_0000,
                write: true,
            },
            Event::Call {
                mm: 0,
                nr: 9,
                args: [0, 0x2000, 3, 0x22, u64::MAX, 0],
                ret: 0x7fff_f7ff_0000,
            },
            Event::Fork { parent: 0, child: 1 },
            Event::Drop { mm: 1 },
        ];
        assert_eq!(load(&save(&events)).unwrap(), events);
        assert!(load("nope\n").is_err());
        assert!(load("mmprep-trace 1\ncall 0 9 1\n").is_err());
        assert_eq!(
            call_text(9, &[0, 0x2000, 3, 0x22, u64::MAX, 0]),
            "mmap(0x0, 0x2000, 0x3, 0x22, -1, 0x0)"
        );
        assert_eq!(ret_text(-12i64 as u64), "-ENOMEM");
    }
}

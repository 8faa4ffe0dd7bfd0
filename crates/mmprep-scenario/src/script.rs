//! A parsed scenario: plain data, no engine and no system calls.
//!
//! The parser ([`crate::parse()`]) turns scenario text (`docs/scenario-format.md`, version 1) into a
//! [`Script`]; both runners, the engine one ([`crate::engine`]) and the host-kernel one
//! (`mmprep-host`), execute the same `Script` and print [`crate::transcript`] lines. Numbers stay
//! exactly as written: addresses are *offsets from the window base* [`WINDOW_BASE`], and the
//! runner adds the base (wrapping) when it makes the call, so a script that names an address below
//! the window still means the same thing on both sides.

use alloc::string::String;
use alloc::vec::Vec;

/// The window base W: every address in a script and in a transcript is an offset from it.
pub const WINDOW_BASE: u64 = 0x2000_0000_0000;
/// The window size when the script has no `window` line.
pub const DEFAULT_WINDOW: u64 = 1 << 30;
/// The largest window a script may ask for.
pub const MAX_WINDOW: u64 = 16 << 40;

/// A whole scenario, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Size of the window `[W, W + window)`, a non-zero multiple of 4 KiB.
    pub window: u64,
    /// Every line that parsed, in order, up to the first one that did not.
    pub steps: Vec<Step>,
    /// The first line that did not parse. A runner runs `steps`, then reports this and exits 3.
    pub error: Option<ParseError>,
    /// The file declarations, indexed by [`FileId`].
    pub files: Vec<FileDecl>,
}

impl Script {
    /// Does any step need the engine (a `driver` or `c` file, or an `events` line)? The kernel
    /// runner then prints `unsupported` and runs nothing.
    pub fn engine_only(&self) -> Option<&Step> {
        self.steps.iter().find(|s| match s.op {
            Op::File { id } => matches!(self.files[id].kind, FileKind::Driver { .. } | FileKind::C { .. }),
            ref op => op.engine_only(),
        })
    }

    /// The absolute address of a script offset: `W + offset`, wrapping.
    pub fn absolute(offset: u64) -> u64 {
        WINDOW_BASE.wrapping_add(offset)
    }

    /// The window as an absolute range `[start, end)`.
    pub fn window_range(&self) -> (u64, u64) {
        (WINDOW_BASE, WINDOW_BASE + self.window)
    }
}

/// A line that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters, of the token the error is about (of the line's first token
    /// when it is about the whole line); 0 when the runner, not the parser, found the error.
    pub column: usize,
    /// What is wrong, for a human.
    pub message: String,
}

/// One line of the script that does something (or declares something).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the script.
    pub line: usize,
    /// What the line does.
    pub op: Op,
}

impl Step {
    /// The transcript's verb: the line's first token (`mmap`, `mlock2`, `smaps`...).
    pub fn verb(&self) -> &'static str {
        self.op.verb()
    }
}

/// Index of a file declaration in [`Script::files`].
pub type FileId = usize;

/// A `file NAME KIND ...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDecl {
    /// The scenario's NAME for it (printed in the maps name column).
    pub name: String,
    /// What kind of file.
    pub kind: FileKind,
    /// The line that declared it.
    pub line: usize,
}

/// The kinds of file a scenario can open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `memfd SIZE`: a memfd of SIZE bytes, opened read-write.
    Memfd { size: u64 },
    /// `tmpfile SIZE [ro]`: a regular file of SIZE bytes in a fresh temporary directory.
    Tmpfile { size: u64, read_only: bool },
    /// `zero`: `/dev/zero`, opened read-write.
    Zero,
    /// `driver DRIVER [KEY=VALUE ...]`: engine only.
    Driver {
        driver: String,
        params: Vec<(String, String)>,
    },
    /// `c PATH.c [fops=SYMBOL] [cflags=A,B] [ro] [KEY=VALUE ...]`: a C driver, compiled and
    /// loaded; engine only.
    C {
        /// As written: relative to the scenario's folder.
        path: String,
        /// The `struct file_operations` to take; `None`: the only one in the file.
        fops: Option<String>,
        /// Extra compiler flags.
        cflags: Vec<String>,
        /// Open read-only.
        read_only: bool,
        /// The driver's parameters.
        params: Vec<(String, String)>,
    },
}

/// The ADDR of an `mmap` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmapAddr {
    /// `any`: a null hint.
    Any,
    /// An offset from the window base.
    At(u64),
}

/// The `FILE OFFSET` part of an `mmap` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileArg {
    /// Which declared file.
    pub file: FileId,
    /// Offset in bytes (passed to the kernel as is; may be unaligned).
    pub offset: u64,
    /// Was the file still open at this line? If not, the call gets descriptor -1.
    pub open: bool,
}

/// `touch` access kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `r`: read one byte per page.
    Read,
    /// `w`: read one byte per page and write it back.
    Write,
}

/// What a line does. Lengths and offsets are raw 64-bit values exactly as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `file NAME ...`: open a file (prints nothing).
    File { id: FileId },
    /// `close NAME`: close its descriptor (prints nothing).
    Close { id: FileId },
    /// `mmap ADDR LEN PROT FLAGS [FILE OFFSET]`.
    Mmap {
        addr: MmapAddr,
        len: u64,
        prot: u32,
        flags: u32,
        file: Option<FileArg>,
    },
    /// `munmap ADDR LEN`.
    Munmap { addr: u64, len: u64 },
    /// `mprotect ADDR LEN PROT[|growsdown|growsup]`.
    Mprotect { addr: u64, len: u64, prot: u32 },
    /// `madvise ADDR LEN ADVICE`, with the kernel's advice number.
    Madvise { addr: u64, len: u64, advice: u32 },
    /// `mlock ADDR LEN`.
    Mlock { addr: u64, len: u64 },
    /// `mlock2 ADDR LEN onfault` (flags = `MLOCK_ONFAULT`).
    Mlock2 { addr: u64, len: u64, flags: u32 },
    /// `munlock ADDR LEN`.
    Munlock { addr: u64, len: u64 },
    /// `mremap ADDR OLDLEN NEWLEN FLAGS [NEWADDR]`; `new_addr` is given exactly with `fixed`.
    Mremap {
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: Option<u64>,
    },
    /// `mseal ADDR LEN`.
    Mseal { addr: u64, len: u64 },
    /// `touch ADDR LEN r|w`.
    Touch { addr: u64, len: u64, access: Access },
    /// `write ADDR LEN BYTE`.
    Write { addr: u64, len: u64, byte: u8 },
    /// `read ADDR LEN`.
    Read { addr: u64, len: u64 },
    /// `fork`: continue in the child.
    Fork,
    /// `maps`.
    Maps,
    /// `smaps`.
    Smaps,
    /// `events` (engine only).
    Events,
}

impl Op {
    /// The line's first token.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::File { .. } => "file",
            Op::Close { .. } => "close",
            Op::Mmap { .. } => "mmap",
            Op::Munmap { .. } => "munmap",
            Op::Mprotect { .. } => "mprotect",
            Op::Madvise { .. } => "madvise",
            Op::Mlock { .. } => "mlock",
            Op::Mlock2 { .. } => "mlock2",
            Op::Munlock { .. } => "munlock",
            Op::Mremap { .. } => "mremap",
            Op::Mseal { .. } => "mseal",
            Op::Touch { .. } => "touch",
            Op::Write { .. } => "write",
            Op::Read { .. } => "read",
            Op::Fork => "fork",
            Op::Maps => "maps",
            Op::Smaps => "smaps",
            Op::Events => "events",
        }
    }

    /// Does this line print a transcript line? (`file` and `close` do not.)
    pub fn prints(&self) -> bool {
        !matches!(self, Op::File { .. } | Op::Close { .. })
    }

    /// Is this an engine-only line? (`events`; `file ... driver` is judged from its
    /// declaration, see [`Script::engine_only`].)
    pub fn engine_only(&self) -> bool {
        matches!(self, Op::Events)
    }
}

/// The page size the scenario format assumes (x86_64).
pub const PAGE_SIZE: u64 = 4096;

/// Splits `[addr, addr + len)` at page boundaries: `(first byte, length)` per page, lowest first,
/// as `touch`, `read` and `write` visit them on both runners. The range may wrap past the top of
/// the address space; nothing overflows.
pub fn page_chunks(addr: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut next = addr;
    let mut left = len;
    core::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = (PAGE_SIZE - next % PAGE_SIZE).min(left);
        let chunk = (next, n);
        next = next.wrapping_add(n);
        left -= n;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_a_range() {
        let chunks: Vec<_> = page_chunks(0x1800, 0x2000).collect();
        assert_eq!(chunks, [(0x1800, 0x800), (0x2000, 0x1000), (0x3000, 0x800)]);
        assert_eq!(page_chunks(0, 0).count(), 0);
        assert_eq!(page_chunks(5, 1).collect::<Vec<_>>(), [(5, 1)]);
        // A range that wraps around the top of the address space does not overflow.
        let chunks: Vec<_> = page_chunks(u64::MAX - 0xfff, 0x2000).collect();
        assert_eq!(chunks, [(u64::MAX - 0xfff, 0x1000), (0, 0x1000)]);
    }
}

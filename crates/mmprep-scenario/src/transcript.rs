//! The transcript: one result line per operation, identical on the engine and on the host kernel.
//!
//! Both runners describe what happened as an [`Outcome`]; [`format_step`] turns it into the exact
//! text of `docs/scenario-format.md` ("Transcript"). Keeping the printing here, in one place, is
//! what lets a diff of the two transcripts mean a difference in behaviour and never in formatting.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mmprep::Errno;

use crate::script::WINDOW_BASE;

/// The signal a memory access raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// No VMA, or the VMA does not allow the access.
    Segv,
    /// The VMA allows it, but there is nothing to map (beyond the end of a file).
    Bus,
}

impl Signal {
    /// `SIGSEGV` or `SIGBUS`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Segv => "SIGSEGV",
            Signal::Bus => "SIGBUS",
        }
    }
}

/// A faulting access: which signal, at which absolute address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub signal: Signal,
    /// Absolute address of the byte whose access faulted.
    pub addr: u64,
}

/// One line of `/proc/PID/maps`, reduced to what a transcript shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsEntry {
    /// Absolute start address.
    pub start: u64,
    /// Absolute end address (exclusive).
    pub end: u64,
    /// Four characters as in `/proc/PID/maps` (`rw-p`, `r--s`).
    pub perms: [u8; 4],
    /// File offset in bytes (0 for anonymous VMAs).
    pub offset: u64,
    /// The scenario's NAME, the kernel's name column, or empty.
    pub name: String,
}

/// What one operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `mmap`/`mremap` success: the absolute address returned.
    Addr(u64),
    /// Success of every other call: `0`.
    Done,
    /// A failed call.
    Failed(Errno),
    /// `touch` or `write`: `None` if every page was accessed, else the first fault.
    Accessed(Option<Fault>),
    /// `read`: the bytes read as runs of (byte, count), then the fault that stopped it, if any.
    /// `len` is the length asked for (a zero-length read prints `-`).
    Read {
        len: u64,
        runs: Vec<(u8, u64)>,
        fault: Option<Fault>,
    },
    /// `maps`: the VMAs intersecting the window, lowest first.
    Maps(Vec<MapsEntry>),
    /// `smaps`: the same, each with its `VmFlags` codes (`["rd", "wr", ...]`).
    Smaps(Vec<(MapsEntry, Vec<&'static str>)>),
    /// `fork`: printed in the child as `0`.
    Forked,
    /// `events` (engine only): the hook calls since the last `events`, one per line.
    Events(Vec<String>),
}

/// The `mmprep` command's exit statuses (`docs/scenario-format.md`, "Exit status"). When several
/// files are given, the command exits with the first non-zero status.
pub mod exit {
    /// Success; for `diff`, `fuzz` and `tour`: the transcripts are the same.
    pub const OK: u8 = 0;
    /// The transcripts differ (`diff`, `fuzz`, `tour`).
    pub const DIFFERS: u8 = 1;
    /// The command line is wrong (clap's usage error).
    pub const USAGE: u8 = 2;
    /// A bad scenario: a line that does not parse, an empty scenario, a file that cannot be read
    /// or is not UTF-8.
    pub const BAD_SCENARIO: u8 = 3;
    /// The host failed: the kernel runner could not run (fork, a file, /proc), the window is
    /// already mapped, the benchmark failed, stdout cannot be written.
    pub const HOST_FAILED: u8 = 4;
    /// A line the runner does not support: an engine-only line on the kernel runner, an
    /// operation the engine does not have yet.
    pub const UNSUPPORTED: u8 = 5;
}

/// How a run ended. Each end has its exit status ([`exit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Every line ran. [`exit::OK`].
    Finished,
    /// A line did not parse; the lines before it ran. [`exit::BAD_SCENARIO`].
    ParseError(crate::script::ParseError),
    /// The runner cannot run this script or this line: the kernel runner for engine-only lines
    /// (nothing ran), the engine for an operation it does not have yet (the lines before it ran).
    /// [`exit::UNSUPPORTED`].
    Unsupported { line: usize, reason: String },
    /// The kernel runner found `[W, W + window)` already mapped. [`exit::HOST_FAILED`].
    WindowTaken,
    /// The runner itself failed (could not create a file, fork, read /proc).
    /// [`exit::HOST_FAILED`].
    RunnerFailed(String),
}

impl RunEnd {
    /// The exit status the CLI uses for this end.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunEnd::Finished => exit::OK,
            RunEnd::ParseError(_) => exit::BAD_SCENARIO,
            RunEnd::Unsupported { .. } => exit::UNSUPPORTED,
            RunEnd::WindowTaken | RunEnd::RunnerFailed(_) => exit::HOST_FAILED,
        }
    }

    /// A one-line message for stderr, or `None` for a normal end. A parse error reads
    /// `LINE:COLUMN: message` (`LINE: message` when the runner found it and has no column), so
    /// that the caller can put the file name in front.
    pub fn message(&self) -> Option<String> {
        match self {
            RunEnd::Finished => None,
            RunEnd::ParseError(e) if e.column > 0 => Some(format!("{}:{}: {}", e.line, e.column, e.message)),
            RunEnd::ParseError(e) => Some(format!("{}: {}", e.line, e.message)),
            RunEnd::Unsupported { line, reason } => Some(format!("unsupported: line {line}: {reason}")),
            RunEnd::WindowTaken => Some("the window is not free: something is already mapped in it".into()),
            RunEnd::RunnerFailed(why) => Some(format!("runner failed: {why}")),
        }
    }
}

/// A whole run: the transcript entries (each possibly several lines, see [`format_step`]) and
/// how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub entries: Vec<String>,
    pub end: RunEnd,
}

impl Transcript {
    /// The transcript text as printed: every entry followed by a newline.
    pub fn text(&self) -> String {
        let len = self.entries.iter().map(|e| e.len() + 1).sum();
        let mut s = String::with_capacity(len);
        for e in &self.entries {
            s.push_str(e);
            s.push('\n');
        }
        s
    }
}

/// Appends `(byte, 1)` to run-length encoded `runs`.
pub fn push_run(runs: &mut Vec<(u8, u64)>, byte: u8, count: u64) {
    if count == 0 {
        return;
    }
    match runs.last_mut() {
        Some((b, n)) if *b == byte => *n += count,
        _ => runs.push((byte, count)),
    }
}

/// Formats an absolute address as the transcript does: `0x` + lower-case hex of `addr - W`,
/// wrapping (an address below W prints as a 64-bit two's complement).
pub fn offset_hex(addr: u64) -> String {
    let mut buf = [0u8; 18];
    let digits = offset_hex_digits(&mut buf, addr);
    digits.iter().map(|&b| char::from(b)).collect()
}

/// The text of [`offset_hex`]`(addr)`, in `buf` (what `format!("{:#x}", addr - W)` prints,
/// without the formatting machinery): each nibble from a table, the lowest first, then `0x`.
fn offset_hex_digits(buf: &mut [u8; 18], addr: u64) -> &[u8] {
    let mut n = addr.wrapping_sub(WINDOW_BASE);
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    at -= 2;
    buf[at] = b'0';
    buf[at + 1] = b'x';
    &buf[at..]
}

/// The lower-case hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The decimal digits of `n`, in `buf` (what `format!("{n}")` prints).
fn decimal_digits(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends [`offset_hex`]`(addr)` to `out`.
fn push_offset_hex(out: &mut Vec<u8>, addr: u64) {
    let mut buf = [0u8; 18];
    out.extend_from_slice(offset_hex_digits(&mut buf, addr));
}

/// Appends `n` in decimal to `out`.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal_digits(&mut buf, n));
}

/// Appends `n` as two lower-case hex digits.
fn push_byte_hex(out: &mut Vec<u8>, n: u8) {
    out.push(HEX[usize::from(n >> 4)]);
    out.push(HEX[usize::from(n & 0xf)]);
}

/// Appends `n` as at least eight lower-case hex digits (`{:08x}`).
fn push_hex8(out: &mut Vec<u8>, n: u64) {
    let digits = (16 - n.leading_zeros() as usize / 4).max(8);
    for i in (0..digits).rev() {
        out.push(HEX[((n >> (4 * i)) & 0xf) as usize]);
    }
}

fn push_fault(out: &mut Vec<u8>, f: &Fault) {
    out.extend_from_slice(f.signal.name().as_bytes());
    out.push(b'@');
    push_offset_hex(out, f.addr);
}

fn maps_line(out: &mut Vec<u8>, e: &MapsEntry) {
    out.extend_from_slice(b"  ");
    push_hex8(out, e.start.wrapping_sub(WINDOW_BASE));
    out.push(b'-');
    push_hex8(out, e.end.wrapping_sub(WINDOW_BASE));
    out.push(b' ');
    match core::str::from_utf8(&e.perms) {
        Ok(perms) => out.extend_from_slice(perms.as_bytes()),
        Err(_) => out.extend_from_slice(b"????"),
    }
    out.push(b' ');
    push_hex8(out, e.offset);
    if !e.name.is_empty() {
        out.push(b' ');
        out.extend_from_slice(e.name.as_bytes());
    }
}

/// The text of one transcript entry, without a trailing newline. `window` is the absolute window
/// range `[start, end)`; multi-line results (`maps`, `smaps`, `events`) put their lines after
/// the first, separated by `\n`. [`write_step`] appends the same text to a buffer.
pub fn format_step(line: usize, verb: &str, outcome: &Outcome, window: (u64, u64)) -> String {
    // Most entries are one short line (`L123 mprotect = 0`): exactly the room it takes, so that
    // writing it never grows the string and a long transcript keeps no slack.
    let digits = (line.max(1).ilog10() + 1) as usize;
    let result = match outcome {
        Outcome::Addr(_) => 18,
        Outcome::Done | Outcome::Forked | Outcome::Accessed(None) => 1,
        Outcome::Failed(e) => 1 + e.name().len(),
        _ => 32,
    };
    let mut out = Vec::with_capacity(1 + digits + 1 + verb.len() + 3 + result);
    write_step(&mut out, line, verb, outcome, window);
    // Every piece is a `str` or ASCII, so the conversion never fails.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The result of the calls long scenarios are made of (`mmap`, `munmap`, `mprotect`,
/// `madvise`...): an address, `0` or an errno. It has no heap parts, so a runner that prints as
/// it goes makes and drops none ([`write_simple`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simple {
    /// [`Outcome::Addr`].
    Addr(u64),
    /// [`Outcome::Done`].
    Done,
    /// [`Outcome::Failed`].
    Failed(Errno),
}

/// `L<n> `, the start of line `n`'s entry, kept as text: a runner that goes through the lines in
/// order counts it up one line at a time ([`LineLabel::next`]), a carry at a time, instead of
/// printing the number again for every entry.
#[derive(Clone, Debug)]
pub struct LineLabel {
    /// `L`, the digits, a space; the rest unused.
    text: [u8; LABEL_BYTES],
    /// How many digits.
    digits: usize,
}

/// `L`, up to 20 digits and a space, rounded up.
const LABEL_BYTES: usize = 24;

impl LineLabel {
    /// The label of line `line`.
    pub fn new(line: usize) -> LineLabel {
        let mut text = [b' '; LABEL_BYTES];
        text[0] = b'L';
        let mut buf = [0u8; 20];
        let digits = decimal_digits(&mut buf, line as u64);
        for (to, &d) in text[1..].iter_mut().zip(digits) {
            *to = d;
        }
        LineLabel {
            text,
            digits: digits.len(),
        }
    }

    /// The label of the next line.
    pub fn next(&mut self) {
        let mut at = self.digits;
        loop {
            let d = &mut self.text[at];
            if *d != b'9' {
                *d += 1;
                return;
            }
            *d = b'0';
            at -= 1;
            if at == 0 {
                break;
            }
        }
        // 99..9 + 1: a 1 and one more 0 (the last is the space's place, which moves right).
        if self.digits + 2 < LABEL_BYTES {
            self.text[1] = b'1';
            self.digits += 1;
            self.text[self.digits] = b'0';
            self.text[self.digits + 1] = b' ';
        }
    }

    /// `L<n> `.
    pub fn text(&self) -> &[u8] {
        &self.text[..self.digits + 2]
    }
}

/// `VERB = `, the part of an entry between the label and the result, padded to a fixed size so
/// that it is copied as one block: a runner makes one per verb, once ([`EntryVerb::new`] is a
/// `const fn`).
#[derive(Clone, Copy, Debug)]
pub struct EntryVerb {
    text: [u8; ENTRY_VERB_BYTES],
    len: usize,
}

/// A verb of up to 13 bytes and ` = `.
const ENTRY_VERB_BYTES: usize = 16;

impl EntryVerb {
    /// The text for `verb`; `None` when it is too long (more than 13 bytes).
    pub const fn new(verb: &str) -> Option<EntryVerb> {
        let verb = verb.as_bytes();
        if verb.len() + 3 > ENTRY_VERB_BYTES {
            return None;
        }
        let mut text = [0u8; ENTRY_VERB_BYTES];
        let mut i = 0;
        while i < verb.len() {
            text[i] = verb[i];
            i += 1;
        }
        text[i] = b' ';
        text[i + 1] = b'=';
        text[i + 2] = b' ';
        Some(EntryVerb { text, len: i + 3 })
    }

    /// `VERB = `.
    pub fn text(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

/// Appends the entry of a [`Simple`] result, without a trailing newline: what [`write_step`]
/// prints for the same [`Outcome`].
pub fn write_simple(out: &mut Vec<u8>, line: usize, verb: &str, result: Simple, window: (u64, u64)) {
    match EntryVerb::new(verb) {
        Some(verb) => {
            write_simple_at(out, &LineLabel::new(line), &verb, result, window);
            out.pop();
        }
        None => write_step_pieces(
            out,
            LineLabel::new(line).text(),
            verb.as_bytes(),
            &result.outcome(),
            window,
        ),
    }
}

impl Simple {
    /// The same result as an [`Outcome`].
    pub fn outcome(self) -> Outcome {
        match self {
            Simple::Addr(a) => Outcome::Addr(a),
            Simple::Done => Outcome::Done,
            Simple::Failed(e) => Outcome::Failed(e),
        }
    }
}

/// [`write_simple`] with the line's [`LineLabel`] and the verb's [`EntryVerb`], and the `\n` that
/// ends the entry: it is put together in a buffer on the stack, label and verb as fixed-size
/// copies, and appended to `out` in one piece (one capacity check a line instead of one per
/// piece).
pub fn write_simple_at(out: &mut Vec<u8>, label: &LineLabel, verb: &EntryVerb, result: Simple, window: (u64, u64)) {
    // The label, the verb and the longest result: `0x` and 16 digits, `outside`, or `-` and an
    // errno name (checked below).
    const ROOM: usize = LABEL_BYTES + ENTRY_VERB_BYTES + 41;
    let mut buf = [0u8; ROOM];
    buf[..LABEL_BYTES].copy_from_slice(&label.text);
    let mut n = label.digits + 2;
    buf[n..n + ENTRY_VERB_BYTES].copy_from_slice(&verb.text);
    n += verb.len;
    match result {
        Simple::Addr(a) if a >= window.0 && a < window.1 => {
            let offset = a.wrapping_sub(WINDOW_BASE);
            let digits = (16 - offset.leading_zeros() as usize / 4).max(1);
            buf[n] = b'0';
            buf[n + 1] = b'x';
            n += 2;
            for i in 0..digits {
                buf[n + i] = HEX[((offset >> (4 * (digits - 1 - i))) & 0xf) as usize];
            }
            n += digits;
        }
        Simple::Addr(_) => {
            buf[n..n + 7].copy_from_slice(b"outside");
            n += 7;
        }
        Simple::Done => {
            buf[n] = b'0';
            n += 1;
        }
        Simple::Failed(e) => {
            let name = e.name().as_bytes();
            // Room for the name and the `\n`.
            match buf.get_mut(n + 1..n + 2 + name.len()) {
                Some(to) => to[..name.len()].copy_from_slice(name),
                None => {
                    // An errno name longer than any Linux has: the general way.
                    out.extend_from_slice(&buf[..n]);
                    out.push(b'-');
                    out.extend_from_slice(name);
                    out.push(b'\n');
                    return;
                }
            }
            buf[n] = b'-';
            n += 1 + name.len();
        }
    }
    buf[n] = b'\n';
    out.extend_from_slice(&buf[..=n]);
}

/// Appends the text of [`format_step`] to `out`, without a trailing newline: a runner that prints
/// as it goes reuses one buffer for the whole transcript, with no `String` per line and no
/// `format!` on the common results (parsing and printing are part of what users time).
pub fn write_step(out: &mut Vec<u8>, line: usize, verb: &str, outcome: &Outcome, window: (u64, u64)) {
    let simple = match *outcome {
        Outcome::Addr(a) => Simple::Addr(a),
        Outcome::Done | Outcome::Forked | Outcome::Accessed(None) => Simple::Done,
        Outcome::Failed(e) => Simple::Failed(e),
        _ => return write_step_pieces(out, LineLabel::new(line).text(), verb.as_bytes(), outcome, window),
    };
    write_simple(out, line, verb, simple, window);
}

/// [`write_step`] one piece at a time, for every result.
fn write_step_pieces(out: &mut Vec<u8>, label: &[u8], verb: &[u8], outcome: &Outcome, window: (u64, u64)) {
    out.extend_from_slice(label);
    out.extend_from_slice(verb);
    out.extend_from_slice(b" = ");
    match outcome {
        Outcome::Addr(a) => {
            if *a >= window.0 && *a < window.1 {
                push_offset_hex(out, *a);
            } else {
                out.extend_from_slice(b"outside");
            }
        }
        Outcome::Done | Outcome::Forked => out.push(b'0'),
        Outcome::Failed(e) => {
            out.push(b'-');
            out.extend_from_slice(e.name().as_bytes());
        }
        Outcome::Accessed(None) => out.push(b'0'),
        Outcome::Accessed(Some(f)) => push_fault(out, f),
        Outcome::Read { len, runs, fault } => {
            if *len == 0 {
                out.push(b'-');
            } else {
                let mut first = true;
                for &(b, n) in runs {
                    if !first {
                        out.push(b' ');
                    }
                    first = false;
                    push_byte_hex(out, b);
                    out.push(b'x');
                    push_decimal(out, n);
                }
                if let Some(f) = fault {
                    if !first {
                        out.push(b' ');
                    }
                    push_fault(out, f);
                }
            }
        }
        Outcome::Maps(entries) => {
            push_decimal(out, entries.len() as u64);
            for e in entries {
                out.push(b'\n');
                maps_line(out, e);
            }
        }
        Outcome::Smaps(entries) => {
            push_decimal(out, entries.len() as u64);
            for (e, codes) in entries {
                out.push(b'\n');
                maps_line(out, e);
                out.extend_from_slice(b" |");
                for c in codes {
                    out.push(b' ');
                    out.extend_from_slice(c.as_bytes());
                }
            }
        }
        Outcome::Events(lines) => {
            push_decimal(out, lines.len() as u64);
            for l in lines {
                out.extend_from_slice(b"\n  ");
                out.extend_from_slice(l.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    const WIN: (u64, u64) = (WINDOW_BASE, WINDOW_BASE + (64 << 20));

    #[test]
    fn contract_example_lines() {
        assert_eq!(
            format_step(3, "mmap", &Outcome::Addr(WINDOW_BASE), WIN),
            "L3 mmap = 0x0"
        );
        assert_eq!(
            format_step(4, "mmap", &Outcome::Addr(WINDOW_BASE + 0x4000), WIN),
            "L4 mmap = 0x4000"
        );
        assert_eq!(format_step(6, "mprotect", &Outcome::Done, WIN), "L6 mprotect = 0");
        assert_eq!(
            format_step(9, "munmap", &Outcome::Failed(Errno::EINVAL), WIN),
            "L9 munmap = -EINVAL"
        );
        let maps = Outcome::Maps(vec![MapsEntry {
            start: WINDOW_BASE,
            end: WINDOW_BASE + 0x8000,
            perms: *b"rw-p",
            offset: 0,
            name: String::new(),
        }]);
        assert_eq!(
            format_step(5, "maps", &maps, WIN),
            "L5 maps = 1\n  00000000-00008000 rw-p 00000000"
        );
        let smaps = Outcome::Smaps(vec![(
            MapsEntry {
                start: WINDOW_BASE + 0x100000,
                end: WINDOW_BASE + 0x102000,
                perms: *b"r--s",
                offset: 0x1000,
                name: "data".to_string(),
            },
            vec!["rd", "sh", "mr", "mw", "me", "ms"],
        )]);
        assert_eq!(
            format_step(8, "smaps", &smaps, WIN),
            "L8 smaps = 1\n  00100000-00102000 r--s 00001000 data | rd sh mr mw me ms"
        );
    }

    #[test]
    fn numbers_print_as_format_does() {
        for n in [0u64, 1, 9, 10, 4095, 4096, 0x1234_5678_9abc, u64::MAX] {
            let mut s = Vec::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string().as_bytes());
            let mut s = Vec::new();
            push_hex8(&mut s, n);
            assert_eq!(s, format!("{n:08x}").as_bytes());
            assert_eq!(offset_hex(WINDOW_BASE.wrapping_add(n)), format!("{n:#x}"));
        }
    }

    #[test]
    fn addresses_outside_and_below_the_window() {
        assert_eq!(
            format_step(1, "mmap", &Outcome::Addr(0x7f00_0000_0000), WIN),
            "L1 mmap = outside"
        );
        let f = Fault {
            signal: Signal::Segv,
            addr: WINDOW_BASE - 0x1000,
        };
        assert_eq!(
            format_step(2, "touch", &Outcome::Accessed(Some(f)), WIN),
            "L2 touch = SIGSEGV@0xfffffffffffff000"
        );
    }

    #[test]
    fn read_runs() {
        let mut runs = Vec::new();
        push_run(&mut runs, 0, 4096);
        push_run(&mut runs, 0x41, 4096);
        push_run(&mut runs, 0x41, 4096);
        let r = Outcome::Read {
            len: 12288,
            runs,
            fault: None,
        };
        assert_eq!(format_step(1, "read", &r, WIN), "L1 read = 00x4096 41x8192");
        let f = Fault {
            signal: Signal::Bus,
            addr: WINDOW_BASE + 0x3000,
        };
        let r = Outcome::Read {
            len: 4096,
            runs: vec![],
            fault: Some(f),
        };
        assert_eq!(format_step(1, "read", &r, WIN), "L1 read = SIGBUS@0x3000");
        let r = Outcome::Read {
            len: 0,
            runs: vec![],
            fault: None,
        };
        assert_eq!(format_step(1, "read", &r, WIN), "L1 read = -");
    }

    /// Counting a label up gives the label of each number, across every carry.
    #[test]
    fn line_labels_count_as_numbers_print() {
        let mut label = LineLabel::new(0);
        for n in 1..=100_500usize {
            label.next();
            assert_eq!(label.text(), format!("L{n} ").as_bytes());
        }
        let mut label = LineLabel::new(99_999_999);
        label.next();
        assert_eq!(label.text(), b"L100000000 ");
    }

    /// The stack-built entries of the common results are the piece-by-piece ones.
    #[test]
    fn simple_entries_print_as_outcomes_do() {
        for line in [1, 9, 10, 12345, usize::MAX] {
            for result in [
                Simple::Done,
                Simple::Addr(WINDOW_BASE + 0x7000),
                Simple::Addr(0x10),
                Simple::Failed(Errno::ENOMEM),
            ] {
                let outcome = result.outcome();
                let mut pieces = Vec::new();
                write_step_pieces(&mut pieces, LineLabel::new(line).text(), b"mprotect", &outcome, WIN);
                let mut simple = Vec::new();
                write_simple(&mut simple, line, "mprotect", result, WIN);
                assert_eq!(simple, pieces);
                assert_eq!(
                    String::from_utf8(simple).ok(),
                    Some(format_step(line, "mprotect", &outcome, WIN))
                );
            }
        }
    }
}

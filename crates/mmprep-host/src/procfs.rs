//! Reading the host's own view of the address space: `/proc/self/maps` and `/proc/self/smaps`.
//!
//! The kernel prints one line per VMA (`fs/proc/task_mmu.c:show_map_vma`, \[H\] 6.18):
//!
//! ```text
//!   200000000000-200000008000 rw-p 00000000 00:00 0          (no name: the line ends "0 ")
//!   200000100000-200000102000 r--s 00001000 00:01 2054       /memfd:data (deleted)
//!   start-end                 perms offset  dev   inode      name, padded to a column
//! ```
//!
//! `smaps` prints the same line, then `Key: value` lines ending with `VmFlags:` and the VMA's
//! two-letter flag codes. [`parse`] reads either form into [`ProcVma`] values; the runner then
//! keeps the VMAs in its window and swaps a scenario file's NAME in for the kernel's, and the
//! importer (`import.rs`) builds an engine VMA from each. Of the `Key: value` lines only
//! `Anonymous`, `AnonHugePages` and `Swap` are read ([`ProcVma::anon_pages`]).
//!
//! A small parser of our own rather than the `procfs` crate, on purpose: the runner must read
//! maps when the scenario has taken the process to `vm.max_map_count`, where no new mapping can
//! be made. [`read_self_in`] reads into a buffer set aside beforehand and parses as it reads;
//! `procfs` builds a `String` per line and a `HashMap` per VMA, which at the limit fails. And
//! `procfs` 0.18 knows 32 `VmFlags` codes: the ones it has no name for (`sl` for a sealed VMA,
//! `gu` for guard regions, `ss`, `bt`, `lf`...) it drops, and the importer needs every one. The
//! parser is kept honest by `tests/procfs_crate.rs`, which parses this process's
//! `/proc/self/smaps` with both and compares every VMA and field (range, perms, offset, device,
//! inode, name, `VmFlags`, anonymous pages). Every other `/proc` file the crate reads goes
//! through `procfs`.

/// One VMA as `/proc/self/maps` (or `smaps`) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcVma {
    pub start: u64,
    pub end: u64,
    /// `rw-p`, `r--s` ...
    pub perms: [u8; 4],
    /// File offset in bytes.
    pub offset: u64,
    /// Device `(major, minor)` of the mapped file, `(0, 0)` for anonymous memory.
    pub dev: (u32, u32),
    /// Inode of the mapped file, 0 for anonymous memory.
    pub inode: u64,
    /// The name column (a path, `[heap]`, `/dev/zero (deleted)` ...), empty if none.
    pub name: String,
    /// The `VmFlags` codes, in the kernel's order (`smaps` only; empty for `maps`).
    pub flags: Vec<&'static str>,
    /// `Anonymous:`, `AnonHugePages:` or `Swap:` above 0 kB: the VMA holds anonymous pages, so
    /// it has an anon_vma (`smaps` only; `false` for `maps`).
    pub anon_pages: bool,
}

/// Reads and parses `/proc/self/maps` (`smaps == false`) or `/proc/self/smaps`.
pub fn read_self(smaps: bool) -> Result<Vec<ProcVma>, String> {
    let path = if smaps { "/proc/self/smaps" } else { "/proc/self/maps" };
    let text = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse(&String::from_utf8_lossy(&text)).map_err(|e| format!("{path}: {e}"))
}

/// Reads `/proc/self/maps` (`smaps == false`) or `/proc/self/smaps` and appends to `out` the
/// VMAs that intersect `[low, high)`, lowest first.
///
/// Made for a process at the map limit, which cannot create a mapping: the text is read in
/// `buf`-sized chunks and parsed as it comes, so nothing grows with the size of the file;
/// only `out` grows, by one entry per VMA kept (reserve its capacity beforehand).
pub fn read_self_in(smaps: bool, low: u64, high: u64, buf: &mut [u8], out: &mut Vec<ProcVma>) -> Result<(), String> {
    use std::io::Read;
    let path = if smaps { "/proc/self/smaps" } else { "/proc/self/maps" };
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // Whether the last VMA line seen is one we keep (its VmFlags line goes to it).
    let (mut seen_header, mut keeping) = (false, false);
    let mut filled = 0;
    loop {
        let n = file
            .read(&mut buf[filled..])
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        filled += n;
        let complete = match buf[..filled].iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if n == 0 || filled == buf.len() => filled,
            None => continue,
        };
        for raw in buf[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = std::str::from_utf8(raw).map_err(|_| format!("{path}: a line is not UTF-8"))?;
            if let Some(vma) = parse_header(line) {
                seen_header = true;
                keeping = vma.start < high && vma.end > low;
                if keeping {
                    out.push(vma);
                }
            } else if let Some(codes) = line.strip_prefix("VmFlags:") {
                if !seen_header {
                    return Err(format!("{path}: a VmFlags line before any VMA"));
                }
                if let Some(vma) = out.last_mut().filter(|_| keeping) {
                    vma.flags = codes.split_whitespace().map(vm_flag_code).collect();
                }
            } else if !is_smaps_field(line) {
                return Err(format!("{path}: unexpected line {line:?}"));
            } else if let Some(vma) = out.last_mut().filter(|_| keeping) {
                vma.anon_pages |= holds_anon_pages(line).map_err(|e| format!("{path}: {e}"))?;
            }
        }
        buf.copy_within(complete..filled, 0);
        filled -= complete;
        if n == 0 {
            return Ok(());
        }
    }
}

/// Parses the text of a `maps` or `smaps` file.
pub fn parse(text: &str) -> Result<Vec<ProcVma>, String> {
    let mut vmas: Vec<ProcVma> = Vec::new();
    for line in text.lines() {
        if let Some(vma) = parse_header(line) {
            vmas.push(vma);
        } else if let Some(codes) = line.strip_prefix("VmFlags:") {
            let Some(vma) = vmas.last_mut() else {
                return Err("a VmFlags line before any VMA".into());
            };
            vma.flags = codes.split_whitespace().map(vm_flag_code).collect();
        } else if !is_smaps_field(line) {
            return Err(format!("unexpected line {line:?}"));
        } else if let Some(vma) = vmas.last_mut() {
            vma.anon_pages |= holds_anon_pages(line)?;
        } else {
            return Err(format!("a field before any VMA: {line:?}"));
        }
    }
    Ok(vmas)
}

/// For an `Anonymous:`, `AnonHugePages:` or `Swap:` line (`N kB`), whether N is above 0;
/// `false` for every other field line.
fn holds_anon_pages(line: &str) -> Result<bool, String> {
    match line.split_once(':') {
        Some(("Anonymous" | "AnonHugePages" | "Swap", value)) => value
            .split_whitespace()
            .next()
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb > 0)
            .ok_or_else(|| format!("bad line {line:?}")),
        _ => Ok(false),
    }
}

/// `Rss:   4 kB`, `THPeligible:  0`: a field line of an `smaps` block.
fn is_smaps_field(line: &str) -> bool {
    line.split_once(':')
        .is_some_and(|(key, _)| !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// Parses one VMA line, or returns `None` if `line` is not one.
fn parse_header(line: &str) -> Option<ProcVma> {
    let mut rest = line;
    let mut field = || {
        let s = rest.trim_start_matches(' ');
        let end = s.find(' ').unwrap_or(s.len());
        let (f, r) = s.split_at(end);
        rest = r;
        f
    };
    let (start, end) = field().split_once('-')?;
    let perms: [u8; 4] = field().as_bytes().try_into().ok()?;
    let offset = field();
    let (major, minor) = field().split_once(':')?;
    let inode = field();
    let vma = ProcVma {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms,
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        ),
        inode: inode.parse().ok()?,
        name: rest.trim_start_matches(' ').to_string(),
        flags: Vec::new(),
        anon_pages: false,
    };
    Some(vma)
}

/// The `VmFlags` codes the host kernel prints (`docs/reference/vma-rules.md` 1.1), as static
/// strings, so that a transcript can hold them as `&'static str` like the engine's.
const VM_FLAG_CODES: &[&str] = &[
    "rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "um", "pf", "gu", "uw", "lo", "io", "sr", "rr", "dc", "de",
    "lf", "ac", "nr", "ht", "sf", "ar", "wf", "dd", "sd", "mm", "hg", "nh", "mg", "ss", "dp", "ui", "sl", "bt", "mt",
    "??",
];

/// The static string for a `VmFlags` code.
///
/// A code this table does not know (a newer kernel's) is copied into a leaked string: the
/// runner child that prints it is short-lived, and the transcript must show what the kernel
/// printed, not drop it.
pub fn vm_flag_code(code: &str) -> &'static str {
    match VM_FLAG_CODES.iter().find(|&&c| c == code) {
        Some(c) => c,
        None => Box::leak(code.to_string().into_boxed_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host output: VMA lines without a name and `VmFlags` lines end in a space.
    const SMAPS: &str = concat!(
        "200000000000-200000001000 rw-p 00000000 00:00 0 \n",
        "Size:                  4 kB\n",
        "KernelPageSize:        4 kB\n",
        "Anonymous:             4 kB\n",
        "Swap:                  0 kB\n",
        "Private_Hugetlb:       0 kB\n",
        "THPeligible:           0\n",
        "VmFlags: rd wr mr mw me ac \n",
        "200000100000-200000102000 r--s 00001000 00:01 2054                       ",
        "/memfd:data (deleted)\n",
        "Size:                  8 kB\n",
        "VmFlags: rd sh mr mw me ms \n",
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n",
        "VmFlags: ex \n",
    );

    #[test]
    fn smaps_blocks() {
        let vmas = parse(SMAPS).expect("valid smaps");
        assert_eq!(vmas.len(), 3);
        assert_eq!(
            vmas[0],
            ProcVma {
                start: 0x2000_0000_0000,
                end: 0x2000_0000_1000,
                perms: *b"rw-p",
                offset: 0,
                dev: (0, 0),
                inode: 0,
                name: String::new(),
                flags: vec!["rd", "wr", "mr", "mw", "me", "ac"],
                anon_pages: true,
            }
        );
        assert!(!vmas[1].anon_pages);
        assert_eq!(vmas[1].name, "/memfd:data (deleted)");
        assert_eq!((vmas[1].dev, vmas[1].inode, vmas[1].offset), ((0, 1), 2054, 0x1000));
        assert_eq!(vmas[1].flags, ["rd", "sh", "mr", "mw", "me", "ms"]);
        assert_eq!(vmas[2].start, 0xffff_ffff_ff60_0000);
        assert_eq!(vmas[2].name, "[vsyscall]");
    }

    #[test]
    fn maps_lines_and_bad_input() {
        let vmas = parse("55d0a000-55d0b000 r-xp 00002000 fe:01 247030   /usr/bin/cat\n").unwrap();
        assert_eq!(vmas[0].dev, (0xfe, 1));
        assert_eq!(vmas[0].name, "/usr/bin/cat");
        assert!(parse("VmFlags: rd\n").is_err());
        assert!(parse("hello world\n").is_err());
        assert!(parse("1000-zz rw-p 0 00:00 0\n").is_err());
        assert!(parse("Rss: 4 kB\n").is_err(), "a field before any VMA");
        assert!(parse("1000-2000 rw-p 0 00:00 0\nAnonymous: many kB\n").is_err());
    }

    #[test]
    fn unknown_flag_codes_are_kept() {
        assert_eq!(vm_flag_code("rd"), "rd");
        assert_eq!(vm_flag_code("zz"), "zz");
    }
}

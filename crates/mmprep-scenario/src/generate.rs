//! A seeded random scenario generator, for differential testing against the host kernel.
//!
//! [`generate`] writes scenario *text* (`docs/scenario-format.md`, v1), so the parser is
//! exercised by every generated case too. The same seed and [`GenConfig`] always give the same
//! text.
//!
//! The operations work on a small grid of pages at the start of the window (64 pages by
//! default), so that they collide a lot: mappings replace each other, merge and split, and
//! `mprotect`, `munmap` and `touch` often straddle several VMAs. Ranges are picked either at
//! random in the grid or around a range an earlier `mmap` asked for (the same range, its head,
//! tail or middle, or a range overlapping one of its edges). File mappings often use the
//! "identity" offset (the file offset equals the address offset in the grid), so that two
//! mappings of one file next to each other have contiguous offsets and can merge.
//!
//! Every range a generated line names lies inside the window, except in calls the kernel refuses
//! for their arguments alone (unaligned addresses, zero lengths, lengths beyond `TASK_SIZE` or
//! that wrap around), as the contract asks. `any` is never given a huge length.
//!
//! Which operations appear, and how often, is [`GenConfig::ops`]: the default,
//! [`GenConfig::engine_today`], only uses what the engine runs today, which is now every
//! operation of the format ([`GenConfig::all_ops`] is the same set). [`GenConfig::thp`] works
//! on 512 KiB cells instead of pages and gives `hugepage` advice often, for transparent huge
//! pages (`mmprep fuzz --thp`).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use fastrand::Rng;

use crate::parse::MADVICE;

/// The page size the generator works with.
pub(crate) const PAGE: u64 = 4096;

/// One kind of generated line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `file NAME memfd|tmpfile|zero ...` in the middle of the script (a few are always
    /// declared at the top).
    File,
    /// `close NAME`.
    Close,
    /// `mmap ADDR LEN PROT FLAGS [FILE OFFSET]`.
    Mmap,
    /// `munmap ADDR LEN`.
    Munmap,
    /// `mprotect ADDR LEN PROT[|growsdown]`.
    Mprotect,
    /// `touch ADDR LEN r|w`.
    Touch,
    /// `fork` (at most [`GenConfig::max_forks`] per script).
    Fork,
    /// `maps`.
    Maps,
    /// `smaps` (one always ends the script).
    Smaps,
    /// `madvise ADDR LEN ADVICE`.
    Madvise,
    /// `mlock ADDR LEN`.
    Mlock,
    /// `mlock2 ADDR LEN onfault`.
    Mlock2,
    /// `munlock ADDR LEN`.
    Munlock,
    /// `mremap ADDR OLDLEN NEWLEN FLAGS [NEWADDR]`.
    Mremap,
    /// `mseal ADDR LEN`.
    Mseal,
    /// `read ADDR LEN`.
    Read,
    /// `write ADDR LEN BYTE`.
    Write,
}

/// What [`generate`] produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// The operations and their relative weights (a weight of 0 disables one).
    pub ops: Vec<(OpKind, u32)>,
    /// How many operation lines a script has, at least and at most (plus the final `smaps`).
    pub min_ops: usize,
    pub max_ops: usize,
    /// The size of the grid of pages at the start of the window that the operations work on.
    pub grid_pages: u64,
    /// The most `fork` lines in one script.
    pub max_forks: usize,
    /// How many of the files declared at the top of the script, at most.
    pub max_files: usize,
    /// Percentage of `mmap`, `munmap` and `mprotect` lines given a bad argument on purpose
    /// (unaligned address or offset, zero or huge length, a wrong flag combination...).
    pub bad_percent: u32,
    /// The size of one grid cell in bytes: a page by default; [`GenConfig::thp`] makes it a
    /// quarter of a 2 MiB block, so that ranges hold whole blocks, cut them, or miss them.
    pub unit: u64,
    /// Percentage of `mmap` lines followed by `hugepage` advice over the same range, and of
    /// `madvise` lines that give that advice (0: advices are picked uniformly).
    pub hugepage_percent: u32,
}

impl GenConfig {
    /// Only what the engine runs today: files, `close`, `mmap`, `munmap`, `mprotect`, `mremap`,
    /// `madvise`, `mlock`, `mlock2`, `munlock`, `mseal`, `touch`, `read`, `write`, `fork`, `maps`
    /// and `smaps`.
    pub fn engine_today() -> GenConfig {
        GenConfig {
            ops: vec![
                (OpKind::Mmap, 30),
                (OpKind::Munmap, 7),
                (OpKind::Mprotect, 16),
                (OpKind::Touch, 16),
                (OpKind::Smaps, 10),
                (OpKind::Maps, 2),
                (OpKind::Close, 2),
                (OpKind::File, 1),
                (OpKind::Fork, 2),
                (OpKind::Read, 4),
                (OpKind::Write, 5),
                (OpKind::Mremap, 6),
                (OpKind::Madvise, 8),
                (OpKind::Mlock, 2),
                (OpKind::Mlock2, 1),
                (OpKind::Munlock, 2),
                (OpKind::Mseal, 1),
            ],
            min_ops: 12,
            max_ops: 48,
            grid_pages: 64,
            max_forks: 2,
            max_files: 3,
            bad_percent: 8,
            unit: PAGE,
            hugepage_percent: 0,
        }
    }

    /// Biased to transparent huge pages (issue 11): the same operations on a grid of 32 cells
    /// of 512 KiB (16 MiB, eight 2 MiB blocks), half the mappings advised `hugepage`, `madvise`
    /// lines often `hugepage` again or one of the advices that act on huge pages, more touches
    /// and mprotects, and a mapping now and then moved a few pages off the block boundaries so
    /// that its blocks do not fit.
    pub fn thp() -> GenConfig {
        let mut config = GenConfig {
            grid_pages: 32,
            unit: 512 << 10,
            hugepage_percent: 50,
            ..GenConfig::engine_today()
        };
        // More reads and mprotects: a read fault is where the huge path shows (an anon_vma),
        // and mprotect to read-only is where that shows (`ac` kept).
        for (kind, weight) in &mut config.ops {
            match kind {
                OpKind::Touch => *weight = 30,
                OpKind::Mprotect => *weight = 24,
                OpKind::Madvise => *weight = 16,
                _ => {}
            }
        }
        config
    }

    /// Everything the scenario format has that the host kernel runs too: since the engine runs
    /// all of it, the same as [`Self::engine_today`].
    pub fn all_ops() -> GenConfig {
        GenConfig::engine_today()
    }
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig::engine_today()
    }
}

/// Generates the scenario text of `seed`. The same seed and config give the same text.
pub fn generate(seed: u64, config: &GenConfig) -> String {
    let mut g = Gen {
        rng: Rng::with_seed(seed),
        grid: config.grid_pages.max(1),
        config,
        out: String::new(),
        files: Vec::new(),
        ranges: Vec::new(),
        forks: 0,
    };
    g.script();
    g.out
}

/// A file the script declared.
struct GenFile {
    name: String,
    kind: GenFileKind,
    /// Size in bytes (0 for `/dev/zero`).
    size: u64,
    open: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GenFileKind {
    Memfd,
    Tmpfile { read_only: bool },
    Zero,
}

/// Lengths the kernel refuses whatever the address: beyond `TASK_SIZE` (for `mmap` and
/// `munmap`), or so large that `addr + len` wraps for every address in the window (for
/// `mprotect` too).
pub(crate) const HUGE_WRAPPING: &[u64] = &[
    u64::MAX,
    u64::MAX - (PAGE - 1),
    0u64.wrapping_sub(crate::script::WINDOW_BASE),
    0u64.wrapping_sub(crate::script::WINDOW_BASE) + PAGE,
    0u64.wrapping_sub(PAGE),
];
/// More lengths beyond `TASK_SIZE` that do not wrap (refused by `mmap` and `munmap`).
pub(crate) const HUGE_BEYOND_TASK_SIZE: &[u64] = &[1 << 47, 1 << 48, 1 << 63, 0x8000_0000_1000];

/// Offsets that are page aligned but make the kernel refuse the mapping (EOVERFLOW for regular
/// files and memfd, `pgoff` near the top for `/dev/zero`).
pub(crate) const HUGE_OFFSETS: &[u64] = &[
    1 << 62,
    1 << 63,
    0x7fff_ffff_ffff_f000,
    0xffff_ffff_ffff_f000,
    0x0010_0000_0000_0000,
];

/// The advices that act on huge pages, which [`GenConfig::thp`] picks more often.
pub(crate) const THP_ADVICE: &[&str] = &[
    "collapse",
    "collapse",
    "nohugepage",
    "dontneed",
    "populate_read",
    "populate_write",
    "guard_install",
    "guard_remove",
];

/// The optional `mmap` flag words and the percent of mappings that get each (the generator
/// and the proptest strategy both draw from it). `growsdown` is rarer on a file mapping:
/// [`GROWSDOWN_FILE_PERCENT`].
pub(crate) const MMAP_EXTRAS: [(&str, u8); 6] = [
    ("noreserve", 4),
    ("populate", 4),
    ("stack", 3),
    ("locked", 2),
    ("growsdown", 5),
    ("sync", 1),
];

/// The percent of file mappings the generator makes `growsdown`.
pub(crate) const GROWSDOWN_FILE_PERCENT: u8 = 1;

pub(crate) const PROTS: &[(&str, u32)] = &[
    ("rw-", 40),
    ("r--", 22),
    ("---", 10),
    ("rwx", 6),
    ("r-x", 8),
    ("-w-", 3),
    ("--x", 2),
    ("-wx", 2),
];

struct Gen<'a> {
    rng: Rng,
    config: &'a GenConfig,
    grid: u64,
    out: String,
    files: Vec<GenFile>,
    /// Page ranges `(first page, pages)` earlier `mmap` lines asked for, newest last.
    ranges: Vec<(u64, u64)>,
    forks: usize,
}

impl Gen<'_> {
    /// Whether to give `hugepage` advice here (never draws from the generator when the config
    /// gives none, so other configs' scripts stay what they were).
    fn hugepage_roll(&mut self) -> bool {
        self.config.hugepage_percent > 0 && self.rng.u32(0..100) < self.config.hugepage_percent
    }

    /// `cells` grid cells in bytes.
    fn b(&self, cells: u64) -> u64 {
        cells * self.config.unit
    }

    fn script(&mut self) {
        let _ = writeln!(self.out, "# generated scenario");
        // A window of 1 MiB, of the grid, or the default 1 GiB; with cells larger than a page,
        // of the grid or 1 GiB.
        let pick = self.rng.u8(0..10);
        let grid = self.b(self.grid);
        match pick {
            0..=5 if self.config.unit == PAGE => self.line("window 1M".into()),
            7 if self.config.unit == PAGE => self.line("window 0x100000".into()),
            0..=7 => self.line(format!("window {grid}")),
            _ => {}
        }
        let files = self.rng.usize(0..=self.config.max_files);
        for _ in 0..files {
            self.file();
        }
        // A few large mappings first, so that later operations find VMAs to split and merge.
        for _ in 0..self.rng.usize(0..=3) {
            self.prelude_mmap();
        }
        let count = self
            .rng
            .usize(self.config.min_ops..=self.config.max_ops.max(self.config.min_ops));
        let total: u32 = self.config.ops.iter().map(|&(_, w)| w).sum();
        for _ in 0..count {
            if total == 0 {
                break;
            }
            let mut pick = self.rng.u32(0..total);
            let mut kind = OpKind::Smaps;
            for &(k, w) in &self.config.ops {
                if pick < w {
                    kind = k;
                    break;
                }
                pick -= w;
            }
            self.op(kind);
            if self.rng.u8(0..40) == 0 {
                // Blank lines and comments do not print, but shift line numbers.
                let extra = if self.rng.bool() { "" } else { "# a comment" };
                self.line(extra.into());
            }
        }
        self.line("smaps".into());
    }

    fn line(&mut self, text: String) {
        self.out.push_str(&text);
        self.out.push('\n');
    }

    fn op(&mut self, kind: OpKind) {
        match kind {
            OpKind::File => self.file(),
            OpKind::Close => self.close(),
            OpKind::Mmap => self.mmap(),
            OpKind::Munmap => self.munmap(),
            OpKind::Mprotect => self.mprotect(),
            OpKind::Touch => self.touch(),
            OpKind::Fork => {
                if self.forks < self.config.max_forks {
                    self.forks += 1;
                    self.line("fork".into());
                } else {
                    self.line("smaps".into());
                }
            }
            OpKind::Maps => self.line("maps".into()),
            OpKind::Smaps => self.line("smaps".into()),
            OpKind::Madvise => {
                let (addr, len) = self.range_args(16, true);
                let advice = if self.hugepage_roll() {
                    "hugepage"
                } else if self.config.hugepage_percent > 0 && self.rng.bool() {
                    THP_ADVICE[self.rng.usize(..THP_ADVICE.len())]
                } else {
                    MADVICE[self.rng.usize(..MADVICE.len())].0
                };
                self.line(format!("madvise {addr} {len} {advice}"));
            }
            OpKind::Mlock => {
                let (addr, len) = self.range_args(16, false);
                self.line(format!("mlock {addr} {len}"));
            }
            OpKind::Mlock2 => {
                let (addr, len) = self.range_args(16, false);
                self.line(format!("mlock2 {addr} {len} onfault"));
            }
            OpKind::Munlock => {
                let (addr, len) = self.range_args(16, false);
                self.line(format!("munlock {addr} {len}"));
            }
            OpKind::Mseal => {
                let (addr, len) = self.range_args(16, true);
                self.line(format!("mseal {addr} {len}"));
            }
            OpKind::Mremap => self.mremap(),
            OpKind::Read => {
                let (page, pages) = self.pick_range(4);
                let len = self.b(pages) - self.rng.u64(0..PAGE);
                let (addr, len) = (self.num(self.b(page)), self.num(len));
                self.line(format!("read {addr} {len}"));
            }
            OpKind::Write => {
                let (page, pages) = self.pick_range(8);
                let (addr, len) = (self.num(self.b(page)), self.num(self.b(pages)));
                let byte = self.rng.u8(..);
                self.line(format!("write {addr} {len} {byte}"));
            }
        }
    }

    /// A number as the contract writes it: decimal, hex, or with a K/M suffix.
    fn num(&mut self, v: u64) -> String {
        match self.rng.u8(0..10) {
            0..=3 if v != 0 && v.is_multiple_of(1 << 20) && self.rng.bool() => format!("{}M", v >> 20),
            0..=3 if v != 0 && v.is_multiple_of(1024) => format!("{}K", v >> 10),
            4..=7 => format!("{v:#x}"),
            8 if v > 9 => format!("0x{v:X}"),
            _ => format!("{v}"),
        }
    }

    /// A page range inside the grid, at most `max` pages: around an earlier mmap's range, or
    /// anywhere.
    fn pick_range(&mut self, max: u64) -> (u64, u64) {
        let grid = self.grid;
        let max = max.clamp(1, grid);
        let (page, pages) = if !self.ranges.is_empty() && self.rng.u8(0..100) < 70 {
            // Prefer recent ranges.
            let n = self.ranges.len();
            let i = n - 1 - self.rng.usize(..n.min(6));
            let (start, len) = self.ranges[i];
            match self.rng.u8(0..8) {
                0 | 1 => (start, len),
                2 => (start, self.rng.u64(1..=len)),
                3 => {
                    let head = self.rng.u64(0..len);
                    (start + head, len - head)
                }
                4 if len >= 3 => {
                    let a = self.rng.u64(1..len - 1);
                    (start + a, self.rng.u64(1..len - a))
                }
                5 => {
                    // Overlapping the end, or starting right after it.
                    let a = self.rng.u64(0..=len);
                    (start + a, self.rng.u64(1..=4))
                }
                6 => {
                    // Overlapping the start, or ending right before it.
                    let before = self.rng.u64(1..=4).min(start);
                    let into = self.rng.u64(0..=len);
                    if before == 0 {
                        (start, len)
                    } else {
                        (start - before, before + into)
                    }
                }
                _ => (start.saturating_sub(1), len + 2),
            }
        } else if self.rng.u8(0..30) == 0 {
            (0, grid)
        } else {
            let page = self.rng.u64(0..grid);
            let pages = if self.rng.u8(0..3) == 0 {
                self.rng.u64(1..=max)
            } else {
                self.rng.u64(1..=max.min(4))
            };
            (page, pages)
        };
        let page = page.min(grid - 1);
        let pages = pages.clamp(1, max).min(grid - page);
        (page, pages)
    }

    /// ADDR and LEN of a range call; `zero_ok`: a zero length is a valid (no-op) call there.
    fn range_args(&mut self, max: u64, zero_ok: bool) -> (String, String) {
        let (page, pages) = self.pick_range(max);
        let mut addr = self.b(page);
        let mut len = self.b(pages);
        if self.rng.u8(0..20) == 0 {
            addr += self.rng.u64(1..PAGE);
        } else if self.rng.u8(0..20) == 0 && zero_ok {
            len = 0;
        } else if self.rng.u8(0..10) == 0 {
            len -= self.rng.u64(1..PAGE);
        }
        (self.num(addr), self.num(len))
    }

    fn file(&mut self) {
        let name = match self.rng.u8(0..4) {
            0 => format!("f{}", self.files.len()),
            1 => format!("file_{}", self.files.len()),
            2 => format!("data-{}", self.files.len()),
            _ => format!("F{}", self.files.len()),
        };
        let pages = match self.rng.u8(0..10) {
            0 => 0,
            1..=5 => self.rng.u64(1..=16),
            _ => self.rng.u64(16..=self.grid.max(17)),
        };
        let mut size = self.b(pages);
        if self.rng.u8(0..6) == 0 {
            size += self.rng.u64(1..PAGE);
        }
        // Several `/dev/zero` files are allowed: two opens are one inode, and both runners name
        // a mapping of it after the first one declared.
        let kind = match self.rng.u8(0..10) {
            0..=3 => GenFileKind::Memfd,
            4..=7 => GenFileKind::Tmpfile {
                read_only: self.rng.u8(0..3) == 0,
            },
            _ => GenFileKind::Zero,
        };
        let text = match kind {
            GenFileKind::Memfd => format!("file {name} memfd {}", self.num(size)),
            GenFileKind::Tmpfile { read_only } => {
                let ro = if read_only { " ro" } else { "" };
                format!("file {name} tmpfile {}{ro}", self.num(size))
            }
            GenFileKind::Zero => {
                size = 0;
                format!("file {name} zero")
            }
        };
        self.line(text);
        self.files.push(GenFile {
            name,
            kind,
            size,
            open: true,
        });
    }

    /// One of the files, `percent` % of the time if there is one: an open one, mostly.
    fn pick_file(&mut self, percent: u8) -> Option<usize> {
        if self.files.is_empty() || self.rng.u8(0..100) >= percent {
            return None;
        }
        let open: Vec<usize> = (0..self.files.len()).filter(|&i| self.files[i].open).collect();
        if !open.is_empty() && self.rng.u8(0..10) != 0 {
            Some(open[self.rng.usize(..open.len())])
        } else {
            Some(self.rng.usize(..self.files.len()))
        }
    }

    /// A large fixed mapping at the start of the script: private anonymous memory, mostly.
    fn prelude_mmap(&mut self) {
        let pages = self.rng.u64(8..=self.grid.clamp(8, 32));
        let page = self.rng.u64(0..=self.grid.saturating_sub(pages));
        let prot = if self.rng.u8(0..4) == 0 { self.prot() } else { "rw-" };
        let (addr, len) = (self.num(self.b(page)), self.num(self.b(pages)));
        let file = self.pick_file(30);
        let text = match file {
            None => format!("mmap {addr} {len} {prot} private|anon|fixed"),
            Some(i) => {
                let share = if self.rng.bool() { "private" } else { "shared" };
                let name = self.files[i].name.clone();
                let offset = self.num(self.b(page));
                format!("mmap {addr} {len} {prot} {share}|fixed {name} {offset}")
            }
        };
        self.line(text);
        if self.hugepage_roll() {
            self.line(format!("madvise {addr} {len} hugepage"));
        }
        self.remember(page, pages);
    }

    /// Remembers a range an `mmap` asked for, for [`Self::pick_range`].
    fn remember(&mut self, page: u64, pages: u64) {
        self.ranges.push((page, pages));
        if self.ranges.len() > 12 {
            self.ranges.remove(0);
        }
    }

    fn close(&mut self) {
        let open: Vec<usize> = (0..self.files.len()).filter(|&i| self.files[i].open).collect();
        if open.is_empty() {
            self.line("maps".into());
            return;
        }
        let i = open[self.rng.usize(..open.len())];
        self.files[i].open = false;
        self.line(format!("close {}", self.files[i].name));
    }

    fn prot(&mut self) -> &'static str {
        let total: u32 = PROTS.iter().map(|&(_, w)| w).sum();
        let mut pick = self.rng.u32(0..total);
        for &(p, w) in PROTS {
            if pick < w {
                return p;
            }
            pick -= w;
        }
        "rw-"
    }

    fn mmap(&mut self) {
        let (page, pages) = if self.rng.u8(0..4) == 0 {
            let pages = self.rng.u64(1..=16).min(self.grid);
            (self.rng.u64(0..=self.grid - pages), pages)
        } else {
            self.pick_range(16)
        };
        let mut addr = self.b(page);
        let mut len = self.b(pages);
        if self.config.unit > PAGE && self.rng.u8(0..6) == 0 {
            // A few pages off the grid: the mapping's blocks no longer fit in it.
            let nudge = self.rng.u64(1..4) * PAGE;
            if len > nudge {
                addr += nudge;
                len -= nudge;
            }
        }
        // Placement: fixed, fixed_noreplace, a hint in the window, or `any`.
        let placement = match self.rng.u8(0..20) {
            0..=11 => "fixed",
            12..=14 => "fixed_noreplace",
            15..=18 => "",
            _ => "any",
        };
        // Backing: private or shared anonymous memory, or one of the files (an open one,
        // mostly).
        let file = self.pick_file(50);
        let mut share = match (file, self.rng.u8(0..10)) {
            (None, 0..=6) | (Some(_), 0..=4) => "private",
            (_, 9) if file.is_some() => "shared_validate",
            _ => "shared",
        };
        let mut prot = self.prot();
        let mut extra: Vec<&str> = Vec::new();
        for (word, percent) in MMAP_EXTRAS {
            let percent = match word {
                "growsdown" if file.is_some() => GROWSDOWN_FILE_PERCENT,
                _ => percent,
            };
            if self.rng.u8(0..100) < percent {
                extra.push(word);
            }
        }
        let mut offset = file.map(|i| {
            let f = &self.files[i];
            let file_cells = f.size.div_ceil(self.config.unit);
            if f.kind == GenFileKind::Zero {
                // `/dev/zero` has no size: any offset maps zeroes.
                return if self.rng.bool() { addr } else { 0 };
            }
            match self.rng.u8(0..10) {
                // The identity offset: adjacent mappings of one file then have contiguous
                // offsets.
                0..=4 => addr,
                5 | 6 => self.rng.u64(0..=file_cells) * self.config.unit,
                // At or beyond the end of the file: touches raise SIGBUS.
                7 | 8 => (file_cells + self.rng.u64(0..4)) * self.config.unit,
                _ => 0,
            }
        });
        let mut anon = file.is_none();
        let mut file_arg = file;
        let mut flags_override = None;
        if self.rng.u8(0..100) < self.config.bad_percent as u8 {
            match self.rng.u8(0..14) {
                0 if placement != "any" => addr += self.rng.u64(1..PAGE),
                1 => len = 0,
                2 if placement != "any" => {
                    let all: Vec<u64> = HUGE_WRAPPING.iter().chain(HUGE_BEYOND_TASK_SIZE).copied().collect();
                    len = all[self.rng.usize(..all.len())];
                }
                3 if offset.is_some() => offset = offset.map(|o| o + self.rng.u64(1..PAGE)),
                4 if offset.is_some() => {
                    offset = Some(HUGE_OFFSETS[self.rng.usize(..HUGE_OFFSETS.len())]);
                }
                5 => flags_override = Some("0".into()),
                6 => {
                    share = "shared_validate";
                    anon = true;
                }
                7 => {
                    share = "private|shared";
                }
                8 => extra.push("growsdown"),
                9 => {
                    share = "shared_validate";
                    extra.push("sync");
                }
                10 => {
                    // A file argument with `anon`: the descriptor is ignored.
                    if !self.files.is_empty() {
                        let i = self.rng.usize(..self.files.len());
                        file_arg = Some(i);
                        offset = Some(self.rng.u64(0..4) * PAGE);
                    }
                    anon = true;
                }
                11 => {
                    // A file mapping without a file: descriptor -1 (EBADF)... through a
                    // closed file, if there is one.
                    let closed: Vec<usize> = (0..self.files.len()).filter(|&i| !self.files[i].open).collect();
                    if !closed.is_empty() {
                        let i = closed[self.rng.usize(..closed.len())];
                        file_arg = Some(i);
                        offset = Some(self.rng.u64(0..4) * PAGE);
                        anon = false;
                    }
                }
                12 => prot = "rw-",
                _ => {
                    let i = self.rng.usize(..2);
                    flags_override = Some(["fixed|anon", "anon|private|shared_validate"][i].into());
                }
            }
        }
        let flags = match flags_override {
            Some(f) => f,
            None => {
                let mut words = vec![share];
                if anon {
                    words.push("anon");
                }
                if !placement.is_empty() && placement != "any" {
                    words.push(placement);
                }
                words.extend(extra);
                if self.rng.u8(0..4) == 0 {
                    self.rng.shuffle(&mut words);
                }
                words.join("|")
            }
        };
        let addr_text = if placement == "any" {
            "any".into()
        } else {
            self.num(addr)
        };
        let len_text = self.num(len);
        let mut text = format!("mmap {addr_text} {len_text} {prot} {flags}");
        if let (Some(i), Some(off)) = (file_arg, offset) {
            let off = self.num(off);
            let _ = write!(text, " {} {off}", self.files[i].name);
        }
        self.line(text);
        let whole = addr == self.b(page) && len == self.b(pages);
        if whole && placement != "any" && self.hugepage_roll() {
            self.line(format!("madvise {addr_text} {len_text} hugepage"));
        }
        if addr.is_multiple_of(PAGE) && len != 0 && len <= self.b(self.grid) && placement != "any" {
            self.remember(page, pages);
        }
    }

    fn munmap(&mut self) {
        let (page, pages) = self.pick_range(8);
        let mut addr = self.b(page);
        let mut len = self.b(pages);
        if self.rng.u8(0..100) < self.config.bad_percent as u8 {
            match self.rng.u8(0..4) {
                0 => addr += self.rng.u64(1..PAGE),
                1 => len = 0,
                2 => {
                    let all: Vec<u64> = HUGE_WRAPPING.iter().chain(HUGE_BEYOND_TASK_SIZE).copied().collect();
                    len = all[self.rng.usize(..all.len())];
                }
                // An unaligned length is rounded up: a valid call.
                _ => len -= self.rng.u64(1..PAGE),
            }
        }
        let (addr, len) = (self.num(addr), self.num(len));
        self.line(format!("munmap {addr} {len}"));
    }

    fn mprotect(&mut self) {
        let (page, pages) = self.pick_range(24);
        let mut addr = self.b(page);
        let mut len = self.b(pages);
        let mut prot = String::from(self.prot());
        match self.rng.u8(0..50) {
            0..=3 => prot.push_str("|growsdown"),
            4 => prot.push_str("|growsup"),
            5 => prot.push_str("|growsdown|growsup"),
            _ => {}
        }
        if self.rng.u8(0..100) < self.config.bad_percent as u8 {
            match self.rng.u8(0..4) {
                0 => addr += self.rng.u64(1..PAGE),
                1 => len = 0,
                2 => len = HUGE_WRAPPING[self.rng.usize(..HUGE_WRAPPING.len())],
                _ => len -= self.rng.u64(1..PAGE),
            }
        }
        let (addr, len) = (self.num(addr), self.num(len));
        self.line(format!("mprotect {addr} {len} {prot}"));
    }

    fn touch(&mut self) {
        let max = if self.rng.u8(0..5) == 0 { 64 } else { 8 };
        let (page, pages) = self.pick_range(max);
        let mut addr = self.b(page);
        let mut len = self.b(pages);
        if self.rng.u8(0..25) == 0 {
            addr += self.rng.u64(1..PAGE);
            len -= addr % PAGE;
        } else if self.rng.u8(0..30) == 0 {
            len = 0;
        }
        let access = if self.rng.bool() { "r" } else { "w" };
        let (addr, len) = (self.num(addr), self.num(len));
        self.line(format!("touch {addr} {len} {access}"));
    }

    /// `mremap`: resize in place, move (`maymove`, `fixed`, `dontunmap`), a zero old length
    /// now and then (a second mapping of a shared object), and a few refused flag combinations.
    fn mremap(&mut self) {
        let (page, pages) = self.pick_range(8);
        let old = if self.rng.u8(0..20) == 0 { 0 } else { self.b(pages) };
        let new = match self.rng.u8(0..4) {
            0 => old.max(PAGE),
            _ => self.rng.u64(1..=8) * self.config.unit,
        };
        let mut addr = self.b(page);
        if self.rng.u8(0..100) < self.config.bad_percent as u8 {
            addr += self.rng.u64(1..PAGE);
        }
        let (addr, old_t, new_t) = (self.num(addr), self.num(old), self.num(new));
        // A destination in the grid for `new` bytes (it may overlap the source: EINVAL).
        let to = |g: &mut Self, len: u64| {
            let cells = len.div_ceil(g.config.unit).min(g.grid);
            let to = g.rng.u64(0..=g.grid - cells) * g.config.unit;
            g.num(to)
        };
        let line = match self.rng.u8(0..16) {
            0..=2 => format!("mremap {addr} {old_t} {new_t} 0"),
            3..=5 => format!("mremap {addr} {old_t} {new_t} maymove"),
            6..=9 => {
                let to = to(self, new);
                format!("mremap {addr} {old_t} {new_t} maymove|fixed {to}")
            }
            10 | 11 => {
                let to = to(self, old);
                format!("mremap {addr} {old_t} {old_t} maymove|fixed {to}")
            }
            12 => {
                let to = to(self, old);
                format!("mremap {addr} {old_t} {old_t} maymove|fixed|dontunmap {to}")
            }
            13 => format!("mremap {addr} {old_t} {old_t} maymove|dontunmap"),
            14 => {
                let to = to(self, new);
                format!("mremap {addr} {old_t} {new_t} fixed {to}")
            }
            _ => format!("mremap {addr} {old_t} {new_t} dontunmap"),
        };
        self.line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use crate::script::{MmapAddr, Op, WINDOW_BASE};

    #[test]
    fn same_seed_same_text() {
        let config = GenConfig::default();
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(generate(seed, &config), generate(seed, &config));
        }
        assert_ne!(generate(1, &config), generate(2, &config));
    }

    #[test]
    fn generated_scripts_parse() {
        for config in [GenConfig::engine_today(), GenConfig::all_ops(), GenConfig::thp()] {
            for seed in 0..2000 {
                let text = generate(seed, &config);
                let script = parse(&text);
                assert_eq!(script.error, None, "seed {seed}:\n{text}");
                assert!(matches!(script.steps.last().map(|s| &s.op), Some(Op::Smaps)));
            }
        }
    }

    /// The default config only uses what the engine runs today.
    #[test]
    fn engine_today_stays_in_its_op_set() {
        for seed in 0..500 {
            let script = parse(&generate(seed, &GenConfig::engine_today()));
            for step in &script.steps {
                assert!(
                    matches!(
                        step.op,
                        Op::File { .. }
                            | Op::Close { .. }
                            | Op::Mmap { .. }
                            | Op::Munmap { .. }
                            | Op::Mprotect { .. }
                            | Op::Touch { .. }
                            | Op::Read { .. }
                            | Op::Write { .. }
                            | Op::Mremap { .. }
                            | Op::Madvise { .. }
                            | Op::Mlock { .. }
                            | Op::Mlock2 { .. }
                            | Op::Munlock { .. }
                            | Op::Mseal { .. }
                            | Op::Fork
                            | Op::Maps
                            | Op::Smaps
                    ),
                    "seed {seed}: {:?}",
                    step.op
                );
            }
        }
    }

    /// Every range stays inside the window, unless the call is refused for its arguments
    /// alone; `any` never gets a huge length.
    #[test]
    fn ranges_stay_in_the_window() {
        for config in [GenConfig::engine_today(), GenConfig::thp()] {
            ranges_stay_in_the_window_with(&config);
        }
    }

    fn ranges_stay_in_the_window_with(config: &GenConfig) {
        const TASK_SIZE: u64 = 0x7fff_ffff_f000;
        for seed in 0..2000 {
            let text = generate(seed, config);
            let script = parse(&text);
            let inside = |addr: u64, len: u64| addr.checked_add(len).is_some_and(|e| e <= script.window);
            for step in &script.steps {
                let ok = match step.op {
                    Op::Mmap {
                        addr: MmapAddr::Any,
                        len,
                        ..
                    } => len <= config.grid_pages * config.unit,
                    Op::Mmap {
                        addr: MmapAddr::At(a),
                        len,
                        ..
                    } => inside(a, len) || a % PAGE != 0 || len == 0 || len > TASK_SIZE,
                    Op::Munmap { addr, len } => inside(addr, len) || addr % PAGE != 0 || len == 0 || len > TASK_SIZE,
                    Op::Mprotect { addr, len, .. } => {
                        let abs = WINDOW_BASE + addr;
                        let aligned = (len.wrapping_add(PAGE - 1)) & !(PAGE - 1);
                        inside(addr, len) || addr % PAGE != 0 || abs.wrapping_add(aligned) <= abs
                    }
                    Op::Touch { addr, len, .. } => inside(addr, len) && len <= 64 * config.unit,
                    Op::Mremap {
                        addr,
                        old_len,
                        new_len,
                        new_addr,
                        ..
                    } => (inside(addr, old_len) || addr % PAGE != 0) && new_addr.is_none_or(|to| inside(to, new_len)),
                    _ => true,
                };
                assert!(ok, "seed {seed}, line {}: {:?}\n{text}", step.line, step.op);
            }
        }
    }
}

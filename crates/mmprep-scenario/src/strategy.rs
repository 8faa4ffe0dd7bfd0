//! Proptest strategies for scenarios (feature `proptest`).
//!
//! [`scenario`] is a [`Strategy`] whose values are [`Scenario`]s: a structured list of operations
//! over the page grid of a [`GenConfig`], with the same operation mix (the config's weights,
//! including [`GenConfig::thp`]'s), the same range biases (ranges around an earlier `mmap`'s
//! range, its head, tail, middle or edges, or anywhere in the grid), the same rate of bad
//! arguments and the same `hugepage` advice rate as the seeded generator
//! ([`crate::generate`]). A [`Scenario`] renders to scenario text with [`Scenario::text`] (or
//! `Display`).
//!
//! What the structure buys is proptest's shrinking: a failing scenario shrinks by dropping
//! operations (each one can be switched off, below the config's minimum count too), files and
//! prelude mappings, by moving ranges to the start of the grid and making them one cell long,
//! by turning bad arguments off, and by picking the first (simplest) choice of every flag set:
//! `rw-`, private anonymous `fixed`, no extra flags, no advice. References between lines (a
//! range "around the second-newest mapping", a file by index) are resolved when the text is
//! rendered, so every shrunk value still renders to a scenario that parses.
//!
//! Unlike [`crate::generate`], numbers are always written in hex and flags in one order, and no
//! comments or blank lines are inserted: the parser's variety is the seeded generator's job;
//! this one is for small reproducers.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, NewTree, Union, ValueTree};
use proptest::test_runner::TestRunner;

use crate::generate::{
    GenConfig, HUGE_BEYOND_TASK_SIZE, HUGE_OFFSETS, HUGE_WRAPPING, MMAP_EXTRAS, OpKind, PAGE, PROTS, THP_ADVICE,
};
use crate::parse::MADVICE;

/// A generated scenario: the grid it works on, the window, the files declared at the top, a
/// few large mappings, and the operations. Render it with [`Scenario::text`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The size of a grid cell in bytes ([`GenConfig::unit`]).
    pub unit: u64,
    /// How many cells the grid has ([`GenConfig::grid_pages`]).
    pub grid: u64,
    /// The most `fork` lines rendered; further ones render as `smaps`.
    pub max_forks: usize,
    pub window: Window,
    pub files: Vec<FileDecl>,
    pub prelude: Vec<Prelude>,
    /// The operations; a `None` is left out (that is how shrinking deletes operations below
    /// [`GenConfig::min_ops`]: see [`Skip`]).
    pub ops: Vec<Option<ScenarioOp>>,
}

/// The `window` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// `window` of the grid's size.
    Grid,
    /// No `window` line: the default 1 GiB.
    Default,
    /// `window 1M` (only with page-sized cells).
    OneMiB,
}

/// A `file` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDecl {
    pub kind: FileKind,
    /// Its size in cells...
    pub cells: u64,
    /// ...plus these bytes (less than a page).
    pub extra: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Memfd,
    Tmpfile { read_only: bool },
    Zero,
}

/// A large fixed mapping before the operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prelude {
    pub page: u64,
    pub pages: u64,
    pub prot: &'static str,
    /// A file (by index, modulo the files declared) and whether it is shared.
    pub file: Option<(usize, bool)>,
    pub hugepage: bool,
}

/// A range of grid cells, resolved against the mappings asked for so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `pages` cells from `page` (clamped to the grid).
    Free { page: u64, pages: u64 },
    /// The whole grid.
    Whole,
    /// Around the range of the `back`-newest remembered `mmap`; `Free` when there is none.
    Around {
        back: usize,
        shape: Shape,
        page: u64,
        pages: u64,
    },
}

/// Where a range lies relative to a remembered mapping of `len` cells. The numbers are taken
/// modulo what fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Same,
    Head(u64),
    Tail(u64),
    Middle(u64, u64),
    /// Overlapping the end, or right after it.
    End(u64, u64),
    /// Overlapping the start, or right before it.
    Start(u64, u64),
    /// One cell more on each side.
    Wider,
}

/// A small change to the range of `madvise`, `mlock`, `mlock2`, `munlock` and `mseal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tweak {
    None,
    Unaligned(u64),
    Zero,
    Short(u64),
}

/// One operation line (with `mmap`'s optional `madvise ... hugepage` after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioOp {
    File(FileDecl),
    /// Closes an open file (by index among the open ones); `maps` if none is open.
    Close(usize),
    Mmap(Box<Mmap>),
    Munmap {
        range: RangeSpec,
        bad: Option<RangeBad>,
    },
    Mprotect {
        range: RangeSpec,
        prot: &'static str,
        grows: &'static str,
        bad: Option<RangeBad>,
    },
    Touch {
        range: RangeSpec,
        unaligned: Option<u64>,
        zero: bool,
        write: bool,
    },
    Fork,
    Maps,
    Smaps,
    Madvise {
        range: RangeSpec,
        tweak: Tweak,
        advice: &'static str,
    },
    Mlock {
        range: RangeSpec,
        tweak: Tweak,
    },
    Mlock2 {
        range: RangeSpec,
        tweak: Tweak,
    },
    Munlock {
        range: RangeSpec,
        tweak: Tweak,
    },
    Mseal {
        range: RangeSpec,
        tweak: Tweak,
    },
    Mremap(Mremap),
    Read {
        range: RangeSpec,
        less: u64,
    },
    Write {
        range: RangeSpec,
        byte: u8,
    },
}

/// A bad argument of `munmap` or `mprotect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeBad {
    Unaligned(u64),
    ZeroLen,
    Huge(usize),
    /// An unaligned length (rounded up: a valid call).
    Short(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mmap {
    pub range: RangeSpec,
    /// Pages moved off the cell boundaries (only with cells larger than a page).
    pub nudge: u64,
    /// 0 `fixed`, 1 `fixed_noreplace`, 2 a hint, 3 `any`.
    pub placement: u8,
    /// A file: `(any, index)`; `any` false picks among the open files.
    pub file: Option<(bool, usize)>,
    /// The sharing roll of the seeded generator (0..10: 0 is private).
    pub share: u8,
    pub prot: &'static str,
    /// `noreserve`, `populate`, `stack`, `locked`, `growsdown`, `sync`.
    pub extras: [bool; 6],
    /// The offset roll (0..10: 0 is the identity offset) and a cell count for it.
    pub offset: (u8, u64),
    pub bad: Option<MmapBad>,
    pub hugepage: bool,
}

/// A bad argument of `mmap` (the seeded generator's 14 cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmapBad {
    UnalignedAddr(u64),
    ZeroLen,
    HugeLen(usize),
    UnalignedOffset(u64),
    HugeOffset(usize),
    NoFlags,
    AnonSharedValidate,
    PrivateShared,
    Growsdown,
    SharedValidateSync,
    AnonWithFile(usize, u64),
    ClosedFile(usize, u64),
    ReadWrite,
    BadFlags(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mremap {
    pub range: RangeSpec,
    pub old_zero: bool,
    /// `None`: the old length (at least a page); `Some(n)`: `n` cells.
    pub new_cells: Option<u64>,
    pub unaligned: Option<u64>,
    /// The form (0..16 as in the seeded generator: 0 is a resize in place) and the
    /// destination cell.
    pub form: u8,
    pub to: u64,
}

/// A strategy whose values are always `Some`, and whose first shrink is to `None`, which does
/// not shrink further; only if the test then passes is the inner value shrunk. For a list of
/// operations this is a line deleter that costs one run per unneeded line (proptest's own
/// `option::weighted` shrinks the inner value first, one run per field before it tries `None`),
/// and it works below the list's minimum length.
#[derive(Clone, Debug)]
pub struct Skip<S>(pub S);

impl<S: Strategy> Strategy for Skip<S> {
    type Tree = SkipTree<S::Tree>;
    type Value = Option<S::Value>;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        Ok(SkipTree {
            inner: self.0.new_tree(runner)?,
            off: false,
            tried_off: false,
            last: None,
        })
    }
}

/// The value tree of [`Skip`].
#[derive(Clone, Debug)]
pub struct SkipTree<T> {
    inner: T,
    off: bool,
    tried_off: bool,
    /// What the last `simplify` did: `Some(true)` switched off, `Some(false)` shrank the inner.
    last: Option<bool>,
}

impl<T: ValueTree> ValueTree for SkipTree<T> {
    type Value = Option<T::Value>;

    fn current(&self) -> Self::Value {
        (!self.off).then(|| self.inner.current())
    }

    fn simplify(&mut self) -> bool {
        if !self.tried_off {
            self.tried_off = true;
            self.off = true;
            self.last = Some(true);
            return true;
        }
        if self.off {
            return false;
        }
        self.last = Some(false);
        self.inner.simplify()
    }

    fn complicate(&mut self) -> bool {
        match self.last.take() {
            Some(true) => {
                self.off = false;
                true
            }
            Some(false) => {
                let more = self.inner.complicate();
                if more {
                    self.last = Some(false);
                }
                more
            }
            None => false,
        }
    }
}

fn weighted<T: fmt::Debug + 'static>(options: Vec<(u32, BoxedStrategy<T>)>) -> BoxedStrategy<T> {
    Union::new_weighted(options.into_iter().filter(|(w, _)| *w > 0).collect()).boxed()
}

fn range(grid: u64, max: u64) -> BoxedStrategy<RangeSpec> {
    let max = max.clamp(1, grid);
    let free = || {
        (0..grid, prop_oneof![2 => 1..=max.min(4), 1 => 1..=max])
            .prop_map(|(page, pages)| RangeSpec::Free { page, pages })
    };
    let shape = prop_oneof![
        2 => Just(Shape::Same),
        1 => (0..64u64).prop_map(Shape::Head),
        1 => (0..64u64).prop_map(Shape::Tail),
        1 => (0..64u64, 0..64u64).prop_map(|(a, b)| Shape::Middle(a, b)),
        1 => (0..64u64, 0..4u64).prop_map(|(a, b)| Shape::End(a, b)),
        1 => (0..4u64, 0..64u64).prop_map(|(a, b)| Shape::Start(a, b)),
        1 => Just(Shape::Wider),
    ];
    let around = (0..6usize, shape, free()).prop_map(|(back, shape, f)| match f {
        RangeSpec::Free { page, pages } => RangeSpec::Around {
            back,
            shape,
            page,
            pages,
        },
        _ => unreachable!(),
    });
    prop_oneof![290 => free(), 10 => Just(RangeSpec::Whole), 700 => around].boxed()
}

fn prot() -> BoxedStrategy<&'static str> {
    weighted(PROTS.iter().map(|&(p, w)| (w, Just(p).boxed())).collect())
}

fn tweak(zero_ok: bool) -> BoxedStrategy<Tweak> {
    weighted(vec![
        (810, Just(Tweak::None).boxed()),
        (50, (1..PAGE).prop_map(Tweak::Unaligned).boxed()),
        (if zero_ok { 48 } else { 0 }, Just(Tweak::Zero).boxed()),
        (if zero_ok { 92 } else { 140 }, (1..PAGE).prop_map(Tweak::Short).boxed()),
    ])
}

fn percent(p: u32) -> f64 {
    f64::from(p.min(100)) / 100.0
}

fn file_decl(grid: u64) -> BoxedStrategy<FileDecl> {
    let kind = prop_oneof![
        4 => Just(FileKind::Memfd),
        4 => proptest::bool::weighted(1.0 / 3.0).prop_map(|read_only| FileKind::Tmpfile { read_only }),
        2 => Just(FileKind::Zero),
    ];
    let cells = prop_oneof![1 => Just(0u64), 5 => 1..=16u64, 4 => 16..=grid.max(17)];
    let extra = prop_oneof![5 => Just(0u64), 1 => 1..PAGE];
    (kind, cells, extra)
        .prop_map(|(kind, cells, extra)| FileDecl { kind, cells, extra })
        .boxed()
}

fn range_bad(munmap: bool) -> BoxedStrategy<RangeBad> {
    let huge = if munmap {
        HUGE_WRAPPING.len() + HUGE_BEYOND_TASK_SIZE.len()
    } else {
        HUGE_WRAPPING.len()
    };
    prop_oneof![
        (1..PAGE).prop_map(RangeBad::Unaligned),
        Just(RangeBad::ZeroLen),
        (0..huge).prop_map(RangeBad::Huge),
        (1..PAGE).prop_map(RangeBad::Short),
    ]
    .boxed()
}

fn mmap(config: &GenConfig, grid: u64) -> BoxedStrategy<ScenarioOp> {
    let nudge = if config.unit > PAGE {
        prop_oneof![5 => Just(0u64), 1 => 1..4u64].boxed()
    } else {
        Just(0).boxed()
    };
    let placement = prop_oneof![12 => Just(0u8), 3 => Just(1u8), 4 => Just(2u8), 1 => Just(3u8)];
    let file = proptest::option::weighted(0.5, (proptest::bool::weighted(0.1), 0..8usize));
    let extras = MMAP_EXTRAS.map(|(_, p)| proptest::bool::weighted(percent(u32::from(p))));
    let bad = prop_oneof![
        (1..PAGE).prop_map(MmapBad::UnalignedAddr),
        Just(MmapBad::ZeroLen),
        (0..HUGE_WRAPPING.len() + HUGE_BEYOND_TASK_SIZE.len()).prop_map(MmapBad::HugeLen),
        (1..PAGE).prop_map(MmapBad::UnalignedOffset),
        (0..HUGE_OFFSETS.len()).prop_map(MmapBad::HugeOffset),
        Just(MmapBad::NoFlags),
        Just(MmapBad::AnonSharedValidate),
        Just(MmapBad::PrivateShared),
        Just(MmapBad::Growsdown),
        Just(MmapBad::SharedValidateSync),
        (0..8usize, 0..4u64).prop_map(|(i, o)| MmapBad::AnonWithFile(i, o)),
        (0..8usize, 0..4u64).prop_map(|(i, o)| MmapBad::ClosedFile(i, o)),
        Just(MmapBad::ReadWrite),
        (0..2usize).prop_map(MmapBad::BadFlags),
    ];
    (
        range(grid, 16),
        nudge,
        placement,
        file,
        0..10u8,
        prot(),
        extras,
        (0..10u8, 0..4u64),
        proptest::option::weighted(percent(config.bad_percent), bad),
        proptest::bool::weighted(percent(config.hugepage_percent)),
    )
        .prop_map(
            |(range, nudge, placement, file, share, prot, extras, offset, bad, hugepage)| {
                ScenarioOp::Mmap(Box::new(Mmap {
                    range,
                    nudge,
                    placement,
                    file,
                    share,
                    prot,
                    extras,
                    offset,
                    bad,
                    hugepage,
                }))
            },
        )
        .boxed()
}

fn op(kind: OpKind, config: &GenConfig, grid: u64) -> BoxedStrategy<ScenarioOp> {
    let bad = percent(config.bad_percent);
    match kind {
        OpKind::File => file_decl(grid).prop_map(ScenarioOp::File).boxed(),
        OpKind::Close => (0..8usize).prop_map(ScenarioOp::Close).boxed(),
        OpKind::Mmap => mmap(config, grid),
        OpKind::Munmap => (range(grid, 8), proptest::option::weighted(bad, range_bad(true)))
            .prop_map(|(range, bad)| ScenarioOp::Munmap { range, bad })
            .boxed(),
        OpKind::Mprotect => {
            let grows = prop_oneof![44 => Just(""), 4 => Just("|growsdown"), 1 => Just("|growsup"), 1 => Just("|growsdown|growsup")];
            (
                range(grid, 24),
                prot(),
                grows,
                proptest::option::weighted(bad, range_bad(false)),
            )
                .prop_map(|(range, prot, grows, bad)| ScenarioOp::Mprotect {
                    range,
                    prot,
                    grows,
                    bad,
                })
                .boxed()
        }
        OpKind::Touch => {
            let range = prop_oneof![4 => range(grid, 8), 1 => range(grid, 64)];
            (
                range,
                proptest::option::weighted(1.0 / 25.0, 1..PAGE),
                proptest::bool::weighted(1.0 / 30.0),
                any::<bool>(),
            )
                .prop_map(|(range, unaligned, zero, write)| ScenarioOp::Touch {
                    range,
                    unaligned,
                    zero,
                    write,
                })
                .boxed()
        }
        OpKind::Fork => Just(ScenarioOp::Fork).boxed(),
        OpKind::Maps => Just(ScenarioOp::Maps).boxed(),
        OpKind::Smaps => Just(ScenarioOp::Smaps).boxed(),
        OpKind::Madvise => {
            let all = || proptest::sample::select(MADVICE.iter().map(|&(a, _)| a).collect::<Vec<_>>()).boxed();
            let advice = if config.hugepage_percent > 0 {
                let p = config.hugepage_percent.min(100);
                weighted(vec![
                    (p * 2, Just("hugepage").boxed()),
                    (100 - p, proptest::sample::select(THP_ADVICE).boxed()),
                    (100 - p, all()),
                ])
            } else {
                all()
            };
            (range(grid, 16), tweak(true), advice)
                .prop_map(|(range, tweak, advice)| ScenarioOp::Madvise { range, tweak, advice })
                .boxed()
        }
        OpKind::Mlock => (range(grid, 16), tweak(false))
            .prop_map(|(range, tweak)| ScenarioOp::Mlock { range, tweak })
            .boxed(),
        OpKind::Mlock2 => (range(grid, 16), tweak(false))
            .prop_map(|(range, tweak)| ScenarioOp::Mlock2 { range, tweak })
            .boxed(),
        OpKind::Munlock => (range(grid, 16), tweak(false))
            .prop_map(|(range, tweak)| ScenarioOp::Munlock { range, tweak })
            .boxed(),
        OpKind::Mseal => (range(grid, 16), tweak(true))
            .prop_map(|(range, tweak)| ScenarioOp::Mseal { range, tweak })
            .boxed(),
        OpKind::Mremap => (
            range(grid, 8),
            proptest::bool::weighted(1.0 / 20.0),
            prop_oneof![3 => (1..=8u64).prop_map(Some), 1 => Just(None)],
            proptest::option::weighted(bad, 1..PAGE),
            0..16u8,
            0..grid,
        )
            .prop_map(|(range, old_zero, new_cells, unaligned, form, to)| {
                ScenarioOp::Mremap(Mremap {
                    range,
                    old_zero,
                    new_cells,
                    unaligned,
                    form,
                    to,
                })
            })
            .boxed(),
        OpKind::Read => (range(grid, 4), 0..PAGE)
            .prop_map(|(range, less)| ScenarioOp::Read { range, less })
            .boxed(),
        OpKind::Write => (range(grid, 8), any::<u8>())
            .prop_map(|(range, byte)| ScenarioOp::Write { range, byte })
            .boxed(),
    }
}

/// The strategy: scenarios with the operation mix, ranges, bad-argument rate and huge-page
/// advice of `config` (as [`crate::generate::generate`] writes them).
pub fn scenario(config: &GenConfig) -> BoxedStrategy<Scenario> {
    let grid = config.grid_pages.max(1);
    let unit = config.unit;
    let max_forks = config.max_forks;
    let window = if unit == PAGE {
        prop_oneof![1 => Just(Window::Grid), 7 => Just(Window::OneMiB), 2 => Just(Window::Default)].boxed()
    } else {
        prop_oneof![8 => Just(Window::Grid), 2 => Just(Window::Default)].boxed()
    };
    let files = proptest::collection::vec(file_decl(grid), 0..=config.max_files);
    let prelude = {
        let pages_max = grid.clamp(8, 32);
        (
            8..=pages_max,
            any::<u64>(),
            prop_oneof![3 => Just("rw-"), 1 => prot()],
            proptest::option::weighted(0.3, (0..8usize, any::<bool>())),
            proptest::bool::weighted(percent(config.hugepage_percent)),
        )
            .prop_map(move |(pages, start, prot, file, hugepage)| {
                let pages = pages.min(grid);
                // The start shrinks to 0 (`any::<u64>()` shrinks towards 0).
                let page = start % (grid - pages + 1);
                Prelude {
                    page,
                    pages,
                    prot,
                    file,
                    hugepage,
                }
            })
    };
    let prelude = proptest::collection::vec(prelude, 0..=3);
    let ops: Vec<(u32, BoxedStrategy<ScenarioOp>)> = config
        .ops
        .iter()
        .map(|&(kind, w)| (w, op(kind, config, grid)))
        .collect();
    let one = if ops.iter().any(|(w, _)| *w > 0) {
        weighted(ops)
    } else {
        Just(ScenarioOp::Smaps).boxed()
    };
    let min = config.min_ops;
    let max = config.max_ops.max(min);
    let ops = proptest::collection::vec(Skip(one), min..=max);
    (window, files, prelude, ops)
        .prop_map(move |(window, files, prelude, ops)| Scenario {
            unit,
            grid,
            max_forks,
            window,
            files,
            prelude,
            ops,
        })
        .boxed()
}

/// A file while rendering.
struct Open {
    name: String,
    kind: FileKind,
    size: u64,
    open: bool,
}

struct Render<'a> {
    s: &'a Scenario,
    out: String,
    files: Vec<Open>,
    ranges: Vec<(u64, u64)>,
    forks: usize,
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

impl Render<'_> {
    fn b(&self, cells: u64) -> u64 {
        cells * self.s.unit
    }

    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn remember(&mut self, page: u64, pages: u64) {
        self.ranges.push((page, pages));
        if self.ranges.len() > 12 {
            self.ranges.remove(0);
        }
    }

    /// `(first cell, cells)` of a range spec, inside the grid and at most `max` cells.
    fn resolve(&self, spec: RangeSpec, max: u64) -> (u64, u64) {
        let grid = self.s.grid;
        let max = max.clamp(1, grid);
        let (page, pages) = match spec {
            RangeSpec::Free { page, pages } => (page, pages),
            RangeSpec::Whole => (0, grid),
            RangeSpec::Around { page, pages, .. } if self.ranges.is_empty() => (page, pages),
            RangeSpec::Around { back, shape, .. } => {
                let n = self.ranges.len();
                let (start, len) = self.ranges[n - 1 - back % n.min(6)];
                match shape {
                    Shape::Same => (start, len),
                    Shape::Head(k) => (start, 1 + k % len),
                    Shape::Tail(k) => {
                        let head = k % len;
                        (start + head, len - head)
                    }
                    Shape::Middle(a, k) if len >= 3 => {
                        let a = 1 + a % (len - 2);
                        (start + a, 1 + k % (len - a - 1))
                    }
                    Shape::End(a, k) => (start + a % (len + 1), 1 + k % 4),
                    Shape::Start(b, into) => {
                        let before = (1 + b % 4).min(start);
                        if before == 0 {
                            (start, len)
                        } else {
                            (start - before, before + into % (len + 1))
                        }
                    }
                    Shape::Middle(..) | Shape::Wider => (start.saturating_sub(1), len + 2),
                }
            }
        };
        let page = page.min(grid - 1);
        let pages = pages.clamp(1, max).min(grid - page);
        (page, pages)
    }

    fn tweaked(&self, spec: RangeSpec, tweak: Tweak) -> (u64, u64) {
        let (page, pages) = self.resolve(spec, 16);
        let (mut addr, mut len) = (self.b(page), self.b(pages));
        match tweak {
            Tweak::None => {}
            Tweak::Unaligned(d) => addr += d,
            Tweak::Zero => len = 0,
            Tweak::Short(d) => len -= d,
        }
        (addr, len)
    }

    fn file(&mut self, decl: FileDecl) {
        let name = format!("f{}", self.files.len());
        let mut size = self.b(decl.cells) + decl.extra;
        let text = match decl.kind {
            FileKind::Memfd => format!("file {name} memfd {}", hex(size)),
            FileKind::Tmpfile { read_only } => {
                format!(
                    "file {name} tmpfile {}{}",
                    hex(size),
                    if read_only { " ro" } else { "" }
                )
            }
            FileKind::Zero => {
                size = 0;
                format!("file {name} zero")
            }
        };
        self.line(&text);
        self.files.push(Open {
            name,
            kind: decl.kind,
            size,
            open: true,
        });
    }

    fn pick_file(&self, pick: Option<(bool, usize)>) -> Option<usize> {
        let (any, i) = pick?;
        if self.files.is_empty() {
            return None;
        }
        let open: Vec<usize> = (0..self.files.len()).filter(|&i| self.files[i].open).collect();
        if !open.is_empty() && !any {
            Some(open[i % open.len()])
        } else {
            Some(i % self.files.len())
        }
    }

    fn prelude(&mut self, p: Prelude) {
        let (addr, len) = (hex(self.b(p.page)), hex(self.b(p.pages)));
        let text = match self.pick_file(p.file.map(|(i, _)| (false, i))) {
            None => format!("mmap {addr} {len} {} private|anon|fixed", p.prot),
            Some(i) => {
                let share = if p.file.is_some_and(|(_, s)| s) {
                    "shared"
                } else {
                    "private"
                };
                format!(
                    "mmap {addr} {len} {} {share}|fixed {} {addr}",
                    p.prot, self.files[i].name
                )
            }
        };
        self.line(&text);
        if p.hugepage {
            self.line(&format!("madvise {addr} {len} hugepage"));
        }
        self.remember(p.page, p.pages);
    }

    fn mmap(&mut self, m: &Mmap) {
        let (page, pages) = self.resolve(m.range, 16);
        let (mut addr, mut len) = (self.b(page), self.b(pages));
        let nudge = m.nudge * PAGE;
        if nudge > 0 && len > nudge {
            addr += nudge;
            len -= nudge;
        }
        let placement = ["fixed", "fixed_noreplace", "", "any"][usize::from(m.placement % 4)];
        let file = self.pick_file(m.file);
        let mut share = match (file, m.share % 10) {
            (None, 0..=6) | (Some(_), 0..=4) => "private",
            (Some(_), 9) => "shared_validate",
            _ => "shared",
        };
        let mut prot = m.prot;
        let mut extra: Vec<&str> = MMAP_EXTRAS
            .iter()
            .zip(m.extras)
            .filter(|(_, on)| *on)
            .map(|((w, _), _)| *w)
            .collect();
        let mut offset = file.map(|i| {
            let f = &self.files[i];
            let file_cells = f.size.div_ceil(self.s.unit);
            if f.kind == FileKind::Zero {
                return if m.offset.0.is_multiple_of(2) { addr } else { 0 };
            }
            match m.offset.0 % 10 {
                0..=4 => addr,
                5 | 6 => m.offset.1.min(file_cells) * self.s.unit,
                7 | 8 => (file_cells + m.offset.1) * self.s.unit,
                _ => 0,
            }
        });
        let mut anon = file.is_none();
        let mut file_arg = file;
        let mut flags_override = None;
        match m.bad {
            None => {}
            Some(MmapBad::UnalignedAddr(d)) if placement != "any" => addr += d,
            Some(MmapBad::ZeroLen) => len = 0,
            Some(MmapBad::HugeLen(i)) if placement != "any" => {
                len = HUGE_WRAPPING
                    .iter()
                    .chain(HUGE_BEYOND_TASK_SIZE)
                    .copied()
                    .nth(i)
                    .unwrap_or(u64::MAX);
            }
            Some(MmapBad::UnalignedOffset(d)) => offset = offset.map(|o| o + d),
            Some(MmapBad::HugeOffset(i)) if offset.is_some() => offset = Some(HUGE_OFFSETS[i % HUGE_OFFSETS.len()]),
            Some(MmapBad::NoFlags) => flags_override = Some("0"),
            Some(MmapBad::AnonSharedValidate) => {
                share = "shared_validate";
                anon = true;
            }
            Some(MmapBad::PrivateShared) => share = "private|shared",
            Some(MmapBad::Growsdown) => extra.push("growsdown"),
            Some(MmapBad::SharedValidateSync) => {
                share = "shared_validate";
                extra.push("sync");
            }
            Some(MmapBad::AnonWithFile(i, o)) => {
                if !self.files.is_empty() {
                    file_arg = Some(i % self.files.len());
                    offset = Some(o * PAGE);
                }
                anon = true;
            }
            Some(MmapBad::ClosedFile(i, o)) => {
                let closed: Vec<usize> = (0..self.files.len()).filter(|&i| !self.files[i].open).collect();
                if !closed.is_empty() {
                    file_arg = Some(closed[i % closed.len()]);
                    offset = Some(o * PAGE);
                    anon = false;
                }
            }
            Some(MmapBad::ReadWrite) => prot = "rw-",
            Some(MmapBad::BadFlags(i)) => flags_override = Some(["fixed|anon", "anon|private|shared_validate"][i % 2]),
            Some(_) => {}
        }
        let flags = match flags_override {
            Some(f) => f.into(),
            None => {
                let mut words = vec![share];
                if anon {
                    words.push("anon");
                }
                if !placement.is_empty() && placement != "any" {
                    words.push(placement);
                }
                words.extend(extra);
                words.join("|")
            }
        };
        let addr_text = if placement == "any" { "any".into() } else { hex(addr) };
        let len_text = hex(len);
        let mut text = format!("mmap {addr_text} {len_text} {prot} {flags}");
        if let (Some(i), Some(off)) = (file_arg, offset) {
            text.push_str(&format!(" {} {}", self.files[i].name, hex(off)));
        }
        self.line(&text);
        let whole = addr == self.b(page) && len == self.b(pages);
        if whole && placement != "any" && m.hugepage {
            self.line(&format!("madvise {addr_text} {len_text} hugepage"));
        }
        if addr.is_multiple_of(PAGE) && len != 0 && len <= self.b(self.s.grid) && placement != "any" {
            self.remember(page, pages);
        }
    }

    fn range_bad(&self, spec: RangeSpec, max: u64, bad: Option<RangeBad>) -> (u64, u64) {
        let (page, pages) = self.resolve(spec, max);
        let (mut addr, mut len) = (self.b(page), self.b(pages));
        match bad {
            None => {}
            Some(RangeBad::Unaligned(d)) => addr += d,
            Some(RangeBad::ZeroLen) => len = 0,
            Some(RangeBad::Huge(i)) => {
                len = HUGE_WRAPPING
                    .iter()
                    .chain(HUGE_BEYOND_TASK_SIZE)
                    .copied()
                    .nth(i)
                    .unwrap_or(u64::MAX);
            }
            Some(RangeBad::Short(d)) => len -= d,
        }
        (addr, len)
    }

    fn mremap(&mut self, m: &Mremap) {
        let (page, pages) = self.resolve(m.range, 8);
        let old = if m.old_zero { 0 } else { self.b(pages) };
        let new = match m.new_cells {
            None => old.max(PAGE),
            Some(n) => n * self.s.unit,
        };
        let addr = hex(self.b(page) + m.unaligned.unwrap_or(0));
        let (old_t, new_t) = (hex(old), hex(new));
        let to = |len: u64| {
            let cells = len.div_ceil(self.s.unit).min(self.s.grid);
            hex(m.to.min(self.s.grid - cells) * self.s.unit)
        };
        let line = match m.form % 16 {
            0..=2 => format!("mremap {addr} {old_t} {new_t} 0"),
            3..=5 => format!("mremap {addr} {old_t} {new_t} maymove"),
            6..=9 => format!("mremap {addr} {old_t} {new_t} maymove|fixed {}", to(new)),
            10 | 11 => format!("mremap {addr} {old_t} {old_t} maymove|fixed {}", to(old)),
            12 => format!("mremap {addr} {old_t} {old_t} maymove|fixed|dontunmap {}", to(old)),
            13 => format!("mremap {addr} {old_t} {old_t} maymove|dontunmap"),
            14 => format!("mremap {addr} {old_t} {new_t} fixed {}", to(new)),
            _ => format!("mremap {addr} {old_t} {new_t} dontunmap"),
        };
        self.line(&line);
    }

    fn op(&mut self, op: &ScenarioOp) {
        match *op {
            ScenarioOp::File(decl) => self.file(decl),
            ScenarioOp::Close(i) => {
                let open: Vec<usize> = (0..self.files.len()).filter(|&i| self.files[i].open).collect();
                if open.is_empty() {
                    self.line("maps");
                } else {
                    let i = open[i % open.len()];
                    self.files[i].open = false;
                    let text = format!("close {}", self.files[i].name);
                    self.line(&text);
                }
            }
            ScenarioOp::Mmap(ref m) => self.mmap(m),
            ScenarioOp::Munmap { range, bad } => {
                let (addr, len) = self.range_bad(range, 8, bad);
                self.line(&format!("munmap {} {}", hex(addr), hex(len)));
            }
            ScenarioOp::Mprotect {
                range,
                prot,
                grows,
                bad,
            } => {
                let (addr, len) = self.range_bad(range, 24, bad);
                self.line(&format!("mprotect {} {} {prot}{grows}", hex(addr), hex(len)));
            }
            ScenarioOp::Touch {
                range,
                unaligned,
                zero,
                write,
            } => {
                let (page, pages) = self.resolve(range, 64);
                let (mut addr, mut len) = (self.b(page), self.b(pages));
                if let Some(d) = unaligned {
                    addr += d;
                    len -= addr % PAGE;
                } else if zero {
                    len = 0;
                }
                let access = if write { "w" } else { "r" };
                self.line(&format!("touch {} {} {access}", hex(addr), hex(len)));
            }
            ScenarioOp::Fork => {
                if self.forks < self.s.max_forks {
                    self.forks += 1;
                    self.line("fork");
                } else {
                    self.line("smaps");
                }
            }
            ScenarioOp::Maps => self.line("maps"),
            ScenarioOp::Smaps => self.line("smaps"),
            ScenarioOp::Madvise { range, tweak, advice } => {
                let (addr, len) = self.tweaked(range, tweak);
                self.line(&format!("madvise {} {} {advice}", hex(addr), hex(len)));
            }
            ScenarioOp::Mlock { range, tweak } => {
                let (addr, len) = self.tweaked(range, tweak);
                self.line(&format!("mlock {} {}", hex(addr), hex(len)));
            }
            ScenarioOp::Mlock2 { range, tweak } => {
                let (addr, len) = self.tweaked(range, tweak);
                self.line(&format!("mlock2 {} {} onfault", hex(addr), hex(len)));
            }
            ScenarioOp::Munlock { range, tweak } => {
                let (addr, len) = self.tweaked(range, tweak);
                self.line(&format!("munlock {} {}", hex(addr), hex(len)));
            }
            ScenarioOp::Mseal { range, tweak } => {
                let (addr, len) = self.tweaked(range, tweak);
                self.line(&format!("mseal {} {}", hex(addr), hex(len)));
            }
            ScenarioOp::Mremap(ref m) => self.mremap(m),
            ScenarioOp::Read { range, less } => {
                let (page, pages) = self.resolve(range, 4);
                let len = self.b(pages) - less;
                self.line(&format!("read {} {}", hex(self.b(page)), hex(len)));
            }
            ScenarioOp::Write { range, byte } => {
                let (page, pages) = self.resolve(range, 8);
                self.line(&format!("write {} {} {byte}", hex(self.b(page)), hex(self.b(pages))));
            }
        }
    }
}

impl Scenario {
    /// The scenario text (`docs/scenario-format.md`): the window, the files, the prelude, the
    /// operations that are on, and a final `smaps`.
    pub fn text(&self) -> String {
        let mut r = Render {
            s: self,
            out: String::new(),
            files: Vec::new(),
            ranges: Vec::new(),
            forks: 0,
        };
        match self.window {
            Window::Grid => r.line(&format!("window {}", hex(self.grid * self.unit))),
            Window::Default => {}
            Window::OneMiB => r.line("window 1M"),
        }
        for &f in &self.files {
            r.file(f);
        }
        for &p in &self.prelude {
            r.prelude(p);
        }
        for op in self.ops.iter().flatten() {
            r.op(op);
        }
        r.line("smaps");
        r.out
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use crate::script::Op;
    use proptest::test_runner::{Config, RngSeed, TestRunner};

    fn runner() -> TestRunner {
        TestRunner::new(Config {
            cases: 500,
            rng_seed: RngSeed::Fixed(0),
            failure_persistence: None,
            ..Config::default()
        })
    }

    /// Every value renders to a scenario that parses and ends with `smaps`, for both configs.
    #[test]
    fn rendered_scenarios_parse() {
        for config in [GenConfig::engine_today(), GenConfig::thp()] {
            runner()
                .run(&scenario(&config), |s| {
                    let text = s.text();
                    let script = parse(&text);
                    prop_assert_eq!(script.error, None, "{}", text);
                    prop_assert!(matches!(script.steps.last().map(|s| &s.op), Some(Op::Smaps)));
                    Ok(())
                })
                .unwrap();
        }
    }

    /// As for the seeded generator: every range stays inside the window unless the call is
    /// refused for its arguments alone, and `any` never gets a huge length.
    #[test]
    fn ranges_stay_in_the_window() {
        use crate::script::{MmapAddr, WINDOW_BASE};
        const TASK_SIZE: u64 = 0x7fff_ffff_f000;
        for config in [GenConfig::engine_today(), GenConfig::thp()] {
            let grid_bytes = config.grid_pages * config.unit;
            runner()
                .run(&scenario(&config), |s| {
                    let text = s.text();
                    let script = parse(&text);
                    let inside = |addr: u64, len: u64| addr.checked_add(len).is_some_and(|e| e <= script.window);
                    for step in &script.steps {
                        let ok = match step.op {
                            Op::Mmap {
                                addr: MmapAddr::Any,
                                len,
                                ..
                            } => len <= grid_bytes,
                            Op::Mmap {
                                addr: MmapAddr::At(a),
                                len,
                                ..
                            } => inside(a, len) || a % PAGE != 0 || len == 0 || len > TASK_SIZE,
                            Op::Munmap { addr, len } => {
                                inside(addr, len) || addr % PAGE != 0 || len == 0 || len > TASK_SIZE
                            }
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
                            } => {
                                (inside(addr, old_len) || addr % PAGE != 0)
                                    && new_addr.is_none_or(|to| inside(to, new_len))
                            }
                            _ => true,
                        };
                        prop_assert!(ok, "line {}: {:?}\n{}", step.line, step.op, text);
                    }
                    Ok(())
                })
                .unwrap();
        }
    }

    /// The mix is the config's: over many values every operation kind with a weight shows up,
    /// and bad arguments and (for THP) `hugepage` advice appear.
    #[test]
    fn the_mix_follows_the_config() {
        let mut runner = runner();
        let strategy = scenario(&GenConfig::thp());
        let mut text = String::new();
        for _ in 0..200 {
            text.push_str(&strategy.new_tree(&mut runner).unwrap().current().text());
        }
        for verb in [
            "file ",
            "close ",
            "mmap ",
            "munmap ",
            "mprotect ",
            "touch ",
            "fork",
            "madvise ",
            "mlock ",
            "mlock2 ",
            "munlock ",
            "mremap ",
            "mseal ",
            "read ",
            "write ",
            "hugepage",
            "collapse",
            "any ",
        ] {
            assert!(text.contains(verb), "{verb}");
        }
    }
}

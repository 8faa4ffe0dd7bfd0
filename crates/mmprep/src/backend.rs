//! The backend: what an embedder must do to its host memory so that it holds what the model
//! decided, one system call at a time.
//!
//! The engine is the model: it decides where a mapping goes, what it merges with and what each
//! page reads. An emulator or a sandbox still has to make real memory match, and Linux gives it
//! only the host's `mmap`, `munmap`, `mprotect`, `madvise` and `mremap`. The [`Planner`] runs one
//! call through [`crate::abi::syscall`] and returns the ordered list of [`HostOp`]s that realise
//! it; a [`Backend`] receives them. The model lives apart from the memory that realises it, as
//! gVisor's `pkg/sentry/mm` keeps its VMAs apart from the address space it drives.
//!
//! The ops are derived from the call and from the state of the affected ranges before and
//! after it (a snapshot of the VMAs that overlap them, so the cost is in the VMAs touched, not
//! in the size of the address space). Each call mirrors the kernel path whose effect it copies:
//! `mm/mmap.c:do_mmap` and `mm/vma.c:mmap_region` (a new mapping: [`HostOp::Map`]),
//! `mm/vma.c:do_vmi_munmap` ([`HostOp::Unmap`]), `mm/mprotect.c:mprotect_fixup`
//! ([`HostOp::Protect`]), `mm/madvise.c:madvise_dontneed_single_vma` → `zap_page_range_single`
//! ([`HostOp::Zap`]), `mm/mremap.c:move_vma` → `move_page_tables` ([`HostOp::Move`]) and
//! `mm/mmap.c:do_brk_flags` (brk's growth), all \[H\] 6.18.
//!
//! # Example
//! A guest's `MAP_FIXED` over a written anonymous mapping and the hole after it: one op maps
//! the whole range afresh, so the host never shows the guest a hole there.
//!
//! ```
//! use mmprep::abi::{FdTable, nr};
//! use mmprep::backend::{Backing, HostOp, Planner};
//! use mmprep::{Mm, Profile, Prot, VirtAddr};
//!
//! let mut mm = Mm::new(Profile::reference_host());
//! let fds = FdTable::new();
//! let planner = Planner::new(4096, 4096)?;
//! let base = 0x7000_0000_0000u64;
//! let fixed_anon = 0x32; // MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
//! planner.plan(&mut mm, &fds, nr::MMAP, [base, 0x2000, 3, fixed_anon, u64::MAX, 0])?;
//! let plan = planner.plan(&mut mm, &fds, nr::MMAP, [base, 0x4000, 1, fixed_anon, u64::MAX, 0])?;
//! assert_eq!(plan.ops, [HostOp::Map {
//!     start: VirtAddr(base),
//!     end: VirtAddr(base + 0x4000),
//!     prot: Prot::READ,
//!     backing: Backing::Anon,
//! }]);
//! # Ok::<(), mmprep::Error>(())
//! ```
//!
//! # The ordering rule
//! No address the guest had mapped before the call, and still has mapped after it, is ever
//! unmapped on the host in between: another guest thread must never see a hole. So a
//! `MAP_FIXED` over several mappings is one [`HostOp::Map`] over the whole range (the host's own
//! `MAP_FIXED` replaces atomically), never an unmap followed by a map; an `mremap` move is one
//! [`HostOp::Move`] (the host's `mremap(MREMAP_FIXED)`), or, where the host cannot move, a map
//! of the destination, a [`HostOp::Copy`], and only then the source's unmap.
//!
//! # Host granules
//! A host whose pages are larger than the guest's (a 4 KiB guest on a 16 KiB or 64 KiB arm64
//! host) can only map, unmap and protect whole host pages, its *granules*. Every op but
//! [`HostOp::Zero`] and [`HostOp::Copy`] (which touch bytes) covers whole granules. Where one
//! granule holds guest pages that want different things (protections, backings, or some
//! mapped and some not), the planner reports a [`Conflict`] with each guest piece and what it
//! wants, and the ops apply the default policy ([`Conflict::chosen`]):
//! - the granule is mapped as long as any guest page in it is;
//! - its protection is the union of the pieces' protections (the guest may then reach, in
//!   the host, a page it may not touch in the model: the embedder checks such accesses itself);
//! - its backing is the lowest mapped piece's, extended over the granule;
//! - a new anonymous piece in a granule that stays mapped reads zero through a
//!   [`HostOp::Zero`] of its bytes.
//!
//! The ops assume the host follows the default policy; an embedder with its own policy reads
//! the conflict and adapts the ops of that granule.
//!
//! # What has no op
//! `mlock`, `munlock`, `mlockall`, `mseal`, `msync` and the advices that only change flags or
//! residency (`MADV_WILLNEED`, `MADV_DONTFORK`...) change nothing the host must mirror for the
//! guest to read what Linux gives, and produce no op. `MADV_FREE` keeps the data until memory
//! runs short, which the model never does, so it has no op either. `MADV_REMOVE` (a hole punched
//! in the file under every mapping) and the guard advices (`MADV_GUARD_INSTALL`,
//! `MADV_GUARD_REMOVE`) are not built: [`Planner::plan`] refuses them with `EOPNOTSUPP` before
//! the call runs. A stack that grows on a fault (`expand_downwards`) is not a call: the
//! embedder maps the new stack pages when it replays the fault.

use alloc::vec::Vec;

use crate::abi::{self, FdTable, Outcome, nr};
use crate::addr::{PAGE_SIZE, VirtAddr, page_align};
use crate::errno::{Errno, Error, Result, err};
use crate::file::DevId;
use crate::flags::VmaBit;
use crate::mm::Mm;
use crate::uapi::{MapFlags, Prot, madv, mremap};
use crate::vma::Vma;

/// Which file a mapping shows: the device and inode, as `/proc/PID/maps` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: DevId,
    /// `st_ino`.
    pub ino: u64,
}

/// What a host mapping shows before the guest writes to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Private anonymous memory (also a private `/dev/zero` mapping and the special mappings
    /// such as `[vdso]`, whose contents the embedder supplies): reads zero until written.
    Anon,
    /// The pages of a file from byte `offset`. `Shared`: stores reach the file and every other
    /// shared mapping of it (shared anonymous memory and memfds are shmem files);
    /// `Private`: a page is copied on its first store.
    File {
        /// The file.
        file: FileId,
        /// The byte offset in the file at the op's first address.
        offset: u64,
        /// Shared or private.
        sharing: Sharing,
    },
}

/// `MAP_SHARED` or `MAP_PRIVATE` for a file mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// `MAP_SHARED`.
    Shared,
    /// `MAP_PRIVATE`.
    Private,
}

impl Backing {
    /// The same backing seen `delta` bytes further on.
    pub fn advanced(self, delta: u64) -> Backing {
        match self {
            Backing::Anon => Backing::Anon,
            Backing::File { file, offset, sharing } => Backing::File {
                file,
                offset: offset.wrapping_add(delta),
                sharing,
            },
        }
    }

    /// The same backing seen `delta` bytes earlier, if the file offset stays non-negative.
    fn rewound(self, delta: u64) -> Option<Backing> {
        match self {
            Backing::Anon => Some(Backing::Anon),
            Backing::File { file, offset, sharing } => {
                offset
                    .checked_sub(delta)
                    .map(|offset| Backing::File { file, offset, sharing })
            }
        }
    }

    /// Is every page private (anonymous, or a private file mapping)?
    pub fn is_private(self) -> bool {
        !matches!(
            self,
            Backing::File {
                sharing: Sharing::Shared,
                ..
            }
        )
    }
}

/// A host mapping: its protection and what it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMapping {
    /// `PROT_READ`, `PROT_WRITE`, `PROT_EXEC` bits.
    pub prot: Prot,
    /// The backing at the first address of the range it is given for.
    pub backing: Backing,
}

/// One thing to do to host memory. Addresses are guest addresses: the embedder maps them to
/// its host window. Every op but [`HostOp::Zero`] and [`HostOp::Copy`] covers whole host
/// granules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOp {
    /// Map `[start, end)` afresh with `prot` and `backing`, replacing whatever was there in one
    /// step (the host's `mmap(MAP_FIXED)`): it must never be done as an unmap then a map.
    Map {
        /// First address.
        start: VirtAddr,
        /// One past the last.
        end: VirtAddr,
        /// Protection.
        prot: Prot,
        /// Backing at `start`.
        backing: Backing,
    },
    /// Unmap `[start, end)` (the guest no longer has anything there).
    Unmap {
        /// First address.
        start: VirtAddr,
        /// One past the last.
        end: VirtAddr,
    },
    /// Change the protection of `[start, end)`, keeping its contents (the host's `mprotect`).
    Protect {
        /// First address.
        start: VirtAddr,
        /// One past the last.
        end: VirtAddr,
        /// The new protection.
        prot: Prot,
    },
    /// Drop the private pages of `[start, end)` (the host's `madvise(MADV_DONTNEED)`): private
    /// anonymous memory reads zero again, a private file mapping reads the file again, shared
    /// memory is unchanged.
    Zap {
        /// First address.
        start: VirtAddr,
        /// One past the last.
        end: VirtAddr,
    },
    /// Store zero in every byte of `[start, end)`, whatever its protection: a new anonymous
    /// guest piece inside a host granule that stays mapped. May cover part of a granule; the
    /// host does it through a writable alias (or `/proc/self/mem`).
    Zero {
        /// First address.
        start: VirtAddr,
        /// One past the last.
        end: VirtAddr,
    },
    /// Move the pages of `[from, from + len)` to `[to, to + len)` with their protection,
    /// backing and contents, replacing what `to` had, in one step (the host's
    /// `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`). Afterwards the source is unmapped, unless
    /// `keep_source`: then it stays mapped with its pages dropped, as after
    /// `MREMAP_DONTUNMAP`.
    Move {
        /// Source.
        from: VirtAddr,
        /// Destination.
        to: VirtAddr,
        /// Bytes.
        len: u64,
        /// `MREMAP_DONTUNMAP`.
        keep_source: bool,
    },
    /// Copy the bytes of `[from, from + len)` to `[to, to + len)`, whatever their protection
    /// (both are mapped): an `mremap` move where the host cannot move whole granules.
    Copy {
        /// Source.
        from: VirtAddr,
        /// Destination.
        to: VirtAddr,
        /// Bytes.
        len: u64,
    },
}

/// A guest piece of a host granule and what it wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPiece {
    /// First guest address.
    pub start: VirtAddr,
    /// One past the last.
    pub end: VirtAddr,
    /// What the guest has there: `None` for nothing mapped.
    pub want: Option<HostMapping>,
}

/// One host granule whose guest pages want different things. See the module documentation
/// for the default policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// First address of the granule.
    pub start: VirtAddr,
    /// One past its last.
    pub end: VirtAddr,
    /// The guest pieces, lowest first, covering the granule.
    pub pieces: Vec<GuestPiece>,
    /// What the ops give the whole granule (the default policy), from `start`.
    pub chosen: HostMapping,
}

/// The ops of one call, and the conflicts met on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// What the call returned.
    pub outcome: Outcome,
    /// The host ops, in the order they must be done.
    pub ops: Vec<HostOp>,
    /// The granules whose guest pages disagree (only with a granule larger than a guest page).
    pub conflicts: Vec<Conflict>,
}

/// Why ops could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// The planner refused the call before it ran (nothing changed).
    Refused(Error),
    /// The backend failed op number `index` (`op`) with the host's `errno`. The model has
    /// changed and the ops before `index` were done: the host is out of step.
    Host {
        /// Position of the failed op in the plan.
        index: usize,
        /// The op.
        op: HostOp,
        /// The host's errno.
        errno: i32,
    },
}

/// What receives the ops.
pub trait Backend {
    /// Does one op; `Err(errno)` if the host refused it.
    fn apply(&mut self, op: &HostOp) -> core::result::Result<(), i32>;

    /// Learns of a conflicted granule, before the call's ops. The default does nothing: the
    /// ops already follow the default policy.
    fn conflict(&mut self, _conflict: &Conflict) {}
}

/// Turns calls into host ops for one guest page size and one host granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planner {
    granule: u64,
}

impl Planner {
    /// A planner for a guest with `guest_page`-byte pages on a host that maps `granule`-byte
    /// pages.
    ///
    /// `EINVAL` when `granule` is not a power of two at least `guest_page`; `EOPNOTSUPP` when
    /// `guest_page` is not the engine's page size (4 KiB: the page size becomes a profile
    /// parameter with the architecture profiles).
    pub fn new(guest_page: u64, granule: u64) -> Result<Planner> {
        if guest_page != PAGE_SIZE {
            return Err(err(Errno::EOPNOTSUPP, "the engine models 4 KiB guest pages only"));
        }
        if !granule.is_power_of_two() || granule < guest_page {
            return Err(err(
                Errno::EINVAL,
                "the host granule is not a power of two at least the guest page",
            ));
        }
        Ok(Planner { granule })
    }

    /// The host granule in bytes.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Runs system call `nr` with `args` on `mm` ([`abi::syscall`]) and returns what it
    /// returned with the host ops that realise it.
    ///
    /// # On failure
    /// `EOPNOTSUPP` for a call whose host effect is not built (`MADV_REMOVE`, the guard
    /// advices), before the call runs: nothing changed. A call that fails in the model is not
    /// an error here: its plan holds the ops of whatever it changed before failing (the VMAs
    /// an `mprotect` walked before a hole, a `MAP_FIXED` whose old mappings went).
    pub fn plan(&self, mm: &mut Mm, fds: &FdTable, nr: u64, args: [u64; 6]) -> Result<Plan> {
        if nr == nr::MADVISE && matches!(args[2] as u32, madv::REMOVE | madv::GUARD_INSTALL | madv::GUARD_REMOVE) {
            return Err(err(
                Errno::EOPNOTSUPP,
                "the backend has no op for MADV_REMOVE or the guard advices",
            ));
        }
        let call = Call::decode(mm, nr, args);
        let mut before = Snapshot::default();
        for &(s, e) in call.known_ranges().iter().flatten() {
            before.capture(mm, self.widen(s, e));
        }
        let zaps = match call {
            Call::Madvise { start, end, advice } => dontneed_ranges(mm, start, end, advice),
            _ => Vec::new(),
        };
        let outcome = abi::syscall(mm, fds, nr, args);
        let Outcome::Return(ret) = outcome else {
            return Ok(Plan {
                outcome,
                ops: Vec::new(),
                conflicts: Vec::new(),
            });
        };
        let failed = (ret as i64) < 0 && (ret as i64) >= -4095;
        let intents = call.intents(ret, failed, zaps);
        let mut after = Snapshot::default();
        for &(s, e) in call.known_ranges().iter().flatten() {
            after.capture(mm, self.widen(s, e));
        }
        // A new placement (mmap without MAP_FIXED, an mremap move to a free range): the
        // range was empty before, and its neighbours are as the call left them.
        let placed: Vec<(u64, u64)> = intents
            .iter()
            .filter_map(|i| match *i {
                Intent::Fresh(s, e) | Intent::Move { to: s, end: e, .. } => Some((s, e)),
                _ => None,
            })
            .collect();
        for &(s, e) in &placed {
            let w = self.widen(s, e);
            after.capture(mm, w);
            before.derive_from(&after, w, &placed);
        }
        let mut ops = Gen {
            granule: self.granule,
            before: &before,
            after: &after,
            ops: Vec::new(),
            conflicts: Vec::new(),
        };
        for i in intents {
            match i {
                Intent::Fresh(s, e) => ops.fresh(s, e),
                Intent::Gone(s, e) => ops.gone(s, e),
                Intent::Reprotect(s, e) => ops.reprotect(s, e),
                Intent::Zap(s, e) => ops.zap(s, e),
                Intent::Move {
                    from,
                    to,
                    end,
                    keep,
                    only_gone,
                } => ops.moved(from, to, end - to, keep, only_gone),
            }
        }
        Ok(Plan {
            outcome,
            ops: ops.ops,
            conflicts: ops.conflicts,
        })
    }

    /// [`Planner::plan`], then hands the conflicts and the ops, in order, to `backend`.
    /// Returns what the call returned.
    pub fn syscall(
        &self,
        mm: &mut Mm,
        fds: &FdTable,
        nr: u64,
        args: [u64; 6],
        backend: &mut dyn Backend,
    ) -> core::result::Result<Outcome, ApplyError> {
        let plan = self.plan(mm, fds, nr, args).map_err(ApplyError::Refused)?;
        for c in &plan.conflicts {
            backend.conflict(c);
        }
        for (index, op) in plan.ops.iter().enumerate() {
            backend
                .apply(op)
                .map_err(|errno| ApplyError::Host { index, op: *op, errno })?;
        }
        Ok(plan.outcome)
    }

    /// `[s, e)` widened to whole granules (saturating at the top of the address space).
    fn widen(&self, s: u64, e: u64) -> (u64, u64) {
        (
            s & !(self.granule - 1),
            e.checked_next_multiple_of(self.granule).unwrap_or(e),
        )
    }
}

/// The protection and backing a VMA gives the host.
fn host_mapping(v: &Vma, at: VirtAddr) -> HostMapping {
    let mut prot = Prot::NONE;
    for (bit, p) in [
        (VmaBit::Read, Prot::READ),
        (VmaBit::Write, Prot::WRITE),
        (VmaBit::Exec, Prot::EXEC),
    ] {
        if v.test(bit) {
            prot = prot.union(p);
        }
    }
    let backing = match v.file() {
        Some(f) if !v.is_anonymous() => Backing::File {
            file: FileId {
                dev: f.inode().dev(),
                ino: f.inode().ino(),
            },
            offset: v.pgoff_at(at).bytes(),
            sharing: if v.test(VmaBit::Shared) {
                Sharing::Shared
            } else {
                Sharing::Private
            },
        },
        _ => Backing::Anon,
    };
    HostMapping { prot, backing }
}

/// A run of guest pages with one host mapping.
#[derive(Clone, Copy, Debug)]
struct Piece {
    start: u64,
    end: u64,
    map: HostMapping,
}

/// The host mappings of some ranges at one moment.
#[derive(Default)]
struct Snapshot {
    /// Ranges whose state is known, sorted, not overlapping.
    covered: Vec<(u64, u64)>,
    /// The mapped pieces inside them, sorted.
    pieces: Vec<Piece>,
}

impl Snapshot {
    /// The parts of `[s, e)` not covered yet.
    fn uncovered(&self, (s, e): (u64, u64)) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = s;
        for &(cs, ce) in &self.covered {
            if ce <= at || cs >= e {
                continue;
            }
            if cs > at {
                out.push((at, cs));
            }
            at = at.max(ce);
        }
        if at < e {
            out.push((at, e));
        }
        out
    }

    fn cover(&mut self, r: (u64, u64)) {
        self.covered.push(r);
        self.covered.sort_unstable();
        self.pieces.sort_unstable_by_key(|p| p.start);
    }

    /// Records the VMAs of `mm` over `r`.
    fn capture(&mut self, mm: &Mm, r: (u64, u64)) {
        for (s, e) in self.uncovered(r) {
            for v in mm.vmas_in(VirtAddr(s), VirtAddr(e)) {
                let ps = v.start().get().max(s);
                let pe = v.end().get().min(e);
                self.pieces.push(Piece {
                    start: ps,
                    end: pe,
                    map: host_mapping(v, VirtAddr(ps)),
                });
            }
            self.cover((s, e));
        }
    }

    /// Records `r` as `other` has it, less the `holes` (the ranges the call placed).
    fn derive_from(&mut self, other: &Snapshot, r: (u64, u64), holes: &[(u64, u64)]) {
        for (s, e) in self.uncovered(r) {
            for p in other.clipped(s, e) {
                let mut rest = alloc::vec![(p.start, p.end)];
                for &(hs, he) in holes {
                    rest = rest
                        .into_iter()
                        .flat_map(|(a, b)| [(a, b.min(hs)), (a.max(he), b)])
                        .filter(|&(a, b)| a < b)
                        .collect();
                }
                for (a, b) in rest {
                    self.pieces.push(Piece {
                        start: a,
                        end: b,
                        map: HostMapping {
                            prot: p.map.prot,
                            backing: p.map.backing.advanced(a - p.start),
                        },
                    });
                }
            }
            self.cover((s, e));
        }
    }

    /// The pieces over `[s, e)`, clipped to it.
    fn clipped(&self, s: u64, e: u64) -> Vec<Piece> {
        self.pieces
            .iter()
            .filter(|p| p.start < e && s < p.end)
            .map(|p| {
                let start = p.start.max(s);
                Piece {
                    start,
                    end: p.end.min(e),
                    map: HostMapping {
                        prot: p.map.prot,
                        backing: p.map.backing.advanced(start - p.start),
                    },
                }
            })
            .collect()
    }

    /// The host state of `[s, e)`: one granule, or a run of granules with no boundary inside.
    fn state(&self, s: u64, e: u64) -> HostState {
        let pieces = self.clipped(s, e);
        let Some(first) = pieces.first() else {
            return HostState::Unmapped;
        };
        let backing = first.map.backing.rewound(first.start - s).unwrap_or(Backing::Anon);
        let prot = pieces.iter().fold(Prot::NONE, |p, q| p.union(q.map.prot));
        let chosen = HostMapping { prot, backing };
        let mut at = s;
        let mut uniform = true;
        for p in &pieces {
            uniform &= p.start == at
                && p.map
                    == HostMapping {
                        prot,
                        backing: backing.advanced(p.start - s),
                    };
            at = p.end;
        }
        uniform &= at == e;
        let conflict = (!uniform).then(|| {
            let mut out = Vec::new();
            let mut at = s;
            for p in &pieces {
                if p.start > at {
                    out.push(GuestPiece {
                        start: VirtAddr(at),
                        end: VirtAddr(p.start),
                        want: None,
                    });
                }
                out.push(GuestPiece {
                    start: VirtAddr(p.start),
                    end: VirtAddr(p.end),
                    want: Some(p.map),
                });
                at = p.end;
            }
            if at < e {
                out.push(GuestPiece {
                    start: VirtAddr(at),
                    end: VirtAddr(e),
                    want: None,
                });
            }
            Conflict {
                start: VirtAddr(s),
                end: VirtAddr(e),
                pieces: out,
                chosen,
            }
        });
        HostState::Mapped(chosen, conflict)
    }
}

/// What the host has (or should have) over a segment.
enum HostState {
    Unmapped,
    Mapped(HostMapping, Option<Conflict>),
}

impl HostState {
    fn prot(&self) -> Option<Prot> {
        match self {
            HostState::Unmapped => None,
            HostState::Mapped(m, _) => Some(m.prot),
        }
    }
}

/// What a call did to a guest range, in the order the host must follow.
#[derive(Clone, Copy, Debug)]
enum Intent {
    /// New mappings fill `[s, e)` (as after the call).
    Fresh(u64, u64),
    /// Whatever was mapped in `[s, e)` may be gone.
    Gone(u64, u64),
    /// The protections in `[s, e)` may have changed.
    Reprotect(u64, u64),
    /// The private pages of `[s, e)` (mapped) were dropped.
    Zap(u64, u64),
    /// `[from, from + (end - to))` moved to `[to, end)`; with `only_gone`, only the source
    /// pieces the call left unmapped (a move that failed midway).
    Move {
        from: u64,
        to: u64,
        end: u64,
        keep: bool,
        only_gone: bool,
    },
}

/// The calls that change what the host must hold, with their page-aligned ranges.
#[derive(Clone, Copy, Debug)]
enum Call {
    Mmap {
        start: u64,
        len: u64,
        fixed: bool,
    },
    Munmap {
        start: u64,
        end: u64,
    },
    Mprotect {
        start: u64,
        end: u64,
    },
    Madvise {
        start: u64,
        end: u64,
        advice: u32,
    },
    Brk {
        old: u64,
        start_brk: u64,
    },
    Mremap {
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
    },
    /// No host effect, or arguments no success can come from.
    Other,
}

/// `start + page_align(len)`, page aligned, or `None` when it is not a range.
fn range_of(start: u64, len: u64) -> Option<(u64, u64)> {
    if !start.is_multiple_of(PAGE_SIZE) {
        return None;
    }
    let end = start.checked_add(page_align(len)?)?;
    (end > start).then_some((start, end))
}

impl Call {
    fn decode(mm: &Mm, nr: u64, a: [u64; 6]) -> Call {
        let ranged = |f: fn(u64, u64) -> Call| range_of(a[0], a[1]).map_or(Call::Other, |(s, e)| f(s, e));
        match nr {
            nr::MMAP => match page_align(a[1]) {
                Some(len) if len > 0 => Call::Mmap {
                    start: a[0],
                    len,
                    fixed: a[3] as u32 & MapFlags::FIXED.0 != 0,
                },
                _ => Call::Other,
            },
            nr::MUNMAP => ranged(|start, end| Call::Munmap { start, end }),
            nr::MPROTECT | nr::PKEY_MPROTECT => ranged(|start, end| Call::Mprotect { start, end }),
            nr::MADVISE => match (range_of(a[0], a[1]), a[2] as u32) {
                (Some((start, end)), advice @ (madv::DONTNEED | madv::DONTNEED_LOCKED)) => {
                    Call::Madvise { start, end, advice }
                }
                _ => Call::Other,
            },
            nr::BRK => match mm.bounds() {
                Some(b) => Call::Brk {
                    old: b.brk,
                    start_brk: b.start_brk,
                },
                None => Call::Other,
            },
            nr::MREMAP => match (page_align(a[1]), page_align(a[2])) {
                (Some(old_len), Some(new_len)) if a[0].is_multiple_of(PAGE_SIZE) => Call::Mremap {
                    old: a[0],
                    old_len,
                    new_len,
                    flags: a[3] as u32,
                    new_addr: a[4],
                },
                _ => Call::Other,
            },
            _ => Call::Other,
        }
    }

    /// The ranges whose state the call may change, as far as they are known before it runs.
    fn known_ranges(&self) -> [Option<(u64, u64)>; 3] {
        match *self {
            Call::Mmap {
                start,
                len,
                fixed: true,
            } => [range_of(start, len), None, None],
            Call::Munmap { start, end } | Call::Mprotect { start, end } | Call::Madvise { start, end, .. } => {
                [Some((start, end)), None, None]
            }
            Call::Brk { old, start_brk } => [
                Some((start_brk, page_align(old).unwrap_or(old).max(start_brk))),
                None,
                None,
            ],
            Call::Mremap {
                old,
                old_len,
                new_len,
                flags,
                new_addr,
            } => [
                range_of(old, old_len),
                if new_len > old_len {
                    old.checked_add(old_len).and_then(|s| range_of(s, new_len - old_len))
                } else {
                    None
                },
                if flags & mremap::FIXED != 0 {
                    range_of(new_addr, new_len)
                } else {
                    None
                },
            ],
            _ => [None; 3],
        }
    }

    /// What the call did, given its raw return value.
    fn intents(&self, ret: u64, failed: bool, zaps: Vec<(u64, u64, bool)>) -> Vec<Intent> {
        let mut out = Vec::new();
        match *self {
            Call::Mmap { start, len, fixed } => {
                if !failed {
                    out.push(Intent::Fresh(ret, ret + len));
                } else if fixed && let Some((s, e)) = range_of(start, len) {
                    // A MAP_FIXED that failed after unmapping leaves a hole (mm/vma.c:__mmap_region).
                    out.push(Intent::Gone(s, e));
                }
            }
            Call::Munmap { start, end } => out.push(Intent::Gone(start, end)),
            Call::Mprotect { start, end } => out.push(Intent::Reprotect(start, end)),
            Call::Madvise { .. } => {
                let ok = !failed || ret as i64 == -i64::from(Errno::ENOMEM.raw());
                for (s, e, before_stop) in zaps {
                    if ok || before_stop {
                        out.push(Intent::Zap(s, e));
                    }
                }
            }
            Call::Brk { old, .. } => {
                let (o, n) = (page_align(old).unwrap_or(old), page_align(ret).unwrap_or(ret));
                if n > o {
                    out.push(Intent::Fresh(o, n));
                } else if n < o {
                    out.push(Intent::Gone(n, o));
                }
            }
            Call::Mremap {
                old,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                if failed {
                    if flags & mremap::FIXED != 0
                        && let Some((s, e)) = range_of(new_addr, new_len)
                    {
                        // A multi-VMA move that failed midway keeps the VMAs that moved
                        // before it (mm/mremap.c:remap_move); the destination was cleared.
                        if old_len == new_len {
                            out.push(Intent::Move {
                                from: old,
                                to: s,
                                end: e,
                                keep: false,
                                only_gone: true,
                            });
                        }
                        out.push(Intent::Gone(s, e));
                    }
                } else if old_len == 0 {
                    // A second mapping of the same shared pages (mm/mremap.c:mremap_to).
                    out.push(Intent::Fresh(ret, ret + new_len));
                } else if ret == old {
                    if new_len < old_len {
                        out.push(Intent::Gone(old + new_len, old + old_len));
                    } else if new_len > old_len {
                        out.push(Intent::Fresh(old + old_len, old + new_len));
                    }
                } else {
                    let moved = old_len.min(new_len);
                    out.push(Intent::Move {
                        from: old,
                        to: ret,
                        end: ret + moved,
                        keep: flags & mremap::DONTUNMAP != 0,
                        only_gone: false,
                    });
                    if new_len > old_len {
                        out.push(Intent::Fresh(ret + old_len, ret + new_len));
                    }

                    // The kernel drops the tail first (mm/mremap.c:mremap_to, shrink_vma);
                    // the host drops it after the move, so that a granule shared by the
                    // tail and the moved pages is not unmapped before they are copied.
                    if new_len < old_len {
                        out.push(Intent::Gone(old + new_len, old + old_len));
                    }
                }
            }
            Call::Other => {}
        }
        out
    }
}

/// The ranges `madvise(MADV_DONTNEED)` zaps, walked before the call as
/// `mm/madvise.c:madvise_walk_vmas` will walk them: each mapped piece, and whether it lies
/// before the first VMA the walk refuses (it stops there): a seal on read-only anonymous
/// memory (`can_madvise_modify`), a locked or PFN-mapped VMA
/// (`madvise_dontneed_free_valid_vma`).
fn dontneed_ranges(mm: &Mm, start: u64, end: u64, advice: u32) -> Vec<(u64, u64, bool)> {
    let mut out = Vec::new();
    let mut stopped = false;
    for v in mm.vmas_in(VirtAddr(start), VirtAddr(end)) {
        let sealed = v.is_sealed() && v.is_anonymous() && !v.test(VmaBit::Write);
        let refused = sealed
            || v.test(VmaBit::PfnMap)
            || v.test(VmaBit::HugeTlb)
            || (advice == madv::DONTNEED && v.test(VmaBit::Locked));
        stopped |= refused;
        out.push((v.start().get().max(start), v.end().get().min(end), !stopped));
    }
    out
}

/// Builds the ops of one call, granule by granule.
struct Gen<'a> {
    granule: u64,
    before: &'a Snapshot,
    after: &'a Snapshot,
    ops: Vec<HostOp>,
    conflicts: Vec<Conflict>,
}

impl Gen<'_> {
    /// `[s, e)` widened to granules and cut where any piece (before or after) starts or ends:
    /// a segment is either one granule or a run of granules with nothing changing inside.
    fn segments(&self, s: u64, e: u64) -> Vec<(u64, u64)> {
        let g = self.granule;
        let (ws, we) = (s & !(g - 1), e.checked_next_multiple_of(g).unwrap_or(e));
        let mut cuts = alloc::vec![ws, we];
        let bounds = self
            .before
            .clipped(ws, we)
            .into_iter()
            .chain(self.after.clipped(ws, we))
            .flat_map(|p| [p.start, p.end])
            .chain([s, e]);
        for b in bounds {
            if ws < b && b < we {
                cuts.push(b & !(g - 1));
                cuts.push(b.checked_next_multiple_of(g).unwrap_or(we).min(we));
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        cuts.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// The state after the call, noting its conflict.
    fn after_state(&mut self, s: u64, e: u64) -> HostState {
        let st = self.after.state(s, e);
        if let HostState::Mapped(_, Some(c)) = &st {
            if let Some(old) = self.conflicts.iter_mut().find(|o| o.start == c.start) {
                *old = c.clone();
            } else {
                self.conflicts.push(c.clone());
            }
        }
        st
    }

    fn push(&mut self, op: HostOp) {
        use HostOp::*;
        if let Some(last) = self.ops.last_mut() {
            let merged = match (*last, op) {
                (
                    Map {
                        start,
                        end,
                        prot,
                        backing,
                    },
                    Map {
                        start: s2,
                        end: e2,
                        prot: p2,
                        backing: b2,
                    },
                ) if end == s2 && prot == p2 && backing.advanced(end.0 - start.0) == b2 => Some(Map {
                    start,
                    end: e2,
                    prot,
                    backing,
                }),
                (
                    Protect { start, end, prot },
                    Protect {
                        start: s2,
                        end: e2,
                        prot: p2,
                    },
                ) if end == s2 && prot == p2 => Some(Protect { start, end: e2, prot }),
                (Unmap { start, end }, Unmap { start: s2, end: e2 }) if end == s2 => Some(Unmap { start, end: e2 }),
                (Zap { start, end }, Zap { start: s2, end: e2 }) if end == s2 => Some(Zap { start, end: e2 }),
                (Zero { start, end }, Zero { start: s2, end: e2 }) if end == s2 => Some(Zero { start, end: e2 }),
                _ => None,
            };
            if let Some(m) = merged {
                *last = m;
                return;
            }
        }
        self.ops.push(op);
    }

    /// New mappings in `[s, e)`: a granule that was empty, or that the new range fills, is
    /// mapped in one op; one that stays mapped for other guest pages keeps its contents, takes
    /// the new protection, and its new anonymous bytes are zeroed.
    fn fresh(&mut self, s: u64, e: u64) {
        for (gs, ge) in self.segments(s, e) {
            let HostState::Mapped(a, _) = self.after_state(gs, ge) else {
                continue;
            };
            let before = self.before.state(gs, ge);
            if (s <= gs && ge <= e) || matches!(before, HostState::Unmapped) {
                self.push(HostOp::Map {
                    start: VirtAddr(gs),
                    end: VirtAddr(ge),
                    prot: a.prot,
                    backing: a.backing,
                });
                continue;
            }
            if before.prot() != Some(a.prot) {
                self.push(HostOp::Protect {
                    start: VirtAddr(gs),
                    end: VirtAddr(ge),
                    prot: a.prot,
                });
            }
            for p in self.after.clipped(gs.max(s), ge.min(e)) {
                if p.map.backing == Backing::Anon && a.backing.is_private() {
                    self.push(HostOp::Zero {
                        start: VirtAddr(p.start),
                        end: VirtAddr(p.end),
                    });
                }
            }
        }
    }

    /// Mappings in `[s, e)` may be gone: a granule with no guest page left is unmapped; one
    /// that keeps some takes the protection they leave.
    fn gone(&mut self, s: u64, e: u64) {
        for (gs, ge) in self.segments(s, e) {
            let before = self.before.state(gs, ge);
            if matches!(before, HostState::Unmapped) {
                continue;
            }
            match self.after_state(gs, ge) {
                HostState::Unmapped => self.push(HostOp::Unmap {
                    start: VirtAddr(gs),
                    end: VirtAddr(ge),
                }),
                HostState::Mapped(a, _) if before.prot() != Some(a.prot) => self.push(HostOp::Protect {
                    start: VirtAddr(gs),
                    end: VirtAddr(ge),
                    prot: a.prot,
                }),
                HostState::Mapped(..) => {}
            }
        }
    }

    /// Protections in `[s, e)` may have changed.
    fn reprotect(&mut self, s: u64, e: u64) {
        for (gs, ge) in self.segments(s, e) {
            let before = self.before.state(gs, ge).prot();
            if let HostState::Mapped(a, _) = self.after_state(gs, ge)
                && before.is_some()
                && before != Some(a.prot)
            {
                self.push(HostOp::Protect {
                    start: VirtAddr(gs),
                    end: VirtAddr(ge),
                    prot: a.prot,
                });
            }
        }
    }

    /// The private pages of the mapped `[s, e)` were dropped: whole granules are zapped on
    /// the host; the anonymous bytes of a granule shared with other guest pages are zeroed.
    fn zap(&mut self, s: u64, e: u64) {
        for (gs, ge) in self.segments(s, e) {
            let HostState::Mapped(a, conflict) = self.after_state(gs, ge) else {
                continue;
            };
            if s <= gs && ge <= e && conflict.is_none() {
                self.push(HostOp::Zap {
                    start: VirtAddr(gs),
                    end: VirtAddr(ge),
                });
                continue;
            }
            for p in self.after.clipped(gs.max(s), ge.min(e)) {
                if p.map.backing == Backing::Anon && a.backing.is_private() {
                    self.push(HostOp::Zero {
                        start: VirtAddr(p.start),
                        end: VirtAddr(p.end),
                    });
                }
            }
        }
    }

    /// An `mremap` move of `len` bytes from `from` to `to`, one op per source piece (a
    /// `MREMAP_FIXED` move may span several VMAs and the holes between them, which stay holes:
    /// `mm/mremap.c:remap_move`). A piece on whole granules moves in one host op; otherwise
    /// its destination is mapped and its bytes copied, and the sources go after all copies.
    fn moved(&mut self, from: u64, to: u64, len: u64, keep: bool, only_gone: bool) {
        let g = self.granule;
        let mut copied = Vec::new();
        for p in self.before.clipped(from, from + len) {
            if only_gone && !self.after.clipped(p.start, p.end).is_empty() {
                continue;
            }
            let (src, n) = (p.start, p.end - p.start);
            let dst = to + (src - from);
            if (src | dst | n) & (g - 1) == 0 {
                self.push(HostOp::Move {
                    from: VirtAddr(src),
                    to: VirtAddr(dst),
                    len: n,
                    keep_source: keep,
                });
                // The granules moved whole: note any conflict the destination carries.
                for (gs, ge) in self.segments(dst, dst + n) {
                    self.after_state(gs, ge);
                }
                continue;
            }
            self.fresh(dst, dst + n);
            self.push(HostOp::Copy {
                from: VirtAddr(src),
                to: VirtAddr(dst),
                len: n,
            });
            copied.push((src, n));
        }
        // Sources go only once every piece is copied: two pieces may share a granule.
        for (src, n) in copied {
            if keep {
                self.zap(src, src + n);
            } else {
                self.gone(src, src + n);
            }
        }
        // Where a hole of the source faces the destination, the destination may have
        // lost its mapping (mm/mremap.c:remap_move clears each VMA's target only).
        let mut at = to;
        let landed: Vec<(u64, u64)> = self
            .before
            .clipped(from, from + len)
            .iter()
            .map(|p| (to + (p.start - from), to + (p.end - from)))
            .chain([(to + len, to + len)])
            .collect();
        for (s, e) in landed {
            if at < s {
                self.gone(at, s);
            }
            at = at.max(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    #[test]
    fn planner_refuses_what_it_cannot_build() {
        assert_eq!(Planner::new(PAGE_SIZE, 3 * PAGE_SIZE).unwrap_err().errno, Errno::EINVAL);
        assert_eq!(Planner::new(PAGE_SIZE, 2048).unwrap_err().errno, Errno::EINVAL);
        assert_eq!(Planner::new(16384, 16384).unwrap_err().errno, Errno::EOPNOTSUPP);
        let p = Planner::new(PAGE_SIZE, 65536).unwrap();
        assert_eq!(p.granule(), 65536);
        let mut mm = Mm::new(Profile::reference_host());
        let e = p
            .plan(
                &mut mm,
                &FdTable::new(),
                nr::MADVISE,
                [0, 4096, madv::REMOVE as u64, 0, 0, 0],
            )
            .unwrap_err();
        assert_eq!(e.errno, Errno::EOPNOTSUPP);
    }

    #[test]
    fn calls_without_host_effect_have_no_ops() {
        let p = Planner::new(PAGE_SIZE, PAGE_SIZE).unwrap();
        let mut mm = Mm::new(Profile::reference_host());
        let fds = FdTable::new();
        let a = p
            .plan(&mut mm, &fds, nr::MMAP, [0, 8192, 3, 0x22, u64::MAX, 0])
            .unwrap();
        let Outcome::Return(base) = a.outcome else { panic!() };
        assert_eq!(a.ops.len(), 1);
        let plan = p.plan(&mut mm, &fds, nr::MLOCK, [base, 4096, 0, 0, 0, 0]).unwrap();
        assert_eq!(plan.outcome, Outcome::Return(0));
        assert!(plan.ops.is_empty());
        let plan = p.plan(&mut mm, &fds, 39, [0; 6]).unwrap();
        assert_eq!(plan.outcome, Outcome::NotMemory);
        assert!(plan.ops.is_empty());
    }
}

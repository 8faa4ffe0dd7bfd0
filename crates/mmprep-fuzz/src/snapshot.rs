//! What an address space looks like from outside, to compare before and after a call.

use std::sync::Arc;

use mmprep::Mm;
use mmprep::flags::VmaFlags;
use mmprep::mm::MmStats;

/// One VMA as a caller sees it: range, flags, file page and which file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmaView {
    pub start: u64,
    pub end: u64,
    pub flags: VmaFlags,
    pub pgoff: u64,
    /// The file's identity (its `Arc` address), 0 for none.
    pub file: usize,
}

/// The address space: its maps text, its VMAs and its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub maps: String,
    pub vmas: Vec<VmaView>,
    pub stats: MmStats,
}

impl Snapshot {
    /// Everything, the maps text included.
    pub fn of(mm: &Mm) -> Snapshot {
        let mut s = Snapshot::without_maps(mm);
        s.maps = mm.maps();
        s
    }

    /// The VMAs and counters only (the maps text is made from them; formatting it for every
    /// address space after every call was a sixth of the fuzzer's time).
    pub fn without_maps(mm: &Mm) -> Snapshot {
        let vmas = mm
            .vmas()
            .map(|v| VmaView {
                start: v.start().0,
                end: v.end().0,
                flags: v.flags(),
                pgoff: v.pgoff().0,
                file: v.file().map_or(0, |f| Arc::as_ptr(f) as *const () as usize),
            })
            .collect();
        Snapshot {
            maps: String::new(),
            vmas,
            stats: mm.stats(),
        }
    }
}

/// `vmas` with the pieces of every split joined again: neighbours that touch, have the same
/// flags and file, and whose file pages follow on, become one. A split leaves exactly such a
/// pair behind; comparing joined lists ignores splits and nothing else.
pub fn joined(vmas: &[VmaView]) -> Vec<VmaView> {
    let mut out: Vec<VmaView> = Vec::with_capacity(vmas.len());
    for v in vmas {
        if let Some(last) = out.last_mut()
            && last.end == v.start
            && last.flags == v.flags
            && last.file == v.file
            && last.pgoff.wrapping_add((last.end - last.start) >> 12) == v.pgoff
        {
            last.end = v.end;
            continue;
        }
        out.push(v.clone());
    }
    out
}

/// The parts of `vmas` outside every range in `holes` (each `[start, end)`), with the file page
/// of a clipped piece moved along, then [`joined`].
pub fn outside(vmas: &[VmaView], holes: &[(u64, u64)]) -> Vec<VmaView> {
    let mut pieces: Vec<VmaView> = vmas.to_vec();
    for &(lo, hi) in holes {
        if lo >= hi {
            continue;
        }
        let mut next = Vec::with_capacity(pieces.len() + 1);
        for v in pieces {
            if v.end <= lo || v.start >= hi {
                next.push(v);
                continue;
            }
            if v.start < lo {
                next.push(VmaView { end: lo, ..v.clone() });
            }
            if v.end > hi {
                let pgoff = v.pgoff.wrapping_add((hi - v.start) >> 12);
                next.push(VmaView { start: hi, pgoff, ..v });
            }
        }
        pieces = next;
    }
    joined(&pieces)
}

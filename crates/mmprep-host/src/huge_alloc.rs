//! [`HugePageAlloc`]: a global allocator that puts large blocks on transparent huge pages.
//!
//! The engine keeps its VMAs in two arenas (`mmprep::tree`); at a million VMAs the leaf arena is
//! 150 MB, and a random operation reads a few cache lines of it that are almost never in cache.
//! With 4 KiB pages each such read also misses the TLB, and in a virtual machine a TLB miss
//! walks two sets of page tables. The kernel's own VMAs and maple nodes live in its direct
//! map, which it maps with 2 MiB or 1 GiB pages: this allocator gives the engine the same.
//! On the machine `docs/performance.md` measures, one random read in a 256 MiB block costs
//! 270-300 ns on 4 KiB pages and 150-165 ns on huge pages (`scripts/mem-latency.c`).
//!
//! A block of at least [`HUGE_PAGE`] bytes (and an alignment up to that) gets a mapping of its
//! own, 2 MiB-aligned and a whole number of huge pages long, advised `MADV_HUGEPAGE`. It grows
//! by `mremap`: in place when the addresses after it are free, else moved page tables and all
//! to a new 2 MiB-aligned place, so a growing `Vec` is never copied and stays huge-page
//! aligned. (glibc's own large blocks are `mmap`ed too, but 16 bytes past a page boundary, and
//! its `realloc` moves them to any page: the kernel then cannot use huge pages for them.)
//! Smaller blocks go to the system allocator.
//!
//! # Forked children
//! The kernel runner's child must not make mappings of its own: they would change the map
//! count its scenario sees (`child.rs` keeps its allocations on the heap for that reason).
//! [`disable`] makes every later block come from the system allocator; `sys::fork` calls it in
//! every child, and a block the child inherited is copied to the heap when it is resized
//! rather than remapped. A block keeps the allocator it came from: the ones this allocator mapped are
//! listed in a small table of addresses ([`SLOTS`] of them; a block that finds the table full
//! comes from the system allocator too), and `dealloc`/`realloc` look a large block up there.
//!
//! Set `MMPREP_HUGE_PAGES=0` to run the `mmprep` command without it (the CLI calls
//! [`disable`] at start).

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::alloc::{GlobalAlloc, Layout, System};

use rustix::mm::{Advice, MapFlags, MremapFlags, ProtFlags, madvise, mmap_anonymous, mremap, mremap_fixed, munmap};

/// The size of a transparent huge page on x86_64, and the smallest block this allocator maps.
pub const HUGE_PAGE: usize = 2 << 20;

/// How many mapped blocks can be live at once.
pub const SLOTS: usize = 64;

/// Whether new large blocks are mapped here.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The address of each live block this allocator mapped, or 0.
static BLOCKS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The allocator; register it with `#[global_allocator]`.
pub struct HugePageAlloc;

/// From now on, take every block from the system allocator (blocks mapped before stay valid).
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// Whether new large blocks get huge-page mappings.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A block this allocator would map, if it is enabled.
fn is_large(layout: &Layout) -> bool {
    layout.size() >= HUGE_PAGE && layout.align() <= HUGE_PAGE
}

/// The length of the mapping of a block of `size` bytes: whole huge pages.
fn mapped_len(size: usize) -> usize {
    size.div_ceil(HUGE_PAGE) * HUGE_PAGE
}

/// The table slot holding `addr`, if this allocator mapped it.
fn slot_of(addr: usize) -> Option<&'static AtomicUsize> {
    BLOCKS.iter().find(|s| s.load(Ordering::Relaxed) == addr)
}

/// Whether `ptr` is a live block this allocator mapped.
#[cfg(test)]
pub(crate) fn is_mapped(ptr: *const u8) -> bool {
    slot_of(ptr as usize).is_some()
}

/// Records `addr` in a free slot; `false` when the table is full.
fn record(addr: usize) -> bool {
    BLOCKS.iter().any(|s| {
        s.compare_exchange(0, addr, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Unmaps `[addr, addr + len)`; an empty range is nothing to do.
fn unmap(addr: usize, len: usize) {
    if len > 0 {
        // SAFETY: every caller passes a range this allocator mapped and no longer hands out
        // (slack around a new block, the tail of a shrunk one, a freed block).
        let _ = unsafe { munmap(addr as *mut c_void, len) };
    }
}

/// Reserves `len + HUGE_PAGE` bytes with `prot` and keeps the 2 MiB-aligned `len` bytes
/// inside, unmapping the slack on either side. Returns the aligned address.
fn map_aligned(len: usize, prot: ProtFlags) -> Option<usize> {
    let span = len.checked_add(HUGE_PAGE)?;
    // SAFETY: a new anonymous mapping at an address the kernel picks touches no existing memory.
    let base = unsafe { mmap_anonymous(null_mut(), span, prot, MapFlags::PRIVATE) }.ok()? as usize;
    let aligned = base.next_multiple_of(HUGE_PAGE);
    unmap(base, aligned - base);
    unmap(aligned + len, base + span - (aligned + len));
    Some(aligned)
}

/// Asks for huge pages on `[addr, addr + len)`; without THP in the kernel this is a no-op.
fn advise_huge(addr: usize, len: usize) {
    // SAFETY: the range is a mapping of this allocator; the advice changes how it is backed,
    // never its contents.
    let _ = unsafe { madvise(addr as *mut c_void, len, Advice::LinuxHugepage) };
}

/// Maps a new large block of `size` bytes and records it; `None` when mapping fails or the
/// table is full (nothing stays mapped then).
fn map_block(size: usize) -> Option<*mut u8> {
    let len = mapped_len(size);
    let addr = map_aligned(len, ProtFlags::READ | ProtFlags::WRITE)?;
    if !record(addr) {
        unmap(addr, len);
        return None;
    }
    advise_huge(addr, len);
    Some(addr as *mut u8)
}

/// A new block for `layout` from this allocator, if it takes such blocks now.
fn map_new(layout: &Layout) -> Option<*mut u8> {
    if is_large(layout) && enabled() {
        map_block(layout.size())
    } else {
        None
    }
}

/// Grows or shrinks the mapped block at `addr` (recorded in `slot`) from `old` to `new`
/// bytes, both large. `None` when the kernel refuses; the block is then as it was.
fn remap_block(slot: &AtomicUsize, addr: usize, old: usize, new: usize) -> Option<usize> {
    let (old_len, new_len) = (mapped_len(old), mapped_len(new));
    if new_len <= old_len {
        unmap(addr + new_len, old_len - new_len);
        return Some(addr);
    }
    // SAFETY: `[addr, addr + old_len)` is this block's mapping; growing in place (no flags)
    // succeeds only when the pages after it are free, and moves nothing.
    if unsafe { mremap(addr as *mut c_void, old_len, new_len, MremapFlags::empty()) }.is_ok() {
        advise_huge(addr, new_len);
        return Some(addr);
    }
    let dest = map_aligned(new_len, ProtFlags::empty())?;
    // The table names the block by its new address before the kernel frees the old one: once
    // `addr` is unmapped another thread may get it from `mmap` and record it itself.
    slot.store(dest, Ordering::Relaxed);
    // SAFETY: moves this block's pages onto `dest`, a reservation of exactly `new_len` bytes
    // made just above for it (MREMAP_FIXED replaces it); the old range is unmapped by the
    // kernel and the caller stops using `addr`.
    let moved = unsafe {
        mremap_fixed(
            addr as *mut c_void,
            old_len,
            new_len,
            MremapFlags::MAYMOVE,
            dest as *mut c_void,
        )
    };
    if moved.is_err() {
        slot.store(addr, Ordering::Relaxed);
        // The reservation stays: with MREMAP_FIXED the kernel may have unmapped `dest` before
        // failing, and another thread may hold that range now. A rare leak, never an unmap of
        // someone else's memory.
        return None;
    }
    advise_huge(dest, new_len);
    Some(dest)
}

// SAFETY: every block handed out is either the system allocator's or a fresh private mapping
// of at least `layout.size()` bytes aligned to 2 MiB (so to any `layout.align()` up to that),
// never handed out twice while live; `dealloc` and `realloc` return a block to the allocator it
// came from, told apart by the table of mapped addresses.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract passes through unchanged.
        map_new(&layout).unwrap_or_else(|| unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // A new anonymous mapping reads as zeros.
        // SAFETY: as in `alloc`.
        map_new(&layout).unwrap_or_else(|| unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout)
            && let Some(slot) = slot_of(ptr as usize)
        {
            // Free the slot first: once unmapped, the address may come back from another
            // thread's `mmap` and be recorded again.
            slot.store(0, Ordering::Relaxed);
            unmap(ptr as usize, mapped_len(layout.size()));
            return;
        }
        // SAFETY: not one of ours, so the system allocator's, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded to the alignment, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let ours = if is_large(&layout) { slot_of(ptr as usize) } else { None };
        if let Some(slot) = ours {
            // A forked child (disabled) must make no mapping: `mremap` may add one, so it
            // copies the block to the heap instead.
            if is_large(&new_layout) && enabled() {
                return remap_block(slot, ptr as usize, layout.size(), new_size).map_or(null_mut(), |a| a as *mut u8);
            }
        } else if !(is_large(&new_layout) && enabled()) {
            // SAFETY: the system allocator's block, resized by it.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Between the two allocators: a new block, the bytes both hold, the old block freed.
        // SAFETY: `new_layout` is valid (see above) and non-zero-sized (`new_size` is).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated by this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// One test at a time: two blocks of these tests side by side, both advised, could merge
    /// into one VMA and hide the other's bounds in `smaps`.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// The `/proc/self/smaps` entry of the mapping starting at `addr`.
    fn smaps_entry(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let head = format!("{addr:x}-");
        let start = smaps.lines().position(|l| l.starts_with(&head))?;
        let lines: Vec<&str> = smaps.lines().skip(start).collect();
        let end = lines
            .iter()
            .skip(1)
            .position(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.contains('-') && !w.ends_with(':'))
            })
            .map_or(lines.len(), |i| i + 1);
        Some(lines[..end].join("\n"))
    }

    fn fill(p: *mut u8, len: usize) {
        for i in (0..len).step_by(4096) {
            // SAFETY: `p` is a live block of at least `len` bytes.
            unsafe { p.add(i).write((i / 4096) as u8) };
        }
    }

    fn check(p: *const u8, len: usize) {
        for i in (0..len).step_by(4096) {
            // SAFETY: as in `fill`.
            assert_eq!(unsafe { p.add(i).read() }, (i / 4096) as u8, "byte {i}");
        }
    }

    /// A large block is a 2 MiB-aligned mapping of its own, advised for huge pages; it grows
    /// (in place or moved) with its contents and stays aligned; it shrinks; it goes away.
    #[test]
    fn large_blocks_are_aligned_huge_page_mappings() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let a = HugePageAlloc;
        let layout = Layout::from_size_align(3 << 20, 8).unwrap();
        // SAFETY: a non-zero-sized layout.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(p as usize % HUGE_PAGE, 0);
        fill(p, 3 << 20);
        let entry = smaps_entry(p as usize).expect("the block is a mapping of its own");
        assert!(
            entry
                .lines()
                .next()
                .unwrap()
                .starts_with(&format!("{:x}-{:x} ", p as usize, p as usize + (4 << 20))),
            "{entry}"
        );
        let flags = entry.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
        assert!(flags.split_whitespace().any(|f| f == "hg"), "MADV_HUGEPAGE: {flags}");

        // A mapping right after the block forces the growth to move it.
        let next = p as usize + (4 << 20);
        // SAFETY: a fixed-noreplace mapping cannot replace anything; unmapped below.
        let blocker = unsafe {
            mmap_anonymous(
                next as *mut c_void,
                4096,
                ProtFlags::READ,
                MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
            )
        };
        // SAFETY: `p` is ours with `layout`; the new size is non-zero.
        let q = unsafe { a.realloc(p, layout, 9 << 20) };
        assert!(!q.is_null());
        assert_eq!(q as usize % HUGE_PAGE, 0);
        if blocker.is_ok() {
            assert_ne!(q, p, "the block could not grow in place");
            unmap(next, 4096);
        }
        check(q, 3 << 20);
        fill(q, 9 << 20);
        assert!(smaps_entry(q as usize).is_some());

        let grown = Layout::from_size_align(9 << 20, 8).unwrap();
        // SAFETY: `q` is ours with `grown`.
        let r = unsafe { a.realloc(q, grown, 5 << 20) };
        assert_eq!(r, q, "a shrink stays in place");
        check(r, 5 << 20);
        let entry = smaps_entry(r as usize).unwrap();
        assert!(
            entry.starts_with(&format!("{:x}-{:x} ", r as usize, r as usize + (6 << 20))),
            "{entry}"
        );

        // SAFETY: `r` is ours with a 5 MiB layout.
        unsafe { a.dealloc(r, Layout::from_size_align(5 << 20, 8).unwrap()) };
        assert!(smaps_entry(r as usize).is_none(), "freed blocks are unmapped");
        assert!(slot_of(r as usize).is_none());
    }

    /// Blocks move between the allocators as their size crosses the threshold, contents kept.
    #[test]
    fn small_and_large_blocks_change_allocator() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let a = HugePageAlloc;
        let small = Layout::from_size_align(100 << 10, 16).unwrap();
        // SAFETY: non-zero-sized layouts; each block is freed with the layout it has.
        unsafe {
            let p = a.alloc(small);
            assert!(slot_of(p as usize).is_none(), "small blocks come from the system");
            fill(p, 100 << 10);
            let q = a.realloc(p, small, 4 << 20);
            assert!(slot_of(q as usize).is_some(), "grown past 2 MiB: mapped here");
            check(q, 100 << 10);
            let r = a.realloc(q, Layout::from_size_align(4 << 20, 16).unwrap(), 64 << 10);
            assert!(slot_of(r as usize).is_none(), "shrunk below 2 MiB: the system's again");
            check(r, 64 << 10);
            a.dealloc(r, Layout::from_size_align(64 << 10, 16).unwrap());
        }
    }

    /// Threads that map, move and free blocks at once: an address one thread unmaps can come
    /// straight back from another thread's `mmap`, so the table must never name a block by an
    /// address it no longer holds (it did, between the unmap and the slot's update, and this
    /// test crashed).
    #[test]
    fn threads_map_move_and_free_blocks_at_once() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let a = HugePageAlloc;
                    let small = Layout::from_size_align(2 << 20, 8).unwrap();
                    let large = Layout::from_size_align(6 << 20, 8).unwrap();
                    for i in 0..1_000u32 {
                        let mark = t.wrapping_mul(31).wrapping_add(i as u8);
                        // SAFETY: non-zero-sized layouts; each block freed with its layout.
                        unsafe {
                            let p = a.alloc(small);
                            assert!(!p.is_null());
                            p.write(mark);
                            let q = a.realloc(p, small, large.size());
                            assert!(!q.is_null());
                            assert_eq!(q.read(), mark);
                            q.add((6 << 20) - 1).write(mark);
                            a.dealloc(q, large);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a thread failed");
        }
    }
}

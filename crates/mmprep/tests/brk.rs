//! `brk` and the `[heap]` / `[stack]` / vDSO names, in the style of the kernel's
//! `tools/testing/vma` tests: set up a program's layout, one call per step, the exact maps text
//! after each step, the invariants checked every time.
//!
//! Expected values are the host kernel's (Linux 6.18.44 x86_64, `setarch -R`), measured with C
//! probes that call `syscall(SYS_brk, ...)` without libc's allocator and print
//! `/proc/self/maps`: the `heap` probe (a 64 KiB bss, so `start_brk` = `0x555555569000`, the
//! data segment `0x555555557dd0..0x555555558070`) and the `rl` probe (`ulimit -d`, 25 data pages
//! before the heap). `crates/mmprep-host/tests/trace.rs` replays a similar sequence against
//! the live kernel.

use mmprep::mm::{MmBounds, VdsoLayout};
use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};

const START_BRK: u64 = 0x5555_5556_9000;

const NOREPLACE: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED_NOREPLACE.0);
const ANON: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0);

/// The heap probe's program right after exec, without its file mappings: the anonymous bss
/// `[0x555555559000, start_brk)` and an empty heap.
fn heap_probe() -> Mm {
    let mut mm = Mm::new(Profile::reference_host());
    let bss = mm
        .mmap(VirtAddr(0x5555_5555_9000), 0x10000, Prot::RW, NOREPLACE, None, 0)
        .expect("bss");
    assert_eq!(bss.get(), 0x5555_5555_9000);
    mm.set_bounds(MmBounds {
        start_data: 0x5555_5555_7dd0,
        end_data: 0x5555_5555_8070,
        start_brk: START_BRK,
        brk: START_BRK,
        start_stack: 0x7fff_ffff_e000,
    })
    .expect("bounds");
    mm.check_invariants();
    mm
}

#[track_caller]
fn assert_maps(mm: &Mm, want: &str) {
    let want: Vec<&str> = want.lines().map(str::trim_start).filter(|l| !l.is_empty()).collect();
    let got = mm.maps();
    assert_eq!(got.lines().collect::<Vec<_>>(), want, "\n{mm:?}");
    mm.check_invariants();
}

#[track_caller]
fn brk(mm: &mut Mm, addr: u64, want: u64) {
    let got = mm.brk(VirtAddr(addr)).get();
    assert_eq!(
        got, want,
        "brk({addr:#x}) returned {got:#x}, the kernel {want:#x}\n{mm:?}"
    );
    mm.check_invariants();
}

/// An anonymous VMA that merges with the bss and covers start_brk is `[heap]` even with an
/// empty heap (vm_start < brk && vm_end > start_brk); once it ends at start_brk it is not.
#[test]
fn heap_name_is_strict() {
    let mut mm = heap_probe();
    let m = mm
        .mmap(VirtAddr(START_BRK), 4096, Prot::RW, NOREPLACE, None, 0)
        .expect("mmap");
    assert_eq!(m.get(), START_BRK);
    assert_maps(
        &mm,
        "555555559000-55555556a000 rw-p 00000000 00:00 0                          [heap]",
    );
    mm.munmap(m, 4096).expect("munmap");
    assert_maps(&mm, "555555559000-555555569000 rw-p 00000000 00:00 0 ");
}

/// The heap probe's sequence: grow one page, a VMA four pages above, grow up to one page below
/// it, refusals, in-page moves, shrink to nothing.
#[test]
fn grow_next_gap_shrink() {
    let mut mm = heap_probe();
    brk(&mut mm, START_BRK + 0x1000, 0x5555_5556_a000);
    let next = mm
        .mmap(VirtAddr(START_BRK + 0x5000), 4096, Prot::READ, NOREPLACE, None, 0)
        .expect("mmap");
    assert_eq!(next.get(), 0x5555_5556_e000);
    assert_maps(
        &mm,
        "555555559000-555555569000 rw-p 00000000 00:00 0 
         555555569000-55555556a000 rw-p 00000000 00:00 0                          [heap]
         55555556e000-55555556f000 r--p 00000000 00:00 0 ",
    );
    // One free page must stay below the next VMA.
    brk(&mut mm, START_BRK + 0x4000, 0x5555_5556_d000);
    brk(&mut mm, START_BRK + 0x4001, 0x5555_5556_d000);
    brk(&mut mm, START_BRK + 0x5000, 0x5555_5556_d000);
    // Inside the last page: only mm->brk moves.
    brk(&mut mm, START_BRK + 0x3800, 0x5555_5556_c800);
    brk(&mut mm, START_BRK + 0x3801, 0x5555_5556_c801);
    assert_maps(
        &mm,
        "555555559000-555555569000 rw-p 00000000 00:00 0 
         555555569000-55555556d000 rw-p 00000000 00:00 0                          [heap]
         55555556e000-55555556f000 r--p 00000000 00:00 0 ",
    );
    brk(&mut mm, START_BRK + 0x7000, 0x5555_5556_c801);
    brk(&mut mm, START_BRK - 0x1000, 0x5555_5556_c801);
    brk(&mut mm, 0, 0x5555_5556_c801);
    brk(&mut mm, START_BRK, START_BRK);
    assert_maps(
        &mm,
        "555555559000-555555569000 rw-p 00000000 00:00 0 
         55555556e000-55555556f000 r--p 00000000 00:00 0 ",
    );
    assert_eq!(mm.bounds().map(|b| b.brk), Some(START_BRK));
}

/// Growth extends the heap VMA (one VMA, "rd wr mr mw me ac"); the flags are the data flags.
#[test]
fn growth_merges_into_the_heap() {
    let mut mm = heap_probe();
    brk(&mut mm, START_BRK + 0x1000, START_BRK + 0x1000);
    brk(&mut mm, START_BRK + 0x21000, START_BRK + 0x21000);
    let heap = mm.vma_at(VirtAddr(START_BRK)).expect("heap");
    assert_eq!(heap.end().get(), START_BRK + 0x21000);
    assert_eq!(mmprep::procfs::vmflags(heap, false).join(" "), "rd wr mr mw me ac");
    assert_eq!(mm.vmas().count(), 2);
}

/// A shrink with nothing mapped between the new and the old break is refused.
#[test]
fn shrink_of_an_unmapped_heap_is_refused() {
    let mut mm = heap_probe();
    brk(&mut mm, START_BRK + 0x3000, START_BRK + 0x3000);
    mm.munmap(VirtAddr(START_BRK), 0x3000).expect("munmap");
    brk(&mut mm, START_BRK + 0x1000, START_BRK + 0x3000);
}

/// `ulimit -d 1024` / `2048` (`rl` probe): 25 pages of data before the heap (VmData 100 kB), a
/// data segment of 288 bytes. A heap of 1 MiB - 288 bytes is refused under 1 MiB
/// (`may_expand_vm`: 25 + 256 pages > 256), taken under 2 MiB; a 16-byte heap is taken.
#[test]
fn rlimit_data() {
    for (limit, big_ok) in [(1u64 << 20, false), (2 << 20, true)] {
        let mut mm = Mm::new(Profile {
            rlimit_data: limit,
            ..Profile::reference_host()
        });
        let sb = 0x5555_5555_a000;
        // 25 private writable pages (the program's and the libraries' data).
        mm.mmap(VirtAddr(sb - 0x19000), 0x19000, Prot::RW, NOREPLACE, None, 0)
            .expect("data");
        mm.set_bounds(MmBounds {
            start_data: 0x5555_5555_7dd0,
            end_data: 0x5555_5555_7dd0 + 288,
            start_brk: sb,
            brk: sb,
            start_stack: 0,
        })
        .expect("bounds");
        let big = sb + (1 << 20) - 288;
        brk(&mut mm, big, if big_ok { big } else { sb });
        brk(&mut mm, big + 1, if big_ok { big + 1 } else { sb });
        brk(&mut mm, sb + 0x10, sb + 0x10);
    }
}

/// Without a program layout there is no heap.
#[test]
fn no_bounds_no_heap() {
    let mut mm = Mm::new(Profile::reference_host());
    assert_eq!(mm.brk(VirtAddr(0x1000_0000)).get(), 0);
    assert_eq!(mm.vmas().count(), 0);
    assert!(
        mm.set_bounds(MmBounds {
            start_brk: 0x1001,
            brk: 0x2000,
            ..MmBounds::default()
        })
        .is_err()
    );
    assert!(
        mm.set_bounds(MmBounds {
            start_brk: 0x2000,
            brk: 0x1000,
            ..MmBounds::default()
        })
        .is_err()
    );
}

/// The stack VMA (the one containing start_stack) is `[stack]`, and map_vdso puts `[vvar]`,
/// `[vvar_vclock]` and `[vdso]` where 6.18 puts them below ld.so, with their flags (host
/// `/proc/self/smaps`): ld.so is the first mmap(NULL), ending at mmap_base 0x7ffff7fff000.
#[test]
fn stack_and_vdso_names() {
    let mut mm = Mm::new(Profile::reference_host());
    let stack = mm
        .mmap(
            VirtAddr(0x7fff_fffd_e000),
            0x21000,
            Prot::RW,
            MapFlags(NOREPLACE.0 | MapFlags::GROWSDOWN.0),
            None,
            0,
        )
        .expect("stack");
    assert_eq!(stack.get(), 0x7fff_fffd_e000);
    mm.set_bounds(MmBounds {
        start_brk: 0x5555_5555_9000,
        brk: 0x5555_5555_9000,
        start_stack: 0x7fff_ffff_e6a0,
        ..MmBounds::default()
    })
    .expect("bounds");
    let ld = mm.mmap(VirtAddr(0), 0x35000, Prot::READ, ANON, None, 0).expect("ld.so");
    assert_eq!(ld.get(), 0x7fff_f7fc_a000);
    let vdso = mm.map_vdso(VirtAddr(0), VdsoLayout::HOST_6_18).expect("vdso");
    assert_eq!(vdso.get(), 0x7fff_f7fc_8000);
    assert_maps(
        &mm,
        "7ffff7fc2000-7ffff7fc6000 r--p 00000000 00:00 0                          [vvar]
         7ffff7fc6000-7ffff7fc8000 r--p 00000000 00:00 0                          [vvar_vclock]
         7ffff7fc8000-7ffff7fca000 r-xp 00000000 00:00 0                          [vdso]
         7ffff7fca000-7ffff7fff000 r--p 00000000 00:00 0 
         7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]",
    );
    let flags: Vec<String> = mm.vmas().map(|v| mmprep::procfs::vmflags(v, false).join(" ")).collect();
    assert_eq!(flags[0], "rd mr pf io de dd");
    assert_eq!(flags[1], "rd mr pf io de dd");
    assert_eq!(flags[2], "rd ex mr mw me de");
    assert_eq!(flags[4], "rd wr mr mw me gd ac");
    // Special mappings cannot be split.
    assert_eq!(
        mm.mprotect(VirtAddr(0x7fff_f7fc_2000), 0x1000, Prot::NONE)
            .expect_err("split")
            .errno,
        mmprep::Errno::EINVAL
    );
    mm.check_invariants();
}

/// `do_brk_flags` with `vmg.just_expand`: when extending the heap VMA cannot have its tree node
/// (`VMA_MERGE_ERROR_NOMEM`), brk fails (`vmg_nomem` → `unacct_fail`) and returns the old break;
/// it does not fall back to a second heap VMA. Before, the merge reported "no merge" and brk
/// mapped `[0x55555556a000, 0x55555556b000)` as a VMA of its own beside the heap.
#[test]
fn failed_expand_allocation_fails_brk() {
    let mut mm = heap_probe();
    brk(&mut mm, START_BRK + 0x1000, START_BRK + 0x1000);
    let before = mm.maps();
    mm.fail_allocation_in(0);
    brk(&mut mm, START_BRK + 0x2000, START_BRK + 0x1000);
    assert_eq!(mm.maps(), before, "a failed brk changes no VMA");
    assert_eq!(mm.bounds().map(|b| b.brk), Some(START_BRK + 0x1000));
    // The switch is spent: the next brk extends the heap VMA in place.
    brk(&mut mm, START_BRK + 0x2000, START_BRK + 0x2000);
    assert_maps(
        &mm,
        "555555559000-555555569000 rw-p 00000000 00:00 0 
         555555569000-55555556b000 rw-p 00000000 00:00 0                          [heap]",
    );
}

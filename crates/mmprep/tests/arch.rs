//! Guest architectures and host-reserved ranges: placement, rounding and merging in the guest's
//! page, the architectures' windows and hint rules, and ranges the guest can never get.
//!
//! Expected values: x86_64 and i386 are the host kernel's (Linux 6.18.44 x86_64, `setarch -R`,
//! an 8 MiB stack; i386 is also replayed against a real 32-bit program in
//! `crates/mmprep-host/tests/i386.rs`, and the reserved-range errnos are those the host gives
//! past `TASK_SIZE`: `MAP_FIXED`/`MAP_FIXED_NOREPLACE` `ENOMEM`, an `MREMAP_FIXED` target
//! `EINVAL`, an in-place `mremap` growth `ENOMEM`). arm64 and riscv64 have no host here: their
//! values follow from the kernel's formulas, cited at each test (`docs/profiles.md`).

use mmprep::abi::{self, FdTable, Outcome};
use mmprep::mm::MmBounds;
use mmprep::{Errno, MapFlags, Mm, Profile, Prot, VirtAddr};

const ANON: MapFlags = MapFlags(MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0);
const FIXED: MapFlags = MapFlags(ANON.0 | MapFlags::FIXED.0);
const NOREPLACE: MapFlags = MapFlags(ANON.0 | MapFlags::FIXED_NOREPLACE.0);
const K16: u64 = 16 << 10;

fn mm_for(arch: &str) -> Mm {
    Mm::new(Profile::for_arch(arch).expect("known architecture"))
}

#[track_caller]
fn assert_maps(mm: &Mm, want: &str) {
    let want: Vec<&str> = want.lines().map(str::trim_start).filter(|l| !l.is_empty()).collect();
    let got = mm.maps();
    assert_eq!(got.lines().collect::<Vec<_>>(), want, "\n{mm:?}");
    mm.check_invariants();
}

/// A maps line named `[heap]`: the name starts at column 74.
fn heap(prefix: &str) -> String {
    format!("{prefix:<73}[heap]")
}

#[track_caller]
fn map(mm: &mut Mm, hint: u64, len: u64, flags: MapFlags) -> u64 {
    let a = mm
        .mmap(VirtAddr(hint), len, Prot::RW, flags, None, 0)
        .unwrap_or_else(|e| panic!("mmap({hint:#x}, {len:#x}): {e:?}\n{mm:?}"));
    mm.check_invariants();
    a.get()
}

#[track_caller]
fn errno(r: mmprep::Result<impl core::fmt::Debug>) -> Errno {
    r.expect_err("the call should fail").errno
}

/// arm64 with 16K pages places and merges in 16K granules: `mmap_base` is
/// `STACK_TOP - 128 MiB` (`mm/util.c:mmap_base`, the 16K guard gap of 4 MiB plus an 8 MiB stack
/// is under the minimum), a one-byte-to-16K request takes one 16K page, and two such mappings
/// side by side are one VMA. Unaligned addresses are `EINVAL` at 4K, lengths round to 16K.
#[test]
fn arm64_16k_places_and_merges_in_16k_granules() {
    let mut mm = mm_for("arm64-16k");
    assert_eq!(mm.page_size(), K16);
    // 7ffff7ff8000 ... 7ffff8000000 = mmap_base; one column = one 16K page
    //            [b][a]       a = mmap(NULL, 4096), b = mmap(NULL, 5000): merged
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x7fff_f7ff_c000);
    assert_maps(&mm, "7ffff7ffc000-7ffff8000000 rw-p 00000000 00:00 0 ");
    assert_eq!(map(&mut mm, 0, 5000, ANON), 0x7fff_f7ff_8000);
    assert_maps(&mm, "7ffff7ff8000-7ffff8000000 rw-p 00000000 00:00 0 ");

    // A 4K-aligned address is not a page boundary here.
    let a = 0x7fff_f7ff_8000;
    assert_eq!(errno(mm.munmap(VirtAddr(a + 0x1000), 4096)), Errno::EINVAL);
    assert_eq!(
        errno(mm.mprotect(VirtAddr(a + 0x1000), 4096, Prot::READ)),
        Errno::EINVAL
    );
    assert_eq!(errno(mm.madvise(VirtAddr(a + 0x2000), 4096, 4)), Errno::EINVAL);
    assert_eq!(
        errno(mm.mmap(VirtAddr(a + 0x1000), 4096, Prot::RW, FIXED, None, 0)),
        Errno::EINVAL
    );

    // [b'][a]   mprotect(b, 1 byte, r--): the whole first 16K page changes, A splits there.
    mm.mprotect(VirtAddr(a), 1, Prot::READ).expect("mprotect");
    assert_maps(
        &mm,
        "7ffff7ff8000-7ffff7ffc000 r--p 00000000 00:00 0 
         7ffff7ffc000-7ffff8000000 rw-p 00000000 00:00 0 ",
    );
    // [b][a]    back to rw-: merged again.
    mm.mprotect(VirtAddr(a), 100, Prot::RW).expect("mprotect");
    assert_maps(&mm, "7ffff7ff8000-7ffff8000000 rw-p 00000000 00:00 0 ");
    //    [a]    munmap(b, 1 byte) takes the whole 16K page.
    mm.munmap(VirtAddr(a), 1).expect("munmap");
    assert_maps(&mm, "7ffff7ffc000-7ffff8000000 rw-p 00000000 00:00 0 ");
    // A fixed mapping of 4K gets 16K and merges on the left.
    assert_eq!(map(&mut mm, a + K16 - K16, 4096, FIXED), a);
    assert_maps(&mm, "7ffff7ff8000-7ffff8000000 rw-p 00000000 00:00 0 ");
}

/// A fault maps the whole 16K guest page (four of the engine's 4 KiB entries), and `mremap`
/// rounds both lengths to 16K: growing 4096 to 8192 is no change at all.
#[test]
fn arm64_16k_faults_and_mremap_in_16k() {
    let mut mm = mm_for("arm64-16k");
    let a = map(&mut mm, 0, 2 * K16, ANON);
    mm.write(VirtAddr(a + 5), &[1]).expect("write");
    assert_eq!(mm.resident_pages(), 4, "one 16K page = four 4 KiB entries");
    let mut b = [9u8; 4];
    mm.read(VirtAddr(a + 0x3ffc), &mut b).expect("read");
    assert_eq!((b, mm.resident_pages()), ([0; 4], 4), "the same page: no new fault");

    // The shared-lock path faults the whole page too.
    mm.try_write(VirtAddr(a + K16), &[3])
        .expect("anon_vma exists")
        .expect("write");
    assert_eq!(mm.resident_pages(), 8, "try_write at a + 16K: four more");

    let r = mm.mremap(VirtAddr(a), 4096, 8192, 0, VirtAddr(0)).expect("mremap");
    assert_eq!(r.get(), a);
    assert_maps(&mm, "7ffff7ff8000-7ffff8000000 rw-p 00000000 00:00 0 ");
    // Shrinking 32K to 17K keeps two pages; to 16K + 0 keeps one.
    mm.mremap(VirtAddr(a), 2 * K16, K16 + 1, 0, VirtAddr(0))
        .expect("mremap");
    assert_maps(&mm, "7ffff7ff8000-7ffff8000000 rw-p 00000000 00:00 0 ");
    mm.mremap(VirtAddr(a), 2 * K16, K16, 0, VirtAddr(0)).expect("mremap");
    assert_maps(&mm, "7ffff7ff8000-7ffff7ffc000 rw-p 00000000 00:00 0 ");
}

/// File offsets are whole guest pages (`sys_mmap`: `offset_in_page(off)` is `EINVAL`), and
/// `maps` prints the offset in bytes. A file mapping's pgoff advances by 16K per page, so a
/// second mapping of the next 16K of the file merges with the first.
#[test]
fn arm64_16k_file_offsets() {
    let mut mm = mm_for("arm64-16k");
    let f = mm.shmem().memfd_create("f", 4 * K16);
    let shared = MapFlags::SHARED;
    let e = mm
        .mmap(VirtAddr(0), K16, Prot::READ, shared, Some(&f), 4096)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL);
    let e = mm
        .mmap_pgoff(VirtAddr(0), K16, Prot::READ, shared, Some(&f), 1)
        .unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL, "pgoff 1 is 4096 bytes into a 16K page");
    let hi = mm
        .mmap(VirtAddr(0), K16, Prot::READ, shared, Some(&f), K16)
        .expect("mmap");
    assert_eq!(hi.get(), 0x7fff_f7ff_c000);
    let lo = mm
        .mmap(
            VirtAddr(hi.get() - K16),
            4096,
            Prot::READ,
            MapFlags(shared.0 | MapFlags::FIXED.0),
            Some(&f),
            0,
        )
        .expect("mmap");
    assert_eq!(lo.get(), 0x7fff_f7ff_8000);
    assert_eq!(mm.vmas().count(), 1, "file pages 0 and 1 side by side merge\n{mm:?}");
    let v = mm.vma_at(lo).unwrap();
    assert_eq!((v.start().get(), v.end().get()), (0x7fff_f7ff_8000, 0x7fff_f800_0000));
    assert!(mm.maps().contains(" r--s 00000000 "), "{}", mm.maps());
    mm.check_invariants();
}

/// A file's last page is a whole guest page: with 16K pages a 5000-byte file maps bytes up to
/// 16K (zeros past the end), and `SIGBUS` starts at the next guest page
/// (`mm/filemap.c:filemap_fault`, `DIV_ROUND_UP(i_size, PAGE_SIZE)`).
#[test]
fn arm64_16k_file_end_is_a_guest_page() {
    let mut mm = mm_for("arm64-16k");
    let f = mm.shmem().memfd_create("f", 5000);
    let a = mm
        .mmap(VirtAddr(0), 2 * K16, Prot::READ, MapFlags::SHARED, Some(&f), 0)
        .expect("mmap");
    let mut b = [7u8; 2];
    mm.read(VirtAddr(a.get() + K16 - 2), &mut b)
        .expect("inside the last page");
    assert_eq!(b, [0, 0]);
    let e = mm.read(VirtAddr(a.get() + K16), &mut b).unwrap_err();
    assert_eq!((e.signal, e.addr.get()), (mmprep::Signal::Bus, a.get() + K16));
    mm.check_invariants();
}

/// `MAP_32BIT` (0x40) is x86's: elsewhere the bit is unknown, so `MAP_SHARED_VALIDATE` refuses
/// it (`include/linux/mman.h` defines `MAP_32BIT` as 0 there, outside `LEGACY_MAP_MASK`).
#[test]
fn map_32bit_is_an_unknown_bit_off_x86() {
    let validate = MapFlags(MapFlags::SHARED_VALIDATE.0 | MapFlags::BIT32.0);
    for (arch, want) in [
        ("x86_64", None),
        ("i386", None),
        ("arm64", Some(Errno::EOPNOTSUPP)),
        ("riscv64", Some(Errno::EOPNOTSUPP)),
    ] {
        let mut mm = mm_for(arch);
        let f = mm.shmem().memfd_create("f", 4096);
        let r = mm.mmap(VirtAddr(0), 4096, Prot::READ, validate, Some(&f), 0);
        assert_eq!(r.err().map(|e| e.errno), want, "{arch}");
    }
}

/// A PMD-size anonymous request is placed PMD aligned: 32 MiB with 16K pages
/// (`mm/huge_memory.c:__thp_get_unmapped_area`, `HPAGE_PMD_SIZE`), from a 64 MiB search whose
/// hole is already aligned, so the padding stays below.
#[test]
fn arm64_16k_thp_alignment_is_32m() {
    let mut mm = mm_for("arm64-16k");
    assert_eq!(mm.pmd_size(), 32 << 20);
    let a = map(&mut mm, 0, 32 << 20, ANON);
    assert_eq!(a, 0x7fff_f600_0000);
    assert_eq!(a % (32 << 20), 0);
    // Collapsing is modelled for 4K guests only: refused, with the reason.
    let e = mm.madvise(VirtAddr(a), 32 << 20, 25).unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL);
    assert!(e.reason.contains("not modelled"), "{}", e.reason);
    // 64K pages: 512 MiB.
    assert_eq!(mm_for("arm64-64k").pmd_size(), 512 << 20);
}

/// brk rounds in guest pages: one byte of heap is a 16K `[heap]` VMA, and `start_brk` must be
/// 16K aligned.
#[test]
fn arm64_16k_brk() {
    let mut mm = mm_for("arm64-16k");
    let bounds = |start_brk| MmBounds {
        start_data: 0x1000_0000,
        end_data: 0x1000_0100,
        start_brk,
        brk: start_brk,
        start_stack: 0x7fff_ffff_0000,
    };
    assert_eq!(errno(mm.set_bounds(bounds(0x1000_1000))), Errno::EINVAL);
    mm.set_bounds(bounds(0x1000_4000)).expect("bounds");
    assert_eq!(mm.brk(VirtAddr(0x1000_4001)).get(), 0x1000_4001);
    assert_maps(&mm, &heap("10004000-10008000 rw-p 00000000 00:00 0 "));
    assert_eq!(mm.brk(VirtAddr(0x1000_8000)).get(), 0x1000_8000);
    assert_eq!(mm.brk(VirtAddr(0x1000_8001)).get(), 0x1000_8001);
    assert_maps(&mm, &heap("10004000-1000c000 rw-p 00000000 00:00 0 "));
}

/// arm64 with 52-bit VA: `mmap(NULL)` stays under `DEFAULT_MAP_WINDOW` (48 bits); a hint above
/// it opens the whole space and moves the top-down base up by `TASK_SIZE - DEFAULT_MAP_WINDOW`
/// (`arch/arm64/include/asm/processor.h:arch_get_mmap_end`, `arch_get_mmap_base`).
#[test]
fn arm64_52_bit_hints() {
    let mut mm = mm_for("arm64-4k-52");
    assert_eq!(map(&mut mm, 0, 4096, ANON), (1 << 48) - (128 << 20) - 4096);
    assert_eq!(map(&mut mm, 1 << 50, 4096, ANON), 1 << 50);
    // The hint is taken now: the search runs below mmap_base + (2^52 - 2^48).
    assert_eq!(map(&mut mm, 1 << 50, 4096, ANON), (1 << 52) - (128 << 20) - 4096);
    // A 48-bit configuration cannot go there.
    let mut small = mm_for("arm64-4k-48");
    assert_eq!(map(&mut small, 1 << 50, 4096, ANON), (1 << 48) - (128 << 20) - 4096);
    assert_eq!(
        errno(small.mmap(VirtAddr(1 << 50), 4096, Prot::RW, FIXED, None, 0)),
        Errno::ENOMEM
    );
}

/// riscv64 sv39: `TASK_SIZE` is 2^38 (`PGDIR_SIZE * PTRS_PER_PGD / 2`); since 6.11 a hint is not
/// an upper bound (`arch_get_mmap_end` is `STACK_TOP_MAX`), so a free hint above `mmap_base` is
/// taken, and one at `TASK_SIZE` is ignored.
#[test]
fn riscv64_sv39_window_and_hints() {
    let mut mm = mm_for("riscv64-sv39");
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x3f_f7ff_f000);
    assert_eq!(map(&mut mm, 0x3f_ffff_0000, 4096, ANON), 0x3f_ffff_0000);
    assert_eq!(map(&mut mm, 0x40_0000_0000, 4096, ANON), 0x3f_f7ff_e000);
    assert_eq!(
        errno(mm.mmap(VirtAddr(0x40_0000_0000), 4096, Prot::RW, FIXED, None, 0)),
        Errno::ENOMEM
    );
    // An unlimited stack chooses the legacy layout on the generic code (mm/util.c:mmap_is_legacy):
    // bottom-up from TASK_UNMAPPED_BASE = PAGE_ALIGN(2^39 / 3).
    let mut p = Profile::for_arch("riscv64-sv39").unwrap();
    p.rlimit_stack = u64::MAX;
    p.pick_mmap_layout(false);
    let mut mm = Mm::new(p);
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x2a_aaaa_b000);
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x2a_aaaa_c000);
}

/// x86_64 with 5-level paging: `mmap(NULL)` and low hints stay under 47 bits; a hint above opens
/// the space up to 2^56; a hint straddling the 47-bit line is ignored
/// (`arch/x86/mm/mmap.c:mmap_address_hint_valid`).
#[test]
fn x86_64_la57_hints() {
    let mut mm = mm_for("x86_64-la57");
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x7fff_f7ff_e000);
    assert_eq!(map(&mut mm, 1 << 50, 4096, ANON), 1 << 50);
    assert_eq!(map(&mut mm, (1 << 47) - 4096, 8192, ANON), 0x7fff_f7ff_c000);
    assert_eq!(map(&mut mm, 1 << 55, 4096, FIXED), 1 << 55);
    // With 4-level paging the same fixed address is past TASK_SIZE.
    let mut four = mm_for("x86_64");
    assert_eq!(
        errno(four.mmap(VirtAddr(1 << 55), 4096, Prot::RW, FIXED, None, 0)),
        Errno::ENOMEM
    );
}

/// i386 on x86_64 (`setarch -R`, 8 MiB stack): the compat base is `0xffffe000 - 128 MiB`, the
/// legacy base `0x55555000`; `MAP_32BIT` means nothing to a 32-bit task; a hint past
/// `TASK_SIZE` is ignored. Host values (`crates/mmprep-host/tests/i386.rs` runs them live).
#[test]
fn i386_layouts() {
    let mut mm = mm_for("i386");
    assert_eq!(mm.profile().task_size, 0xffff_e000);
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0xf7ff_d000);
    let bit32 = MapFlags(ANON.0 | MapFlags::BIT32.0);
    assert_eq!(map(&mut mm, 0, 4096, bit32), 0xf7ff_c000);
    assert_eq!(map(&mut mm, 0xffff_f000, 4096, ANON), 0xf7ff_b000);
    assert_maps(&mm, "f7ffb000-f7ffe000 rw-p 00000000 00:00 0 ");
    assert_eq!(
        errno(mm.mmap(VirtAddr(0xffff_e000), 4096, Prot::RW, FIXED, None, 0)),
        Errno::ENOMEM
    );

    let mut p = Profile::for_arch("i386").unwrap();
    p.pick_mmap_layout(true);
    let mut legacy = Mm::new(p);
    assert_eq!(map(&mut legacy, 0, 4096, ANON), 0x5555_5000);
    assert_eq!(map(&mut legacy, 0, 4096, ANON), 0x5555_6000);
}

/// The raw ABI reads the number in the architecture's table: i386's `mmap2` (192) with its
/// offset in 4096-byte units and 32-bit registers, the generic `mmap` (222) with a byte offset
/// that must be a whole guest page on arm64-16k.
#[test]
fn syscall_numbers_per_architecture() {
    let fds = FdTable::new();
    let mut mm = mm_for("i386");
    // A 64-bit register whose high half is garbage: only the low 32 bits count.
    let junk = 0xdead_beef_0000_0000;
    let r = abi::syscall(&mut mm, &fds, 192, [junk, 4096 | junk, 3, 0x22, 0xffff_ffff, 0]);
    assert_eq!(r, Outcome::Return(0xf7ff_d000));
    assert_eq!(
        abi::syscall(&mut mm, &fds, 9, [0; 6]),
        Outcome::NotMemory,
        "9 is link on i386"
    );
    assert_eq!(
        abi::syscall(&mut mm, &fds, 90, [0; 6]),
        Outcome::NotModelled,
        "old_mmap"
    );
    assert_eq!(
        abi::syscall(&mut mm, &fds, 91, [0xf7ff_d000, 4096, 0, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(mm.vmas().count(), 0);

    let mut mm = mm_for("arm64-16k");
    let r = abi::syscall(&mut mm, &fds, 222, [0, 4096, 3, 0x22, u64::MAX, 4096]);
    assert_eq!(
        r,
        Outcome::Return(-22i64 as u64),
        "anonymous, but the offset is still checked"
    );
    let r = abi::syscall(&mut mm, &fds, 222, [0, 4096, 3, 0x22, u64::MAX, 0]);
    assert_eq!(r, Outcome::Return(0x7fff_f7ff_c000));
    let r = abi::syscall(&mut mm, &fds, 226, [0x7fff_f7ff_d000, 4096, 1, 0, 0, 0]);
    assert_eq!(r, Outcome::Return(-22i64 as u64), "mprotect at 4K into a 16K page");
    assert_eq!(
        abi::syscall(&mut mm, &fds, 215, [0x7fff_f7ff_c000, 1, 0, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(mm.profile().arch.nr(abi::Call::Mmap), Some(222));
    assert_eq!(Profile::reference_host().arch.nr(abi::Call::Mmap2), None);
}

/// A host-reserved range is never given to the guest: placement goes around it, a hint into it
/// is not taken, and a fixed mapping, an `mremap` target or growth and a `brk` into it fail as
/// they would past `TASK_SIZE` (`ENOMEM`, `EINVAL` for an `MREMAP_FIXED` target; `brk` keeps
/// the old break). The host's errnos past `TASK_SIZE` are the reference (module doc).
#[test]
fn reserved_ranges_are_never_the_guests() {
    let mut p = Profile::reference_host();
    // The 128 MiB just below mmap_base (0x7ffff7fff000) belongs to the emulator.
    p.set("reserved", "0x7ffff0000000-0x7ffff8000000").expect("range");
    let mut mm = Mm::new(p);
    // 7fffeffff000 | reserved [7ffff0000000, 7ffff8000000) | mmap_base inside it
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x7fff_efff_f000);
    assert_eq!(map(&mut mm, 0x7fff_f100_0000, 4096, ANON), 0x7fff_efff_e000);
    assert_maps(&mm, "7fffefffe000-7ffff0000000 rw-p 00000000 00:00 0 ");
    for flags in [FIXED, NOREPLACE] {
        let r = mm.mmap(VirtAddr(0x7fff_efff_f000), 0x2000, Prot::RW, flags, None, 0);
        assert_eq!(errno(r), Errno::ENOMEM, "{flags:?} reaching into the range");
    }
    // mremap: a target inside is EINVAL; growing in place into it is ENOMEM, with MAYMOVE it moves.
    let a = VirtAddr(0x7fff_efff_f000);
    let r = mm.mremap(a, 4096, 4096, 3, VirtAddr(0x7fff_f000_0000));
    assert_eq!(errno(r), Errno::EINVAL);
    assert_eq!(errno(mm.mremap(a, 4096, 8192, 0, VirtAddr(0))), Errno::ENOMEM);
    let moved = mm.mremap(a, 4096, 8192, 1, VirtAddr(0)).expect("moves below");
    assert!(moved.get() + 8192 <= 0x7fff_f000_0000, "{moved:?}");
    mm.check_invariants();

    // brk cannot grow into it either.
    let mut p = Profile::reference_host();
    p.set("reserved", "0x10002000-0x10003000").expect("range");
    let mut mm = Mm::new(p);
    mm.set_bounds(MmBounds {
        start_data: 0x1000_0000,
        end_data: 0x1000_0100,
        start_brk: 0x1000_1000,
        brk: 0x1000_1000,
        start_stack: 0x7fff_ffff_0000,
    })
    .expect("bounds");
    assert_eq!(mm.brk(VirtAddr(0x1000_2000)).get(), 0x1000_2000);
    assert_eq!(mm.brk(VirtAddr(0x1000_2001)).get(), 0x1000_2000, "refused: old break");
    assert_maps(&mm, &heap("10001000-10002000 rw-p 00000000 00:00 0 "));
}

/// A grows-down stack does not grow into a reserved range: the fault is `SIGSEGV`.
#[test]
fn reserved_ranges_stop_stack_growth() {
    let mut p = Profile::reference_host();
    p.set("reserved", "0x10000000-0x10001000").expect("range");
    let mut mm = Mm::new(p);
    let grows = MapFlags(FIXED.0 | MapFlags::GROWSDOWN.0);
    assert_eq!(map(&mut mm, 0x1000_2000, 4096, grows), 0x1000_2000);
    mm.write(VirtAddr(0x1000_1fff), &[1]).expect("grows by one page");
    let e = mm.write(VirtAddr(0x1000_0fff), &[1]).unwrap_err();
    assert_eq!(e.signal, mmprep::Signal::Segv);
    assert_maps(&mm, "10001000-10003000 rw-p 00000000 00:00 0 ");
}

/// The bottom-up search goes around a reserved range too (legacy layout).
#[test]
fn reserved_ranges_bottom_up() {
    let mut p = Profile::for_arch("i386").unwrap();
    p.pick_mmap_layout(true);
    p.set("reserved", "0x55555000-0x55655000").expect("range");
    let mut mm = Mm::new(p);
    assert_eq!(map(&mut mm, 0, 4096, ANON), 0x5565_5000);
    assert_eq!(
        map(&mut mm, 0x5555_6000, 4096, ANON),
        0x5565_6000,
        "a hint inside is not taken"
    );
}

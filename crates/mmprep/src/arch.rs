//! Guest architectures: the page size, the address-space size and the placement rules of one
//! instruction set and kernel configuration, chosen by name.
//!
//! An emulator's guest is not always the host: a 4 KiB x86_64 program on a 16 KiB arm64 host, a
//! 32-bit i386 program whose whole space sits under 4 GiB, an arm64 guest with 39-bit virtual
//! addresses. The kernel answers each of them differently — where `mmap(NULL)` lands, which
//! lengths are rounded to what, which hint is honoured, which number is which system call.
//! An [`Arch`] carries those facts; [`crate::Profile::for_arch`] builds a profile from one, and
//! the engine reads them through the [`crate::Mm`] it is given (`Mm::page_size`, ...), never
//! from a constant.
//!
//! | name | page | `TASK_SIZE` | `DEFAULT_MAP_WINDOW` | sources |
//! | --- | --- | --- | --- | --- |
//! | `x86_64` | 4K | `(1 << 47) - 4K` | same | `arch/x86/include/asm/page_64_types.h`, `arch/x86/mm/mmap.c` |
//! | `x86_64-la57` | 4K | `(1 << 56) - 4K` | `(1 << 47) - 4K` | the same, with `CONFIG_X86_5LEVEL` |
//! | `i386` | 4K | `0xffffe000` | same | `arch/x86/include/asm/page_64_types.h:IA32_PAGE_OFFSET`, `task_size_32bit` |
//! | `arm64-4k-39`, `-4k-48`, `-4k-52` | 4K | `1 << VA` | `1 << min(VA, 48)` | `arch/arm64/include/asm/processor.h` |
//! | `arm64-16k-47`, `-16k-48`, `-16k-52` | 16K | `1 << VA` | `1 << min(VA, 48)` | the same |
//! | `arm64-64k-42`, `-64k-48`, `-64k-52` | 64K | `1 << VA` | `1 << min(VA, 48)` | the same |
//! | `riscv64-sv39`, `riscv64-sv48` | 4K | `1 << (VA - 1)` | same | `arch/riscv/include/asm/processor.h`, `pgtable.h` |
//!
//! Short names: `arm64` is `arm64-4k-48`, `arm64-16k` is `arm64-16k-47`, `arm64-64k` is
//! `arm64-64k-48`, `riscv64` is `riscv64-sv48`.
//!
//! # Placement, per family (randomisation off)
//! - **x86** (`arch/x86/mm/mmap.c:arch_pick_mmap_layout`, `arch/x86/kernel/sys_x86_64.c`): the
//!   top-down base is `PAGE_ALIGN(window - clamp(rlimit + gap, 128M, window / 6 * 5))`, the legacy
//!   base `PAGE_ALIGN(window / 3)`; an unlimited stack does not choose the legacy layout. A hint is
//!   honoured only if it does not straddle `DEFAULT_MAP_WINDOW`, and only a hint above it opens
//!   the space up to `TASK_SIZE` (`mmap_address_hint_valid`). i386 is a compat task: the same
//!   formulas over `task_size_32bit()` (`mmap_compat_base`, `mmap_compat_legacy_base`), and
//!   `MAP_32BIT` has no effect (`in_32bit_syscall`).
//! - **generic** (arm64, riscv64: `mm/util.c:arch_pick_mmap_layout`, `mm/mmap.c:
//!   generic_get_unmapped_area_topdown`): the same gap formula over `STACK_TOP`, the legacy base
//!   `TASK_UNMAPPED_BASE`, and an unlimited stack *does* choose the legacy layout
//!   (`mm/util.c:mmap_is_legacy`). arm64: a hint above `DEFAULT_MAP_WINDOW` opens the space up
//!   to `TASK_SIZE` and moves the top-down base up by the same amount (`arch_get_mmap_end`,
//!   `arch_get_mmap_base`). riscv64 (since 6.11, "riscv: mm: Do not restrict mmap address based
//!   on hint"): `arch_get_mmap_end` is `STACK_TOP_MAX` and `arch_get_mmap_base` the base, so a
//!   hint is not an upper bound; a free hint anywhere below `TASK_SIZE` is taken.
//!
//! # What is not modelled
//! arm64 profiles describe a CPU without BTI and MTE: `PROT_BTI` (0x10) and `PROT_MTE` (0x20)
//! are unknown bits, ignored by `mmap` and refused by `mprotect`, as `arch_validate_prot`
//! (`arch/arm64/include/asm/mman.h`) does on such a CPU, so the `bt` and `mt` `VmFlags` letters
//! never appear. Shadow stacks (`ss`), protection keys and 32-bit arm64/riscv tasks are not
//! modelled. `CONFIG_ARM64_FORCE_52BIT` is off.

use core::fmt;

use crate::abi::Call;

/// The instruction-set family: it decides the system-call table and the placement code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// A 64-bit x86 task (`syscall_64.tbl`).
    X86_64,
    /// A 32-bit x86 task on an x86_64 kernel (`syscall_32.tbl`, the compat layout).
    I386,
    /// A 64-bit arm64 task (`include/uapi/asm-generic/unistd.h`).
    Arm64,
    /// A 64-bit riscv task (`include/uapi/asm-generic/unistd.h`).
    Riscv64,
}

/// One guest architecture and kernel configuration. Build one with [`Arch::by_name`].
///
/// # Invariants
/// `page_shift` is 12, 14 or 16, and 14 or 16 only for [`Isa::Arm64`]; `va_bits` is one the
/// kernel offers for that family and page size (see [`Arch::NAMES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    isa: Isa,
    page_shift: u32,
    va_bits: u32,
}

/// The x86 `SIZE_128M` / generic `MIN_GAP`: the smallest gap between `mmap_base` and the top.
const MIN_GAP: u64 = 128 << 20;

impl Arch {
    /// x86_64 with 4-level paging: the reference host.
    pub const X86_64: Arch = Arch {
        isa: Isa::X86_64,
        page_shift: 12,
        va_bits: 47,
    };

    /// Every name [`Arch::by_name`] takes, canonical names first, then the short ones.
    pub const NAMES: &'static [&'static str] = &[
        "x86_64",
        "x86_64-la57",
        "i386",
        "arm64-4k-39",
        "arm64-4k-48",
        "arm64-4k-52",
        "arm64-16k-47",
        "arm64-16k-48",
        "arm64-16k-52",
        "arm64-64k-42",
        "arm64-64k-48",
        "arm64-64k-52",
        "riscv64-sv39",
        "riscv64-sv48",
        "arm64",
        "arm64-16k",
        "arm64-64k",
        "riscv64",
    ];

    /// The architecture called `name` (one of [`Arch::NAMES`]).
    pub fn by_name(name: &str) -> Option<Arch> {
        let a = |isa, page_shift, va_bits| {
            Some(Arch {
                isa,
                page_shift,
                va_bits,
            })
        };
        match name {
            "x86_64" => a(Isa::X86_64, 12, 47),
            "x86_64-la57" => a(Isa::X86_64, 12, 56),
            "i386" => a(Isa::I386, 12, 32),
            "arm64-4k-39" => a(Isa::Arm64, 12, 39),
            "arm64-4k-48" | "arm64" => a(Isa::Arm64, 12, 48),
            "arm64-4k-52" => a(Isa::Arm64, 12, 52),
            "arm64-16k-47" | "arm64-16k" => a(Isa::Arm64, 14, 47),
            "arm64-16k-48" => a(Isa::Arm64, 14, 48),
            "arm64-16k-52" => a(Isa::Arm64, 14, 52),
            "arm64-64k-42" => a(Isa::Arm64, 16, 42),
            "arm64-64k-48" | "arm64-64k" => a(Isa::Arm64, 16, 48),
            "arm64-64k-52" => a(Isa::Arm64, 16, 52),
            "riscv64-sv39" => a(Isa::Riscv64, 12, 39),
            "riscv64-sv48" | "riscv64" => a(Isa::Riscv64, 12, 48),
            _ => None,
        }
    }

    /// The canonical name (`arm64-16k-47`).
    pub fn name(self) -> &'static str {
        match (self.isa, self.page_shift, self.va_bits) {
            (Isa::X86_64, _, 56) => "x86_64-la57",
            (Isa::X86_64, _, _) => "x86_64",
            (Isa::I386, _, _) => "i386",
            (Isa::Arm64, 12, 39) => "arm64-4k-39",
            (Isa::Arm64, 12, 48) => "arm64-4k-48",
            (Isa::Arm64, 12, _) => "arm64-4k-52",
            (Isa::Arm64, 14, 47) => "arm64-16k-47",
            (Isa::Arm64, 14, 48) => "arm64-16k-48",
            (Isa::Arm64, 14, _) => "arm64-16k-52",
            (Isa::Arm64, _, 42) => "arm64-64k-42",
            (Isa::Arm64, _, 48) => "arm64-64k-48",
            (Isa::Arm64, _, _) => "arm64-64k-52",
            (Isa::Riscv64, _, 39) => "riscv64-sv39",
            (Isa::Riscv64, _, _) => "riscv64-sv48",
        }
    }

    /// The instruction-set family.
    pub const fn isa(self) -> Isa {
        self.isa
    }

    /// `PAGE_SHIFT`.
    pub const fn page_shift(self) -> u32 {
        self.page_shift
    }

    /// `PAGE_SIZE` in bytes.
    pub const fn page_size(self) -> u64 {
        1 << self.page_shift
    }

    /// The virtual-address bits of the configuration (32 for i386).
    pub const fn va_bits(self) -> u32 {
        self.va_bits
    }

    /// `HPAGE_PMD_SIZE`: what one page of page-table entries maps, `PAGE_SIZE * PAGE_SIZE / 8`
    /// (8-byte entries): 2 MiB with 4K pages, 32 MiB with 16K, 512 MiB with 64K.
    pub const fn pmd_size(self) -> u64 {
        self.page_size() * (self.page_size() / 8)
    }

    /// `PAGE_ALIGN(x)` for this page size, saturating at the last page.
    pub const fn page_align(self, x: u64) -> u64 {
        let mask = self.page_size() - 1;
        match x.checked_add(mask) {
            Some(v) => v & !mask,
            None => !mask,
        }
    }

    /// `TASK_SIZE` of a task of this kind: the end of the user address space.
    pub const fn task_size(self) -> u64 {
        match self.isa {
            // arch/x86/include/asm/page_64_types.h: TASK_SIZE_MAX = (1 << 47 or 56) - PAGE_SIZE
            Isa::X86_64 => (1 << self.va_bits) - 4096,
            // IA32_PAGE_OFFSET (TIF_ADDR32 without ADDR_LIMIT_3GB)
            Isa::I386 => 0xffff_e000,
            // TASK_SIZE_64 = 1 << vabits_actual
            Isa::Arm64 => 1 << self.va_bits,
            // TASK_SIZE_64 = PGDIR_SIZE * PTRS_PER_PGD / 2
            Isa::Riscv64 => 1 << (self.va_bits - 1),
        }
    }

    /// `DEFAULT_MAP_WINDOW`: the top of the space `mmap(NULL)` and low hints search.
    pub const fn map_window(self) -> u64 {
        match self.isa {
            Isa::X86_64 => (1 << 47) - 4096,
            Isa::I386 => self.task_size(),
            // DEFAULT_MAP_WINDOW_64 = 1 << VA_BITS_MIN (48 when VA_BITS is 52)
            Isa::Arm64 => 1 << if self.va_bits > 48 { 48 } else { self.va_bits },
            // 1 << (MMAP_VA_BITS - 1), MMAP_VA_BITS = min(VA_BITS, 48)
            Isa::Riscv64 => 1 << ((if self.va_bits > 48 { 48 } else { self.va_bits }) - 1),
        }
    }

    /// The `STACK_TOP` the top-down base is computed from (`task_size_64bit(0)`,
    /// `task_size_32bit()`, `STACK_TOP_MAX`, `DEFAULT_MAP_WINDOW`).
    pub const fn stack_top(self) -> u64 {
        self.map_window()
    }

    /// `TASK_UNMAPPED_BASE` without randomisation: the start of the bottom-up search.
    pub const fn unmapped_base(self) -> u64 {
        match self.isa {
            // __TASK_UNMAPPED_BASE(task_size_64bit(0)) and (task_size_32bit())
            Isa::X86_64 | Isa::I386 => self.page_align(self.map_window() / 3),
            // PAGE_ALIGN(DEFAULT_MAP_WINDOW / 4)
            Isa::Arm64 => self.page_align(self.map_window() / 4),
            // PAGE_ALIGN((1 << MMAP_MIN_VA_BITS) / 3), MMAP_MIN_VA_BITS = 39
            Isa::Riscv64 => self.page_align((1u64 << 39) / 3),
        }
    }

    /// Does an unlimited stack rlimit choose the legacy layout? Not on x86 (its own
    /// `mmap_is_legacy`, host-verified), yes for the generic `mm/util.c:mmap_is_legacy`.
    pub const fn unlimited_stack_is_legacy(self) -> bool {
        matches!(self.isa, Isa::Arm64 | Isa::Riscv64)
    }

    /// Does `MAP_32BIT` (0x40) mean anything? Only for a 64-bit x86 task
    /// (`arch/x86/kernel/sys_x86_64.c:find_start_end`, `!in_32bit_syscall()`).
    pub const fn has_map_32bit(self) -> bool {
        matches!(self.isa, Isa::X86_64)
    }

    /// `mmap_base(rnd = 0)`: the top of the top-down search for a stack rlimit of
    /// `rlimit_stack` bytes (`u64::MAX`: unlimited) and a guard gap of `stack_guard_gap`.
    pub fn mmap_base(self, rlimit_stack: u64, stack_guard_gap: u64) -> u64 {
        let top = self.stack_top();
        let mut gap = rlimit_stack;
        // "Values close to RLIM_INFINITY can overflow."
        if let Some(g) = gap.checked_add(stack_guard_gap) {
            gap = g;
        }
        let gap_max = top / 6 * 5;
        let gap = gap.clamp(MIN_GAP, gap_max.max(MIN_GAP));
        self.page_align(top.saturating_sub(gap))
    }

    /// `arch_pick_mmap_layout` without randomisation. `legacy`: the `ADDR_COMPAT_LAYOUT`
    /// personality (`setarch -L`) or `vm.legacy_va_layout`.
    pub fn pick_mmap_layout(
        self,
        rlimit_stack: u64,
        stack_guard_gap: u64,
        legacy: bool,
    ) -> crate::mmap_layout::MmapLayout {
        let legacy = legacy || (self.unlimited_stack_is_legacy() && rlimit_stack == u64::MAX);
        let legacy_base = self.unmapped_base();
        crate::mmap_layout::MmapLayout {
            mmap_base: if legacy {
                legacy_base
            } else {
                self.mmap_base(rlimit_stack, stack_guard_gap)
            },
            mmap_legacy_base: legacy_base,
            topdown: !legacy,
        }
    }

    /// The window a non-fixed request searches, for hint `addr` (page aligned, maybe 0) and
    /// length `len`: `(end, base_shift)`, where `end` is the top of the bottom-up search and the
    /// limit a hint must fit under, and `base_shift` is added to `mmap_base` for the top-down
    /// search. x86: `mmap_address_hint_valid` and `find_start_end`; arm64:
    /// `arch_get_mmap_end`/`arch_get_mmap_base`; riscv: `STACK_TOP_MAX` and no shift.
    pub const fn search_window(self, addr: u64) -> (u64, u64) {
        let (window, task) = (self.map_window(), self.task_size());
        match self.isa {
            Isa::X86_64 | Isa::Arm64 if addr > window => (task, task - window),
            Isa::X86_64 | Isa::Arm64 | Isa::I386 => (window, 0),
            Isa::Riscv64 => (task, 0),
        }
    }

    /// Is a hint acceptable to the architecture before the VMA test? x86's
    /// `mmap_address_hint_valid`: it must end below `TASK_SIZE` and not straddle
    /// `DEFAULT_MAP_WINDOW` (the 47-bit constant, also for a 32-bit task, where it never
    /// matters). The generic code checks `mmap_end - len >= addr` itself.
    pub const fn hint_valid(self, addr: u64, len: u64) -> bool {
        match self.isa {
            Isa::X86_64 | Isa::I386 => {
                let w: u64 = (1 << 47) - 4096;
                self.task_size() - len >= addr && (addr > w) == (addr + len > w)
            }
            _ => true,
        }
    }

    /// The memory call a system-call number names on this architecture, or `None` for a
    /// number that is not a memory call. See [`crate::abi`] for each table.
    pub fn call(self, nr: u64) -> Option<Call> {
        match self.isa {
            Isa::X86_64 => crate::abi::nr::call(nr),
            Isa::I386 => crate::abi::nr_i386::call(nr),
            Isa::Arm64 | Isa::Riscv64 => crate::abi::nr_generic::call(nr),
        }
    }

    /// The number of a memory call on this architecture (`None`: it has none, like the old
    /// `mmap` on the generic table).
    pub fn nr(self, call: Call) -> Option<u64> {
        let table: &[(u64, Call)] = match self.isa {
            Isa::X86_64 => crate::abi::nr::TABLE,
            Isa::I386 => crate::abi::nr_i386::TABLE,
            Isa::Arm64 | Isa::Riscv64 => crate::abi::nr_generic::TABLE,
        };
        table.iter().find(|(_, c)| *c == call).map(|(n, _)| *n)
    }
}

impl Default for Arch {
    fn default() -> Arch {
        Arch::X86_64
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: u64 = 256 << 12;

    #[test]
    fn names_round_trip() {
        for &n in Arch::NAMES {
            let a = Arch::by_name(n).unwrap();
            assert_eq!(Arch::by_name(a.name()), Some(a), "{n}");
        }
        assert_eq!(Arch::by_name("arm64-16k").unwrap().name(), "arm64-16k-47");
        assert_eq!(Arch::by_name("sparc"), None);
    }

    /// x86_64 matches the host-measured values of `mmap_layout` (the reference host).
    #[test]
    fn x86_64_is_the_reference_host() {
        let a = Arch::X86_64;
        assert_eq!(a.task_size(), 0x7fff_ffff_f000);
        assert_eq!(a.mmap_base(8 << 20, GAP), 0x7fff_f7ff_f000);
        assert_eq!(a.mmap_base(u64::MAX, GAP), 0x1555_5555_6000);
        assert_eq!(a.unmapped_base(), 0x2aaa_aaaa_b000);
        assert!(a.pick_mmap_layout(u64::MAX, GAP, false).topdown);
    }

    /// i386 on x86_64: `task_size_32bit()` is `0xffffe000`; the compat base keeps the 128 MiB
    /// minimum gap; the legacy base is a third of it.
    #[test]
    fn i386_compat_layout() {
        let a = Arch::by_name("i386").unwrap();
        assert_eq!(a.task_size(), 0xffff_e000);
        assert_eq!(a.mmap_base(8 << 20, GAP), 0xf7ff_e000);
        assert_eq!(a.unmapped_base(), 0x5555_5000);
        assert!(!a.has_map_32bit());
    }

    /// Page sizes and their PMD sizes; arm64's bases are page aligned in the guest page.
    #[test]
    fn arm64_granules() {
        let a = Arch::by_name("arm64-16k-47").unwrap();
        assert_eq!((a.page_size(), a.pmd_size()), (16 << 10, 32 << 20));
        assert_eq!(a.task_size(), 1 << 47);
        assert_eq!(a.unmapped_base(), 1 << 45);
        // 16K guard gap (256 pages of 16K = 4 MiB) + 8 MiB stack < 128 MiB: the minimum gap.
        assert_eq!(a.mmap_base(8 << 20, 256 << 14), (1 << 47) - (128 << 20));
        let b = Arch::by_name("arm64-64k-52").unwrap();
        assert_eq!((b.page_size(), b.pmd_size()), (64 << 10, 512 << 20));
        assert_eq!((b.task_size(), b.map_window()), (1 << 52, 1 << 48));
        assert_eq!(b.search_window(1 << 49), (1 << 52, (1 << 52) - (1 << 48)));
        assert_eq!(b.search_window(0), (1 << 48, 0));
        // An unlimited stack chooses the legacy layout on the generic code.
        assert!(!b.pick_mmap_layout(u64::MAX, GAP, false).topdown);
    }

    /// The table of `docs/profiles.md`: (name, TASK_SIZE, mmap_base with an 8 MiB stack,
    /// legacy base, stack guard gap).
    #[test]
    fn the_documented_table() {
        let rows: &[(&str, u64, u64, u64, u64)] = &[
            ("x86_64", 0x7fff_ffff_f000, 0x7fff_f7ff_f000, 0x2aaa_aaaa_b000, 1 << 20),
            (
                "x86_64-la57",
                0xff_ffff_ffff_f000,
                0x7fff_f7ff_f000,
                0x2aaa_aaaa_b000,
                1 << 20,
            ),
            ("i386", 0xffff_e000, 0xf7ff_e000, 0x5555_5000, 1 << 20),
            ("arm64-4k-39", 1 << 39, 0x7f_f800_0000, 0x20_0000_0000, 1 << 20),
            ("arm64-4k-48", 1 << 48, 0xffff_f800_0000, 0x4000_0000_0000, 1 << 20),
            ("arm64-4k-52", 1 << 52, 0xffff_f800_0000, 0x4000_0000_0000, 1 << 20),
            ("arm64-16k-47", 1 << 47, 0x7fff_f800_0000, 0x2000_0000_0000, 4 << 20),
            ("arm64-16k-48", 1 << 48, 0xffff_f800_0000, 0x4000_0000_0000, 4 << 20),
            ("arm64-16k-52", 1 << 52, 0xffff_f800_0000, 0x4000_0000_0000, 4 << 20),
            ("arm64-64k-42", 1 << 42, 0x3ff_f800_0000, 0x100_0000_0000, 16 << 20),
            ("arm64-64k-48", 1 << 48, 0xffff_f800_0000, 0x4000_0000_0000, 16 << 20),
            ("arm64-64k-52", 1 << 52, 0xffff_f800_0000, 0x4000_0000_0000, 16 << 20),
            ("riscv64-sv39", 1 << 38, 0x3f_f800_0000, 0x2a_aaaa_b000, 1 << 20),
            ("riscv64-sv48", 1 << 47, 0x7fff_f800_0000, 0x2a_aaaa_b000, 1 << 20),
        ];
        for &(name, task, base, legacy, gap) in rows {
            let a = Arch::by_name(name).unwrap();
            let g = 256u64 << a.page_shift();
            assert_eq!(
                (a.task_size(), a.mmap_base(8 << 20, g), a.unmapped_base(), g),
                (task, base, legacy, gap),
                "{name}"
            );
        }
    }

    #[test]
    fn riscv_windows() {
        let a = Arch::by_name("riscv64-sv39").unwrap();
        assert_eq!((a.task_size(), a.map_window()), (1 << 38, 1 << 38));
        assert_eq!(a.unmapped_base(), 0x2a_aaaa_b000);
        let b = Arch::by_name("riscv64").unwrap();
        assert_eq!((b.task_size(), b.map_window()), (1 << 47, 1 << 47));
        assert_eq!(b.search_window(0x1000), (1 << 47, 0));
    }
}

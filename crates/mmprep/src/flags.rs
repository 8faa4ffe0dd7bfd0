//! VMA flags: bit numbers, a bitmap wider than one word, and how `mmap` computes them.
//!
//! Every VMA carries a set of flags: its access rights (`VM_READ`...), what it may become
//! (`VM_MAY*`), and properties such as `VM_LOCKED` or `VM_ACCOUNT`. Linux long kept them in one
//! `unsigned long`; since 7.0 the source names each *bit* (`VMA_READ_BIT`...) and keeps the set in
//! `vma_flags_t`, a bitmap that may grow past 64 bits (`include/linux/mm_types.h`,
//! `include/linux/mm.h`, \[N\]). This module mirrors that:
//!
//! - [`VmaBit`]: every bit number the kernel defines for x86_64, with its `/proc/PID/smaps`
//!   code (`fs/proc/task_mmu.c:show_smap_vma_flags`);
//! - [`VmaFlags`]: the bitmap (128 bits), with the `vma_flags_*` helpers (test any / all, set,
//!   clear) and conversion to and from the legacy word;
//! - [`vma_flags!`](crate::vma_flags): build a set from bit names, like `mk_vma_flags()`;
//! - the named masks (`VM_SPECIAL`, `VM_ACCESS_FLAGS`...) as constants;
//! - [`calc_vm_prot_bits`] and [`calc_vm_flag_bits`]: `PROT_*`/`MAP_*` to flags, as
//!   `include/linux/mman.h` computes them.

use core::fmt;

use crate::uapi::{MapFlags, Prot};

/// The number of flag bits a [`VmaFlags`] can hold.
pub const NUM_VMA_FLAG_BITS: usize = 128;

macro_rules! vma_bits {
    ($($(#[$doc:meta])* $name:ident = $num:literal, $code:literal;)*) => {
        /// A VMA flag bit number (`VMA_<NAME>_BIT`), x86_64.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum VmaBit {
            $($(#[$doc])* $name = $num,)*
        }

        impl VmaBit {
            /// Every bit, in ascending bit order (the order smaps prints them in).
            pub const ALL: &'static [VmaBit] = &[$(VmaBit::$name,)*];

            /// The bit number.
            pub const fn number(self) -> u32 {
                self as u32
            }

            /// The two-letter code smaps prints for it, or `""` if it prints none.
            pub const fn smaps_code(self) -> &'static str {
                match self {
                    $(VmaBit::$name => $code,)*
                }
            }

            /// The kernel's name without prefix (`"READ"` for `VM_READ`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(VmaBit::$name => stringify!($name),)*
                }
            }

            /// The bit with this number, if x86_64 defines one.
            pub const fn from_number(n: u32) -> Option<VmaBit> {
                $(if n == $num { return Some(VmaBit::$name); })*
                None
            }
        }
    };
}

vma_bits! {
    /// `VM_READ`: readable.
    Read = 0, "rd";
    /// `VM_WRITE`: writable.
    Write = 1, "wr";
    /// `VM_EXEC`: executable.
    Exec = 2, "ex";
    /// `VM_SHARED`: shared and may be written through (cleared for a read-only descriptor).
    Shared = 3, "sh";
    /// `VM_MAYREAD`: `mprotect` may add `VM_READ`.
    MayRead = 4, "mr";
    /// `VM_MAYWRITE`: `mprotect` may add `VM_WRITE`.
    MayWrite = 5, "mw";
    /// `VM_MAYEXEC`: `mprotect` may add `VM_EXEC` (cleared on noexec mounts).
    MayExec = 6, "me";
    /// `VM_MAYSHARE`: a `MAP_SHARED` mapping (the `s` in maps).
    MayShare = 7, "ms";
    /// `VM_GROWSDOWN` (`VM_STACK` on x86).
    GrowsDown = 8, "gd";
    /// `VM_UFFD_MISSING`: userfaultfd missing-page tracking.
    UffdMissing = 9, "um";
    /// `VM_PFNMAP`: raw page frames, no `struct page`.
    PfnMap = 10, "pf";
    /// `VM_MAYBE_GUARD`: guard regions may be installed (sticky in merges).
    MaybeGuard = 11, "gu";
    /// `VM_UFFD_WP`: userfaultfd write protection.
    UffdWp = 12, "uw";
    /// `VM_LOCKED`: mlocked.
    Locked = 13, "lo";
    /// `VM_IO`: memory-mapped I/O.
    Io = 14, "io";
    /// `VM_SEQ_READ`: `MADV_SEQUENTIAL`.
    SeqRead = 15, "sr";
    /// `VM_RAND_READ`: `MADV_RANDOM`.
    RandRead = 16, "rr";
    /// `VM_DONTCOPY`: `MADV_DONTFORK`.
    DontCopy = 17, "dc";
    /// `VM_DONTEXPAND`: `mremap` may not grow it.
    DontExpand = 18, "de";
    /// `VM_LOCKONFAULT`: `mlock2(MLOCK_ONFAULT)`.
    LockOnFault = 19, "lf";
    /// `VM_ACCOUNT`: charged to the commit limit.
    Account = 20, "ac";
    /// `VM_NORESERVE`: `MAP_NORESERVE` honoured.
    NoReserve = 21, "nr";
    /// `VM_HUGETLB`: hugetlbfs.
    HugeTlb = 22, "ht";
    /// `VM_SYNC`: `MAP_SYNC`.
    Sync = 23, "sf";
    /// `VM_ARCH_1` (`VM_PAT` on x86).
    Arch1 = 24, "ar";
    /// `VM_WIPEONFORK`: `MADV_WIPEONFORK`.
    WipeOnFork = 25, "wf";
    /// `VM_DONTDUMP`: `MADV_DONTDUMP`.
    DontDump = 26, "dd";
    /// `VM_SOFTDIRTY` (only with `CONFIG_MEM_SOFT_DIRTY`).
    SoftDirty = 27, "sd";
    /// `VM_MIXEDMAP`: a mix of page frames and pages.
    MixedMap = 28, "mm";
    /// `VM_HUGEPAGE`: `MADV_HUGEPAGE`.
    HugePage = 29, "hg";
    /// `VM_NOHUGEPAGE`: `MADV_NOHUGEPAGE`, `MAP_STACK`.
    NoHugePage = 30, "nh";
    /// `VM_MERGEABLE`: `MADV_MERGEABLE` (KSM).
    Mergeable = 31, "mg";
    /// `VM_PKEY_BIT0` (`VM_HIGH_ARCH_0`).
    PkeyBit0 = 32, "";
    /// `VM_PKEY_BIT1`.
    PkeyBit1 = 33, "";
    /// `VM_PKEY_BIT2`.
    PkeyBit2 = 34, "";
    /// `VM_PKEY_BIT3`.
    PkeyBit3 = 35, "";
    /// `VM_HIGH_ARCH_4` (a fifth pkey bit on other architectures).
    HighArch4 = 36, "";
    /// `VM_SHADOW_STACK` (`VM_HIGH_ARCH_5`; not built on the reference host).
    ShadowStack = 37, "ss";
    /// `VM_HIGH_ARCH_6`.
    HighArch6 = 38, "";
    /// `VM_ALLOW_ANY_UNCACHED`.
    AllowAnyUncached = 39, "";
    /// `VM_DROPPABLE`: `MAP_DROPPABLE`.
    Droppable = 40, "dp";
    /// `VM_UFFD_MINOR`: userfaultfd minor faults.
    UffdMinor = 41, "ui";
    /// `VM_SEALED`: `mseal`.
    Sealed = 42, "sl";
}

/// A set of VMA flags (`vma_flags_t`): a bitmap of [`NUM_VMA_FLAG_BITS`] bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VmaFlags([u64; 2]);

impl VmaFlags {
    /// No flags (`EMPTY_VMA_FLAGS`).
    pub const EMPTY: VmaFlags = VmaFlags([0, 0]);

    /// Exactly these bits (`mk_vma_flags`).
    pub const fn from_bits(bits: &[VmaBit]) -> VmaFlags {
        let mut words = [0u64; 2];
        let mut i = 0;
        while i < bits.len() {
            let n = bits[i] as u32;
            words[(n / 64) as usize] |= 1u64 << (n % 64);
            i += 1;
        }
        VmaFlags(words)
    }

    /// From the legacy `vm_flags` word (`legacy_to_vma_flags`): bit *n* of the word is bit *n*.
    pub const fn from_legacy(word: u64) -> VmaFlags {
        VmaFlags([word, 0])
    }

    /// To the legacy word (`vma_flags_to_legacy`): the first 64 bits.
    pub const fn to_legacy(self) -> u64 {
        self.0[0]
    }

    /// Is this bit set (`vma_flags_test`)?
    pub const fn test(self, bit: VmaBit) -> bool {
        let n = bit as u32;
        self.0[(n / 64) as usize] & (1u64 << (n % 64)) != 0
    }

    /// Is any bit of `mask` set (`vma_flags_test_any_mask`)?
    pub const fn test_any(self, mask: VmaFlags) -> bool {
        (self.0[0] & mask.0[0]) | (self.0[1] & mask.0[1]) != 0
    }

    /// Are all bits of `mask` set (`vma_flags_test_all_mask`)?
    pub const fn test_all(self, mask: VmaFlags) -> bool {
        self.0[0] & mask.0[0] == mask.0[0] && self.0[1] & mask.0[1] == mask.0[1]
    }

    /// A copy with these bits set (`append_vma_flags`).
    #[must_use]
    pub const fn with(self, mask: VmaFlags) -> VmaFlags {
        VmaFlags([self.0[0] | mask.0[0], self.0[1] | mask.0[1]])
    }

    /// A copy with these bits cleared.
    #[must_use]
    pub const fn without(self, mask: VmaFlags) -> VmaFlags {
        VmaFlags([self.0[0] & !mask.0[0], self.0[1] & !mask.0[1]])
    }

    /// The bits set in both (`vma_flags_and_mask`).
    #[must_use]
    pub const fn and(self, mask: VmaFlags) -> VmaFlags {
        VmaFlags([self.0[0] & mask.0[0], self.0[1] & mask.0[1]])
    }

    /// The bits set in exactly one of the two (`vma_flags_diff_pair`).
    #[must_use]
    pub const fn diff(self, other: VmaFlags) -> VmaFlags {
        VmaFlags([self.0[0] ^ other.0[0], self.0[1] ^ other.0[1]])
    }

    /// Sets one bit in place.
    pub fn set(&mut self, bit: VmaBit) {
        *self = self.with(VmaFlags::from_bits(&[bit]));
    }

    /// Clears one bit in place.
    pub fn clear(&mut self, bit: VmaBit) {
        *self = self.without(VmaFlags::from_bits(&[bit]));
    }

    /// Sets every bit of `mask` in place (`vma_flags_set_mask`).
    pub fn set_mask(&mut self, mask: VmaFlags) {
        *self = self.with(mask);
    }

    /// Clears every bit of `mask` in place (`vma_flags_clear_mask`).
    pub fn clear_mask(&mut self, mask: VmaFlags) {
        *self = self.without(mask);
    }

    /// No bit set (`vma_flags_empty`)?
    pub const fn is_empty(self) -> bool {
        self.0[0] == 0 && self.0[1] == 0
    }

    /// Number of bits set (`vma_flags_count`).
    pub const fn count(self) -> u32 {
        self.0[0].count_ones() + self.0[1].count_ones()
    }

    /// The set bits that x86_64 names, in ascending order.
    pub fn iter(self) -> impl Iterator<Item = VmaBit> {
        VmaBit::ALL.iter().copied().filter(move |b| self.test(*b))
    }

    /// The smaps `VmFlags` codes of these flags, in the kernel's order. Bits without a code are
    /// skipped; `soft_dirty` says whether `VM_SOFTDIRTY` exists in this build.
    pub fn smaps_codes(self, soft_dirty: bool) -> impl Iterator<Item = &'static str> {
        self.iter()
            .filter(move |b| soft_dirty || *b != VmaBit::SoftDirty)
            .map(|b| b.smaps_code())
            .filter(|c| !c.is_empty())
    }
}

impl fmt::Debug for VmaFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut first = true;
        for b in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            match b.smaps_code() {
                "" => f.write_str(b.name())?,
                c => f.write_str(c)?,
            }
        }
        f.write_str("}")
    }
}

impl core::ops::BitOr for VmaFlags {
    type Output = VmaFlags;
    fn bitor(self, rhs: VmaFlags) -> VmaFlags {
        self.with(rhs)
    }
}

/// Builds a [`VmaFlags`] from bit names: `vma_flags![Read, Write]`.
#[macro_export]
macro_rules! vma_flags {
    () => { $crate::flags::VmaFlags::EMPTY };
    ($($bit:ident),+ $(,)?) => {
        $crate::flags::VmaFlags::from_bits(&[$($crate::flags::VmaBit::$bit),+])
    };
}

use VmaBit as B;

/// `VM_ACCESS_FLAGS`: read, write, exec.
pub const ACCESS_FLAGS: VmaFlags = VmaFlags::from_bits(&[B::Read, B::Write, B::Exec]);
/// `VM_SPECIAL`: never merged, never mlocked.
pub const SPECIAL: VmaFlags = VmaFlags::from_bits(&[B::Io, B::DontExpand, B::PfnMap, B::MixedMap]);
/// `VMA_REMAP_FLAGS`: what a PFN remap sets.
pub const REMAP_FLAGS: VmaFlags = VmaFlags::from_bits(&[B::Io, B::PfnMap, B::DontExpand, B::DontDump]);
/// `VM_LOCKED_MASK`.
pub const LOCKED_MASK: VmaFlags = VmaFlags::from_bits(&[B::Locked, B::LockOnFault]);
/// `VM_STACK` on x86: grows down.
pub const STACK: VmaFlags = VmaFlags::from_bits(&[B::GrowsDown]);
/// `VM_STARTGAP_FLAGS`: VMAs with a guard gap below them.
pub const STARTGAP_FLAGS: VmaFlags = VmaFlags::from_bits(&[B::GrowsDown, B::ShadowStack]);
/// `VM_MAY*` of the three access bits (shifted by 4, as the kernel's `newflags >> 4` trick).
pub const MAY_ACCESS: VmaFlags = VmaFlags::from_bits(&[B::MayRead, B::MayWrite, B::MayExec]);

/// The flags a merge ignores when comparing, and ORs into the result (`VM_STICKY`,
/// `VM_IGNORE_MERGE`): `VM_MAYBE_GUARD`, plus `VM_SOFTDIRTY` where it exists. The reference host
/// (6.18.44) has `VM_MAYBE_GUARD` backported (`docs/reference/vma-rules.md` section 0, H).
pub const fn sticky_flags(soft_dirty: bool) -> VmaFlags {
    if soft_dirty {
        VmaFlags::from_bits(&[B::MaybeGuard, B::SoftDirty])
    } else {
        VmaFlags::from_bits(&[B::MaybeGuard])
    }
}

/// `include/linux/mman.h:calc_vm_prot_bits`: `PROT_*` to `VM_READ|VM_WRITE|VM_EXEC`. Other bits
/// (`PROT_SEM`, unknown ones) are not translated. Protection keys are not modelled (the
/// reference CPU has no PKU).
pub const fn calc_vm_prot_bits(prot: Prot) -> VmaFlags {
    let mut f = VmaFlags::EMPTY;
    if prot.contains(Prot::READ) {
        f = f.with(VmaFlags::from_bits(&[B::Read]));
    }
    if prot.contains(Prot::WRITE) {
        f = f.with(VmaFlags::from_bits(&[B::Write]));
    }
    if prot.contains(Prot::EXEC) {
        f = f.with(VmaFlags::from_bits(&[B::Exec]));
    }
    f
}

/// `include/linux/mman.h:calc_vm_flag_bits`: `MAP_GROWSDOWN`, `MAP_LOCKED`, `MAP_SYNC` and
/// `MAP_STACK` (→ `VM_NOHUGEPAGE`, transparent hugepages being built in) to flags. Computed from
/// the caller's flags before any masking, so `MAP_SYNC` reaches the VMA even where plain
/// `MAP_SHARED` later drops it from the flags.
pub const fn calc_vm_flag_bits(flags: MapFlags) -> VmaFlags {
    let mut f = VmaFlags::EMPTY;
    if flags.contains(MapFlags::GROWSDOWN) {
        f = f.with(VmaFlags::from_bits(&[B::GrowsDown]));
    }
    if flags.contains(MapFlags::LOCKED) {
        f = f.with(VmaFlags::from_bits(&[B::Locked]));
    }
    if flags.contains(MapFlags::SYNC) {
        f = f.with(VmaFlags::from_bits(&[B::Sync]));
    }
    if flags.contains(MapFlags::STACK) {
        f = f.with(VmaFlags::from_bits(&[B::NoHugePage]));
    }
    f
}

/// `is_data_mapping`: private, writable, not a stack.
pub const fn is_data_mapping(f: VmaFlags) -> bool {
    f.test(B::Write) && !f.test(B::Shared) && !f.test(B::GrowsDown)
}

/// `is_exec_mapping`: executable, not writable, not a stack.
pub const fn is_exec_mapping(f: VmaFlags) -> bool {
    f.test(B::Exec) && !f.test(B::Write) && !f.test(B::GrowsDown)
}

/// `is_stack_mapping`.
pub const fn is_stack_mapping(f: VmaFlags) -> bool {
    f.test(B::GrowsDown)
}

/// `is_shared_maywrite`: shared and may be written.
pub const fn is_shared_maywrite(f: VmaFlags) -> bool {
    f.test(B::Shared) && f.test(B::MayWrite)
}

/// `is_cow_mapping`: may be written, but privately.
pub const fn is_cow_mapping(f: VmaFlags) -> bool {
    f.test(B::MayWrite) && !f.test(B::Shared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn codes(f: VmaFlags) -> String {
        f.smaps_codes(false).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn smaps_order_is_bit_order() {
        // vma-rules.md 6.3, host-verified VmFlags lines.
        let anon_rw = vma_flags![Read, Write, MayRead, MayWrite, MayExec, Account];
        assert_eq!(codes(anon_rw), "rd wr mr mw me ac");
        let sealed = vma_flags![Read, Write, MayRead, MayWrite, MayExec, MaybeGuard, DontCopy]
            .with(vma_flags![Account, WipeOnFork, DontDump, NoHugePage, Sealed]);
        assert_eq!(codes(sealed), "rd wr mr mw me gu dc ac wf dd nh sl");
        assert_eq!(
            codes(vma_flags![Read, PfnMap, Io, DontExpand, DontDump, MayRead]),
            "rd mr pf io de dd"
        );
    }

    #[test]
    fn soft_dirty_prints_only_when_built() {
        let f = vma_flags![Read, SoftDirty];
        assert_eq!(f.smaps_codes(false).collect::<Vec<_>>(), ["rd"]);
        assert_eq!(f.smaps_codes(true).collect::<Vec<_>>(), ["rd", "sd"]);
    }

    #[test]
    fn helpers_and_legacy_word() {
        let f = vma_flags![Read, Write, Sealed];
        assert!(f.test(VmaBit::Sealed));
        assert!(f.test_any(ACCESS_FLAGS) && !f.test_all(ACCESS_FLAGS));
        assert_eq!(f.to_legacy(), 0b11 | (1 << 42));
        assert_eq!(VmaFlags::from_legacy(f.to_legacy()), f);
        assert_eq!(f.without(vma_flags![Write]).count(), 2);
        assert_eq!(f.diff(vma_flags![Read]), vma_flags![Write, Sealed]);
        for b in VmaBit::ALL {
            assert_eq!(VmaBit::from_number(b.number()), Some(*b));
        }
    }

    #[test]
    fn prot_and_map_translation() {
        assert_eq!(calc_vm_prot_bits(Prot(0x7 | 0x8 | 0x10)), ACCESS_FLAGS);
        let f = calc_vm_flag_bits(MapFlags::STACK | MapFlags::LOCKED | MapFlags::SYNC | MapFlags::GROWSDOWN);
        assert_eq!(f, vma_flags![NoHugePage, Locked, Sync, GrowsDown]);
    }
}

//! The user-visible numbers of the memory-map system calls on x86_64.
//!
//! An emulator hands the engine the raw `prot`, `flags` and `advice` words its guest passed, so
//! the engine takes the same numbers the kernel does. They come from
//! `include/uapi/asm-generic/mman-common.h`, `include/uapi/linux/mman.h`,
//! `arch/x86/include/uapi/asm/mman.h` and `include/uapi/asm-generic/mman.h` (\[H\] 6.18).
//! [`Prot`] and [`MapFlags`] are thin wrappers that keep unknown bits, because the kernel's
//! answer to an unknown bit (ignore it, or refuse with `EINVAL`) depends on the call.

use core::fmt;

/// Protection bits (`PROT_*`), as passed to `mmap` and `mprotect`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prot(pub u32);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: Prot = Prot(0x1);
    pub const WRITE: Prot = Prot(0x2);
    pub const EXEC: Prot = Prot(0x4);
    /// Accepted and ignored on x86 (`arch_validate_prot` lets it through).
    pub const SEM: Prot = Prot(0x8);
    /// `mprotect` only: extend the change down to the start of a grows-down VMA.
    pub const GROWSDOWN: Prot = Prot(0x0100_0000);
    /// `mprotect` only: extend up to the end of a grows-up VMA (never one on x86).
    pub const GROWSUP: Prot = Prot(0x0200_0000);
    pub const RW: Prot = Prot(0x3);
    pub const RX: Prot = Prot(0x5);
    pub const RWX: Prot = Prot(0x7);

    /// Raw value.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Are all bits of `other` set?
    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }
    /// Is any bit of `other` set?
    pub const fn intersects(self, other: Prot) -> bool {
        self.0 & other.0 != 0
    }
    /// Union.
    pub const fn union(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }
    /// These bits removed.
    pub const fn without(self, other: Prot) -> Prot {
        Prot(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Prot {
    type Output = Prot;
    fn bitor(self, rhs: Prot) -> Prot {
        self.union(rhs)
    }
}

impl fmt::Debug for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |bit: Prot, ch: char| if self.contains(bit) { ch } else { '-' };
        write!(f, "{}{}{}", c(Prot::READ, 'r'), c(Prot::WRITE, 'w'), c(Prot::EXEC, 'x'))?;
        let rest = self.without(Prot::RWX);
        if rest.0 != 0 {
            write!(f, "|{:#x}", rest.0)?;
        }
        Ok(())
    }
}

/// `mmap` flags (`MAP_*`). Unknown bits are kept: the kernel ignores most of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MapFlags(pub u32);

impl MapFlags {
    pub const SHARED: MapFlags = MapFlags(0x01);
    pub const PRIVATE: MapFlags = MapFlags(0x02);
    pub const SHARED_VALIDATE: MapFlags = MapFlags(0x03);
    pub const DROPPABLE: MapFlags = MapFlags(0x08);
    /// The mapping-type field (`MAP_TYPE`).
    pub const TYPE: MapFlags = MapFlags(0x0f);
    pub const FIXED: MapFlags = MapFlags(0x10);
    pub const ANONYMOUS: MapFlags = MapFlags(0x20);
    pub const BIT32: MapFlags = MapFlags(0x40);
    pub const GROWSDOWN: MapFlags = MapFlags(0x0100);
    pub const DENYWRITE: MapFlags = MapFlags(0x0800);
    pub const EXECUTABLE: MapFlags = MapFlags(0x1000);
    pub const LOCKED: MapFlags = MapFlags(0x2000);
    pub const NORESERVE: MapFlags = MapFlags(0x4000);
    pub const POPULATE: MapFlags = MapFlags(0x8000);
    pub const NONBLOCK: MapFlags = MapFlags(0x1_0000);
    pub const STACK: MapFlags = MapFlags(0x2_0000);
    pub const HUGETLB: MapFlags = MapFlags(0x4_0000);
    pub const SYNC: MapFlags = MapFlags(0x8_0000);
    pub const FIXED_NOREPLACE: MapFlags = MapFlags(0x10_0000);
    pub const UNINITIALIZED: MapFlags = MapFlags(0x400_0000);
    /// `MAP_HUGE_2MB` and `MAP_HUGE_1GB` (size encodings in bits 26..31).
    pub const HUGE_2MB: MapFlags = MapFlags(21 << 26);
    pub const HUGE_1GB: MapFlags = MapFlags(30 << 26);

    /// `LEGACY_MAP_MASK` (`include/linux/mman.h`): the flags plain `MAP_SHARED` has always
    /// accepted; `MAP_SHARED_VALIDATE` refuses anything else with `EOPNOTSUPP`.
    pub const LEGACY_MASK: MapFlags = MapFlags(
        0x01 | 0x02
            | 0x10
            | 0x20
            | 0x0800
            | 0x1000
            | 0x400_0000
            | 0x0100
            | 0x2000
            | 0x4000
            | 0x8000
            | 0x1_0000
            | 0x2_0000
            | 0x4_0000
            | 0x40
            | (21 << 26)
            | (30 << 26),
    );

    /// Raw value.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Are all bits of `other` set?
    pub const fn contains(self, other: MapFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Is any bit of `other` set?
    pub const fn intersects(self, other: MapFlags) -> bool {
        self.0 & other.0 != 0
    }
    /// The value of the `MAP_TYPE` field.
    pub const fn map_type(self) -> MapFlags {
        MapFlags(self.0 & Self::TYPE.0)
    }
    /// Union.
    pub const fn union(self, other: MapFlags) -> MapFlags {
        MapFlags(self.0 | other.0)
    }
    /// Intersection.
    pub const fn intersection(self, other: MapFlags) -> MapFlags {
        MapFlags(self.0 & other.0)
    }
    /// These bits removed.
    pub const fn without(self, other: MapFlags) -> MapFlags {
        MapFlags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for MapFlags {
    type Output = MapFlags;
    fn bitor(self, rhs: MapFlags) -> MapFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for MapFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MapFlags({:#x})", self.0)
    }
}

/// `madvise` advice numbers (`MADV_*`).
pub mod madv {
    pub const NORMAL: u32 = 0;
    pub const RANDOM: u32 = 1;
    pub const SEQUENTIAL: u32 = 2;
    pub const WILLNEED: u32 = 3;
    pub const DONTNEED: u32 = 4;
    pub const FREE: u32 = 8;
    pub const REMOVE: u32 = 9;
    pub const DONTFORK: u32 = 10;
    pub const DOFORK: u32 = 11;
    pub const MERGEABLE: u32 = 12;
    pub const UNMERGEABLE: u32 = 13;
    pub const HUGEPAGE: u32 = 14;
    pub const NOHUGEPAGE: u32 = 15;
    pub const DONTDUMP: u32 = 16;
    pub const DODUMP: u32 = 17;
    pub const WIPEONFORK: u32 = 18;
    pub const KEEPONFORK: u32 = 19;
    pub const COLD: u32 = 20;
    pub const PAGEOUT: u32 = 21;
    pub const POPULATE_READ: u32 = 22;
    pub const POPULATE_WRITE: u32 = 23;
    pub const DONTNEED_LOCKED: u32 = 24;
    pub const COLLAPSE: u32 = 25;
    pub const HWPOISON: u32 = 100;
    pub const SOFT_OFFLINE: u32 = 101;
    pub const GUARD_INSTALL: u32 = 102;
    pub const GUARD_REMOVE: u32 = 103;
}

/// `mremap` flags (`MREMAP_*`).
pub mod mremap {
    pub const MAYMOVE: u32 = 1;
    pub const FIXED: u32 = 2;
    pub const DONTUNMAP: u32 = 4;
}

/// `mlock2` flags.
pub mod mlock {
    pub const ONFAULT: u32 = 1;
    /// `mlockall` flags (`arch/x86`: the generic values).
    pub const MCL_CURRENT: i32 = 1;
    pub const MCL_FUTURE: i32 = 2;
    pub const MCL_ONFAULT: i32 = 4;
}

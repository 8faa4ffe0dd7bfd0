//! The system-call ABI of the memory calls: a raw syscall number and six `u64` argument
//! registers in, the value the kernel leaves in the return register out.
//!
//! The number is read in the table of the profile's architecture ([`crate::Profile::arch`]):
//! x86_64 ([`nr`], below), i386 ([`nr_i386`]: `mmap2` takes its offset in 4096-byte units, the
//! old one-argument `mmap` is not modelled, and only the low 32 bits of each register count)
//! and the generic table of arm64 and riscv64 ([`nr_generic`]). Each number becomes a [`Call`],
//! which [`run`] executes.
//!
//! This is what an emulator or a sandbox calls when its guest executes `syscall`: it passes
//! the registers as they are and gets back what Linux would return — an address, `0`, or a
//! negative errno as the kernel returns it (`-22` as `u64` for `EINVAL`, i.e.
//! `0xffff_ffff_ffff_ffea`). The argument conversions are the kernel's
//! (`arch/x86/entry/syscalls/syscall_64.tbl` and each `SYSCALL_DEFINEn`, \[H\] 6.18): an `int`
//! argument is the low 32 bits of its register, an `unsigned long` the whole register.
//!
//! The x86_64 table:
//!
//! | nr | call | engine |
//! | --- | --- | --- |
//! | 9 | `mmap` | [`Mm::mmap`] (`arch/x86/kernel/sys_x86_64.c:SYSCALL_DEFINE6(mmap)`, `ksys_mmap_pgoff`) |
//! | 10 | `mprotect` | [`Mm::mprotect`] |
//! | 11 | `munmap` | [`Mm::munmap`] |
//! | 12 | `brk` | [`Mm::brk`] |
//! | 25 | `mremap` | [`Mm::mremap`] |
//! | 26 | `msync` | [`Mm::msync`] (the checks and the walk; writeback always succeeds) |
//! | 28 | `madvise` | [`Mm::madvise`] |
//! | 149, 150, 325 | `mlock`, `munlock`, `mlock2` | [`Mm::mlock`], [`Mm::munlock`], [`Mm::mlock2`] |
//! | 151, 152 | `mlockall`, `munlockall` | [`Mm::mlockall`], [`Mm::munlockall`] |
//! | 329 | `pkey_mprotect` | [`Mm::mprotect`] for pkey `-1`, and for `0` where the CPU has protection keys ([`Profile::pkeys`](crate::Profile::pkeys)); any other pkey is not allocated (`pkey_alloc` is not modelled): `EINVAL` after `mprotect`'s own argument checks (`mm/mprotect.c:do_mprotect_pkey`, `mm_pkey_is_allocated`) |
//! | 462 | `mseal` | [`Mm::mseal`] |
//! | 27, 30, 67, 216, 330, 331, 440, 448, 453 | `mincore`, `shmat`, `shmdt`, `remap_file_pages`, `pkey_alloc`, `pkey_free`, `process_madvise`, `process_mrelease`, `map_shadow_stack` | not modelled: [`Outcome::NotModelled`] |
//!
//! # Not modelled is not an errno
//! A memory call the engine lacks returns [`Outcome::NotModelled`], and any other system call
//! [`Outcome::NotMemory`]: neither is a number, so a caller cannot mistake them for a kernel
//! answer (an `ENOSYS` would be one: the kernel has these calls). The caller decides — run the
//! call elsewhere, or fail loudly.
//!
//! # Descriptors
//! `mmap` of a file needs the open file behind the descriptor: the embedder keeps an
//! [`FdTable`] (descriptor → [`File`], which carries the inode, its size and identity and the
//! open mode). A descriptor not in the table is a closed one: `EBADF`, as `fget` fails. With
//! `MAP_ANONYMOUS` the descriptor is not looked at.
//!
//! # Where the conversion is not exact
//! `mmap`'s `flags` and `prot` are `unsigned long` in the kernel but 32-bit here: bits above 31
//! are dropped. The kernel ignores them too, except that `MAP_SHARED_VALIDATE` refuses them
//! (`EOPNOTSUPP`) and the engine will not. `mprotect`'s and `mremap`'s unknown high bits are
//! kept as an unknown low bit, so they fail where the kernel fails them.
//!
//! # Example
//! An emulator answering its guest's `mmap(NULL, 8192, PROT_READ|PROT_WRITE,
//! MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`, then a shared mapping of a memfd the guest has open as
//! descriptor 3, and a descriptor it never opened:
//!
//! ```
//! use mmprep::abi::{self, FdTable, Outcome, nr};
//! use mmprep::{Mm, Profile};
//!
//! let mut mm = Mm::new(Profile::reference_host());
//! let mut fds = FdTable::new();
//! let rw = 3; // PROT_READ | PROT_WRITE
//! let anon = 0x22; // MAP_PRIVATE | MAP_ANONYMOUS
//! let regs = [0, 8192, rw, anon, -1i64 as u64, 0];
//! let Outcome::Return(addr) = abi::syscall(&mut mm, &fds, nr::MMAP, regs) else { panic!() };
//! assert!(abi::errno_of(addr).is_none());
//! assert_eq!(mm.vma_at(mmprep::VirtAddr(addr)).unwrap().end().get(), addr + 8192);
//!
//! fds.insert(3, mm.shmem().memfd_create("guest", 16384));
//! let shared = 0x01; // MAP_SHARED
//! let r = abi::syscall(&mut mm, &fds, nr::MMAP, [0, 16384, rw, shared, 3, 0]);
//! assert!(matches!(r, Outcome::Return(a) if abi::errno_of(a).is_none()));
//!
//! // Descriptor 4 is not open: -EBADF, as the kernel returns it.
//! let r = abi::syscall(&mut mm, &fds, nr::MMAP, [0, 4096, rw, shared, 4, 0]);
//! assert_eq!(r, Outcome::Return(-9i64 as u64));
//! assert_eq!(abi::errno_of(-9i64 as u64), Some(mmprep::Errno::EBADF));
//!
//! // mincore is a memory call the engine does not model; getpid is none at all.
//! assert_eq!(abi::syscall(&mut mm, &fds, nr::MINCORE, [addr, 4096, 0, 0, 0, 0]), Outcome::NotModelled);
//! assert_eq!(abi::syscall(&mut mm, &fds, 39, [0; 6]), Outcome::NotMemory);
//! ```

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use crate::addr::VirtAddr;
use crate::arch::Isa;
use crate::errno::{Errno, Result};
use crate::file::File;
use crate::mm::Mm;
use crate::uapi::{MapFlags, Prot};

/// The memory calls, whatever their number on an architecture ([`crate::arch::Arch::call`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `mmap` with a byte offset (x86_64, arm64, riscv64).
    Mmap,
    /// `mmap2` with the offset in 4096-byte units (i386: `sys_mmap_pgoff`).
    Mmap2,
    /// i386's old `mmap`, whose one argument points at a `struct mmap_arg_struct` in guest
    /// memory (`arch/x86/kernel/sys_ia32.c`): not modelled.
    OldMmap,
    Mprotect,
    Munmap,
    Brk,
    Mremap,
    Msync,
    Mincore,
    Madvise,
    Shmat,
    Shmdt,
    Mlock,
    Munlock,
    Mlockall,
    Munlockall,
    RemapFilePages,
    Mlock2,
    PkeyMprotect,
    PkeyAlloc,
    PkeyFree,
    ProcessMadvise,
    ProcessMrelease,
    MapShadowStack,
    Mseal,
}

impl Call {
    /// The call's name (`"mmap2"`).
    pub fn name(self) -> &'static str {
        match self {
            Call::Mmap | Call::OldMmap => "mmap",
            Call::Mmap2 => "mmap2",
            Call::Mprotect => "mprotect",
            Call::Munmap => "munmap",
            Call::Brk => "brk",
            Call::Mremap => "mremap",
            Call::Msync => "msync",
            Call::Mincore => "mincore",
            Call::Madvise => "madvise",
            Call::Shmat => "shmat",
            Call::Shmdt => "shmdt",
            Call::Mlock => "mlock",
            Call::Munlock => "munlock",
            Call::Mlockall => "mlockall",
            Call::Munlockall => "munlockall",
            Call::RemapFilePages => "remap_file_pages",
            Call::Mlock2 => "mlock2",
            Call::PkeyMprotect => "pkey_mprotect",
            Call::PkeyAlloc => "pkey_alloc",
            Call::PkeyFree => "pkey_free",
            Call::ProcessMadvise => "process_madvise",
            Call::ProcessMrelease => "process_mrelease",
            Call::MapShadowStack => "map_shadow_stack",
            Call::Mseal => "mseal",
        }
    }

    /// Does [`syscall`] run it on the engine?
    pub fn is_modelled(self) -> bool {
        !matches!(
            self,
            Call::OldMmap
                | Call::Mincore
                | Call::Shmat
                | Call::Shmdt
                | Call::RemapFilePages
                | Call::PkeyAlloc
                | Call::PkeyFree
                | Call::ProcessMadvise
                | Call::ProcessMrelease
                | Call::MapShadowStack
        )
    }
}

/// x86_64 system-call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub mod nr {
    use super::Call;

    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const MREMAP: u64 = 25;
    pub const MSYNC: u64 = 26;
    pub const MINCORE: u64 = 27;
    pub const MADVISE: u64 = 28;
    pub const SHMAT: u64 = 30;
    pub const SHMDT: u64 = 67;
    pub const MLOCK: u64 = 149;
    pub const MUNLOCK: u64 = 150;
    pub const MLOCKALL: u64 = 151;
    pub const MUNLOCKALL: u64 = 152;
    pub const REMAP_FILE_PAGES: u64 = 216;
    pub const MLOCK2: u64 = 325;
    pub const PKEY_MPROTECT: u64 = 329;
    pub const PKEY_ALLOC: u64 = 330;
    pub const PKEY_FREE: u64 = 331;
    pub const PROCESS_MADVISE: u64 = 440;
    pub const PROCESS_MRELEASE: u64 = 448;
    pub const MAP_SHADOW_STACK: u64 = 453;
    pub const MSEAL: u64 = 462;

    /// Number → call, for every memory call of the table.
    pub const TABLE: &[(u64, Call)] = &[
        (MMAP, Call::Mmap),
        (MPROTECT, Call::Mprotect),
        (MUNMAP, Call::Munmap),
        (BRK, Call::Brk),
        (MREMAP, Call::Mremap),
        (MSYNC, Call::Msync),
        (MINCORE, Call::Mincore),
        (MADVISE, Call::Madvise),
        (SHMAT, Call::Shmat),
        (SHMDT, Call::Shmdt),
        (MLOCK, Call::Mlock),
        (MUNLOCK, Call::Munlock),
        (MLOCKALL, Call::Mlockall),
        (MUNLOCKALL, Call::Munlockall),
        (REMAP_FILE_PAGES, Call::RemapFilePages),
        (MLOCK2, Call::Mlock2),
        (PKEY_MPROTECT, Call::PkeyMprotect),
        (PKEY_ALLOC, Call::PkeyAlloc),
        (PKEY_FREE, Call::PkeyFree),
        (PROCESS_MADVISE, Call::ProcessMadvise),
        (PROCESS_MRELEASE, Call::ProcessMrelease),
        (MAP_SHADOW_STACK, Call::MapShadowStack),
        (MSEAL, Call::Mseal),
    ];

    /// The memory calls [`super::syscall`] answers.
    pub const MODELLED: &[u64] = &[
        MMAP,
        MPROTECT,
        MUNMAP,
        BRK,
        MREMAP,
        MSYNC,
        MADVISE,
        MLOCK,
        MUNLOCK,
        MLOCK2,
        MLOCKALL,
        MUNLOCKALL,
        PKEY_MPROTECT,
        MSEAL,
    ];

    /// The memory calls it does not ([`super::Outcome::NotModelled`]).
    pub const NOT_MODELLED: &[u64] = &[
        MINCORE,
        SHMAT,
        SHMDT,
        REMAP_FILE_PAGES,
        PKEY_ALLOC,
        PKEY_FREE,
        PROCESS_MADVISE,
        PROCESS_MRELEASE,
        MAP_SHADOW_STACK,
    ];

    /// The memory call `nr` names, or `None`.
    pub fn call(nr: u64) -> Option<Call> {
        super::lookup(TABLE, nr)
    }

    /// The name of a memory call (`"mmap"`), or `None` for any other number.
    pub fn name(nr: u64) -> Option<&'static str> {
        call(nr).map(Call::name)
    }

    /// Is `nr` a memory call, modelled or not?
    pub fn is_memory(nr: u64) -> bool {
        call(nr).is_some()
    }
}

/// i386 system-call numbers (`arch/x86/entry/syscalls/syscall_32.tbl`), as a 32-bit task on
/// an x86_64 kernel uses them (`int $0x80`). There is no `map_shadow_stack`: shadow stacks are
/// 64-bit only.
pub mod nr_i386 {
    use super::Call;

    /// Number → call.
    pub const TABLE: &[(u64, Call)] = &[
        (45, Call::Brk),
        (90, Call::OldMmap),
        (91, Call::Munmap),
        (125, Call::Mprotect),
        (144, Call::Msync),
        (150, Call::Mlock),
        (151, Call::Munlock),
        (152, Call::Mlockall),
        (153, Call::Munlockall),
        (163, Call::Mremap),
        (192, Call::Mmap2),
        (218, Call::Mincore),
        (219, Call::Madvise),
        (257, Call::RemapFilePages),
        (376, Call::Mlock2),
        (380, Call::PkeyMprotect),
        (381, Call::PkeyAlloc),
        (382, Call::PkeyFree),
        (397, Call::Shmat),
        (398, Call::Shmdt),
        (440, Call::ProcessMadvise),
        (448, Call::ProcessMrelease),
        (462, Call::Mseal),
    ];

    /// The memory call `nr` names, or `None`.
    pub fn call(nr: u64) -> Option<Call> {
        super::lookup(TABLE, nr)
    }
}

/// The generic numbers arm64 and riscv64 use (`include/uapi/asm-generic/unistd.h`; `mmap` is
/// `__NR3264_mmap`).
pub mod nr_generic {
    use super::Call;

    /// Number → call.
    pub const TABLE: &[(u64, Call)] = &[
        (196, Call::Shmat),
        (197, Call::Shmdt),
        (214, Call::Brk),
        (215, Call::Munmap),
        (216, Call::Mremap),
        (222, Call::Mmap),
        (226, Call::Mprotect),
        (227, Call::Msync),
        (228, Call::Mlock),
        (229, Call::Munlock),
        (230, Call::Mlockall),
        (231, Call::Munlockall),
        (232, Call::Mincore),
        (233, Call::Madvise),
        (234, Call::RemapFilePages),
        (284, Call::Mlock2),
        (288, Call::PkeyMprotect),
        (289, Call::PkeyAlloc),
        (290, Call::PkeyFree),
        (440, Call::ProcessMadvise),
        (448, Call::ProcessMrelease),
        (453, Call::MapShadowStack),
        (462, Call::Mseal),
    ];

    /// The memory call `nr` names, or `None`.
    pub fn call(nr: u64) -> Option<Call> {
        super::lookup(TABLE, nr)
    }
}

fn lookup(table: &[(u64, Call)], nr: u64) -> Option<Call> {
    table.iter().find(|(n, _)| *n == nr).map(|(_, c)| *c)
}

/// What [`syscall`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call ran on the engine; this is the kernel's return value (`rax`): an address, a
    /// count, `0`, or `-errno` as a `u64` ([`errno_of`] tells which).
    Return(u64),
    /// A memory call the engine does not model (`mincore`, `pkey_alloc`...): nothing changed.
    NotModelled,
    /// Not a memory call: nothing changed; the embedder answers it.
    NotMemory,
}

impl Outcome {
    /// The return value, if the call ran.
    pub fn value(self) -> Option<u64> {
        match self {
            Outcome::Return(v) => Some(v),
            _ => None,
        }
    }
}

/// The errno of a raw return value: values in `-4095..=-1` are errors (`IS_ERR_VALUE`).
/// `None` for a success or a number this crate does not name.
pub fn errno_of(ret: u64) -> Option<Errno> {
    let v = ret as i64;
    if !(-4095..0).contains(&v) {
        return None;
    }
    Errno::ALL.iter().copied().find(|e| i64::from(e.raw()) == -v)
}

/// A process's open descriptors, as far as `mmap` needs them: descriptor → open file.
#[derive(Clone, Default)]
pub struct FdTable {
    files: BTreeMap<u32, Arc<File>>,
}

impl FdTable {
    /// No descriptor open.
    pub fn new() -> FdTable {
        FdTable::default()
    }

    /// Descriptor `fd` now refers to `file` (replacing what it did, as `dup2` does).
    pub fn insert(&mut self, fd: u32, file: Arc<File>) {
        self.files.insert(fd, file);
    }

    /// Closes `fd`; returns what it referred to.
    pub fn remove(&mut self, fd: u32) -> Option<Arc<File>> {
        self.files.remove(&fd)
    }

    /// The open file behind `fd`.
    pub fn get(&self, fd: u32) -> Option<&Arc<File>> {
        self.files.get(&fd)
    }
}

/// Runs system call `nr` with the argument registers `args` on `mm`, with `fds` as the
/// process's descriptors. The number is read in the table of the profile's architecture
/// ([`crate::Profile::arch`]); on x86_64 the registers are `rdi`, `rsi`, `rdx`, `r10`, `r8`,
/// `r9`, on i386 `ebx`, `ecx`, `edx`, `esi`, `edi`, `ebp` (only their low 32 bits count), on
/// arm64 `x0`-`x5`, on riscv64 `a0`-`a5`. See the module documentation.
pub fn syscall(mm: &mut Mm, fds: &FdTable, nr: u64, args: [u64; 6]) -> Outcome {
    let arch = mm.profile().arch;
    let Some(call) = arch.call(nr) else {
        return Outcome::NotMemory;
    };
    let args = match arch.isa() {
        Isa::I386 => args.map(|a| a & 0xffff_ffff),
        _ => args,
    };
    run(mm, fds, call, args)
}

/// Runs one memory call by name rather than number (`args` as [`syscall`] takes them).
pub fn run(mm: &mut Mm, fds: &FdTable, call: Call, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, a3, a4, a5] = args;
    let ret = match call {
        Call::Mmap => {
            let file = fds.get(a4 as u32);
            addr(mm.mmap(VirtAddr(a0), a1, Prot(a2 as u32), MapFlags(a3 as u32), file, a5))
        }
        Call::Mmap2 => {
            // The offset is in 4096-byte units whatever the page size (sys_mmap_pgoff on
            // x86, where PAGE_SIZE is 4096), which is also the engine's pgoff unit.
            let file = fds.get(a4 as u32);
            addr(mm.mmap_pgoff(VirtAddr(a0), a1, Prot(a2 as u32), MapFlags(a3 as u32), file, a5))
        }
        Call::Mprotect => unit(mm.mprotect(VirtAddr(a0), a1, prot_checked(a2))),
        Call::PkeyMprotect => match a3 as i32 {
            -1 => unit(mm.mprotect(VirtAddr(a0), a1, prot_checked(a2))),
            0 if mm.profile().pkeys => unit(mm.mprotect(VirtAddr(a0), a1, prot_checked(a2))),
            _ => pkey_mprotect_unallocated(a0, a1, a2, mm.page_size()),
        },
        Call::Munmap => unit(mm.munmap(VirtAddr(a0), a1)),
        Call::Brk => mm.brk(VirtAddr(a0)).get(),
        Call::Mremap => {
            // An unknown high bit stays an unknown bit (MREMAP_* are bits 0-2).
            let flags = a3 as u32 | if a3 >> 32 != 0 { 0x8000_0000 } else { 0 };
            addr(mm.mremap(VirtAddr(a0), a1, a2, flags, VirtAddr(a4)))
        }
        Call::Msync => unit(mm.msync(VirtAddr(a0), a1, a2 as i32)),
        Call::Madvise => unit(mm.madvise(VirtAddr(a0), a1, a2 as u32)),
        Call::Mlock => unit(mm.mlock(VirtAddr(a0), a1)),
        Call::Munlock => unit(mm.munlock(VirtAddr(a0), a1)),
        Call::Mlock2 => unit(mm.mlock2(VirtAddr(a0), a1, a2 as u32)),
        Call::Mseal => unit(mm.mseal(VirtAddr(a0), a1, a2)),
        Call::Mlockall => unit(mm.mlockall(a0 as i32)),
        Call::Munlockall => unit(mm.munlockall()),
        Call::OldMmap
        | Call::Mincore
        | Call::Shmat
        | Call::Shmdt
        | Call::RemapFilePages
        | Call::PkeyAlloc
        | Call::PkeyFree
        | Call::ProcessMadvise
        | Call::ProcessMrelease
        | Call::MapShadowStack => return Outcome::NotModelled,
    };
    Outcome::Return(ret)
}

/// `-errno` as the kernel returns it.
fn neg(e: Errno) -> u64 {
    (-i64::from(e.raw())) as u64
}

fn addr(r: Result<VirtAddr>) -> u64 {
    r.map_or_else(|e| neg(e.errno), VirtAddr::get)
}

fn unit(r: Result<()>) -> u64 {
    r.map_or_else(|e| neg(e.errno), |()| 0)
}

/// `mprotect`'s `unsigned long prot` as the engine's 32 bits: a high bit becomes an unknown low
/// one, which `arch_validate_prot` refuses at the same step.
fn prot_checked(prot: u64) -> Prot {
    Prot(prot as u32 | if prot >> 32 != 0 { 0x10 } else { 0 })
}

/// `do_mprotect_pkey` with a pkey that is not allocated (the engine allocates none but 0):
/// the argument checks, then `EINVAL` before any VMA is looked at.
fn pkey_mprotect_unallocated(start: u64, len: u64, prot: u64, page_size: u64) -> u64 {
    let grows = Prot::GROWSDOWN.bits() as u64 | Prot::GROWSUP.bits() as u64;
    if prot & grows == grows || start & (page_size - 1) != 0 {
        return neg(Errno::EINVAL);
    }
    if len == 0 {
        return 0;
    }
    let end = start.wrapping_add(len.wrapping_add(page_size - 1) & !(page_size - 1));
    if end <= start {
        return neg(Errno::ENOMEM);
    }
    neg(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    #[test]
    fn errno_values_and_outcomes() {
        let mut mm = Mm::new(Profile::reference_host());
        let fds = FdTable::new();
        // Unaligned munmap: -EINVAL.
        let r = syscall(&mut mm, &fds, nr::MUNMAP, [1, 4096, 0, 0, 0, 0]);
        assert_eq!(r, Outcome::Return(-22i64 as u64));
        assert_eq!(errno_of(-22i64 as u64), Some(Errno::EINVAL));
        assert_eq!(errno_of(0x7fff_0000_0000), None);
        // File mmap of a closed descriptor.
        let r = syscall(&mut mm, &fds, nr::MMAP, [0, 4096, 1, 2, 5, 0]);
        assert_eq!(r, Outcome::Return(neg(Errno::EBADF)));
        // pkey 1 is not allocated, nor 0 without protection keys; a zero length still
        // succeeds first.
        assert_eq!(
            syscall(&mut mm, &fds, nr::PKEY_MPROTECT, [0x1000, 4096, 1, 0, 0, 0]),
            Outcome::Return(neg(Errno::EINVAL))
        );
        let a = syscall(&mut mm, &fds, nr::MMAP, [0, 4096, 3, 0x22, u64::MAX, 0])
            .value()
            .unwrap();
        assert_eq!(
            syscall(&mut mm, &fds, nr::PKEY_MPROTECT, [a, 4096, 1, 1, 0, 0]),
            Outcome::Return(neg(Errno::EINVAL))
        );
        assert_eq!(
            syscall(&mut mm, &fds, nr::PKEY_MPROTECT, [a, 0, 1, 1, 0, 0]),
            Outcome::Return(0)
        );
        assert_eq!(
            syscall(&mut mm, &fds, nr::PKEY_MPROTECT, [a, 4096, 1, u64::MAX, 0, 0]),
            Outcome::Return(0)
        );
        // A high prot bit is refused like an unknown one.
        assert_eq!(
            syscall(&mut mm, &fds, nr::MPROTECT, [a, 4096, 1 << 40, 0, 0, 0]),
            Outcome::Return(neg(Errno::EINVAL))
        );
        for &n in nr::NOT_MODELLED {
            assert_eq!(syscall(&mut mm, &fds, n, [0; 6]), Outcome::NotModelled);
        }
        assert_eq!(syscall(&mut mm, &fds, 0, [0; 6]), Outcome::NotMemory);
        mm.check_invariants();
    }
}

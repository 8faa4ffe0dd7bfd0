//! The x86_64 system-call ABI of the memory calls: a raw syscall number and six `u64` argument
//! registers in, the value the kernel leaves in `rax` out.
//!
//! This is what an emulator or a sandbox calls when its guest executes `syscall`: it passes
//! the registers as they are and gets back what Linux would return — an address, `0`, or a
//! negative errno as the kernel returns it (`-22` as `u64` for `EINVAL`, i.e.
//! `0xffff_ffff_ffff_ffea`). The argument conversions are the kernel's
//! (`arch/x86/entry/syscalls/syscall_64.tbl` and each `SYSCALL_DEFINEn`, \[H\] 6.18): an `int`
//! argument is the low 32 bits of its register, an `unsigned long` the whole register.
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

use crate::addr::{VirtAddr, page_align_wrapping};
use crate::errno::{Errno, Result};
use crate::file::File;
use crate::mm::Mm;
use crate::uapi::{MapFlags, Prot};

/// x86_64 system-call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub mod nr {
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

    /// The name of a memory call (`"mmap"`), or `None` for any other number.
    pub fn name(nr: u64) -> Option<&'static str> {
        Some(match nr {
            MMAP => "mmap",
            MPROTECT => "mprotect",
            MUNMAP => "munmap",
            BRK => "brk",
            MREMAP => "mremap",
            MSYNC => "msync",
            MINCORE => "mincore",
            MADVISE => "madvise",
            SHMAT => "shmat",
            SHMDT => "shmdt",
            MLOCK => "mlock",
            MUNLOCK => "munlock",
            MLOCKALL => "mlockall",
            MUNLOCKALL => "munlockall",
            REMAP_FILE_PAGES => "remap_file_pages",
            MLOCK2 => "mlock2",
            PKEY_MPROTECT => "pkey_mprotect",
            PKEY_ALLOC => "pkey_alloc",
            PKEY_FREE => "pkey_free",
            PROCESS_MADVISE => "process_madvise",
            PROCESS_MRELEASE => "process_mrelease",
            MAP_SHADOW_STACK => "map_shadow_stack",
            MSEAL => "mseal",
            _ => return None,
        })
    }

    /// Is `nr` a memory call, modelled or not?
    pub fn is_memory(nr: u64) -> bool {
        name(nr).is_some()
    }
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

/// Runs system call `nr` with the argument registers `args` (`rdi`, `rsi`, `rdx`, `r10`, `r8`,
/// `r9`) on `mm`, with `fds` as the process's descriptors. See the module documentation.
pub fn syscall(mm: &mut Mm, fds: &FdTable, nr: u64, args: [u64; 6]) -> Outcome {
    let [a0, a1, a2, a3, a4, a5] = args;
    let ret = match nr {
        nr::MMAP => {
            let file = fds.get(a4 as u32);
            addr(mm.mmap(VirtAddr(a0), a1, Prot(a2 as u32), MapFlags(a3 as u32), file, a5))
        }
        nr::MPROTECT => unit(mm.mprotect(VirtAddr(a0), a1, prot_checked(a2))),
        nr::PKEY_MPROTECT => match a3 as i32 {
            -1 => unit(mm.mprotect(VirtAddr(a0), a1, prot_checked(a2))),
            0 if mm.profile().pkeys => unit(mm.mprotect(VirtAddr(a0), a1, prot_checked(a2))),
            _ => pkey_mprotect_unallocated(a0, a1, a2),
        },
        nr::MUNMAP => unit(mm.munmap(VirtAddr(a0), a1)),
        nr::BRK => mm.brk(VirtAddr(a0)).get(),
        nr::MREMAP => {
            // An unknown high bit stays an unknown bit (MREMAP_* are bits 0-2).
            let flags = a3 as u32 | if a3 >> 32 != 0 { 0x8000_0000 } else { 0 };
            addr(mm.mremap(VirtAddr(a0), a1, a2, flags, VirtAddr(a4)))
        }
        nr::MSYNC => unit(mm.msync(VirtAddr(a0), a1, a2 as i32)),
        nr::MADVISE => unit(mm.madvise(VirtAddr(a0), a1, a2 as u32)),
        nr::MLOCK => unit(mm.mlock(VirtAddr(a0), a1)),
        nr::MUNLOCK => unit(mm.munlock(VirtAddr(a0), a1)),
        nr::MLOCK2 => unit(mm.mlock2(VirtAddr(a0), a1, a2 as u32)),
        nr::MSEAL => unit(mm.mseal(VirtAddr(a0), a1, a2)),
        nr::MLOCKALL => unit(mm.mlockall(a0 as i32)),
        nr::MUNLOCKALL => unit(mm.munlockall()),
        n if nr::NOT_MODELLED.contains(&n) => return Outcome::NotModelled,
        _ => return Outcome::NotMemory,
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
fn pkey_mprotect_unallocated(start: u64, len: u64, prot: u64) -> u64 {
    let grows = Prot::GROWSDOWN.bits() as u64 | Prot::GROWSUP.bits() as u64;
    if prot & grows == grows || start & 0xfff != 0 {
        return neg(Errno::EINVAL);
    }
    if len == 0 {
        return 0;
    }
    let end = start.wrapping_add(page_align_wrapping(len));
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

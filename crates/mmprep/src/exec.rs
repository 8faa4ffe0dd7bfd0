//! `execve` of an ELF64 x86_64 program: the address space `binfmt_elf` builds, with address
//! randomisation off (`setarch -R`).
//!
//! [`parse_elf`] is a small checked reader of the ELF header and program headers (the bytes are
//! untrusted: every field is bounds-checked, an error is `ENOEXEC`/`EINVAL` with a reason).
//! [`Mm::exec`] then builds, on an empty [`Mm`] whose profile already has its layout
//! ([`crate::Profile::pick_mmap_layout`]), what the kernel has at the program's first
//! instruction:
//!
//! 1. the stack (`setup_arg_pages`): `[page_down(strings) - 128 KiB, STACK_TOP)` with
//!    `VM_STACK_FLAGS | VM_ACCOUNT` ("rd wr mr mw me gd ac"), or `RLIMIT_STACK` below the top if
//!    that is smaller. The strings (the filename, the environment, the arguments) end 256 + 8
//!    bytes below `STACK_TOP` on the host (Linux 6.18.44: `/proc/PID/stat` `env_end` is
//!    `0x7ffffffff000 - 8 - 256 - strlen(filename) - 1` for every probe);
//! 2. each `PT_LOAD` (`elf_load`, `elf_map`): a private file mapping of its page-rounded file
//!    part with its protections; the first of an image is mapped with the whole image size
//!    and the excess unmapped (`total_mapping_size`); the bss beyond the last file page is
//!    anonymous (`vm_brk_flags`, "rd wr mr mw me ac");
//! 3. the load bias: `ET_EXEC` at its addresses; a PIE with an interpreter at
//!    `ELF_ET_DYN_BASE` (`DEFAULT_MAP_WINDOW / 3 * 2`, page aligned down, then aligned to the
//!    largest power-of-two `p_align`); a static PIE (no interpreter) where `mmap(NULL)` puts it;
//! 4. the interpreter (`load_elf_interp`): its first segment where `mmap(NULL)` puts the whole
//!    image (top-down from `mmap_base`), the others after it;
//! 5. `[vvar]`, `[vvar_vclock]`, `[vdso]` (`map_vdso` from `arch_setup_additional_pages`):
//!    one `get_unmapped_area(NULL)`, so just below the interpreter;
//! 6. `start_brk = brk =` the page-aligned end of the program's bss (no `[heap]` VMA yet); for
//!    a static PIE, `ELF_ET_DYN_BASE` page-aligned up (probed: randomisation off too).
//!
//! Not modelled: `padzero` (the kernel writes zeros after the file part of a writable last
//! page, which gives that VMA anonymous pages and an anon_vma: smaps shows it as
//! `Anonymous:`); `PT_GNU_STACK` executable stacks and `READ_IMPLIES_EXEC`; `PT_GNU_PROPERTY`
//! (shadow stacks); 5-level paging (`STACK_TOP_MAX` shift).
//!
//! Mirrors `fs/binfmt_elf.c:load_elf_binary`, `elf_load`, `elf_map`, `total_mapping_size`,
//! `maximum_alignment`, `load_elf_interp`, `fs/exec.c:setup_arg_pages`, `bprm_mm_init`,
//! `arch/x86/include/asm/elf.h:ELF_ET_DYN_BASE`, `arch/x86/entry/vdso/vma.c:map_vdso`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::addr::{PAGE_MASK, PAGE_SIZE, PgOff, VirtAddr};
use crate::errno::{Errno, Result, err};
use crate::file::File;
use crate::flags::VmaFlags;
use crate::mm::{ImportAnon, ImportOps, ImportVma, MmBounds, VdsoLayout};
use crate::uapi::{MapFlags, Prot};
use crate::{Mm, vma_flags};

/// `ET_EXEC`.
pub const ET_EXEC: u16 = 2;
/// `ET_DYN`.
pub const ET_DYN: u16 = 3;
/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = 3;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `setup_arg_pages`' `stack_expand`: 128 KiB below the argument pages.
pub const STACK_EXPAND: u64 = 128 << 10;
/// Bytes between `STACK_TOP` and the end of the copied strings (host probe, see the module
/// doc): `sizeof(void *)` plus 256.
pub const STRINGS_TOP_GAP: u64 = 8 + 256;
/// `VM_STACK_FLAGS | VM_ACCOUNT` as smaps shows the new stack.
pub const STACK_FLAGS: VmaFlags = vma_flags![Read, Write, MayRead, MayWrite, MayExec, GrowsDown, Account];

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl ProgramHeader {
    /// `make_prot(p_flags)`: `PF_R`, `PF_W`, `PF_X` to `PROT_*`.
    pub fn prot(&self) -> Prot {
        let mut p = Prot::NONE;
        if self.p_flags & 4 != 0 {
            p = p.union(Prot::READ);
        }
        if self.p_flags & 2 != 0 {
            p = p.union(Prot::WRITE);
        }
        if self.p_flags & 1 != 0 {
            p = p.union(Prot::EXEC);
        }
        p
    }
}

/// What `execve` needs of an ELF file: its type, entry point, program headers and interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage {
    pub e_type: u16,
    pub entry: u64,
    pub phdrs: Vec<ProgramHeader>,
    /// The `PT_INTERP` path, without its NUL.
    pub interp: Option<String>,
}

fn rd(b: &[u8], off: usize, n: usize) -> Result<u64> {
    let s = off
        .checked_add(n)
        .and_then(|e| b.get(off..e))
        .ok_or_else(|| err(Errno::ENOEXEC, "the ELF file is truncated"))?;
    Ok(s.iter().rev().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
}

/// Parses the ELF64 little-endian x86_64 header and program headers of `bytes` (the whole file,
/// or at least up to the end of the program headers and the interpreter path), as
/// `load_elf_binary` and `load_elf_phdrs` check them.
///
/// # Errors
/// `ENOEXEC` for a file that is not an ELF64 x86_64 `ET_EXEC`/`ET_DYN` image or is truncated;
/// `EINVAL` for a `PT_LOAD` whose file size exceeds its memory size, whose offset and address
/// disagree within a page, or that wraps; a bad `PT_INTERP`.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfImage> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(err(Errno::ENOEXEC, "no ELF magic"));
    }
    if rd(bytes, 4, 1)? != 2 || rd(bytes, 5, 1)? != 1 {
        return Err(err(Errno::ENOEXEC, "not ELFCLASS64 little-endian"));
    }
    let e_type = rd(bytes, 16, 2)? as u16;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(err(Errno::ENOEXEC, "neither ET_EXEC nor ET_DYN"));
    }
    if rd(bytes, 18, 2)? as u16 != EM_X86_64 {
        return Err(err(Errno::ENOEXEC, "not an x86_64 image"));
    }
    let entry = rd(bytes, 24, 8)?;
    let phoff = rd(bytes, 32, 8)?;
    let phentsize = rd(bytes, 54, 2)?;
    let phnum = rd(bytes, 56, 2)?;
    if phentsize != 56 {
        return Err(err(Errno::ENOEXEC, "e_phentsize is not sizeof(Elf64_Phdr)"));
    }
    // load_elf_phdrs: at most 64 KiB of headers, at least one.
    if phnum == 0 || phnum * 56 > 65536 {
        return Err(err(Errno::ENOEXEC, "no program headers, or more than 64 KiB of them"));
    }
    let phoff = usize::try_from(phoff).map_err(|_| err(Errno::ENOEXEC, "e_phoff is out of range"))?;
    let mut phdrs = Vec::new();
    let mut interp = None;
    for i in 0..phnum as usize {
        let o = phoff
            .checked_add(i * 56)
            .ok_or_else(|| err(Errno::ENOEXEC, "e_phoff is out of range"))?;
        let ph = ProgramHeader {
            p_type: rd(bytes, o, 4)? as u32,
            p_flags: rd(bytes, o + 4, 4)? as u32,
            p_offset: rd(bytes, o + 8, 8)?,
            p_vaddr: rd(bytes, o + 16, 8)?,
            p_filesz: rd(bytes, o + 32, 8)?,
            p_memsz: rd(bytes, o + 40, 8)?,
            p_align: rd(bytes, o + 48, 8)?,
        };
        if ph.p_type == PT_LOAD {
            if ph.p_filesz > ph.p_memsz {
                return Err(err(Errno::EINVAL, "a PT_LOAD's p_filesz exceeds its p_memsz"));
            }
            if (ph.p_vaddr ^ ph.p_offset) & !PAGE_MASK != 0 {
                return Err(err(
                    Errno::EINVAL,
                    "a PT_LOAD's offset and address differ within a page",
                ));
            }
            if ph.p_vaddr.checked_add(ph.p_memsz).is_none() || ph.p_offset.checked_add(ph.p_filesz).is_none() {
                return Err(err(Errno::EINVAL, "a PT_LOAD wraps"));
            }
        }
        if ph.p_type == PT_INTERP && interp.is_none() {
            // load_elf_binary: 2 bytes to PATH_MAX, NUL-terminated.
            if ph.p_filesz < 2 || ph.p_filesz > 4096 {
                return Err(err(Errno::ENOEXEC, "PT_INTERP size out of range"));
            }
            let start = usize::try_from(ph.p_offset).map_err(|_| err(Errno::ENOEXEC, "PT_INTERP offset"))?;
            let end = start
                .checked_add(ph.p_filesz as usize)
                .ok_or_else(|| err(Errno::ENOEXEC, "PT_INTERP offset"))?;
            let raw = bytes
                .get(start..end)
                .ok_or_else(|| err(Errno::ENOEXEC, "PT_INTERP past the end of the file"))?;
            if raw.last() != Some(&0) {
                return Err(err(Errno::ENOEXEC, "PT_INTERP is not NUL-terminated"));
            }
            let path = core::str::from_utf8(&raw[..raw.len() - 1])
                .map_err(|_| err(Errno::ENOEXEC, "PT_INTERP is not UTF-8"))?;
            interp = Some(String::from(path));
        }
        phdrs.push(ph);
    }
    if !phdrs.iter().any(|p| p.p_type == PT_LOAD) {
        return Err(err(Errno::ENOEXEC, "no PT_LOAD segment"));
    }
    Ok(ElfImage {
        e_type,
        entry,
        phdrs,
        interp,
    })
}

impl ElfImage {
    fn loads(&self) -> impl Iterator<Item = &ProgramHeader> {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD)
    }

    /// `total_mapping_size`: from the first `PT_LOAD`'s page to the end of the last one.
    fn total_mapping_size(&self) -> u64 {
        let first = self.loads().next().map_or(0, |p| p.p_vaddr & PAGE_MASK);
        let last = self.loads().last().map_or(0, |p| p.p_vaddr + p.p_memsz);
        last.saturating_sub(first)
    }

    /// `maximum_alignment`: the largest power-of-two `p_align` of the `PT_LOAD`s, at least a page.
    fn maximum_alignment(&self) -> u64 {
        self.loads()
            .map(|p| p.p_align)
            .filter(|a| a.is_power_of_two())
            .fold(PAGE_SIZE, u64::max)
    }
}

/// One image to load and the file it is read from.
#[derive(Clone)]
pub struct ExecImage<'a> {
    pub elf: &'a ElfImage,
    pub file: Arc<File>,
}

/// What [`Mm::exec`] needs beyond the images.
#[derive(Clone)]
pub struct ExecSpec<'a> {
    pub program: ExecImage<'a>,
    /// The interpreter named by the program's `PT_INTERP` (ignored if it has none).
    pub interp: Option<ExecImage<'a>>,
    /// The bytes `execve` copies to the stack: the filename, each environment string and each
    /// argument, each with its NUL.
    pub strings_len: u64,
    /// `STACK_TOP` (x86_64, 4-level paging: `TASK_SIZE`).
    pub stack_top: u64,
    pub vdso: VdsoLayout,
}

/// Where things went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecResult {
    /// The program's load bias.
    pub load_bias: u64,
    /// The interpreter's load address (0 without one).
    pub interp_base: u64,
    /// `AT_SYSINFO_EHDR`: the start of `[vdso]`.
    pub vdso: u64,
    /// The lowest string byte on the stack (`mm->arg_start`).
    pub strings_start: u64,
}

fn page_up(x: u64) -> Result<u64> {
    x.checked_add(PAGE_SIZE - 1)
        .map(|v| v & PAGE_MASK)
        .ok_or_else(|| err(Errno::EINVAL, "an address wraps"))
}

impl Mm {
    /// Builds the post-`execve` address space of `spec` on this (empty) `Mm` (see the module
    /// doc). The bounds (`start_brk`...) are set.
    ///
    /// # Errors
    /// What the kernel's `execve` would fail with at that step: `ENOMEM` when a segment does
    /// not fit, `EINVAL` for segments out of order or past `TASK_SIZE`, `ENOEXEC` when the
    /// program has `PT_INTERP` and no interpreter is given, or when the profile's architecture
    /// is not x86_64 (`docs/profiles.md`: only x86_64 layouts are built).
    pub fn exec(&mut self, spec: &ExecSpec<'_>) -> Result<ExecResult> {
        if self.vmas().next().is_some() {
            return Err(err(Errno::EINVAL, "exec needs an empty address space"));
        }
        // The layout below is binfmt_elf's on x86_64 (4 KiB pages, the x86 vDSO): another
        // guest architecture's exec is not built, and an x86_64 image is not one it can run
        // (elf_check_arch).
        if self.profile().arch.isa() != crate::arch::Isa::X86_64 {
            return Err(err(
                Errno::ENOEXEC,
                "exec is built for x86_64 guests only (the profile's architecture is another)",
            ));
        }
        // ELF_ET_DYN_BASE is computed from DEFAULT_MAP_WINDOW (the 47-bit window also with
        // 5-level paging).
        let window = self.profile().arch.map_window();
        // bprm_mm_init + copy_strings + setup_arg_pages.
        let strings_start = spec
            .stack_top
            .checked_sub(STRINGS_TOP_GAP)
            .and_then(|t| t.checked_sub(spec.strings_len))
            .ok_or_else(|| err(Errno::E2BIG, "the arguments do not fit"))?;
        let args_low = strings_start & PAGE_MASK;
        let arg_size = spec.stack_top - args_low;
        let rlim = self.profile().rlimit_stack & PAGE_MASK;
        let stack_start = if arg_size.saturating_add(STACK_EXPAND) > rlim {
            spec.stack_top.saturating_sub(rlim)
        } else {
            args_low.saturating_sub(STACK_EXPAND)
        };
        self.import_vma(ImportVma {
            start: VirtAddr(stack_start),
            end: VirtAddr(spec.stack_top),
            pgoff: PgOff(stack_start >> 12),
            flags: STACK_FLAGS,
            file: None,
            ops: ImportOps::Anonymous,
            anon: ImportAnon::New,
        })?;
        let elf = spec.program.elf;
        let has_interp = elf.interp.is_some();
        if has_interp && spec.interp.is_none() {
            return Err(err(
                Errno::ENOEXEC,
                "the program names an interpreter and none was given",
            ));
        }
        // load_elf_binary: the load bias.
        let first = elf.loads().next().map_or(0, |p| p.p_vaddr);
        let fixed_bias = match (elf.e_type, has_interp) {
            (ET_EXEC, _) => Some(0),
            (_, true) => {
                let base = (window / 3 * 2) & PAGE_MASK;
                // ELF_ET_DYN_BASE, ELF_PAGESTART'd.
                let bias = base.wrapping_sub(first & PAGE_MASK);
                Some(bias & !(elf.maximum_alignment() - 1))
            }
            (_, false) => None,
        };
        let (load_bias, elf_brk) = self.load_image(&spec.program, fixed_bias)?;
        let mut interp_base = 0;
        if let (true, Some(interp)) = (has_interp, &spec.interp) {
            let fixed = if interp.elf.e_type == ET_EXEC { Some(0) } else { None };
            interp_base = self.load_image(interp, fixed)?.0;
        }
        let vdso = self.map_vdso(VirtAddr(0), spec.vdso)?;
        // A static PIE's heap starts at ELF_ET_DYN_BASE, page aligned up, even with
        // randomisation off (host probe: `gcc -static-pie` → start_brk 0x555555555000 while
        // the image is at 0x7ffff7f47000).
        let brk = if elf.e_type == ET_DYN && !has_interp {
            page_up(window / 3 * 2)?
        } else {
            page_up(elf_brk)?
        };
        // start_data/end_data: the writable segment's file part (load_elf_binary).
        let (mut start_data, mut end_data) = (0, 0);
        for p in elf.loads() {
            let a = p.p_vaddr.wrapping_add(load_bias);
            if p.p_flags & 2 != 0 || start_data == 0 {
                start_data = start_data.max(a);
            }
            end_data = end_data.max(a + p.p_filesz);
        }
        self.set_bounds(MmBounds {
            start_data: start_data.min(end_data),
            end_data,
            start_brk: brk,
            brk,
            start_stack: strings_start,
        })?;
        Ok(ExecResult {
            load_bias,
            interp_base,
            vdso: vdso.0,
            strings_start,
        })
    }

    /// Maps every `PT_LOAD` of `img` (`elf_load` for each, the first with the whole image's
    /// size). `bias`: `Some` for a fixed load bias, `None` for an `mmap(NULL)` placement.
    /// Returns the bias and the end of the bss.
    fn load_image(&mut self, img: &ExecImage<'_>, bias: Option<u64>) -> Result<(u64, u64)> {
        let total = page_up(img.elf.total_mapping_size())?;
        let mut load_bias = bias.unwrap_or(0);
        let mut first = true;
        let mut elf_brk = 0;
        for p in img.elf.loads() {
            let pageoff = p.p_vaddr & !PAGE_MASK;
            let vaddr = p.p_vaddr.wrapping_add(load_bias);
            let start = vaddr & PAGE_MASK;
            let prot = p.prot();
            let placed_by_kernel = first && bias.is_none();
            let mut map_start = start;
            if p.p_filesz != 0 {
                // elf_map: the file part, page-rounded.
                let size = page_up(p.p_filesz + pageoff)?;
                let off = p.p_offset - pageoff;
                let len = if first { total.max(size) } else { size };
                let flags = if placed_by_kernel {
                    MapFlags::PRIVATE
                } else {
                    MapFlags::PRIVATE.union(MapFlags::FIXED_NOREPLACE)
                };
                let hint = if placed_by_kernel { 0 } else { start };
                let addr = self.mmap(VirtAddr(hint), len, prot, flags, Some(&img.file), off)?;
                if len > size {
                    self.munmap(VirtAddr(addr.0 + size), len - size)?;
                }
                map_start = addr.0;
            } else if placed_by_kernel {
                return Err(err(Errno::EINVAL, "the first PT_LOAD has no file part"));
            }
            if placed_by_kernel {
                load_bias = map_start.wrapping_sub(p.p_vaddr & PAGE_MASK);
            }
            let vaddr = p.p_vaddr.wrapping_add(load_bias);
            // The bss beyond the last file page: anonymous (vm_brk_flags).
            let zero_start = page_up(vaddr + p.p_filesz)?;
            let zero_end = page_up(vaddr + p.p_memsz)?;
            task_size_check(self, zero_end)?;
            if zero_end > zero_start {
                let exec = if prot.contains(Prot::EXEC) {
                    vma_flags![Exec]
                } else {
                    VmaFlags::EMPTY
                };
                self.vm_brk_flags(VirtAddr(zero_start), zero_end - zero_start, exec)?;
            }
            elf_brk = elf_brk.max(vaddr + p.p_memsz);
            first = false;
        }
        Ok((load_bias, elf_brk))
    }
}

fn task_size_check(mm: &Mm, end: u64) -> Result<u64> {
    if end > mm.profile().task_size {
        return Err(err(Errno::EINVAL, "a segment reaches past TASK_SIZE"));
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_elf(b"").unwrap_err().errno, Errno::ENOEXEC);
        assert_eq!(parse_elf(b"\x7fELF\x02\x01").unwrap_err().errno, Errno::ENOEXEC);
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[16] = 3;
        h[18] = 62;
        h[32] = 64;
        h[54] = 56;
        h[56] = 1;
        // The header claims a program header past the end.
        assert_eq!(parse_elf(&h).unwrap_err().errno, Errno::ENOEXEC);
    }

    /// A one-segment ET_EXEC image: 64-byte header, one PT_LOAD r-x at 0x400000.
    fn tiny_exec() -> Vec<u8> {
        let mut b = alloc::vec![0u8; 0x200];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little endian
        b[6] = 1;
        b[16] = 2; // ET_EXEC
        b[18] = 62; // EM_X86_64
        b[20] = 1;
        b[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        b[32] = 64; // e_phoff
        b[52] = 64; // e_ehsize
        b[54] = 56; // e_phentsize
        b[56] = 1; // e_phnum
        let ph = 64;
        b[ph] = 1; // PT_LOAD
        b[ph + 4] = 5; // R X
        b[ph + 16..ph + 24].copy_from_slice(&0x40_0000u64.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&0x200u64.to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&0x200u64.to_le_bytes());
        b[ph + 48..ph + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        b
    }

    /// exec builds x86_64 layouts only: another guest architecture gets `ENOEXEC`, as its
    /// kernel's `elf_check_arch` refuses an x86_64 image; x86_64 maps the image.
    #[test]
    fn exec_is_x86_64_only() {
        let elf = parse_elf(&tiny_exec()).expect("a valid image");
        for (arch, ok) in [
            ("x86_64", true),
            ("i386", false),
            ("arm64-16k", false),
            ("riscv64", false),
        ] {
            let mut mm = Mm::new(crate::Profile::for_arch(arch).unwrap());
            let file = mm.shmem().memfd_create("tiny", 0x200);
            let spec = ExecSpec {
                program: ExecImage { elf: &elf, file },
                interp: None,
                strings_len: 32,
                stack_top: mm.profile().task_size,
                vdso: VdsoLayout::HOST_6_18,
            };
            let r = mm.exec(&spec);
            assert_eq!(r.is_ok(), ok, "{arch}: {r:?}");
            if !ok {
                assert_eq!(r.unwrap_err().errno, Errno::ENOEXEC);
                assert_eq!(mm.vmas().count(), 0, "{arch}: nothing was mapped");
            }
        }
    }
}

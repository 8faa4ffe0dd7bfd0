//! `/proc/PID/maps` and the `VmFlags` line of `/proc/PID/smaps`, in the kernel's exact text.
//!
//! Mirrors `fs/proc/task_mmu.c:show_map_vma`, `show_vma_header_prefix`, `get_vma_name` and
//! `show_smap_vma_flags` (\[H\] 6.18; `docs/reference/vma-rules.md` section 6).
//!
//! A VMA without a file and without a driver name is named after the program's addresses
//! ([`MmBounds`], `include/linux/mm.h:vma_is_initial_heap`, `vma_is_initial_stack`):
//! `[heap]` if `vm_start < brk && vm_end > start_brk` (strictly: host-verified on 6.18.44, an
//! anonymous VMA ending exactly at `start_brk` while `brk == start_brk` has no name), else
//! `[stack]` if `vm_start <= start_stack <= vm_end`.
//!
//! A maps line is `START-END PERMS OFFSET MAJ:MIN INODE ` followed, if the VMA has a name, by
//! padding to column 73 and the name. Anonymous VMAs show offset 0 whatever their `vm_pgoff`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::file::DevId;
use crate::flags::VmaBit;
use crate::mm::MmBounds;
use crate::vma::Vma;

/// One `/proc/PID/maps` line, as fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsRow {
    pub start: u64,
    pub end: u64,
    /// `r`/`-`, `w`/`-`, `x`/`-`, then `s` (VM_MAYSHARE) or `p`.
    pub perms: [u8; 4],
    /// `vm_pgoff << PAGE_SHIFT` for a VMA with a file, else 0.
    pub offset: u64,
    pub dev: DevId,
    pub ino: u64,
    /// The name column, or empty.
    pub name: String,
}

/// The fields of a VMA's maps line, without a program's addresses (no `[heap]` or `[stack]`).
pub fn maps_row(v: &Vma) -> MapsRow {
    maps_row_in(v, None)
}

/// `get_vma_name`'s `[heap]` / `[stack]` for a VMA that has no other name.
fn initial_heap_or_stack(v: &Vma, bounds: Option<MmBounds>) -> Option<&'static str> {
    let b = bounds?;
    let (start, end) = (v.start().get(), v.end().get());
    if start < b.brk && end > b.start_brk {
        Some("[heap]")
    } else if start <= b.start_stack && end >= b.start_stack {
        Some("[stack]")
    } else {
        None
    }
}

/// The fields of a VMA's maps line in an address space with these program addresses
/// ([`crate::Mm::bounds`]).
pub fn maps_row_in(v: &Vma, bounds: Option<MmBounds>) -> MapsRow {
    let f = v.flags();
    let bit = |b: VmaBit, c: u8| if f.test(b) { c } else { b'-' };
    let perms = [
        bit(VmaBit::Read, b'r'),
        bit(VmaBit::Write, b'w'),
        bit(VmaBit::Exec, b'x'),
        if f.test(VmaBit::MayShare) { b's' } else { b'p' },
    ];
    let (offset, dev, ino, name) = match v.file() {
        Some(file) => (
            v.pgoff().bytes(),
            file.inode().dev(),
            file.inode().ino(),
            String::from(file.path()),
        ),
        None => {
            let name = v
                .ops()
                .driver()
                .and_then(|o| o.name().and_then(|hook| hook.vma_name(v)))
                .or_else(|| initial_heap_or_stack(v, bounds))
                .map(String::from)
                .unwrap_or_default();
            (0, DevId::default(), 0, name)
        }
    };
    MapsRow {
        start: v.start().get(),
        end: v.end().get(),
        perms,
        offset,
        dev,
        ino,
        name,
    }
}

/// The kernel's maps line for a VMA (without the newline), without a program's addresses.
pub fn maps_line(v: &Vma) -> String {
    maps_line_in(v, None)
}

/// The kernel's maps line for a VMA (without the newline) in an address space with these
/// program addresses.
pub fn maps_line_in(v: &Vma, bounds: Option<MmBounds>) -> String {
    let r = maps_row_in(v, bounds);
    let perms = core::str::from_utf8(&r.perms).unwrap_or("????");
    let mut line = format!(
        "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
        r.start, r.end, perms, r.offset, r.dev.major, r.dev.minor, r.ino
    );
    if !r.name.is_empty() {
        // seq_pad: pad to 72 columns, then one space.
        while line.len() < 72 {
            line.push(' ');
        }
        line.push(' ');
        line.push_str(&r.name);
    }
    line
}

/// The two-letter `VmFlags` codes of a VMA, in the kernel's order.
pub fn vmflags(v: &Vma, soft_dirty: bool) -> Vec<&'static str> {
    v.flags().smaps_codes(soft_dirty).collect()
}

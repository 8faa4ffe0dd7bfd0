//! The kernel function behind each error the engine makes ([`Error::site`]).
//!
//! An [`Error`] records where it was made ([`Error::at`], by `#[track_caller]` on `err` and
//! [`Error::new`]). The build script lists where every function of this crate's source starts,
//! so that a location names its engine function; [`SITES`] maps each engine function that fails
//! to the kernel function (Linux 6.18) that makes the same checks. The engine's functions follow
//! the kernel's, so the map is mostly one to one; where one engine function does the checks of
//! two kernel functions (`expand_downwards` and `acct_stack_growth`), it names the one the
//! syscall path enters. Functions with no kernel counterpart (the importer, the test switch)
//! say so with a `mmprep:` prefix.
//!
//! A unit test checks that every `err(` of the engine's source finds its entry: an engine
//! function that starts failing must be added here.
//!
//! [`Error`]: crate::Error
//! [`Error::site`]: crate::Error::site
//! [`Error::at`]: crate::Error::at
//! [`Error::new`]: crate::Error::new

include!(concat!(env!("OUT_DIR"), "/fns.rs"));

/// (engine file under `src/`, engine function, kernel `file.c:function`).
pub const SITES: &[(&str, &str, &str)] = &[
    (
        "backend.rs",
        "new",
        "mmprep:Planner::new (the host granule, no kernel call)",
    ),
    (
        "backend.rs",
        "plan",
        "mmprep:Planner::plan (an advice with no host op, no kernel call)",
    ),
    (
        "driver/action.rs",
        "remap_prepare",
        "mm/memory.c:remap_pfn_range_prepare",
    ),
    ("driver/action.rs", "remap_range", "mm/memory.c:remap_pfn_range_prepare"),
    ("driver/action.rs", "get_remap_pgoff", "mm/memory.c:get_remap_pgoff"),
    ("driver/action.rs", "prepare", "mm/util.c:mmap_action_prepare"),
    (
        "driver/action.rs",
        "install_ptes",
        "mm/memory.c:remap_pfn_range_complete",
    ),
    (
        "driver/desc.rs",
        "try_clear_maywrite",
        "mmprep:VmaDesc::try_clear_maywrite (a driver's vm_flags_clear)",
    ),
    ("driver/file_ops.rs", "mmap_prepare", "mm/mmap.c:do_mmap"),
    ("driver/file_ops.rs", "mmap", "mm/mmap.c:do_mmap"),
    ("driver/pipeline.rs", "call_mmap_prepare", "mm/vma.c:call_mmap_prepare"),
    ("driver/legacy.rs", "vm_insert_page", "mm/memory.c:vm_insert_page"),
    (
        "driver/legacy.rs",
        "remap_pfn_range",
        "mm/memory.c:remap_pfn_range_notrack",
    ),
    ("mm/merge.rs", "vma_modify", "mm/vma.c:vma_modify"),
    ("exec.rs", "rd", "fs/binfmt_elf.c:elf_read"),
    (
        "exec.rs",
        "parse_elf",
        "fs/binfmt_elf.c:load_elf_binary (load_elf_phdrs, the PT_INTERP checks)",
    ),
    ("exec.rs", "page_up", "fs/binfmt_elf.c:elf_load"),
    ("exec.rs", "exec", "fs/binfmt_elf.c:load_elf_binary"),
    ("exec.rs", "load_image", "fs/binfmt_elf.c:elf_load"),
    ("exec.rs", "task_size_check", "fs/binfmt_elf.c:elf_load"),
    ("mm/brk.rs", "vm_brk_flags", "mm/mmap.c:vm_brk_flags"),
    ("mm/brk.rs", "set_bounds", "mmprep:Mm::set_bounds (what execve decides)"),
    ("mm/brk.rs", "check_brk_limits", "mm/mmap.c:check_brk_limits"),
    ("mm/brk.rs", "do_brk_flags", "mm/vma.c:do_brk_flags"),
    ("mm/brk.rs", "check_data_rlimit", "include/linux/mm.h:check_data_rlimit"),
    ("mm/fault.rs", "expand_downwards", "mm/vma.c:expand_downwards"),
    (
        "mm/fault.rs",
        "populate_vma_page_range",
        "mm/gup.c:populate_vma_page_range",
    ),
    ("mm/import.rs", "import_vma", "mmprep:Mm::import_vma (no kernel call)"),
    ("mm/layout.rs", "get_unmapped_area", "mm/mmap.c:__get_unmapped_area"),
    (
        "mm/layout.rs",
        "arch_get_unmapped_area",
        "arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area",
    ),
    (
        "mm/layout.rs",
        "arch_get_unmapped_area_topdown",
        "arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area_topdown",
    ),
    (
        "mm/layout.rs",
        "generic_get_unmapped_area_topdown",
        "mm/mmap.c:generic_get_unmapped_area_topdown",
    ),
    (
        "mm/layout.rs",
        "generic_get_unmapped_area",
        "mm/mmap.c:generic_get_unmapped_area",
    ),
    ("mm/madvise.rs", "madvise", "mm/madvise.c:do_madvise"),
    ("mm/madvise.rs", "madvise_walk_vmas", "mm/madvise.c:madvise_walk_vmas"),
    (
        "mm/madvise.rs",
        "madvise_vma_behavior",
        "mm/madvise.c:madvise_vma_behavior",
    ),
    (
        "mm/madvise.rs",
        "madvise_dontneed_free",
        "mm/madvise.c:madvise_dontneed_free",
    ),
    ("mm/madvise.rs", "madvise_remove", "mm/madvise.c:madvise_remove"),
    (
        "mm/madvise.rs",
        "madvise_guard_install",
        "mm/madvise.c:madvise_guard_install",
    ),
    (
        "mm/madvise.rs",
        "madvise_guard_remove",
        "mm/madvise.c:madvise_guard_remove",
    ),
    ("mm/madvise.rs", "madvise_collapse", "mm/khugepaged.c:madvise_collapse"),
    ("mm/madvise.rs", "madvise_populate", "mm/madvise.c:madvise_populate"),
    ("mm/mlock.rs", "mlock2", "mm/mlock.c:sys_mlock2"),
    ("mm/mlock.rs", "do_mlock", "mm/mlock.c:do_mlock"),
    ("mm/mlock.rs", "apply_vma_lock_flags", "mm/mlock.c:apply_vma_lock_flags"),
    ("mm/mlock.rs", "mlockall", "mm/mlock.c:sys_mlockall"),
    ("mm/msync.rs", "msync", "mm/msync.c:sys_msync"),
    ("mm/mmap.rs", "mmap", "arch/x86/kernel/sys_x86_64.c:sys_mmap"),
    ("mm/mmap.rs", "mmap_pgoff", "mm/mmap.c:ksys_mmap_pgoff"),
    ("mm/mmap.rs", "do_mmap", "mm/mmap.c:do_mmap"),
    ("mm/mmap.rs", "mmap_setup", "mm/vma.c:__mmap_setup"),
    (
        "mm/mmap.rs",
        "check_prepared_flags",
        "mmprep:check_prepared_flags (after mm/vma.c:call_mmap_prepare)",
    ),
    ("mm/mmap.rs", "call_legacy_mmap", "mm/vma.c:__mmap_new_file_vma"),
    ("mm/mod.rs", "alloc", "mmprep:Mm::fail_allocation_in (a failed kmalloc)"),
    (
        "mm/mod.rs",
        "alloc_from",
        "mmprep:Mm::fail_allocation_in (a failed kmalloc)",
    ),
    ("mm/mod.rs", "charge", "mm/util.c:__vm_enough_memory"),
    ("mm/mod.rs", "checked_range_end", "mm/madvise.c:check_input_range"),
    ("mm/mprotect.rs", "mprotect", "mm/mprotect.c:do_mprotect_pkey"),
    ("mm/mprotect.rs", "mprotect_fixup", "mm/mprotect.c:mprotect_fixup"),
    ("mm/mremap.rs", "check_mremap_params", "mm/mremap.c:check_mremap_params"),
    ("mm/mremap.rs", "check_prep_vma", "mm/mremap.c:check_prep_vma"),
    ("mm/mremap.rs", "remap_move", "mm/mremap.c:remap_move"),
    ("mm/mremap.rs", "expand_vma", "mm/mremap.c:expand_vma"),
    ("mm/mremap.rs", "expand_vma_in_place", "mm/mremap.c:expand_vma_in_place"),
    ("mm/mremap.rs", "mremap_to", "mm/mremap.c:mremap_to"),
    ("mm/mremap.rs", "prep_move_vma", "mm/mremap.c:prep_move_vma"),
    ("mm/mremap.rs", "copy_vma", "mm/vma.c:copy_vma"),
    ("mm/mremap.rs", "unmap_source_vma", "mm/mremap.c:unmap_source_vma"),
    ("mm/mseal.rs", "mseal", "mm/mseal.c:do_mseal"),
    ("mm/munmap.rs", "munmap", "mm/vma.c:do_vmi_munmap"),
    ("mm/munmap.rs", "gather_munmap_vmas", "mm/vma.c:vms_gather_munmap_vmas"),
    ("mm/munmap.rs", "gather_one", "mm/vma.c:vms_gather_munmap_vmas"),
    ("mm/special.rs", "may_split", "mm/mmap.c:special_mapping_split"),
    (
        "mm/special.rs",
        "install_special_mapping",
        "mm/mmap.c:__install_special_mapping",
    ),
    ("mm/special.rs", "map_vdso", "arch/x86/entry/vdso/vma.c:map_vdso"),
    ("mm/split.rs", "split_vma", "mm/vma.c:split_vma"),
];

/// The engine file under `src/` that `file` (a `Location::file`) names, if it is one of this
/// crate's. Matches on the path's end, so that it works whatever directory the crate was
/// built from.
fn engine_file(file: &str) -> Option<&'static str> {
    let file = file.strip_prefix("./").unwrap_or(file);
    FNS.iter().map(|(f, _, _)| *f).find(|f| {
        file.len() > f.len()
            && file.ends_with(f)
            && ["mmprep/src/", "mmprep\\src\\"]
                .iter()
                .any(|dir| file[..file.len() - f.len()].ends_with(dir))
    })
}

/// The engine function whose body holds line `line` of `file` (a `Location::file`).
pub fn engine_function(file: &str, line: u32) -> Option<(&'static str, &'static str)> {
    let rel = engine_file(file)?;
    FNS.iter()
        .rfind(|(f, start, _)| *f == rel && *start <= line)
        .map(|(f, _, name)| (*f, *name))
}

/// The kernel function (`path/file.c:function`) behind an error made at `file:line`, or `None`
/// outside the engine.
pub fn kernel_function(file: &str, line: u32) -> Option<&'static str> {
    let (rel, name) = engine_function(file, line)?;
    SITES
        .iter()
        .find(|(f, n, _)| *f == rel && *n == name)
        .map(|(_, _, site)| *site)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Errno, Error, MapFlags, Prot, VirtAddr, mm::Mm, profile::Profile};

    #[test]
    fn every_error_the_engine_makes_has_a_kernel_function() {
        assert!(ERRS.len() > 100, "the build script found the engine's errors");
        let missing: alloc::vec::Vec<_> = ERRS
            .iter()
            .filter(|(f, line)| {
                let path = alloc::format!("crates/mmprep/src/{f}");
                kernel_function(&path, *line).is_none()
            })
            .collect();
        assert!(missing.is_empty(), "no entry in SITES for the errors at {missing:?}");
    }

    #[test]
    fn a_real_error_names_its_kernel_function() {
        let mut mm = Mm::new(Profile::reference_host());
        let e = mm
            .mmap(
                VirtAddr(0),
                0,
                Prot::READ,
                MapFlags::PRIVATE | MapFlags::ANONYMOUS,
                None,
                0,
            )
            .unwrap_err();
        assert_eq!(e.errno, Errno::EINVAL);
        assert_eq!(e.site(), Some("mm/mmap.c:do_mmap"));
        let e = mm.munmap(VirtAddr(0x1001), 4096).unwrap_err();
        assert_eq!(e.site(), Some("mm/vma.c:do_vmi_munmap"));
        // `checked_range_end` is `#[track_caller]`: its errors belong to the syscall.
        let e = mm.mseal(VirtAddr(0x1001), 4096, 0).unwrap_err();
        assert_eq!(e.site(), Some("mm/mseal.c:do_mseal"));
        // Made outside the engine (a driver): no kernel function.
        assert_eq!(Error::new(Errno::EBUSY, "test").site(), None);
    }
}

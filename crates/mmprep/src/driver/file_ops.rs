//! What a driver or filesystem provides for mapping its files: `struct file_operations`.
//!
//! `mmap` asks the open file's operations how to map it: a newer driver provides
//! `mmap_prepare`, which sees a [`VmAreaDesc`] before any merge; an older one a legacy `mmap`,
//! which sees the new VMA after the merge attempt. The operations also choose where an un-fixed
//! mapping goes and which `mmap` flags the file accepts.
//!
//! Mirrors `include/linux/fs.h:struct file_operations`, `can_mmap_file`, \[H\] 6.18 / \[N\].
//!
//! - [`FileOperations`]: the table; [`MmapPrepare`] and [`LegacyMmap`], its two mapping hooks.
//! - [`MmapHook`]: which mapping hook a file has.
//! - [`AreaPolicy`], [`FopFlags`]: `get_unmapped_area` and `fop_flags`.

use crate::driver::desc::VmAreaDesc;
use crate::driver::legacy::LegacyVma;
use crate::errno::Result;
use crate::uapi::MapFlags;

/// `fop_flags` bits that `mmap` looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FopFlags(pub u32);

impl FopFlags {
    /// `FOP_MMAP_SYNC`: `MAP_SHARED_VALIDATE` may carry `MAP_SYNC`.
    pub const MMAP_SYNC: FopFlags = FopFlags(1);
    /// `FOP_UNSIGNED_OFFSET`: any offset is mappable.
    pub const UNSIGNED_OFFSET: FopFlags = FopFlags(2);
    /// Are all these set?
    pub const fn contains(self, other: FopFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Which mapping hook a file provides. The kernel refuses a file with neither, and one with both
/// (`include/linux/fs.h:can_mmap_file`), with `ENODEV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmapHook {
    /// No hook: not mappable (a directory, a pipe).
    None,
    /// `f_op->mmap_prepare`: the driver sees a descriptor before any merge.
    Prepare,
    /// `f_op->mmap` (legacy): the driver sees the new VMA after the merge attempt failed.
    Legacy,
    /// Both set: a driver bug the kernel refuses.
    Both,
}

/// How a file chooses where an un-fixed mapping of it goes (`f_op->get_unmapped_area`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaPolicy {
    /// None set: the mm's own search.
    Default,
    /// `thp_get_unmapped_area` (ext4, private `/dev/zero`): 2 MiB aligned where possible.
    Thp,
    /// `shmem_get_unmapped_area` (shmem, memfd, shared `/dev/zero`): like the default while
    /// shmem huge pages are off.
    Shmem,
}

/// What a driver or filesystem provides for mapping its files (`struct file_operations`).
///
/// The two mapping hooks are capability methods, as in [`crate::vma::VmOperations`]: implement
/// [`MmapPrepare`] and return `Some(self)` from [`FileOperations::mmap_prepare`] (or [`LegacyMmap`]
/// and [`FileOperations::mmap`] for the legacy hook). Which hook a file has ([`MmapHook`],
/// `mmap_hook()` on `dyn FileOperations`) follows from them. The hook must keep no state: the
/// mapping may still merge with a neighbour, or fail, after it returns. Per-mapping work belongs
/// in `vm_ops->mapped`.
pub trait FileOperations: Send + Sync {
    /// A short name for messages (`"shmem"`, `"ext4"`).
    fn name(&self) -> &'static str;

    /// `f_op->mmap_prepare`, or `None`.
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        None
    }

    /// `f_op->mmap` (legacy), or `None`.
    fn mmap(&self) -> Option<&dyn LegacyMmap> {
        None
    }

    /// `f_op->get_unmapped_area`, which may depend on the mapping's flags (`/dev/zero` places
    /// shared and private mappings differently).
    fn area_policy(&self, flags: MapFlags) -> AreaPolicy {
        let _ = flags;
        AreaPolicy::Default
    }

    /// `f_op->fop_flags`.
    fn fop_flags(&self) -> FopFlags {
        FopFlags::default()
    }
}

impl dyn FileOperations {
    /// Which mapping hook this file has, derived from its members (`can_mmap_file`).
    pub fn mmap_hook(&self) -> MmapHook {
        match (self.mmap_prepare().is_some(), self.mmap().is_some()) {
            (true, true) => MmapHook::Both,
            (true, false) => MmapHook::Prepare,
            (false, true) => MmapHook::Legacy,
            (false, false) => MmapHook::None,
        }
    }
}

/// `f_op->mmap_prepare(desc)`: inspect and adjust the proposed mapping. Called after any
/// `MAP_FIXED` range was unmapped and before the merge attempt (`mm/vma.c:call_mmap_prepare`).
pub trait MmapPrepare {
    /// The hook.
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()>;
}

/// `f_op->mmap(file, vma)` (legacy): set up the new VMA. Called after the merge attempt (made
/// with the values from before this hook), and only if nothing merged
/// (`mm/vma.c:__mmap_new_file_vma`).
pub trait LegacyMmap {
    /// The hook.
    fn mmap(&self, vma: &mut LegacyVma<'_>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Prepare;
    impl FileOperations for Prepare {
        fn name(&self) -> &'static str {
            "prepare"
        }
        fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
            Some(self)
        }
    }
    impl MmapPrepare for Prepare {
        fn mmap_prepare(&self, _desc: &mut VmAreaDesc<'_>) -> Result<()> {
            Ok(())
        }
    }

    struct Neither;
    impl FileOperations for Neither {
        fn name(&self) -> &'static str {
            "neither"
        }
    }

    /// Which hook a file has follows from its members (`can_mmap_file`).
    #[test]
    fn mmap_hook_follows_the_members_provided() {
        let p: &dyn FileOperations = &Prepare;
        assert_eq!(p.mmap_hook(), MmapHook::Prepare);
        let n: &dyn FileOperations = &Neither;
        assert_eq!(n.mmap_hook(), MmapHook::None);
    }
}

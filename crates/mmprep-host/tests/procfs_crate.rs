//! The small `/proc` parser (`mmprep_host::procfs`) proven against the `procfs` crate: both
//! parse this process's `/proc/self/smaps`, and every VMA and every field must agree (range,
//! perms, offset, device, inode, name, `VmFlags`, whether it holds anonymous pages).
#![cfg(target_os = "linux")]

use mmprep_host::procfs::{ProcVma, read_self};
use procfs::process::{MMapPath, MemoryMap, Process, VmFlags};

/// The name column as the kernel printed it, from `procfs`'s typed path.
fn name(path: &MMapPath) -> String {
    match path {
        MMapPath::Path(p) => p.display().to_string(),
        MMapPath::Heap => "[heap]".into(),
        MMapPath::Stack => "[stack]".into(),
        MMapPath::TStack(tid) => format!("[stack:{tid}]"),
        MMapPath::Vdso => "[vdso]".into(),
        MMapPath::Vvar => "[vvar]".into(),
        MMapPath::Vsyscall => "[vsyscall]".into(),
        MMapPath::Rollup => "[rollup]".into(),
        MMapPath::Anonymous => String::new(),
        MMapPath::Other(s) => format!("[{s}]"),
        other => panic!("a name this test does not know: {other:?}"),
    }
}

fn same(ours: &ProcVma, theirs: &MemoryMap) {
    let what = format!("{ours:?} vs {theirs:?}");
    assert_eq!((ours.start, ours.end), theirs.address, "{what}");
    assert_eq!(
        std::str::from_utf8(&ours.perms).unwrap(),
        theirs.perms.as_str(),
        "{what}"
    );
    assert_eq!(ours.offset, theirs.offset, "{what}");
    assert_eq!((ours.dev.0 as i32, ours.dev.1 as i32), theirs.dev, "{what}");
    assert_eq!(ours.inode, theirs.inode, "{what}");
    assert_eq!(ours.name, name(&theirs.pathname), "{what}");
    // Anonymous pages: what the importer reads to give a VMA an anon_vma.
    let field = |key: &str| theirs.extension.map.get(key).copied().unwrap_or(0);
    let anon = field("Anonymous") > 0 || field("AnonHugePages") > 0 || field("Swap") > 0;
    assert_eq!(ours.anon_pages, anon, "{what}");
    // Every flag procfs read is one of ours; every one of ours that procfs has a name for, it read.
    let theirs_flags = theirs.extension.vm_flags;
    for (flag_name, _) in theirs_flags.iter_names() {
        assert!(
            ours.flags.contains(&flag_name.to_ascii_lowercase().as_str()),
            "{flag_name}: {what}"
        );
    }
    for code in &ours.flags {
        if let Some(flag) = VmFlags::from_name(&code.to_ascii_uppercase()) {
            assert!(theirs_flags.contains(flag), "{code}: {what}");
        }
    }
}

#[test]
fn smaps_of_this_process_agrees_with_the_procfs_crate() {
    // Reading allocates, and an allocation may add or grow a mapping: compare a moment when two
    // reads of ours around the crate's read agree.
    for _ in 0..20 {
        let before = read_self(true).unwrap();
        let theirs = Process::myself().unwrap().smaps().unwrap();
        let after = read_self(true).unwrap();
        if before != after || before.len() != theirs.0.len() {
            continue;
        }
        assert!(!before.is_empty());
        for (ours, theirs) in before.iter().zip(&theirs.0) {
            same(ours, theirs);
        }
        return;
    }
    panic!("/proc/self/smaps never held still for two reads");
}

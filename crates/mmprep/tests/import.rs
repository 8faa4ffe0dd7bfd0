//! `Mm::import_vma`: VMAs put in place as a live process has them, checked and counted.

use mmprep::flags::VmaFlags;
use mmprep::mm::{ImportAnon, ImportOps, ImportVma, flags_from_smaps_codes};
use mmprep::{Errno, Mm, PgOff, Profile, Prot, VirtAddr};

fn anon(start: u64, end: u64, codes: &str, anon: ImportAnon) -> ImportVma {
    ImportVma {
        start: VirtAddr(start),
        end: VirtAddr(end),
        pgoff: PgOff(start >> 12),
        flags: flags_from_smaps_codes(codes.split_whitespace()),
        file: None,
        ops: ImportOps::Anonymous,
        anon,
    }
}

#[test]
fn checks_and_counters() {
    let mut mm = Mm::new(Profile::reference_host());
    mm.import_vma(anon(0x10000, 0x12000, "rd wr mr mw me ac", ImportAnon::New))
        .expect("import");
    mm.import_vma(anon(
        0x12000,
        0x13000,
        "rd mr mw me ac",
        ImportAnon::SameAs(VirtAddr(0x10000)),
    ))
    .expect("import");
    mm.import_vma(anon(0x20000, 0x21000, "rd ex mr mw me", ImportAnon::None))
        .expect("import");
    mm.check_invariants();
    let s = mm.stats();
    assert_eq!((s.total_vm, s.data_vm, s.exec_vm, s.committed), (4, 2, 1, 3));
    let e = |r: mmprep::Result<()>| r.expect_err("refused").errno;
    assert_eq!(
        e(mm.import_vma(anon(0x11000, 0x14000, "rd", ImportAnon::None))),
        Errno::EEXIST
    );
    assert_eq!(
        e(mm.import_vma(anon(0x30000, 0x30000, "rd", ImportAnon::None))),
        Errno::EINVAL
    );
    assert_eq!(
        e(mm.import_vma(anon(0x30000, 0x31000, "rd sh ms", ImportAnon::None))),
        Errno::EINVAL
    );
    assert_eq!(
        e(mm.import_vma(anon(0x30000, 0x31000, "rd", ImportAnon::SameAs(VirtAddr(0x20000))))),
        Errno::EINVAL
    );
    let mut special = anon(0x40000, 0x41000, "rd ex mr mw me de", ImportAnon::None);
    special.ops = ImportOps::Special("[vdso]");
    mm.import_vma(special).expect("vdso");
    assert!(mm.maps().contains("[vdso]"));
    mm.check_invariants();
    assert_eq!(flags_from_smaps_codes(["xx", ""]), VmaFlags::EMPTY);
}

/// Two pieces of one split VMA share an anon_vma, so making their flags equal merges them,
/// as `mprotect` merges the halves of a VMA it split (vma-rules: same anon_vma merges).
#[test]
fn split_pieces_share_an_anon_vma_and_merge_back() {
    let mut mm = Mm::new(Profile::reference_host());
    mm.import_vma(anon(0x10000, 0x12000, "rd wr mr mw me ac", ImportAnon::New))
        .expect("import");
    mm.import_vma(anon(
        0x12000,
        0x13000,
        "rd mr mw me ac",
        ImportAnon::SameAs(VirtAddr(0x10000)),
    ))
    .expect("import");
    mm.mprotect(VirtAddr(0x10000), 0x2000, Prot::READ).expect("mprotect");
    mm.check_invariants();
    assert_eq!(mm.vmas().count(), 1, "{mm:?}");
}

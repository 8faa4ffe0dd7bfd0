//! The headers say what the engine says: every `VMA_*_BIT` has the engine's [`VmaBit`] number,
//! and `struct vm_area_desc` is the HOWTO's, field for field.

use mmprep::flags::VmaBit;

fn header(path: &str) -> &'static str {
    mmprep_c::headers()
        .find(|(p, _)| *p == path)
        .unwrap_or_else(|| panic!("{path} is shipped"))
        .1
}

/// `VMA_MAYREAD_BIT` and `MayRead` both become `mayread`.
fn normal(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

#[test]
fn vma_bit_numbers_are_the_engines() {
    let mut seen = Vec::new();
    for line in header("linux/mm_types.h").lines() {
        let mut words = line.split_whitespace();
        let (Some("#define"), Some(name), Some(value)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Some(bare) = name.strip_prefix("VMA_").and_then(|n| n.strip_suffix("_BIT")) else {
            continue;
        };
        let Ok(n) = value.parse::<u32>() else {
            continue; // an alias such as VMA_PAT_BIT
        };
        let bit = VmaBit::from_number(n).unwrap_or_else(|| panic!("{name} = {n}: the engine has no such bit"));
        assert_eq!(normal(bare), normal(&format!("{bit:?}")), "{name} = {n}");
        seen.push(bit);
    }
    for bit in VmaBit::ALL {
        assert!(seen.contains(bit), "{bit:?} has no VMA_*_BIT in linux/mm_types.h");
    }
}

#[test]
fn vm_area_desc_is_the_howtos() {
    // The struct as the mmap_prepare HOWTO prints it.
    let howto = "struct vm_area_desc {
    /* Immutable state. */
    const struct mm_struct *const mm;
    struct file *const file; /* May vary from vm_file in stacked callers. */
    unsigned long start;
    unsigned long end;

    /* Mutable fields. Populated with initial state. */
    pgoff_t pgoff;
    struct file *vm_file;
    vma_flags_t vma_flags;
    pgprot_t page_prot;

    /* Write-only fields. */
    const struct vm_operations_struct *vm_ops;
    void *private_data;

    /* Take further action? */
    struct mmap_action action;
};";
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squash(header("linux/mm_types.h")).contains(&squash(howto)),
        "linux/mm_types.h must declare struct vm_area_desc exactly as the HOWTO does"
    );
}

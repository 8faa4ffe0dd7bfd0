//! The checked-in header matches the Rust entries: every `extern "C" fn` is declared with the
//! same number of parameters, and nothing else is; and the header compiles as C.

use std::path::Path;
use std::process::Command;

/// (name, parameter count) of each `extern "C" fn NAME(...)` in `text`.
fn fns(text: &str, marker: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let open = after.find('(').unwrap();
        let name = after[..open].trim().to_string();
        let close = after.find(')').unwrap();
        let params = after[open + 1..close].trim();
        let n = if params.is_empty() || params == "void" {
            0
        } else {
            params.matches(',').count() + 1
        };
        let n = if params.trim_end().ends_with(',') { n - 1 } else { n };
        if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            out.push((name, n));
        }
        rest = &after[close..];
    }
    out.sort();
    out
}

#[test]
fn header_declares_every_entry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rs = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    let h = std::fs::read_to_string(dir.join("include/mmprep.h")).unwrap();
    let rust = fns(&rs, "extern \"C\" fn ");
    // Header prototypes: "int64_t NAME(" or "void NAME(".
    let mut c = fns(&h.replace("void mmprep_", "int64_t mmprep_"), "int64_t ");
    c.retain(|(n, _)| n.starts_with("mmprep_"));
    assert!(!rust.is_empty());
    assert_eq!(rust, c, "include/mmprep.h is out of date with src/lib.rs");
}

#[test]
fn header_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("mmprep-h-{}.o", std::process::id()));
    let st = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c"])
        .arg(dir.join("include/mmprep.h"))
        .status()
        .expect("cc");
    assert!(st.success());
    let _ = std::fs::remove_file(out);
}

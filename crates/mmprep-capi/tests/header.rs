//! The checked-in `include/mmprep.h` is what cbindgen generates from `src/lib.rs` (with
//! `cbindgen.toml`), so every entry, constant and struct, with the ownership its doc comment
//! states, reaches C; and the header compiles as C and as C++. `MMPREP_BLESS=1` rewrites it.

use std::path::Path;
use std::process::Command;

fn generated() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses src/lib.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn header_is_what_cbindgen_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/mmprep.h");
    let want = generated();
    if std::env::var_os("MMPREP_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "include/mmprep.h is out of date with src/lib.rs: rerun with MMPREP_BLESS=1"
    );
    for name in [
        "mmprep_syscall",
        "mmprep_set_backend",
        "struct mmprep_backend",
        "MMPREP_BACKEND_FAILED",
    ] {
        assert!(have.contains(name), "{name} missing from the header");
    }
    assert!(
        !have.contains("#define EINVAL"),
        "errno values must come from <errno.h>"
    );
}

#[test]
fn header_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (std, lang) in [("-std=c11", "c"), ("-std=c++17", "c++")] {
        let st = Command::new("cc")
            .args([std, "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", lang])
            .arg(dir.join("include/mmprep.h"))
            .status()
            .expect("cc");
        assert!(st.success(), "the header does not compile as {lang}");
    }
}

//! Builds `examples/c-embed/embed.c` against the static library and runs it on the recorded
//! trace of `/bin/true`: every call's result must be the recorded one and guest memory must
//! read what Linux gives (the program exits non-zero on any mismatch).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/`: the directory this test binary's `deps/` is in.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

#[test]
fn c_program_replays_true_through_the_c_abi() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.parent().unwrap().parent().unwrap();
    // The test harness builds the rlib; the static library comes from a build of the lib.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--quiet", "-p", "mmprep-capi", "--lib"])
        .current_dir(root)
        .status()
        .expect("cargo build");
    assert!(st.success(), "cannot build libmmprep_capi.a");
    let lib = target_dir().join("libmmprep_capi.a");
    assert!(lib.exists(), "{} not built", lib.display());
    let exe = std::env::temp_dir().join(format!("mmprep-c-embed-{}", std::process::id()));
    let st = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(crate_dir.join("include"))
        .arg(root.join("examples/c-embed/embed.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .expect("cc");
    assert!(st.success(), "embed.c does not build");
    let out = Command::new(&exe)
        .arg(root.join("examples/c-embed/true.trace"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&exe);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("13 recorded calls"), "{stdout}");
    assert!(stdout.contains("0 mismatches"), "{stdout}");
    assert!(
        stdout.contains("16K granule conflict: [0x100000000000, 0x100000004000) 3 pieces"),
        "{stdout}"
    );
}

//! `docs/cli-reference.md` is generated from the clap command tree (`mmprep cli-reference`):
//! this test regenerates it and fails when the checked-in file is out of date. Refresh it with
//! `MMPREP_BLESS=1 cargo test -p mmprep-cli --test cli_reference`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn cli_reference_is_up_to_date() {
    let out = Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .arg("cli-reference")
        .output()
        .expect("cannot run mmprep");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).expect("UTF-8 reference");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli-reference.md");
    if std::env::var_os("MMPREP_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("cannot write docs/cli-reference.md");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "docs/cli-reference.md is out of date (first difference at line {}); refresh it with\n\
             MMPREP_BLESS=1 cargo test -p mmprep-cli --test cli_reference",
            first + 1
        );
    }
    for sub in ["run", "kernel", "diff", "fuzz", "bench", "trace", "render", "explain"] {
        assert!(generated.contains(&format!("## `mmprep {sub}`")), "{sub} is missing");
    }
    assert!(
        !generated.contains("cli-reference`\n"),
        "the hidden command is not listed"
    );
}

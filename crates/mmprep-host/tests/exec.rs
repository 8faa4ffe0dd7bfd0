//! The engine's post-`execve` layout (`mmprep::exec`) against the kernel's: each program is
//! started with randomisation off and stopped at its first instruction; every VMA's range,
//! perms, offset, file and VmFlags must be the same. Expected values come from the live kernel.

use mmprep_host::exec::check_command;

fn check(cmd: &[&str]) {
    if !std::path::Path::new(cmd[0]).exists() {
        eprintln!("skipped: {} is not on this machine", cmd[0]);
        return;
    }
    let (diffs, smaps) = check_command(cmd).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text: Vec<String> = diffs
        .iter()
        .map(|(k, e)| format!("kernel {k:?}\nengine {e:?}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{cmd:?}:\n{}\n{}",
        text.join("\n"),
        mmprep_host::import::maps_of(&smaps)
    );
}

#[test]
fn true_pie() {
    check(&["/bin/true"]);
}

#[test]
fn ls() {
    check(&["/usr/bin/ls", "-la", "/"]);
}

#[test]
fn perl() {
    check(&["/usr/bin/perl", "-e", "1"]);
}

#[test]
fn python3_et_exec() {
    check(&["/usr/bin/python3", "-c", "1"]);
}

#[test]
fn git() {
    check(&["/usr/bin/git", "--version"]);
}

/// A static binary (`ET_EXEC`, no interpreter) and a static PIE (`ET_DYN` without
/// interpreter: placed by `mmap(NULL)`), built with `gcc`; skipped without a static libc.
#[test]
fn static_binaries() {
    let dir = std::env::temp_dir().join(format!("mmprep-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("s.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").expect("write");
    for (flag, name) in [("-static", "st"), ("-static-pie", "stpie")] {
        let out = dir.join(name);
        let built = std::process::Command::new("gcc")
            .args([flag, "-O", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            eprintln!("skipped: gcc {flag} failed");
            continue;
        }
        check(&[out.to_str().expect("utf-8 path")]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

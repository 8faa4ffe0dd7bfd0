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
    assert!(diffs.is_empty(), "{cmd:?}:\n{}\n{}", text.join("\n"), mmprep_host::import::maps_of(&smaps));
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

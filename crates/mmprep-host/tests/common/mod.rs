//! Helpers of the host tests that run small C probes as children.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A compiled probe: the executable's path, its directory removed when this is dropped (keep it
/// alive while the probe runs).
pub struct Probe {
    dir: PathBuf,
    exe: PathBuf,
}

impl std::ops::Deref for Probe {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.exe
    }
}

impl AsRef<std::ffi::OsStr> for Probe {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.exe.as_os_str()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Compiles C `source` with the system `cc` into a fresh executable. Each call gets a directory
/// of its own, so tests running in parallel never share an executable.
pub fn compile_c(name: &str, source: &str) -> Probe {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mmprep-probe-{}-{name}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the probe directory");
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, source).expect("write the probe source");
    let out = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc");
    let probe = Probe { dir, exe };
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    probe
}

/// Runs `exe` under `setarch -R` (plus `extra` setarch flags, such as `-L`) with the stack
/// rlimit `stack` (a `ulimit -s` argument: KiB or `unlimited`) and returns its standard output.
pub fn run_setarch(exe: &std::path::Path, stack: &str, extra: &[&str]) -> String {
    let script = format!(
        "ulimit -s {stack} && exec setarch \"$(uname -m)\" -R {} -- \"$0\"",
        extra.join(" ")
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "probe failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("probe output is UTF-8")
}

//! Writes `$OUT_DIR/fns.rs`: where each function of the engine's source starts, and where the
//! engine makes an error, so that [`Error::site`](src/errno.rs) can name the function an error
//! was made in from the `#[track_caller]` location it recorded (`src/site.rs`).
//!
//! A line scan, not a parser: a function starts at a line whose first token (after `pub`,
//! `pub(crate)`, `const`) is `fn NAME`; an error is made at a line with a call of `err(` (not
//! `map_err(`, `.err()` or `fn err(`). Test modules (from a `#[cfg(test)]` line on) are skipped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let src = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("src");
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    files.sort();
    let mut fns =
        String::from("/// (file under `src/`, first line, function) for every function, in file and line order.\n");
    fns.push_str("pub(crate) static FNS: &[(&str, u32, &str)] = &[\n");
    let mut errs = String::from("/// (file under `src/`, line) of every error the engine makes.\n");
    errs.push_str("#[cfg(test)]\npub(crate) static ERRS: &[(&str, u32)] = &[\n");
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                break;
            }
            if t.starts_with("//") {
                continue;
            }
            if let Some(name) = fn_name(t) {
                let _ = writeln!(fns, "    ({rel:?}, {n}, {name:?}),");
            }
            // `err` itself is `#[track_caller]`: no error is located in errno.rs.
            if rel != "errno.rs" && makes_error(t) {
                let _ = writeln!(errs, "    ({rel:?}, {n}),");
            }
        }
    }
    fns.push_str("];\n");
    errs.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("fns.rs");
    std::fs::write(out, fns + &errs).unwrap();
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `NAME` when `t` (a trimmed line) starts a function `fn NAME`.
fn fn_name(t: &str) -> Option<&str> {
    let mut t = t;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "unsafe ",
        "extern \"C\" ",
    ] {
        t = t.strip_prefix(prefix).unwrap_or(t);
    }
    let rest = t.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// Does the line call the engine's `err(` (or `Error::new(`)?
fn makes_error(t: &str) -> bool {
    if t.contains("fn err(") || t.contains("fn new(") {
        return false;
    }
    t.contains("Error::new(")
        || t.match_indices("err(").any(|(i, _)| {
            let before = t[..i].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
}

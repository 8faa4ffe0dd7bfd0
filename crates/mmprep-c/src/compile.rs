//! Compiling a driver file: find its tables, generate the unit that reaches them, run the system
//! C compiler, cache the result by content hash.
//!
//! A real driver's `struct file_operations` is `static`, so nothing outside the file can name it.
//! The harness compiles a small generated unit instead of the file itself:
//!
//! ```c
//! #include "/abs/path/driver.c"
//! const struct file_operations *const mmprep_fops = &driver_fops;
//! const struct mmprep_named_ops mmprep_vm_ops_names[] = { { &driver_vm_ops, "driver_vm_ops" }, { 0, 0 } };
//! ```
//!
//! linked with the C half of the runtime (`runtime/shim.c`) into one shared library, with
//! `-Wl,-z,defs`: a kernel function the headers do not provide is a link error at compile time,
//! with the linker's own message, not a crash later.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The headers and the C runtime, as shipped in this crate (written out next to each build).
pub(crate) const FILES: &[(&str, &str)] = &[
    ("include/linux/types.h", include_str!("../include/linux/types.h")),
    ("include/linux/errno.h", include_str!("../include/linux/errno.h")),
    ("include/linux/err.h", include_str!("../include/linux/err.h")),
    ("include/linux/gfp.h", include_str!("../include/linux/gfp.h")),
    ("include/linux/printk.h", include_str!("../include/linux/printk.h")),
    ("include/linux/module.h", include_str!("../include/linux/module.h")),
    ("include/linux/mm_types.h", include_str!("../include/linux/mm_types.h")),
    ("include/linux/mm.h", include_str!("../include/linux/mm.h")),
    ("include/linux/fs.h", include_str!("../include/linux/fs.h")),
    ("include/linux/slab.h", include_str!("../include/linux/slab.h")),
    ("include/linux/io.h", include_str!("../include/linux/io.h")),
    (
        "include/linux/miscdevice.h",
        include_str!("../include/linux/miscdevice.h"),
    ),
    ("include/linux/highmem.h", include_str!("../include/linux/highmem.h")),
    ("include/linux/refcount.h", include_str!("../include/linux/refcount.h")),
    ("include/linux/kref.h", include_str!("../include/linux/kref.h")),
    ("include/mmprep/runtime.h", include_str!("../include/mmprep/runtime.h")),
    ("runtime/shim.c", include_str!("../runtime/shim.c")),
    ("runtime/guard.c", include_str!("../runtime/guard.c")),
    ("runtime/data_begin.c", include_str!("../runtime/data_begin.c")),
    ("runtime/data_end.c", include_str!("../runtime/data_end.c")),
];

/// A compiled driver library in the cache.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    /// The shared library.
    pub so: PathBuf,
    /// The `struct file_operations` it exports as `mmprep_fops`.
    pub fops: String,
}

/// Names of the tables of type `ty` defined in `source` (`... struct TY NAME = {`), in order.
pub(crate) fn tables(source: &str, ty: &str) -> Vec<String> {
    let text = strip_comments(source);
    let needle = format!("struct {ty}");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&needle) {
        let after = &rest[i + needle.len()..];
        rest = after;
        // `struct TY NAME =` (possibly `const`), not `struct TY *p` or a parameter.
        let after = after.trim_start();
        let after = after.strip_prefix("const ").map_or(after, str::trim_start);
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // Attributes may stand between the name and `=` (`__maybe_unused`, `__read_mostly`).
        let mut tail = after[name.len()..].trim_start();
        while tail.starts_with("__") {
            let word = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            tail = tail[word..].trim_start();
        }
        if tail.starts_with('=') && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `source` without `/* */` and `//` comments (string literals are not special: good enough to
/// find declarations).
fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                out.push(' ');
                rest = rest[b + 2..].find("*/").map_or("", |e| &rest[b + 2 + e + 2..]);
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |e| &rest[l + e..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The HOWTO's write-only fields of `struct vm_area_desc`.
const WRITE_ONLY: &[&str] = &["vm_ops", "private_data"];

/// Reads of a write-only descriptor field before the function set it, found in the source:
/// `(line, field)`. A function that takes `struct vm_area_desc *NAME` may assign
/// `NAME->vm_ops` and `NAME->private_data`; any other use of them before such an assignment in
/// that function reads a field the kernel leaves NULL (comparing it, dereferencing it, passing
/// it on). Taking its address (`&NAME->private_data`) is not counted.
pub(crate) fn write_only_reads(source: &str) -> Vec<(usize, &'static str)> {
    let text = strip_comments_keep_lines(source);
    let mut out = Vec::new();
    let needle = "struct vm_area_desc";
    // Each function with a descriptor parameter: its name for the descriptor, from where.
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(needle) {
        let at = from + i + needle.len();
        from = at;
        let rest = text[at..].trim_start();
        let Some(rest) = rest.strip_prefix('*') else { continue };
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            starts.push((at, name));
        }
    }
    for (k, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |(s, _)| *s);
        let body = &text[*start..end];
        for field in WRITE_ONLY {
            let access = format!("{name}->{field}");
            let mut written = false;
            let mut pos = 0;
            while let Some(i) = body[pos..].find(&access) {
                let at = pos + i;
                pos = at + access.len();
                // Not a longer identifier (`desc->vm_ops_x`), not another variable (`xdesc`).
                let after = &body[pos..];
                if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let before = body[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let after = after.trim_start();
                let assigned = after.starts_with('=') && !after.starts_with("==");
                let address_taken = body[..at].trim_end().ends_with('&');
                if assigned {
                    written = true;
                } else if !written && !address_taken {
                    let line = text[..start + at].matches('\n').count() + 1;
                    out.push((line, *field));
                }
            }
        }
    }
    out.sort();
    out
}

/// `source` with comments blanked out, line breaks kept (for line numbers).
/// The `struct vm_operations_struct` tables of the source that set `.mapped`, by name. Their
/// `mapped` runs only if `mmap_prepare` puts the table in `desc->vm_ops`: a hook that returns
/// with `desc->vm_ops` NULL leaves it unreachable for that mapping.
pub(crate) fn mapped_tables(source: &str) -> Vec<String> {
    let text = strip_comments_keep_lines(source);
    let needle = "struct vm_operations_struct";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(needle) {
        let at = from + i + needle.len();
        from = at;
        let rest = text[at..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('=') {
            continue;
        }
        let Some(close) = after.find("};") else { continue };
        let body = &after[..close];
        let sets_mapped = body.match_indices(".mapped").any(|(j, _)| {
            let tail = body[j + ".mapped".len()..].trim_start();
            tail.starts_with('=') && !tail.starts_with("==")
        });
        if sets_mapped {
            out.push(name);
        }
    }
    out
}

fn strip_comments_keep_lines(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                out.push(' ');
            }
            ('/', Some('/')) => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// What `Built::fops` says when the driver's `module_init` registers its table
/// (`misc_register`) instead of the file defining one the harness can name.
pub(crate) const REGISTERED: &str = "the struct file_operations module_init registered";

/// Which `struct file_operations` to take: `wanted`, or the only one, or ([`REGISTERED`]) the
/// one the driver's `module_init` registers.
fn choose_fops(source: &str, wanted: Option<&str>) -> Result<String, String> {
    let all = tables(source, "file_operations");
    match wanted {
        None if all.is_empty() && strip_comments(source).contains("module_init(") => Ok(REGISTERED.into()),
        Some(w) if all.iter().any(|f| f == w) => Ok(w.to_string()),
        Some(w) => Err(format!(
            "no `struct file_operations {w}` in the file (it defines: {})",
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        )),
        None => match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err("the file defines no `struct file_operations`".into()),
            many => Err(format!(
                "the file defines {} `struct file_operations` ({}): name one with fops=SYMBOL",
                many.len(),
                many.join(", ")
            )),
        },
    }
}

/// The generated unit for `source_path`.
fn unit(source_path: &Path, fops: &str, vm_ops: &[String]) -> String {
    let mut u = String::new();
    u.push_str("/* Generated by mmprep: reaches the driver's static tables. */\n");
    u.push_str(&format!("#include \"{}\"\n", source_path.display()));
    if fops == REGISTERED {
        u.push_str("const struct file_operations *const mmprep_fops = 0;\n");
    } else {
        u.push_str(&format!("const struct file_operations *const mmprep_fops = &{fops};\n"));
    }
    u.push_str("const struct mmprep_named_ops mmprep_vm_ops_names[] = {\n");
    for v in vm_ops {
        u.push_str(&format!("\t{{ &{v}, \"{v}\" }},\n"));
    }
    u.push_str("\t{ 0, 0 },\n};\n");
    u
}

/// The cache folder: `$MMPREP_C_CACHE`, or `mmprep-c` in the system's temporary folder.
fn cache_root() -> PathBuf {
    std::env::var_os("MMPREP_C_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mmprep-c"))
}

/// The compiler: `$CC`, or `cc`.
fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Compiles `source_path` (or finds it in the cache). The error is the compiler's own output.
pub(crate) fn build(source_path: &Path, fops: Option<&str>, cflags: &[String]) -> Result<Built, String> {
    let source_path = source_path
        .canonicalize()
        .map_err(|e| format!("cannot read {}: {e}", source_path.display()))?;
    let source =
        std::fs::read_to_string(&source_path).map_err(|e| format!("cannot read {}: {e}", source_path.display()))?;
    let fops = choose_fops(&source, fops)?;
    let vm_ops = tables(&source, "vm_operations_struct");
    let unit = unit(&source_path, &fops, &vm_ops);

    // The driver's own headers beside it are part of what is compiled.
    let mut local: Vec<(String, String)> = std::fs::read_dir(source_path.parent().unwrap_or(Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(&p).ok()?)))
        .collect();
    local.sort();
    let mut h = DefaultHasher::new();
    (&source, &local, &unit, cflags, FILES, compiler()).hash(&mut h);
    let key = format!("{:016x}", h.finish());
    let mut args: Vec<String> = cflags.to_vec();
    // The markers around the unit bound the driver's own writable data (runtime/data_begin.c);
    // -fno-common keeps its zero-initialised variables in its own .bss, not a common block.
    args.extend(
        [
            "-fno-common",
            "-Wl,-z,defs",
            "-o",
            "driver.so",
            "runtime/data_begin.c",
            "unit.c",
            "runtime/data_end.c",
            "runtime/shim.c",
        ]
        .map(String::from),
    );
    let so = compile_cached(&key, &unit, &args, "driver.so")?;
    Ok(Built { so, fops })
}

/// The crash guard library (`runtime/guard.c`), compiled once and cached like a driver.
pub(crate) fn build_guard() -> Result<PathBuf, String> {
    let mut h = DefaultHasher::new();
    ("guard", FILES, compiler()).hash(&mut h);
    let key = format!("guard-{:016x}", h.finish());
    let args = ["-Wl,-z,defs", "-o", "guard.so", "runtime/guard.c"].map(String::from);
    compile_cached(&key, "", &args, "guard.so")
}

/// Runs the compiler in a fresh folder holding the shipped files and `unit` (as `unit.c`), with
/// the common flags and then `args`, and keeps the folder as `key` in the cache: the path of
/// `output` in it. An existing `key` is reused without compiling.
fn compile_cached(key: &str, unit: &str, args: &[String], output: &str) -> Result<PathBuf, String> {
    let root = cache_root();
    let dir = root.join(key);
    let out_path = dir.join(output);
    if out_path.exists() {
        return Ok(out_path);
    }

    // Build in a private folder, then rename it into place: parallel runs of the same driver
    // never see a half-written library.
    static N: AtomicU64 = AtomicU64::new(0);
    let tmp = root.join(format!(
        "{key}.tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(tmp.join("include/linux"))
        .and_then(|()| std::fs::create_dir_all(tmp.join("include/mmprep")))
        .and_then(|()| std::fs::create_dir_all(tmp.join("runtime")))
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    for (name, text) in FILES {
        std::fs::write(tmp.join(name), text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    std::fs::write(tmp.join("unit.c"), unit).map_err(|e| format!("cannot write the unit: {e}"))?;
    let out = Command::new(compiler())
        .current_dir(&tmp)
        .args([
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-std=gnu11",
            "-Wall",
            "-Werror=implicit-function-declaration",
            "-Iinclude",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run the C compiler `{}`: {e}", compiler()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(format!("the C compiler failed:\n{}", text.trim_end()));
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another run built it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(out_path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mapped_tables_are_found_by_name() {
        let src = "static const struct vm_operations_struct a_ops = { .open = o, .mapped = m };\n\
                   static const struct vm_operations_struct b_ops = { .close = c };\n\
                   /* struct vm_operations_struct c_ops = { .mapped = m }; */\n\
                   static int f(const struct vm_operations_struct *ops);\n";
        assert_eq!(super::mapped_tables(src), ["a_ops"]);
    }

    use super::*;

    #[test]
    fn finds_tables_outside_comments() {
        let src = "/* struct file_operations fake = { */\n\
                   static const struct file_operations a_fops = {\n};\n\
                   // struct file_operations b = {\n\
                   int f(struct file_operations *p);\n\
                   const struct vm_operations_struct v = { };\n\
                   static const struct vm_operations_struct w __maybe_unused = { };\n";
        assert_eq!(tables(src, "file_operations"), vec!["a_fops"]);
        assert_eq!(tables(src, "vm_operations_struct"), vec!["v", "w"]);
        assert_eq!(choose_fops(src, None).unwrap(), "a_fops");
        assert!(choose_fops(src, Some("b")).unwrap_err().contains("a_fops"));
        let misc = "static struct miscdevice m = { .fops = &f };\nmodule_init(init);\n";
        assert_eq!(choose_fops(misc, None).unwrap(), REGISTERED);
    }

    #[test]
    fn finds_reads_of_write_only_fields() {
        let src = "static int p(struct vm_area_desc *d)\n{\n\
                   \tif (!d->vm_ops)\n\
                   \t\td->vm_ops = &x;\n\
                   \td->private_data = d->vm_ops; /* d->private_data */\n\
                   \treturn d->private_data != 0;\n}\n\
                   static int q(struct vm_area_desc *desc)\n{\n\
                   \tfoo(&desc->private_data);\n\
                   \tdesc->vm_ops = &y;\n\
                   \treturn desc->vm_ops == &y;\n}\n";
        assert_eq!(write_only_reads(src), vec![(3, "vm_ops")]);
    }
}

//! Runs C `mmap_prepare` drivers on the mmprep engine.
//!
//! A driver's mmap code, written for the kernel, compiles here unchanged or nearly: this crate
//! ships the kernel headers it includes (`include/linux/*.h`, written from the mmap_prepare
//! HOWTO and the kernel's documented names and shapes) and a small runtime, compiles the file
//! with the system C compiler into a shared library (cached by content hash), loads it with
//! `libloading`, and serves the engine's [`FileOperations`](mmprep::file::FileOperations) and
//! [`VmOperations`](mmprep::vma::VmOperations) from the driver's C tables.
//!
//! - `compile`: finding the driver's `struct file_operations` (static in real drivers), the
//!   generated unit that reaches it, the compiler run and the cache.
//! - `ffi`: the plain structs shared with the C half of the runtime (`runtime/shim.c`), the
//!   callbacks C makes (parameters, `printk`, pages, simulated hardware) and a loaded library.
//! - `ops`: the engine traits over C: hook presence comes from which members are non-NULL.
//!
//! Beside `mmprep-host`'s system calls, this is the one crate of the workspace with `unsafe`:
//! calling into C and the one kind of memory C hands back (`kmalloc` memory mapped through
//! `virt_to_phys`). Every block says why it is sound (`clippy::undocumented_unsafe_blocks` is
//! denied).
//!
//! [`CHost`] implements the driver registry's [`CDriverHost`], which the scenario runner takes
//! for `file NAME c PATH.c` lines.
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

mod compile;
mod ffi;
mod ops;

use std::path::Path;
use std::sync::Arc;

use mmprep::file::{DevId, File, FileMode, Inode, InodeKind};
use mmprep_drivers::registry::{self, CDriverHost, CDriverRequest, DriverEnv};

/// The headers a driver compiles against, by path under `include/` (for documentation and
/// tools: the compiler gets them written out beside each build).
pub fn headers() -> impl Iterator<Item = (&'static str, &'static str)> {
    compile::FILES
        .iter()
        .filter_map(|(path, text)| path.strip_prefix("include/").map(|p| (p, *text)))
}

/// Compiles, loads and opens C drivers.
#[derive(Clone, Copy, Debug, Default)]
pub struct CHost {
    /// Build drivers with AddressSanitizer and UBSan. The process must have the sanitizer
    /// runtime loaded first (`LD_PRELOAD`): [`sanitizer_runtime`] finds it, and `mmprep run
    /// --sanitize` restarts itself with it.
    pub sanitize: bool,
}

/// The compiler flags of a sanitized build.
pub const SANITIZE_FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-DMMPREP_SANITIZE",
];

/// The AddressSanitizer runtime of the system C compiler (`cc -print-file-name=libasan.so`), if
/// it has one.
pub fn sanitizer_runtime() -> Option<std::path::PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(cc)
        .arg("-print-file-name=libasan.so")
        .output()
        .ok()?;
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // A compiler without it prints the bare name back.
    (path.is_absolute() && path.exists()).then_some(path)
}

impl CHost {
    /// Compiles `source` (or finds it in the cache) and reports the compiler's own message on
    /// failure. Returns the `struct file_operations` it took.
    pub fn check(&self, source: &Path, fops: Option<&str>, cflags: &[String]) -> Result<String, String> {
        compile::build(source, fops, &self.cflags(cflags)).map(|b| b.fops)
    }

    /// The scenario's flags, and the sanitizers' if asked for.
    fn cflags(&self, cflags: &[String]) -> Vec<String> {
        let mut all = cflags.to_vec();
        if self.sanitize {
            all.extend(SANITIZE_FLAGS.iter().map(|f| f.to_string()));
        }
        all
    }
}

impl CDriverHost for CHost {
    fn open(&self, request: &CDriverRequest<'_>, env: &DriverEnv<'_>) -> Result<Arc<File>, String> {
        let built = compile::build(request.source, request.fops, &self.cflags(request.cflags))?;
        // The HOWTO's write-only fields, read before they were set: said once per file line,
        // in the scenario's events.
        if let Ok(source) = std::fs::read_to_string(request.source) {
            let file = request.source.file_name().map(|n| n.to_string_lossy().into_owned());
            for (line, field) in compile::write_only_reads(&source) {
                env.events.push(mmprep::events::Event::Printk {
                    level: "rule",
                    text: format!(
                        "{}:{line}: reads desc->{field} before setting it: it is write-only (NULL until the driver sets it)",
                        file.as_deref().unwrap_or("driver")
                    ),
                });
            }
        }
        let shown = request.source.file_name().map_or_else(
            || request.source.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let lib = ffi::Library::load(
            &built.so,
            self.sanitize,
            &shown,
            request.params.clone(),
            env.events.clone(),
            env.machine.clone(),
        )?;
        let lib = Arc::new(lib);
        let ino = registry::next_ino();
        let (mut err, mut size, mut mode) = (0, 0u64, 0u32);
        // SAFETY: the shim allocates a struct inode and struct file and calls the driver's
        // f_op->open if it has one; err, size and mode are valid for the call.
        let cfile = lib.call(0, |s| unsafe {
            (s.open)(i32::from(request.read_only), ino, &mut err, &mut size, &mut mode)
        });
        if let Some(crash) = lib.runtime().crash() {
            return Err(format!("f_op->open of `{}` {crash}", built.fops));
        }
        if cfile == 0 {
            return Err("out of memory opening the file".into());
        }
        if err < 0 {
            let name = mmprep::Errno::from_raw(-err).map_or_else(|| format!("{err}"), |e| format!("-{}", e.name()));
            return Err(format!("f_op->open of `{}` failed: {name}", built.fops));
        }
        let name = request
            .source
            .file_stem()
            .map_or_else(|| "c".to_string(), |s| s.to_string_lossy().into_owned());
        let mapped_tables = std::fs::read_to_string(request.source)
            .map(|text| compile::mapped_tables(&text))
            .unwrap_or_default();
        let ops = ops::CFile {
            lib,
            cfile,
            name: ffi::intern(&name),
            mapped_tables,
        };
        let file_mode = if request.read_only {
            FileMode::READ_ONLY
        } else {
            FileMode::READ_WRITE
        };
        // What the driver's open left in i_mode and i_size: a character device unless it made
        // the inode a regular file (a filesystem).
        const S_IFMT: u32 = 0o170000;
        const S_IFREG: u32 = 0o100000;
        let (kind, path) = if mode & S_IFMT == S_IFREG {
            (InodeKind::Regular, format!("/mnt/{name}"))
        } else {
            (InodeKind::CharDevice, format!("/dev/{name}"))
        };
        let inode = Arc::new(Inode::new(DevId { major: 0x1e, minor: 0 }, ino, kind, size));
        ops.lib.runtime().set_inode(inode.clone());
        Ok(File::new(inode, file_mode, Arc::new(ops), path, false))
    }
}

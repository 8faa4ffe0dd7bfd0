//! The example drivers by name: what `file NAME driver DRIVER [KEY=VALUE ...]` opens and
//! `mmprep drivers` lists.
//!
//! Each entry names a driver, says in one line what real kernel driver it models and which part
//! of the mmap_prepare API it exercises, lists the parameters it accepts, and opens a file
//! served by it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mmprep::events::EventSink;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::phys::Machine;
use mmprep::shmem::ShmemFs;

/// `KEY=VALUE` parameters of a `driver` file line.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `key` as a number (decimal, or hex with `0x`; `K`/`M`/`G` suffixes), or `default`.
    pub fn number(&self, key: &str, default: u64) -> Result<u64, String> {
        let Some(v) = self.get(key) else { return Ok(default) };
        parse_number(v).ok_or_else(|| format!("{key}={v}: not a number"))
    }
}

fn parse_number(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(mult)
}

/// A fresh inode number for a driver's file, so that two opens of one driver are two files
/// (and a scenario's maps names them apart).
pub fn next_ino() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(100);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Opens a new file of a driver: a fresh inode on `dev` of `kind` and `size`, opened with
/// `mode`, with `ops`, named `path` in `/proc/PID/maps`.
pub fn open_file(
    dev: DevId,
    kind: InodeKind,
    size: u64,
    mode: FileMode,
    ops: Arc<dyn FileOperations>,
    path: &str,
) -> Arc<File> {
    let inode = Arc::new(Inode::new(dev, next_ino(), kind, size));
    File::new(inode, mode, ops, path.into(), false)
}

/// What a driver may use when its file is opened.
pub struct DriverEnv<'a> {
    /// The simulated system's memory (device regions, kernel pages).
    pub machine: &'a Arc<Machine>,
    /// The shm mount (for drivers built on a memfd).
    pub shmem: &'a Arc<ShmemFs>,
    /// The address space's hook log, for a driver's own messages (`pr_info`).
    pub events: EventSink,
}

/// What a `file NAME c PATH.c [fops=SYMBOL] [ro] [KEY=VALUE ...]` line asks for.
#[derive(Clone, Debug)]
pub struct CDriverRequest<'a> {
    /// The C file, already resolved against the scenario's folder.
    pub source: &'a Path,
    /// The `struct file_operations` to take (`fops=SYMBOL`); `None`: the only one in the file.
    pub fops: Option<&'a str>,
    /// Extra compiler flags (`cflags="..."`), split on spaces.
    pub cflags: &'a [String],
    /// Open the file read-only (`ro`).
    pub read_only: bool,
    /// The driver's parameters (`mmprep_param_u64`, `mmprep_param_str`).
    pub params: &'a Params,
}

/// Opens files served by C drivers. The scenario runner reaches C drivers only through this
/// trait, so that it needs neither a compiler nor `unsafe`; `mmprep-c` implements it, and the
/// program that runs scenarios (the CLI, a test) hands one to the runner.
pub trait CDriverHost: Send + Sync {
    /// Compiles (or finds in the cache) and loads `request.source`, and opens a fresh file
    /// served by its `struct file_operations`. The error is for a human: a compiler's message,
    /// a missing symbol, a failing `f_op->open`.
    fn open(&self, request: &CDriverRequest<'_>, env: &DriverEnv<'_>) -> Result<Arc<File>, String>;
}

/// One example driver.
pub struct DriverInfo {
    /// Its name in `file NAME driver DRIVER`.
    pub name: &'static str,
    /// One line: the kernel driver it models and what it shows.
    pub summary: &'static str,
    /// Accepted parameters, `key=default: meaning`, or empty.
    pub params: &'static [&'static str],
    /// Opens a file served by the driver.
    pub open: fn(&Params, &DriverEnv<'_>) -> Result<Arc<File>, String>,
}

impl DriverInfo {
    /// Checks that every given key is one this driver accepts.
    pub fn check_keys(&self, params: &Params) -> Result<(), String> {
        for (k, _) in &params.0 {
            if !self.params.iter().any(|p| p.split('=').next() == Some(k.as_str())) {
                return Err(format!("driver `{}` has no parameter `{k}`", self.name));
            }
        }
        Ok(())
    }
}

/// Every example driver, in the order `mmprep drivers` lists them.
pub fn drivers() -> &'static [DriverInfo] {
    &[
        crate::ro::INFO,
        crate::slots::INFO,
        crate::dax::INFO,
        crate::hpet::INFO,
        crate::mem::INFO,
        crate::fb::INFO,
        crate::ring::INFO,
        crate::dumpless::INFO,
        crate::stack::INFO,
    ]
}

/// The driver with this name.
pub fn find(name: &str) -> Option<&'static DriverInfo> {
    drivers().iter().find(|d| d.name == name)
}

//! `mmprep tour`: a guided walk through merging, splitting and `mmap_prepare`, for a newcomer.
//!
//! The tour is a list of chapters. Each has a few words of explanation and scenario lines; the
//! lines run on the engine and the address space is drawn after each step on a page ruler (one
//! column per 4 KiB page, one letter per VMA), so the reader sees VMAs merge and split. The
//! last chapter maps a small `mmap_prepare` driver defined here and prints the hook calls. The
//! CLI then runs the scenario part on the host kernel and compares.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use mmprep::file::MmapPrepare;
use mmprep::vma::{VmClose, VmFaultHandler, VmMapped};
use std::sync::Mutex;

use mmprep::addr::PgOff;
use mmprep::desc::VmAreaDesc;
use mmprep::file::{DevId, File, FileMode, FileOperations, Inode, InodeKind};
use mmprep::mm::Mm;
use mmprep::vma::{PrivateData, VmOperations, Vma};
use mmprep::{MapFlags, Profile, Prot, Result, VirtAddr};

use crate::engine::EngineRunner;
use crate::parse::parse;
use crate::script::{Op, WINDOW_BASE};
use crate::transcript::format_step;

/// One chapter: explanation, then scenario lines (`#` lines are shown, not run).
struct Chapter {
    title: &'static str,
    text: &'static str,
    lines: &'static str,
}

const CHAPTERS: &[Chapter] = &[
    Chapter {
        title: "1. Neighbours merge",
        text: "A mapping that continues its neighbour with the same attributes does not make a new VMA: the\n\
               kernel extends the neighbour (mm/vma.c:vma_merge_new_range). Private anonymous memory is\n\
               always 'contiguous', because its page offset is its virtual page number.",
        lines: "mmap 0 16K rw- private|anon|fixed\nmmap 16K 16K rw- private|anon|fixed\nmmap 32K 8K r-- private|anon|fixed",
    },
    Chapter {
        title: "2. Changing part of a VMA splits it, changing it back merges it",
        text: "mprotect of one page in the middle needs a VMA of its own: the VMA splits in three\n\
               (mm/vma.c:vma_modify). Restoring the protection lets the pieces merge again\n\
               (vma_merge_existing_range). Making the last pages of A read-only folds them into the\n\
               read-only neighbour instead.",
        lines: "mprotect 8K 4K r--\nmprotect 8K 4K rw-\nmprotect 24K 8K r--",
    },
    Chapter {
        title: "3. Written memory remembers: the anon_vma",
        text: "The first write to private memory gives its VMA an anon_vma. Two VMAs written separately\n\
               have different anon_vmas and can never become one: filling the gap between them merges\n\
               with the left one only. (A read maps the shared zero page and changes nothing.)",
        lines: "mmap 64K 4K rw- private|anon|fixed\ntouch 64K 4K w\nmmap 72K 4K rw- private|anon|fixed\ntouch 72K 4K w\nmmap 68K 4K rw- private|anon|fixed",
    },
    Chapter {
        title: "4. Files: same open file, contiguous offsets",
        text: "File mappings merge only when they map the same open file at contiguous offsets. A shared\n\
               anonymous mapping is secretly a new shmem file each time, so it never merges.",
        lines: "file data memfd 64K\nmmap 128K 8K rw- shared|fixed data 0\nmmap 136K 8K rw- shared|fixed data 8K\nmmap 144K 8K rw- shared|fixed data 32K\nmmap 152K 4K rw- shared|anon|fixed\nmmap 156K 4K rw- shared|anon|fixed",
    },
    Chapter {
        title: "5. MAP_FIXED replaces, munmap punches holes",
        text: "MAP_FIXED over mapped pages unmaps them first (their driver's close() runs) and maps the\n\
               new range, merging it if it can. munmap in the middle of a VMA splits it.",
        lines: "mmap 4K 4K r-x private|anon|fixed\nmunmap 16K 4K",
    },
];

/// A small `mmap_prepare` driver for the last chapter: it logs what it sees.
struct TourDriver {
    log: Arc<Mutex<Vec<String>>>,
}

struct TourVmOps {
    log: Arc<Mutex<Vec<String>>>,
}

fn log(l: &Mutex<Vec<String>>, s: String) {
    if let Ok(mut v) = l.lock() {
        v.push(s);
    }
}

impl FileOperations for TourDriver {
    fn name(&self) -> &'static str {
        "tour"
    }
    fn mmap_prepare(&self) -> Option<&dyn MmapPrepare> {
        Some(self)
    }
}

impl MmapPrepare for TourDriver {
    fn mmap_prepare(&self, desc: &mut VmAreaDesc<'_>) -> Result<()> {
        log(
            &self.log,
            format!(
                "mmap_prepare: start {} end {} pgoff {} flags {:?}",
                off(desc.start()),
                off(desc.end()),
                desc.pgoff().get(),
                desc.flags()
            ),
        );
        // Stateless: no reference is taken here (the mapping may still merge or fail); the
        // per-mapping work goes into `mapped`.
        desc.set_vm_ops(Arc::new(TourVmOps { log: self.log.clone() }));
        Ok(())
    }
}

impl VmOperations for TourVmOps {
    fn ops_name(&self) -> &'static str {
        "tour_vm_ops"
    }
    fn mapped(&self) -> Option<&dyn VmMapped> {
        Some(self)
    }
    fn close(&self) -> Option<&dyn VmClose> {
        Some(self)
    }
    fn fault(&self) -> Option<&dyn VmFaultHandler> {
        Some(self)
    }
}

impl VmMapped for TourVmOps {
    fn mapped(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        pgoff: PgOff,
        _file: Option<&Arc<File>>,
        _private: &mut Option<PrivateData>,
    ) -> Result<()> {
        log(
            &self.log,
            format!(
                "mapped:       start {} end {} pgoff {}",
                off(start),
                off(end),
                pgoff.get()
            ),
        );
        Ok(())
    }
}

impl VmClose for TourVmOps {
    fn close(&self, vma: &Vma) {
        log(
            &self.log,
            format!("close:        start {} end {}", off(vma.start()), off(vma.end())),
        );
    }
}

impl VmFaultHandler for TourVmOps {
    fn fault(&self, vmf: &mut mmprep::vma::VmFault<'_>) -> mmprep::vma::FaultResult {
        let page = vmf.machine().alloc_frame();
        vmf.set_page(page);
        mmprep::vma::FaultResult::Ok
    }
}

fn off(a: VirtAddr) -> String {
    format!("{:#x}", a.get().wrapping_sub(WINDOW_BASE))
}

/// Draws the first `pages` pages of the window: a ruler, then one letter per VMA.
pub fn ruler(mm: &Mm, pages: u64) -> String {
    let mut out = String::from("        ");
    for p in 0..pages {
        out.push(char::from_digit((p % 16) as u32, 16).unwrap_or('?'));
    }
    out.push_str("   (one column = one 4K page)\n        ");
    let start = VirtAddr(WINDOW_BASE);
    let end = VirtAddr(WINDOW_BASE + pages * 4096);
    let vmas: Vec<&Vma> = mm.vmas_in(start, end).collect();
    for p in 0..pages {
        let a = WINDOW_BASE + p * 4096;
        match vmas.iter().position(|v| v.start().get() <= a && a < v.end().get()) {
            Some(i) => {
                let letter = (b'A' + (i % 26) as u8) as char;
                let written = vmas[i].anon_vma().is_some();
                out.push(if written { letter.to_ascii_lowercase() } else { letter });
            }
            None => out.push('.'),
        }
    }
    out.push_str("   (lower case: has an anon_vma)\n");
    out
}

/// The scenario that the chapters run, as one script (for the kernel comparison).
pub fn scenario() -> String {
    let mut s = String::from("# mmprep tour\n");
    for c in CHAPTERS {
        s.push_str(c.lines);
        s.push('\n');
        s.push_str("maps\n");
    }
    s
}

/// Runs the tour on the engine and returns its text.
pub fn run(profile: &Profile) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mmprep tour: the Linux mmap layer, step by step\n\
         ================================================\n\
         Addresses are offsets from the window base {WINDOW_BASE:#x}. Each step is a scenario line,\n\
         run on the engine; the address space is drawn after it.\n"
    );
    let text = scenario();
    let script = parse(&text);
    debug_assert!(script.error.is_none(), "the tour scenario parses");
    let mut runner = EngineRunner::new(&script, profile);
    let mut steps = script.steps.iter();
    for c in CHAPTERS {
        let _ = writeln!(out, "{}\n{}\n{}\n", c.title, "-".repeat(c.title.len()), c.text);
        // The chapter's lines, then the `maps` line `scenario()` appended.
        for step in steps.by_ref().take(c.lines.lines().count() + 1) {
            let outcome = match runner.step(&script, &step.op) {
                Ok(o) => o,
                Err(e) => {
                    let _ = writeln!(out, "  (stopped: {e:?})");
                    return out;
                }
            };
            let line = text.lines().nth(step.line - 1).unwrap_or("");
            if step.op == Op::Maps {
                continue;
            }
            let _ = writeln!(out, "  $ {line}");
            let Some(o) = outcome else { continue };
            let entry = format_step(step.line, step.verb(), &o, runner.window());
            let result = entry.split_once(" = ").map_or("", |(_, r)| r);
            let _ = writeln!(out, "    = {result}");
            out.push_str(&ruler(runner.mm(), 48));
        }
        out.push('\n');
    }
    runner.mm().check_invariants();
    let _ = writeln!(out, "6. A driver's mmap_prepare\n--------------------------");
    out.push_str(&driver_chapter(profile));
    let transcript = crate::engine::run(&script, profile);
    let _ = writeln!(out, "\nThe scenario of chapters 1-5, as `mmprep run` prints it:\n");
    out.push_str(&transcript.text());
    out
}

/// Chapter 6: a driver's hook runs before the merge; `mapped` only for a new VMA.
fn driver_chapter(profile: &Profile) -> String {
    let mut out = String::from(
        "A driver implements FileOperations::mmap_prepare. It sees a VmAreaDesc before any merge,\n\
         keeps no state there, and sets vm_ops; per-mapping work goes into vm_ops->mapped, which\n\
         runs only for a new VMA. Map the driver's file twice, at adjacent addresses and offsets:\n\n",
    );
    let logbuf = Arc::new(Mutex::new(Vec::new()));
    let inode = Arc::new(Inode::new(DevId { major: 0, minor: 42 }, 1, InodeKind::CharDevice, 0));
    let file = File::new(
        inode,
        FileMode::READ_WRITE,
        Arc::new(TourDriver { log: logbuf.clone() }),
        "/dev/tour".into(),
        false,
    );
    let mut mm = Mm::new(profile.clone());
    let base = WINDOW_BASE + (1 << 20);
    let flags = MapFlags::SHARED | MapFlags::FIXED;
    for (i, (addr, offset)) in [(base, 0u64), (base + 0x2000, 0x2000)].into_iter().enumerate() {
        let _ = writeln!(
            out,
            "  mmap #{} at {:#x}, 8K, rw-, shared, offset {offset:#x}",
            i + 1,
            addr - WINDOW_BASE
        );
        let r = mm.mmap(VirtAddr(addr), 0x2000, Prot::RW, flags, Some(&file), offset);
        for l in logbuf.lock().map(|mut v| core::mem::take(&mut *v)).unwrap_or_default() {
            let _ = writeln!(out, "      {l}");
        }
        let _ = writeln!(
            out,
            "      -> {}",
            r.map_or_else(|e| format!("-{}", e.errno), |a| format!("{:#x}", a.get() - WINDOW_BASE))
        );
    }
    let vmas = mm.vmas().count();
    let _ = writeln!(out, "  munmap all 16K");
    let _ = mm.munmap(VirtAddr(base), 0x4000);
    for l in logbuf.lock().map(|mut v| core::mem::take(&mut *v)).unwrap_or_default() {
        let _ = writeln!(out, "      {l}");
    }
    let _ = writeln!(
        out,
        "\nThe two mappings made {vmas} VMA: the second merged into the first. Its mmap_prepare ran (the\n\
         merge decision needs the hook's final flags), but `mapped` did not: no new VMA was made.\n\
         The one VMA that covers both is closed once."
    );
    out
}

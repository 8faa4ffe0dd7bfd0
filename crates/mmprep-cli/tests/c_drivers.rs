//! C drivers (`drivers/c/`, `crates/mmprep-c`) on the engine.
//!
//! 1. Each C example's scenario prints exactly the transcript of the Rust example driver it
//!    mirrors (`examples/NAME.scn`), `events` included, and so its reviewed `.expected` too.
//! 2. The harness's own behaviour: a compile error carries the compiler's message and the
//!    scenario line; `pr_info` lands in `events`; the HOWTO's rules a driver breaks are named
//!    there; parameters reach the driver.
//!
//! These need the system C compiler (`cc`), as CI has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmprep::Profile;
use mmprep_scenario::engine::{self, RunOptions};
use mmprep_scenario::{RunEnd, Transcript, parse};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        dir: Some(dir.to_path_buf()),
        c_drivers: Some(Arc::new(mmprep_c::CHost::default())),
    }
}

fn run_in(dir: &Path, text: &str) -> Transcript {
    engine::run_with(&parse(text), &Profile::reference_host(), &options(dir))
}

/// The C example scenarios, sorted.
fn c_examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("drivers/c"))
        .expect("drivers/c exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    v.sort();
    v
}

#[test]
fn c_examples_print_the_rust_drivers_transcripts() {
    let mut twins = 0;
    let mut failures = Vec::new();
    for c_scn in c_examples() {
        let stem = c_scn.file_stem().unwrap().to_string_lossy().into_owned();
        let c = run_in(&root().join("drivers/c"), &std::fs::read_to_string(&c_scn).unwrap());
        assert_eq!(c.end, RunEnd::Finished, "{}: {:?}", c_scn.display(), c.end);
        assert!(
            c.text().contains(" events = "),
            "{stem}: the comparison covers the hooks"
        );

        // A C version of a Rust example driver: the Rust driver's transcript, and so its
        // reviewed `.expected`.
        let rust_scn = root().join("examples").join(format!("{stem}.scn"));
        // A C driver of its own: its reviewed transcript beside it.
        let own = c_scn.with_extension("expected");
        let expected = if rust_scn.exists() {
            twins += 1;
            let rust = engine::run(
                &parse(&std::fs::read_to_string(&rust_scn).unwrap()),
                &Profile::reference_host(),
            );
            if c.text() != rust.text() {
                failures.push(format!(
                    "{stem}:\n--- Rust driver\n{}--- C driver\n{}",
                    rust.text(),
                    c.text()
                ));
            }
            rust_scn.with_extension("expected")
        } else {
            own
        };
        let expected =
            std::fs::read_to_string(&expected).unwrap_or_else(|e| panic!("{stem}: {}: {e}", expected.display()));
        if c.text() != expected {
            failures.push(format!("{stem}:\n--- expected\n{expected}--- C driver\n{}", c.text()));
        }
    }
    assert!(
        twins >= 8,
        "C versions of dax, dumpless, fb, hpet, mem, ring, ro and slots"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A scratch folder, removed with everything in it when this is dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A scratch folder with `files` written into it.
fn scratch(name: &str, files: &[(&str, &str)]) -> Scratch {
    let dir = std::env::temp_dir().join(format!("mmprep-c-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    Scratch(dir)
}

#[test]
fn a_compile_error_shows_the_compilers_message_and_the_line() {
    let dir = scratch(
        "broken",
        &[(
            "broken.c",
            "#include <linux/fs.h>\n\
             static int p(struct vm_area_desc *desc) { return desc->no_such_field; }\n\
             static const struct file_operations broken_fops = { .mmap_prepare = p };\n",
        )],
    );
    let t = run_in(&dir, "mmap 0 4K rw- private|anon\nfile b c broken.c\n");
    let RunEnd::ParseError(e) = &t.end else {
        panic!("expected a parse error, got {:?}", t.end)
    };
    assert_eq!(e.line, 2);
    assert!(e.message.contains("the C compiler failed"), "{}", e.message);
    assert!(
        e.message.contains("no_such_field"),
        "the compiler's own words: {}",
        e.message
    );
    assert!(e.message.contains("broken.c:2"), "the driver's line: {}", e.message);
}

#[test]
fn an_unknown_kernel_function_fails_at_compile_time() {
    let dir = scratch(
        "undef",
        &[(
            "undef.c",
            "#include <linux/fs.h>\n\
             int remap_vmalloc_range(void *vma, void *addr, unsigned long pgoff);\n\
             static int p(struct vm_area_desc *desc) { return remap_vmalloc_range(0, 0, 0); }\n\
             static const struct file_operations undef_fops = { .mmap_prepare = p };\n",
        )],
    );
    let t = run_in(&dir, "file u c undef.c\n");
    let RunEnd::ParseError(e) = &t.end else {
        panic!("expected a parse error, got {:?}", t.end)
    };
    assert!(e.message.contains("remap_vmalloc_range"), "{}", e.message);
}

#[test]
fn fops_picks_one_of_several_tables() {
    let src = "#include <linux/fs.h>\n#include <linux/mm.h>\n\
               static int a(struct vm_area_desc *d) { pr_info(\"a %lu pages\", vma_desc_pages(d)); return 0; }\n\
               static int b(struct vm_area_desc *d) { pr_info(\"b\"); return -ENODEV; }\n\
               static const struct file_operations a_fops = { .mmap_prepare = a };\n\
               static const struct file_operations b_fops = { .mmap_prepare = b };\n";
    let dir = scratch("two", &[("two.c", src)]);
    let t = run_in(&dir, "file t c two.c\n");
    let RunEnd::ParseError(e) = &t.end else {
        panic!("{:?}", t.end)
    };
    assert!(e.message.contains("fops=SYMBOL"), "{}", e.message);

    let t = run_in(
        &dir,
        "file a c two.c fops=a_fops\nfile b c two.c fops=b_fops\n\
         mmap 0 8K rw- shared|fixed a 0\nmmap 1M 4K rw- shared|fixed b 0\nevents\n",
    );
    assert_eq!(t.end, RunEnd::Finished);
    let text = t.text();
    assert!(text.contains("L3 mmap = 0x0"), "{text}");
    assert!(text.contains("L4 mmap = -ENODEV"), "{text}");
    // A driver's message follows the line of the hook it was logged from.
    assert!(
        text.contains("0x0-0x2000 pgoff=0x0 flags=rd,wr,sh,mr,mw,me,ms = 0\n  pr_info a 2 pages\n"),
        "{text}"
    );
    assert!(text.contains("  pr_info b\n"), "{text}");
}

/// A driver that breaks the HOWTO's statelessness rule in every way the harness sees.
const RULE_BREAKER: &str = r#"
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/refcount.h>
#include <linux/slab.h>

static struct kref dev_ref;
static refcount_t users;
static void *leak;
static long other_mm;
static int mappings;
static int generation = 7;

static int breaker_mmap_prepare(struct vm_area_desc *desc)
{
	switch (mmprep_param_u64("break", 0)) {
	case 1:
		leak = kzalloc(64, GFP_KERNEL);
		break;
	case 2:
		kref_get(&dev_ref);
		break;
	case 3:
		get_file(desc->file);
		break;
	case 4:
		desc->end += PAGE_SIZE;
		break;
	case 5:
		kfree(&dev_ref);
		break;
	case 6:
		mmap_action_remap(desc, desc->start, 0x100, 2 * vma_desc_size(desc));
		break;
	case 7:
		/* The immutable fields are const in the HOWTO's struct: only a cast reaches them. */
		*(const struct mm_struct **)&desc->mm = (const struct mm_struct *)&other_mm;
		break;
	case 8:
		*(struct file **)&desc->file = NULL;
		break;
	case 9:
		refcount_inc(&users);
		break;
	case 10:
		mappings++;
		break;
	case 11:
		generation++;
		break;
	}
	return 0;
}

static int breaker_open(struct inode *inode, struct file *file)
{
	kref_init(&dev_ref);
	refcount_set(&users, 1);
	return 0;
}

static const struct file_operations breaker_fops = {
	.open = breaker_open,
	.mmap_prepare = breaker_mmap_prepare,
};
"#;

#[test]
fn broken_rules_are_named_in_events() {
    let dir = scratch("rules", &[("breaker.c", RULE_BREAKER)]);
    let cases = [
        (1, "mmap_prepare allocated memory that outlives the call"),
        (2, "mmap_prepare took a reference (refcount_inc)"),
        (3, "mmap_prepare took a file reference (get_file)"),
        (
            4,
            "mmap_prepare changed desc->start/end, which are immutable (the change is ignored)",
        ),
        (5, "kfree of 0x"),
        (
            6,
            "mmap_action_remap: 0x2000 bytes at 0x200000000000 reach outside the mapping",
        ),
        (
            7,
            "mmap_prepare changed desc->mm, which is immutable (the change is ignored)",
        ),
        (
            8,
            "mmap_prepare changed desc->file, which is immutable (the change is ignored)",
        ),
        (9, "mmap_prepare took a reference (refcount_inc) that outlives the call"),
        (
            10,
            "mmap_prepare changed the driver's own state (1 bytes of static data) that outlives the call",
        ),
        (
            11,
            "mmap_prepare changed the driver's own state (1 bytes of static data) that outlives the call",
        ),
    ];
    for (n, message) in cases {
        let t = run_in(
            &dir,
            &format!("file d c breaker.c break={n}\nmmap 0 4K rw- shared|fixed d 0\nmaps\nevents\n"),
        );
        assert_eq!(t.end, RunEnd::Finished, "break={n}");
        let text = t.text();
        assert!(text.contains(&format!("  rule {message}")), "break={n}:\n{text}");
        if n == 6 {
            // The engine refuses the action as the kernel does; the rule says why.
            assert!(text.contains("L2 mmap = -EFAULT"), "break={n}:\n{text}");
        } else {
            // The change to `end` is ignored: the mapping is the one page asked for.
            assert!(text.contains("00000000-00001000 rw-s"), "break={n}:\n{text}");
        }
    }
    let t = run_in(&dir, "file d c breaker.c\nmmap 0 4K rw- shared|fixed d 0\nevents\n");
    assert!(!t.text().contains("rule"), "{}", t.text());
}

#[test]
fn kmalloc_memory_mapped_through_virt_to_phys_is_the_same_memory() {
    let src = r#"
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>

static unsigned char *buf;

static int shared_open(struct inode *inode, struct file *file)
{
	buf = kzalloc(2 * PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0x5a, PAGE_SIZE);
	return 0;
}

static void shared_close(struct vm_area_struct *vma)
{
	pr_info("close sees %#x", buf[PAGE_SIZE]);
}

static const struct vm_operations_struct shared_vm_ops = { .close = shared_close };

static int shared_mmap_prepare(struct vm_area_desc *desc)
{
	desc->vm_ops = &shared_vm_ops;
	mmap_action_remap_full(desc, PHYS_PFN(virt_to_phys(buf)) + desc->pgoff);
	return 0;
}

static const struct file_operations shared_fops = {
	.open = shared_open,
	.mmap_prepare = shared_mmap_prepare,
};
"#;
    let dir = scratch("ram", &[("shared.c", src)]);
    let t = run_in(
        &dir,
        "file s c shared.c\nmmap 0 8K rw- shared|fixed s 0\nread 0 2\nwrite 4K 1 0x77\nmunmap 0 8K\nevents\n",
    );
    assert_eq!(t.end, RunEnd::Finished, "{}", t.text());
    let text = t.text();
    assert!(text.contains("L3 read = 5ax2"), "{text}");
    assert!(text.contains("  pr_info close sees 0x77"), "{text}");
    assert!(text.contains("  close shared_vm_ops 0x0-0x2000"), "{text}");
}

/// A driver that crashes where `at=` says: 1 mmap_prepare (NULL), 2 mapped (BUG_ON), 3 close,
/// 4 open.
const CRASHY: &str = r#"
#include <linux/fs.h>
#include <linux/mm.h>

static int where;

static int crashy_mapped(unsigned long start, unsigned long end, pgoff_t pgoff,
			 const struct file *file, void **priv)
{
	BUG_ON(where == 2);
	return 0;
}

static void crashy_close(struct vm_area_struct *vma)
{
	if (where == 3)
		*(volatile int *)vma->vm_private_data = 1;
}

static const struct vm_operations_struct crashy_vm_ops = {
	.mapped = crashy_mapped,
	.close = crashy_close,
};

static int crashy_mmap_prepare(struct vm_area_desc *desc)
{
	if (where == 1)
		return *(volatile int *)desc->private_data;
	desc->vm_ops = &crashy_vm_ops;
	return 0;
}

static int crashy_open(struct inode *inode, struct file *file)
{
	where = mmprep_param_u64("at", 0);
	if (where == 4)
		return *(volatile int *)0x10;
	return 0;
}

static const struct file_operations crashy_fops = {
	.open = crashy_open,
	.mmap_prepare = crashy_mmap_prepare,
};
"#;

#[test]
fn a_crash_in_driver_code_is_the_drivers_with_its_hook() {
    let dir = scratch("crash", &[("crashy.c", CRASHY)]);
    let run = |at: u32| {
        run_in(
            &dir,
            &format!(
                "file d c crashy.c at={at}\nmmap 0 4K rw- shared|fixed d 0\n\
                 mmap 1M 4K rw- shared|fixed d 0\nmunmap 0 2M\nevents\n"
            ),
        )
    };
    let t = run(1);
    assert_eq!(t.end, RunEnd::Finished);
    let text = t.text();
    assert!(text.contains("L2 mmap = -EFAULT"), "{text}");
    assert!(text.contains("  crash in mmap_prepare: SIGSEGV\n"), "{text}");
    // Not called again: its state cannot be trusted.
    assert!(text.contains("L3 mmap = -ENODEV"), "{text}");

    let text = run(2).text();
    assert!(
        text.contains("mapped crashy_vm_ops 0x0-0x1000 pgoff=0x0 = -EFAULT"),
        "{text}"
    );
    assert!(text.contains("  crash in mapped: SIGILL"), "{text}");

    let text = run(3).text();
    assert!(text.contains("L3 mmap = 0x100000"), "{text}");
    assert!(
        text.contains("  close crashy_vm_ops 0x0-0x1000\n  crash in close: SIGSEGV\n"),
        "{text}"
    );

    let t = run(4);
    let RunEnd::ParseError(e) = &t.end else {
        panic!("{:?}", t.end)
    };
    assert_eq!(e.line, 1);
    assert!(
        e.message.contains("crashed in open: SIGSEGV at address 0x10"),
        "{}",
        e.message
    );
}

#[test]
fn a_legacy_mmap_remaps_on_the_vma() {
    let src = r#"
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>

static unsigned char *buf;

static int old_open(struct inode *inode, struct file *file)
{
	buf = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	buf[0] = 0x7e;
	return 0;
}

static int old_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long size = vma->vm_end - vma->vm_start;

	if (size > PAGE_SIZE)
		return -EINVAL;
	vm_flags_set(vma, VM_DONTCOPY);
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	return remap_pfn_range(vma, vma->vm_start, PHYS_PFN(virt_to_phys(buf)), size, vma->vm_page_prot);
}

static const struct file_operations old_fops = {
	.open = old_open,
	.mmap = old_mmap,
};
"#;
    let dir = scratch("legacy", &[("old.c", src)]);
    let t = run_in(
        &dir,
        "file o c old.c\nmmap 0 4K rw- shared|fixed o 0\nmmap 1M 8K rw- shared|fixed o 0\nread 0 1\nsmaps\nevents\n",
    );
    assert_eq!(t.end, RunEnd::Finished, "{}", t.text());
    let text = t.text();
    assert!(text.contains("L3 mmap = -EINVAL"), "{text}");
    assert!(text.contains("L4 read = 7ex1"), "{text}");
    assert!(
        text.contains("rw-s 00000000 o | rd wr sh mr mw me ms pf io dc de dd"),
        "{text}"
    );
    assert!(text.contains("  mmap old 0x0-0x1000 pgoff=0x0 = 0"), "{text}");

    // `mapped` belongs to the mmap_prepare model: a legacy hook that installs it is refused.
    let src = "#include <linux/fs.h>\n#include <linux/mm.h>\n\
               static int m(unsigned long s, unsigned long e, pgoff_t p, const struct file *f, void **d) { return 0; }\n\
               static const struct vm_operations_struct mixed_vm_ops = { .mapped = m };\n\
               static int mixed_mmap(struct file *file, struct vm_area_struct *vma)\n\
               { vma->vm_ops = &mixed_vm_ops; return 0; }\n\
               static const struct file_operations mixed_fops = { .mmap = mixed_mmap };\n";
    let dir = scratch("mixed", &[("mixed.c", src)]);
    let text = run_in(&dir, "file m c mixed.c\nmmap 0 4K rw- shared|fixed m 0\nevents\n").text();
    assert!(text.contains("L2 mmap = -EINVAL"), "{text}");
    assert!(
        text.contains("  rule ->mmap installed mixed_vm_ops with ->mapped, which only the mmap_prepare path calls"),
        "{text}"
    );
}

/// `mapped` belongs in the table the hook puts in `desc->vm_ops`: a driver that defines one but
/// leaves `desc->vm_ops` NULL never gets its `mapped` called, and is told so.
#[test]
fn mapped_without_vm_ops_is_named() {
    let src = "#include <linux/fs.h>\n#include <linux/mm.h>\n\
               static int m(unsigned long s, unsigned long e, pgoff_t p, const struct file *f, void **d)\n\
               { pr_info(\"mapped\"); return 0; }\n\
               static const struct vm_operations_struct forgot_vm_ops = { .mapped = m };\n\
               static int forgot_mmap_prepare(struct vm_area_desc *desc)\n\
               { if (mmprep_param_u64(\"set\", 0)) desc->vm_ops = &forgot_vm_ops; return 0; }\n\
               static const struct file_operations forgot_fops = { .mmap_prepare = forgot_mmap_prepare };\n";
    let dir = scratch("forgot", &[("forgot.c", src)]);
    let text = run_in(&dir, "file f c forgot.c\nmmap 0 4K rw- shared|fixed f 0\nevents\n").text();
    assert!(text.contains("L2 mmap = 0x0"), "{text}");
    assert!(
        text.contains("  rule mmap_prepare left desc->vm_ops NULL: vm_ops->mapped of forgot_vm_ops does not run"),
        "{text}"
    );
    assert!(!text.contains("pr_info mapped"), "{text}");
    // Set, it runs, and nothing is said.
    let text = run_in(
        &dir,
        "file f c forgot.c set=1\nmmap 0 4K rw- shared|fixed f 0\nevents\n",
    )
    .text();
    assert!(text.contains("  pr_info mapped"), "{text}");
    assert!(!text.contains("rule"), "{text}");
}

#[test]
fn reading_a_write_only_field_is_named() {
    let src = "#include <linux/fs.h>\n#include <linux/mm.h>\n\
               static const struct vm_operations_struct peek_vm_ops = { };\n\
               static int peek_mmap_prepare(struct vm_area_desc *desc)\n{\n\
               \tif (desc->vm_ops)\n\t\treturn -EBUSY;\n\
               \tdesc->vm_ops = &peek_vm_ops;\n\treturn 0;\n}\n\
               static const struct file_operations peek_fops = { .mmap_prepare = peek_mmap_prepare };\n";
    let dir = scratch("peek", &[("peek.c", src)]);
    let t = run_in(&dir, "file p c peek.c\nmmap 0 4K rw- shared|fixed p 0\nevents\n");
    let text = t.text();
    assert!(text.contains("L2 mmap = 0x0"), "{text}");
    assert!(
        text.contains("  rule peek.c:6: reads desc->vm_ops before setting it: it is write-only"),
        "{text}"
    );
}

/// Both forms of the action's error filter: `error_hook` (mainline) and, behind
/// `MMPREP_MMAP_ACTION_ERROR_OVERRIDE`, `error_override`.
#[test]
fn error_hook_and_error_override_filter_a_failed_remap() {
    let src = r#"#include <linux/fs.h>
#include <linux/mm.h>

#ifndef MMPREP_MMAP_ACTION_ERROR_OVERRIDE
static int wrap_error_hook(int err)
{
	pr_info("error_hook saw %d", err);
	return -EAGAIN;
}
#endif

static int wrap_mmap_prepare(struct vm_area_desc *desc)
{
	/* A physical range that wraps: refused when the action completes. */
	mmap_action_remap_full(desc, ~0UL >> PAGE_SHIFT);
#ifdef MMPREP_MMAP_ACTION_ERROR_OVERRIDE
	desc->action.error_override = -EAGAIN;
#else
	desc->action.error_hook = wrap_error_hook;
#endif
	return 0;
}

static const struct file_operations wrap_fops = { .mmap_prepare = wrap_mmap_prepare };
"#;
    let dir = scratch("wrap", &[("wrap.c", src)]);
    for cflags in ["", " cflags=-DMMPREP_MMAP_ACTION_ERROR_OVERRIDE"] {
        let t = run_in(
            &dir,
            &format!("file w c wrap.c{cflags}\nmmap 0 4K rw- shared|fixed w 0\nmaps\nevents\n"),
        );
        let text = t.text();
        assert!(text.contains("L2 mmap = -EAGAIN"), "{cflags}: {text}");
        assert!(text.contains("L3 maps = 0"), "{cflags}: {text}");
        assert!(text.contains("  error_hook -EINVAL = -EAGAIN"), "{cflags}: {text}");
        assert_eq!(text.contains("pr_info error_hook saw -22"), cflags.is_empty(), "{text}");
    }
}

#[test]
fn parameters_reach_the_driver() {
    let src = "#include <linux/fs.h>\n#include <linux/mm.h>\n\
               static int p(struct vm_area_desc *d)\n{\n\
               \tpr_info(\"%s %llu %llu %s\", mmprep_param_str(\"label\", \"none\"),\n\
               \t\t(unsigned long long)mmprep_param_u64(\"size\", 1),\n\
               \t\t(unsigned long long)mmprep_param_u64(\"missing\", 7),\n\
               \t\tmmprep_param_str(\"other\", \"default\"));\n\
               \treturn 0;\n}\n\
               static const struct file_operations p_fops = { .mmap_prepare = p };\n";
    let dir = scratch("params", &[("params.c", src)]);
    let t = run_in(
        &dir,
        "file p c params.c label=ring-0 size=0x2K\nmmap 0 4K rw- shared|fixed p 0\nevents\n",
    );
    assert!(t.text().contains("  pr_info ring-0 2048 7 default\n"), "{}", t.text());
}

/// A table the source scan cannot name (made by a macro) is found through the driver's
/// `module_init`, as the kernel finds it: `misc_register`.
#[test]
fn module_init_with_misc_register_serves_the_file() {
    let src = r#"#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>

static int gen_mmap_prepare(struct vm_area_desc *desc)
{
	vma_desc_set_flags(desc, VMA_DONTDUMP_BIT);
	return 0;
}

#define DEFINE_FOPS(n) static const struct file_operations n##_fops = { .mmap_prepare = n##_mmap_prepare }
DEFINE_FOPS(gen);

static struct miscdevice gen_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "gen",
	.fops = &gen_fops,
};

static int __init gen_init(void)
{
	pr_info("gen: registering");
	return misc_register(&gen_misc);
}
module_init(gen_init);
"#;
    let dir = scratch("misc", &[("gen.c", src)]);
    let t = run_in(&dir, "file g c gen.c\nmmap 0 4K rw- shared|fixed g 0\nsmaps\nevents\n");
    assert_eq!(t.end, RunEnd::Finished, "{}", t.text());
    let text = t.text();
    assert!(text.contains("rw-s 00000000 g | rd wr sh mr mw me ms dd"), "{text}");
    assert!(
        text.contains("  pr_info gen: registering\n  mmap_prepare gen"),
        "{text}"
    );
}

/// A driver's `pr_info` after a `fork` line: the driver logs through the parent's sink (the
/// parent opened the file), and the line still follows the hook that printed it.
#[test]
fn pr_info_after_fork_is_printed() {
    let src = "#include <linux/fs.h>\n#include <linux/mm.h>\n\
               static int talk_mmap_prepare(struct vm_area_desc *desc)\n\
               { pr_info(\"prepare %lu pages\", vma_desc_pages(desc)); return 0; }\n\
               static const struct file_operations talk_fops = { .mmap_prepare = talk_mmap_prepare };\n";
    let dir = scratch("fork", &[("talk.c", src)]);
    let t = run_in(
        &dir,
        "file t c talk.c\nmmap 0 4K rw- shared|fixed t 0\nfork\nmmap 1M 8K rw- shared|fixed t 0\nevents\n",
    );
    let text = t.text();
    assert_eq!(t.end, RunEnd::Finished, "{text}");
    assert!(text.contains("  pr_info prepare 1 pages\n"), "{text}");
    assert!(
        text.contains("0x100000-0x102000 pgoff=0x0 flags=rd,wr,sh,mr,mw,me,ms = 0\n  pr_info prepare 2 pages\n"),
        "{text}"
    );
}

#[test]
fn c_lines_are_engine_only() {
    let script = parse("file h c hpet.c ro\nmmap 0 4K r-- shared h 0\n");
    assert!(script.engine_only().is_some());
    // Without a C driver host the runner says so instead of guessing.
    let t = engine::run(&script, &Profile::reference_host());
    assert!(matches!(t.end, RunEnd::Unsupported { line: 1, .. }), "{:?}", t.end);
}

/// `mmprep driver-diff` of the legacy/prepare pair: the merge it gains, and nothing else.
#[test]
fn driver_diff_of_the_conversion_shows_the_merge_and_nothing_else() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .current_dir(root())
        .args(["driver-diff", "drivers/c/dumpless_legacy.c", "drivers/c/dumpless.c"])
        .output()
        .expect("mmprep runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("10 scenarios: 1 merge differences (expected), 0 hook differences, 0 regressions"),
        "{text}"
    );
    assert!(
        text.contains("a mapping continuing the previous one:\n  expected, merges now:\n"),
        "{text}"
    );
    assert!(
        text.contains("    +   00000000-00004000 rw-s 00000000 d | rd wr sh mr mw me ms dd\n"),
        "{text}"
    );

    // A real change is a regression, and the exit status says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .current_dir(root())
        .args(["driver-diff", "drivers/c/slots.c", "drivers/c/ring.c"])
        .output()
        .expect("mmprep runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REGRESSION"));
}

/// `mmprep run --sanitize`: the driver built with AddressSanitizer and UBSan, whose reports
/// name the driver's own line.
#[test]
fn sanitize_reports_the_drivers_own_bugs() {
    if mmprep_c::sanitizer_runtime().is_none() {
        eprintln!("skipped: the C compiler has no AddressSanitizer runtime");
        return;
    }
    let src = r#"#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/slab.h>

static int bad_mmap_prepare(struct vm_area_desc *desc)
{
	int n = (int)mmprep_param_u64("n", 0);

	if (n == 1) {
		char *p = kmalloc(16, GFP_KERNEL);

		p[16] = 1;
		kfree(p);
	}
	if (n == 2) {
		int big = 0x7fffffff;

		big += (int)vma_desc_pages(desc);
		pr_info("big %d", big);
	}
	return 0;
}

static const struct file_operations bad_fops = { .mmap_prepare = bad_mmap_prepare };
"#;
    let dir = scratch("sanitize", &[("bad.c", src)]);
    let run = |n: u32| {
        let scn = dir.join(format!("bad{n}.scn"));
        std::fs::write(&scn, format!("file b c bad.c n={n}\nmmap 0 4K rw- shared|fixed b 0\n")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_mmprep"))
            .args(["run", "--sanitize"])
            .arg(&scn)
            .output()
            .expect("mmprep runs")
    };
    // A write one past a kmalloc's end: AddressSanitizer stops the run at the driver's line.
    let out = run(1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ERROR: AddressSanitizer"), "{err}");
    assert!(err.contains("in bad_mmap_prepare") && err.contains("bad.c:12"), "{err}");
    // A signed overflow: UBSan says where, and the run goes on.
    let out = run(2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("bad.c:18") && err.contains("signed integer overflow"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "L2 mmap = 0x0\n");
}

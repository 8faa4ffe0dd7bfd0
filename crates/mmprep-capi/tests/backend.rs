//! The backend table through the C entries: the ops reach the callbacks in order, a 16 KiB
//! granule reports a conflict, a refused call and a failing callback have their own status,
//! and a table missing a callback or with a bad granule is refused.

use std::ffi::c_void;
use std::ptr;

use mmprep_capi::*;

/// What the callbacks saw, as text lines.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    fail_protect: bool,
}

fn log(ctx: *mut c_void) -> &'static mut Log {
    // SAFETY: every test passes a `&mut Log` that outlives the handle's use as `ctx`.
    unsafe { &mut *ctx.cast::<Log>() }
}

unsafe extern "C" fn map(ctx: *mut c_void, start: u64, len: u64, prot: i32, b: *const MmprepBacking) -> i32 {
    // SAFETY: the library passes a live backing for the call.
    let kind = unsafe { (*b).kind };
    log(ctx).lines.push(format!("map {start:#x} {len:#x} {prot} {kind}"));
    0
}
unsafe extern "C" fn unmap(ctx: *mut c_void, start: u64, len: u64) -> i32 {
    log(ctx).lines.push(format!("unmap {start:#x} {len:#x}"));
    0
}
unsafe extern "C" fn protect(ctx: *mut c_void, start: u64, len: u64, prot: i32) -> i32 {
    let l = log(ctx);
    l.lines.push(format!("protect {start:#x} {len:#x} {prot}"));
    if l.fail_protect { -13 } else { 0 }
}
unsafe extern "C" fn zap(ctx: *mut c_void, start: u64, len: u64) -> i32 {
    log(ctx).lines.push(format!("zap {start:#x} {len:#x}"));
    0
}
unsafe extern "C" fn zero(ctx: *mut c_void, start: u64, len: u64) -> i32 {
    log(ctx).lines.push(format!("zero {start:#x} {len:#x}"));
    0
}
unsafe extern "C" fn remap(ctx: *mut c_void, from: u64, to: u64, len: u64, keep: i32) -> i32 {
    log(ctx).lines.push(format!("mremap {from:#x} {to:#x} {len:#x} {keep}"));
    0
}
unsafe extern "C" fn copy(ctx: *mut c_void, from: u64, to: u64, len: u64) -> i32 {
    log(ctx).lines.push(format!("copy {from:#x} {to:#x} {len:#x}"));
    0
}
unsafe extern "C" fn conflict(ctx: *mut c_void, c: *const MmprepConflict) {
    // SAFETY: the library passes a live conflict whose pieces live for the callback.
    let c = unsafe { &*c };
    // SAFETY: as above: `npieces` pieces at `pieces`.
    let pieces = unsafe { std::slice::from_raw_parts(c.pieces, c.npieces) };
    let p: Vec<String> = pieces
        .iter()
        .map(|p| format!("{:#x}-{:#x}:{}", p.start, p.end, p.prot))
        .collect();
    log(ctx).lines.push(format!(
        "conflict {:#x}-{:#x} prot {} [{}]",
        c.start,
        c.end,
        c.prot,
        p.join(" ")
    ));
}

fn table(ctx: &mut Log) -> MmprepBackend {
    MmprepBackend {
        ctx: ptr::from_mut(ctx).cast(),
        map: Some(map),
        unmap: Some(unmap),
        protect: Some(protect),
        zap: Some(zap),
        zero: Some(zero),
        mremap: Some(remap),
        copy: Some(copy),
        conflict: Some(conflict),
    }
}

fn new() -> *mut MmprepMm {
    let mut mm = ptr::null_mut();
    // SAFETY: a NUL-terminated name and a writable out pointer.
    assert_eq!(unsafe { mmprep_new(c"x86_64".as_ptr(), &mut mm) }, 0);
    mm
}

fn sys(mm: *mut MmprepMm, nr: u64, a: [u64; 6]) -> (i64, i32) {
    let mut st = -1;
    // SAFETY: a live handle and a writable status.
    let r = unsafe { mmprep_syscall(mm, nr, a[0], a[1], a[2], a[3], a[4], a[5], &mut st) };
    (r, st)
}

const BASE: u64 = 0x2000_0000_0000;

#[test]
fn ops_reach_the_callbacks_and_a_16k_granule_reports_its_conflict() {
    let mut l = Log::default();
    let t = table(&mut l);
    let mm = new();
    // SAFETY: a live handle and a readable table whose ctx outlives the handle's use.
    assert_eq!(unsafe { mmprep_set_backend(mm, &t, 16384) }, 0);
    assert_eq!(
        sys(mm, 9, [BASE, 0x4000, 3, 0x32, u64::MAX, 0]),
        (BASE as i64, MMPREP_RETURNED)
    );
    assert_eq!(sys(mm, 10, [BASE + 0x1000, 0x1000, 1, 0, 0, 0]), (0, MMPREP_RETURNED));
    assert_eq!(sys(mm, 11, [BASE, 0x4000, 0, 0, 0, 0]), (0, MMPREP_RETURNED));
    // SAFETY: the handle is live and freed once.
    unsafe { mmprep_free(mm) };
    assert_eq!(
        l.lines,
        [
            "map 0x200000000000 0x4000 3 0",
            "conflict 0x200000000000-0x200000004000 prot 3 [0x200000000000-0x200000001000:3 0x200000001000-0x200000002000:1 0x200000002000-0x200000004000:3]",
            "unmap 0x200000000000 0x4000",
        ]
    );
}

#[test]
fn refused_calls_failing_callbacks_and_bad_tables() {
    let mut l = Log::default();
    let t = table(&mut l);
    let mm = new();
    let mut partial = t;
    partial.zero = None;
    // SAFETY (each call below): a live handle and readable tables whose ctx outlives them.
    unsafe {
        assert_eq!(mmprep_set_backend(mm, &partial, 4096), -EINVAL);
        assert_eq!(mmprep_set_backend(mm, &t, 2048), -EINVAL);
        assert_eq!(mmprep_set_backend(ptr::null_mut(), &t, 4096), -EFAULT);
        assert_eq!(mmprep_set_backend(mm, &t, 4096), 0);
    }
    assert_eq!(sys(mm, 9, [BASE, 0x2000, 3, 0x32, u64::MAX, 0]).1, MMPREP_RETURNED);
    // MADV_REMOVE has no host op: refused before it runs.
    assert_eq!(
        sys(mm, 28, [BASE, 0x1000, 9, 0, 0, 0]),
        (-EOPNOTSUPP, MMPREP_BACKEND_UNSUPPORTED)
    );
    // The host refuses the protect: the callback's errno, and the model did change.
    log(t.ctx).fail_protect = true;
    assert_eq!(sys(mm, 10, [BASE, 0x1000, 1, 0, 0, 0]), (-13, MMPREP_BACKEND_FAILED));
    let mut buf = [0 as std::ffi::c_char; 256];
    // SAFETY: a live handle and a 256-byte buffer.
    unsafe { mmprep_maps(mm, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: mmprep_maps NUL-terminates.
    let maps = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert!(maps.starts_with("200000000000-200000001000 r--p"), "{maps}");
    // Without the table, calls no longer reach it.
    // SAFETY: a live handle; a null table removes it.
    assert_eq!(unsafe { mmprep_set_backend(mm, ptr::null(), 0) }, 0);
    let n = log(t.ctx).lines.len();
    assert_eq!(sys(mm, 11, [BASE, 0x2000, 0, 0, 0, 0]), (0, MMPREP_RETURNED));
    assert_eq!(log(t.ctx).lines.len(), n);
    // SAFETY: the handle is live and freed once.
    unsafe { mmprep_free(mm) };
}

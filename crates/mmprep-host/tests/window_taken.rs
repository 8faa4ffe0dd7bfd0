//! The runner refuses a window that is already mapped (exit status 4 in the CLI).
//!
//! This test maps memory at the window base in its own process, which every runner child
//! forked from it inherits; it lives alone in this test binary so that no other test's run
//! sees that mapping.

use mmprep_scenario::{RunEnd, WINDOW_BASE, parse};

#[test]
fn a_mapped_window_is_refused() {
    let at = WINDOW_BASE as usize + (64 << 20);
    // SAFETY: a fixed_noreplace anonymous mapping at an address this process does not use.
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    assert_eq!(p as usize, at, "cannot map the test page");

    // The page is the first one past a 64M window: that window is free.
    let t = mmprep_host::run(&parse("window 64M\nmmap 0 4K rw- private|anon|fixed\n"));
    assert_eq!(t.end, RunEnd::Finished);
    assert_eq!(t.entries, ["L2 mmap = 0x0"]);

    // A 64M+4K window contains it: nothing runs.
    let t = mmprep_host::run(&parse("window 0x4001000\nmmap 0 4K rw- private|anon|fixed\n"));
    assert_eq!(t.end, RunEnd::WindowTaken);
    assert_eq!(t.end.exit_code(), 4);
    assert_eq!(t.entries, Vec::<String>::new());
}

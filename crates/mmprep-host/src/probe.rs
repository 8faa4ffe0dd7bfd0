//! Memory accesses that may fault, caught and reported instead of killing the process.
//!
//! `touch`, `write` and `read` really access the scenario's memory, and the point is often to
//! see the access fail: `SIGSEGV` on a page the VMA does not allow (or no VMA at all), `SIGBUS`
//! past the end of a file. The runner catches such a fault without `setjmp`: every access that
//! may fault is one fixed two-byte instruction with fixed registers, inside a tiny `asm!` block:
//!
//! ```text
//!   read probe    8a 07    mov al, byte ptr [rdi]
//!   write probe   88 07    mov byte ptr [rdi], al
//! ```
//!
//! Before the access, the probe is *armed*: a global says which address it is about to touch.
//! The `SIGSEGV`/`SIGBUS` handler checks that a probe is armed, that the fault is at that address
//! and that the faulting instruction is one of the two above. If so, it records the signal and
//! moves the instruction pointer past the two bytes, so the access simply "completes" and the
//! probe reports the fault. Any other fault is not ours: the handler restores the default
//! action and re-raises, and the process dies of it as it would have without a handler.
//!
//! Only the first byte of a page needs a probe: protections, guard regions and file ends all
//! work on whole pages, so once one byte of a page could be accessed, the rest can be too.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::SeqCst};

use libc::{c_int, c_void, siginfo_t};
use mmprep_scenario::transcript::Signal;

/// The bytes of the read probe, `mov al, byte ptr [rdi]`.
pub const READ_INSN: [u8; 2] = [0x8a, 0x07];
/// The bytes of the write probe, `mov byte ptr [rdi], al`.
pub const WRITE_INSN: [u8; 2] = [0x88, 0x07];

/// Is a probe about to access [`TARGET`]?
static ARMED: AtomicBool = AtomicBool::new(false);
/// The address the armed probe accesses.
static TARGET: AtomicU64 = AtomicU64::new(0);
/// The signal the last probe caught, or 0.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// `si_code` of a fault the kernel reports without an address: on x86_64, an access to a
/// non-canonical address is a general-protection fault, delivered as `SIGSEGV` with
/// `si_addr == 0` and `SI_KERNEL`.
const SI_KERNEL: c_int = libc::SI_KERNEL;

/// Installs the `SIGSEGV` and `SIGBUS` handlers and unblocks both signals.
///
/// Call it once, in the runner child, before the first probe. The handlers stay installed
/// across `fork`.
pub fn install() -> Result<(), String> {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: an all-zero `sigaction` is a valid value (empty mask, no flags) to fill in.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        action.sa_sigaction = on_fault as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: `action` and `set` are valid, exclusively borrowed values; installing a
        // handler for a synchronous fault signal affects only this (single-threaded) child.
        let failed = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigaction(signal, &action, core::ptr::null_mut()) != 0
                || libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut()) != 0
        };
        if failed {
            return Err(format!(
                "cannot install the {} handler",
                crate::sys::signal_name(signal)
            ));
        }
    }
    Ok(())
}

/// Reads the byte at `addr`, or returns the signal the read raised.
pub fn read_byte(addr: u64) -> Result<u8, Signal> {
    let (value, _insn) = read_probe(addr);
    disarm().map(|()| value)
}

/// Writes `value` to the byte at `addr`, or returns the signal the write raised.
pub fn write_byte(addr: u64, value: u8) -> Result<(), Signal> {
    let _insn = write_probe(addr, value);
    disarm()
}

fn arm(addr: u64) {
    CAUGHT.store(0, SeqCst);
    TARGET.store(addr, SeqCst);
    ARMED.store(true, SeqCst);
}

fn disarm() -> Result<(), Signal> {
    ARMED.store(false, SeqCst);
    match CAUGHT.swap(0, SeqCst) {
        0 => Ok(()),
        libc::SIGBUS => Err(Signal::Bus),
        _ => Err(Signal::Segv),
    }
}

/// The read probe; also returns the address of its `mov` instruction (for the encoding test).
#[inline(never)]
fn read_probe(addr: u64) -> (u8, u64) {
    arm(addr);
    let value: u8;
    let insn: u64;
    // SAFETY: the `mov` reads one byte at `addr`. If that faults, `on_fault` recognises the
    // armed probe and resumes after the instruction (`al` then holds garbage, which `disarm`'s
    // caller ignores). The `lea` only computes an address. No stack, flags or other memory use.
    unsafe {
        core::arch::asm!(
            "lea {insn}, [rip + 7f]",
            "7:",
            "mov al, byte ptr [rdi]",
            insn = out(reg) insn,
            in("rdi") addr,
            out("al") value,
            options(nostack, preserves_flags),
        );
    }
    (value, insn)
}

/// The write probe; also returns the address of its `mov` instruction (for the encoding test).
#[inline(never)]
fn write_probe(addr: u64, value: u8) -> u64 {
    arm(addr);
    let insn: u64;
    // SAFETY: the `mov` writes one byte at `addr`, an address of the scenario's window that
    // no Rust object lives in. If it faults, `on_fault` resumes after the instruction.
    unsafe {
        core::arch::asm!(
            "lea {insn}, [rip + 7f]",
            "7:",
            "mov byte ptr [rdi], al",
            insn = out(reg) insn,
            in("rdi") addr,
            in("al") value,
            options(nostack, preserves_flags),
        );
    }
    insn
}

/// The `SIGSEGV`/`SIGBUS` handler (see the module doc). Async-signal-safe: atomics only, then
/// `signal` and `raise` for faults that are not ours.
extern "C" fn on_fault(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid `siginfo_t` and a valid
    // `ucontext_t` (as `context`), both exclusively ours for the duration of the handler. The
    // two instruction bytes are read only when the fault is at the armed probe's address, so
    // RIP points into this module's code, which is mapped and readable.
    unsafe {
        if ARMED.load(SeqCst) && !info.is_null() && !context.is_null() {
            let fault_addr = (*info).si_addr() as u64;
            let at_target = fault_addr == TARGET.load(SeqCst) || (fault_addr == 0 && (*info).si_code == SI_KERNEL);
            let uc = &mut *context.cast::<libc::ucontext_t>();
            let rip = uc.uc_mcontext.gregs.get_mut(libc::REG_RIP as usize);
            if let (true, Some(rip)) = (at_target, rip) {
                let insn = core::ptr::read(*rip as usize as *const [u8; 2]);
                if insn == READ_INSN || insn == WRITE_INSN {
                    CAUGHT.store(signal, SeqCst);
                    ARMED.store(false, SeqCst);
                    *rip += 2;
                    return;
                }
            }
        }
        // Not a probe's fault: die of it. Returning re-runs a faulting instruction, which now
        // gets the default action; `raise` covers a signal that was sent rather than caused.
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler recognises the probes by their bytes: check the assembler emitted them.
    #[test]
    fn probe_instructions_have_the_expected_encoding() {
        let mut cell = 0x5au8;
        let addr = &mut cell as *mut u8 as u64;
        let (value, insn) = read_probe(addr);
        assert_eq!(disarm(), Ok(()));
        assert_eq!(value, 0x5a);
        // SAFETY: `insn` is the address of an instruction in this crate's mapped code.
        let bytes = unsafe { core::ptr::read(insn as usize as *const [u8; 2]) };
        assert_eq!(bytes, READ_INSN);

        let insn = write_probe(addr, 0xa5);
        assert_eq!(disarm(), Ok(()));
        // SAFETY: as above.
        let bytes = unsafe { core::ptr::read(insn as usize as *const [u8; 2]) };
        assert_eq!(bytes, WRITE_INSN);
        // SAFETY: `cell` is a live local; the volatile read stops the compiler from assuming
        // the asm left it unchanged.
        assert_eq!(unsafe { core::ptr::read_volatile(&cell) }, 0xa5);
    }
}

// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * mmprep: the crash guard. One copy per process, loaded once and never unloaded: it owns the
 * handlers of the signals a driver bug raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL: BUG() traps). While
 * a thread runs driver code, a fault there jumps back to the shim function that called the
 * driver, which reports the crash with the hook it was in; any other fault goes to the handler
 * that was there before (Rust's stack-overflow check, or the default: the process dies).
 */
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

static __thread sigjmp_buf *current;
static __thread int last_signal;
static __thread void *last_address;

static const int guarded[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };
static struct sigaction previous[sizeof(guarded) / sizeof(guarded[0])];
static int installed;

static void handler(int sig, siginfo_t *info, void *uc)
{
	sigjmp_buf *jb = current;
	size_t i;

	if (jb) {
		current = NULL;
		last_signal = sig;
		last_address = info ? info->si_addr : NULL;
		siglongjmp(*jb, 1);
	}
	for (i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++) {
		struct sigaction *p = &previous[i];

		if (guarded[i] != sig)
			continue;
		if ((p->sa_flags & SA_SIGINFO) && p->sa_sigaction) {
			p->sa_sigaction(sig, info, uc);
			return;
		}
		if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
			p->sa_handler(sig);
			return;
		}
	}
	/* Nothing before us: die of it, as without the guard. */
	signal(sig, SIG_DFL);
	raise(sig);
}

void mmprep_guard_install(void)
{
	struct sigaction sa;
	size_t i;

	if (installed)
		return;
	installed = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++)
		sigaction(guarded[i], &sa, &previous[i]);
}

/* Driver code starts (JB) or ends (NULL) on this thread. */
void mmprep_guard_set(void *jb)
{
	current = jb;
}

/* The signal and faulting address of this thread's last caught crash. */
int mmprep_guard_last(void **address)
{
	*address = last_address;
	return last_signal;
}

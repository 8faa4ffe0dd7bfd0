/* The differential probe of tests/trace.rs: a fixed sequence of memory system calls, each
 * result printed, after a point where the parent imports this process from /proc/PID.
 *
 * After "ready" nothing may change the address space but the calls themselves: no stdio, no
 * malloc (both may call brk or mmap), the stack already grown. Output is written with write(2)
 * from static buffers. Each result line is "NAME ARGS = VALUE" with VALUE an address in hex or
 * "-ERRNO" in decimal. The parent replays the same calls on the engine. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static char line[256];
static int len;

static void put(const char *s) { while (*s) line[len++] = *s++; }
static void hex(unsigned long x) {
    char h[17]; int k = 0;
    do { h[k++] = "0123456789abcdef"[x & 15]; x >>= 4; } while (x);
    while (k) line[len++] = h[--k];
}
static void dec(long x) {
    char d[24]; int k = 0;
    if (x < 0) { line[len++] = '-'; x = -x; }
    do { d[k++] = '0' + x % 10; x /= 10; } while (x);
    while (k) line[len++] = d[--k];
}
static void flush(void) { line[len++] = '\n'; write(1, line, len); len = 0; }

/* Prints "= RESULT" for a raw syscall return (negative errno or a value). */
static long result(long r) {
    put(" = ");
    if (r < 0 && r > -4096) dec(r); else hex((unsigned long)r);
    flush();
    return r;
}
static long sys(long nr, long a, long b, long c, long d, long e, long f) {
    long r = syscall(nr, a, b, c, d, e, f);
    return r == -1 ? -errno : r;
}

/* Op lines the parent understands:
 *   brk ADDR
 *   mmap ADDR LEN PROT FLAGS FD OFF    (FD -1 or "exe": this program's executable)
 *   munmap ADDR LEN
 *   mprotect ADDR LEN PROT            (all numbers in hex) */
static long op_brk(unsigned long a) { put("brk "); hex(a); return result(sys(SYS_brk, a, 0, 0, 0, 0, 0)); }
static long op_mmap(unsigned long a, unsigned long l, int prot, int flags, int fd, int exe) {
    put("mmap "); hex(a); put(" "); hex(l); put(" "); hex(prot); put(" "); hex(flags);
    put(exe ? " exe 0" : " -1 0");
    return result(sys(SYS_mmap, a, l, prot, flags, fd, 0));
}
static long op_munmap(unsigned long a, unsigned long l) {
    put("munmap "); hex(a); put(" "); hex(l); return result(sys(SYS_munmap, a, l, 0, 0, 0, 0));
}
static long op_mprotect(unsigned long a, unsigned long l, int prot) {
    put("mprotect "); hex(a); put(" "); hex(l); put(" "); hex(prot);
    return result(sys(SYS_mprotect, a, l, prot, 0, 0, 0));
}

__attribute__((noinline)) static void grow_stack(void) {
    volatile char pad[256 << 10];
    memset((char *)pad, 1, sizeof pad);
}

static char smaps[1 << 20];

int main(void) {
    grow_stack();
    int exe = open("/proc/self/exe", O_RDONLY);
    long b = sys(SYS_brk, 0, 0, 0, 0, 0, 0);
    put("brk0 "); hex(b); flush();
    put("ready"); flush();
    char c;
    if (read(0, &c, 1) != 1) return 2;

    const int ANON = MAP_PRIVATE | MAP_ANONYMOUS;
    const int RW = PROT_READ | PROT_WRITE;
    op_brk(b + 0x1000);
    op_brk(b + 0x3000);
    op_brk(b + 0x1800);
    op_brk(b + 0x5001);
    /* A mapping above the heap: brk must leave one page free below it. */
    op_mmap(b + 0x8000, 0x1000, PROT_READ, ANON | MAP_FIXED_NOREPLACE, -1, 0);
    op_brk(b + 0x7000);
    op_brk(b + 0x7001);
    op_munmap(b + 0x8000, 0x1000);
    op_brk(0);
    op_brk(b - 0x1000);
    long p1 = op_mmap(0, 0x1000, RW, ANON, -1, 0);
    long p2 = op_mmap(0, 2 << 20, RW, ANON, -1, 0);
    op_mmap(0, (4 << 20) + 0x1000, PROT_READ, ANON, -1, 0);
    op_mmap(0, 4 << 20, PROT_READ, ANON, -1, 0);
    long p5 = op_mmap(0, 0x5000, PROT_READ, ANON, -1, 0);
    op_mprotect(p5 + 0x1000, 0x1000, RW);
    op_munmap(p1, 0x1000);
    op_mprotect(p5 + 0x1000, 0x1000, PROT_READ);
    op_munmap(p2 + 0x100000, 0x1000);
    op_mmap(0, 0x1000, RW, ANON, -1, 0);
    op_mmap(0, 8 << 20, PROT_NONE, ANON | MAP_NORESERVE, -1, 0);
    op_mprotect(p5 + 1, 0x1000, PROT_READ);
    op_munmap(p5 + 1, 0x1000);
    op_mmap(0, 0x2000, PROT_READ, MAP_PRIVATE, exe, 1);
    op_mmap(p5, 0x1000, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0);
    op_mmap(p5 + 0x2000, 0x1000, RW, ANON | MAP_FIXED, -1, 0);
    op_mmap(0, 0, RW, ANON, -1, 0);
    op_brk(b + 0x2000);
    op_brk(b);

    put("smaps"); flush();
    int fd = open("/proc/self/smaps", O_RDONLY);
    long n = 0, r;
    while ((r = read(fd, smaps + n, sizeof smaps - n)) > 0) n += r;
    write(1, smaps, n);
    return 0;
}

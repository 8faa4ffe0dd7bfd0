/* Memory system calls with odd arguments, made raw (no libc wrapper rewrites them), for
 * `mmprep trace` to answer on the engine: every errno path of the syscall ABI that a real
 * program could take. tests/ptrace.rs traces it; the kernel's results are the expected ones. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define S(...) syscall(__VA_ARGS__)
#define PAGE 4096L
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

int main(void) {
    long a, b;
    /* mmap: an unaligned offset, a closed descriptor, a pipe, a write-only file, a read-only
     * file mapped shared and writable, /dev/zero both ways, a memfd, MAP_32BIT, NOREPLACE. */
    S(SYS_mmap, 0, PAGE, PROT_READ, MAP_PRIVATE, 0, 1);
    S(SYS_mmap, 0, PAGE, PROT_READ, MAP_PRIVATE, 77, 0);
    int p[2];
    if (pipe(p)) return 1;
    S(SYS_mmap, 0, PAGE, PROT_READ, MAP_PRIVATE, p[0], 0);
    char path[] = "/tmp/mmprep-abi-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, 8 * PAGE)) return 1;
    int wo = open(path, O_WRONLY), ro = open(path, O_RDONLY);
    unlink(path);
    S(SYS_mmap, 0, PAGE, PROT_READ, MAP_SHARED, wo, 0);
    S(SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    a = S(SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    S(SYS_mmap, a + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 4 * PAGE);
    *(volatile char *)a = 1;
    int z = open("/dev/zero", O_RDWR);
    b = S(SYS_mmap, 0, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, z, 0);
    *(volatile char *)b = 1;
    S(SYS_mmap, 0, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, z, 0);
    int m = memfd_create("probe", 0);
    if (m < 0 || ftruncate(m, 4 << 20)) return 1;
    S(SYS_mmap, 0, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    S(SYS_mmap, 0, 8 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    S(SYS_mmap, b, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    S(SYS_mmap, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    S(SYS_mmap, 0, PAGE, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x40000000, -1, 0);
    /* mprotect and pkey_mprotect: a high prot bit, pkeys -1, 0, 1, 16. */
    a = S(SYS_mmap, 0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    S(SYS_mprotect, a, PAGE, PROT_READ | (1L << 40));
    S(SYS_mprotect, a + 1, PAGE, PROT_READ);
    S(SYS_pkey_mprotect, a, PAGE, PROT_READ, -1);
    S(SYS_pkey_mprotect, a, PAGE, PROT_READ | PROT_WRITE, 0);
    S(SYS_pkey_mprotect, a, PAGE, PROT_READ, 1);
    S(SYS_pkey_mprotect, a, 0, PROT_READ, 16);
    S(SYS_pkey_mprotect, a + PAGE, PAGE, PROT_READ | 0x100000, 1);
    /* madvise, msync, mlock. */
    S(SYS_madvise, a, 2 * PAGE, MADV_DONTNEED);
    S(SYS_madvise, a, 2 * PAGE, 9999);
    S(SYS_madvise, a + 2 * PAGE, PAGE, 102 /* MADV_GUARD_INSTALL */);
    S(SYS_msync, a, PAGE, MS_ASYNC | MS_SYNC);
    S(SYS_msync, a, PAGE, 8);
    S(SYS_msync, a + 1, PAGE, MS_SYNC);
    S(SYS_msync, a, 8 * PAGE, MS_SYNC);
    S(SYS_msync, a - 64 * PAGE, 72 * PAGE, MS_ASYNC);
    S(SYS_msync, a - 64 * PAGE, 72 * PAGE, MS_SYNC);
    S(SYS_msync, 0x10000, PAGE, MS_SYNC);
    S(SYS_mlock, a + 4 * PAGE, PAGE);
    S(SYS_msync, a, 8 * PAGE, MS_INVALIDATE);
    S(SYS_mlock2, a + 5 * PAGE, PAGE, 1 /* MLOCK_ONFAULT */);
    S(SYS_mlock2, a + 5 * PAGE, PAGE, 2);
    S(SYS_munlock, a, 8 * PAGE);
    /* mremap: grow in place, move, FIXED, DONTUNMAP, bad flags. */
    b = S(SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *(volatile char *)b = 1;
    b = S(SYS_mremap, b, 4 * PAGE, 64 * PAGE, MREMAP_MAYMOVE, 0);
    S(SYS_mremap, b, 64 * PAGE, 128 * PAGE, 0, 0);
    S(SYS_mremap, b, 64 * PAGE, 8 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, 0x200000000000L);
    S(SYS_mremap, 0x200000000000L, 8 * PAGE, 8 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
    S(SYS_mremap, b, PAGE, PAGE, 1L << 40, 0);
    /* mlockall: bad flags, then future mappings locked, then everything (on fault, then at
     * once), then nothing. */
    S(SYS_mlockall, 0);
    S(SYS_mlockall, MCL_ONFAULT);
    S(SYS_mlockall, 8);
    S(SYS_mlockall, MCL_FUTURE);
    b = S(SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    S(SYS_mlockall, MCL_CURRENT | MCL_ONFAULT);
    S(SYS_munlockall);
    S(SYS_mlockall, MCL_CURRENT);
    S(SYS_munlockall);
    /* mseal, then what it refuses. */
    b = S(SYS_mmap, 0, 4 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    S(SYS_mseal, b, 4 * PAGE, 1);
    S(SYS_mseal, b, 4 * PAGE, 0);
    S(SYS_munmap, b, PAGE);
    S(SYS_mprotect, b, PAGE, PROT_READ | PROT_WRITE);
    /* brk: below the start, up, down, odd. */
    a = S(SYS_brk, 0);
    S(SYS_brk, 1);
    S(SYS_brk, a + 33 * PAGE + 5);
    S(SYS_brk, a + PAGE);
    /* A MAP_GROWSDOWN mapping grown by a fault below it, between two calls. */
    b = S(SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    *(volatile char *)(b - 3 * PAGE) = 1;
    S(SYS_munmap, 0, 0);
    /* Not modelled: the engine says so, the kernel's result stands. */
    unsigned char vec[8];
    S(SYS_mincore, a, PAGE, vec);
    return 0;
}

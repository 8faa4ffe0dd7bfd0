/* An emulator's use of libmmprep_capi: replay a recorded program's memory system calls
 * through mmprep_syscall with a backend set (mmprep_set_backend), so that the engine itself
 * applies each call to real host memory (guest address g lives at a scratch host address, one
 * reserved 1 GiB window per guest GiB), and check that the results are the recorded ones and
 * that guest memory, read from the host, is what Linux would give.
 * Usage: embed TRACE. Exit 0 when everything matched, 1 otherwise. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include "mmprep.h"

#define GIB (1ull << 30)
#define MAXW 16
static uint64_t wguest[MAXW];
static uint8_t *whost[MAXW];
static int nw, bad;

/* The host address of guest address g (reserving its window the first time). */
static uint8_t *host(uint64_t g) {
    uint64_t b = g & ~(GIB - 1);
    for (int i = 0; i < nw; i++)
        if (wguest[i] == b) return whost[i] + (g - b);
    if (nw == MAXW) { fprintf(stderr, "too many windows\n"); exit(2); }
    void *p = mmap(NULL, GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { perror("reserve"); exit(2); }
    wguest[nw] = b;
    whost[nw] = p;
    return whost[nw++] + (g - b);
}

/* The host side of the backend: the engine hands every call's host operations to these
 * callbacks (struct mmprep_backend), in an order that never leaves a hole where the guest keeps
 * memory. File memory is mapped as anonymous memory (private, or shared for MAP_SHARED): the
 * model has no file data, and its file pages read zero as these do. */
static int ops_done, conflicts_seen;
static int procmem = -1; /* /proc/self/mem: zero and copy store whatever the protection */

/* Runs fn on each piece of [g, g+len) that lies in one window; 0 or the first -errno. */
static int each(uint64_t g, uint64_t len, int (*fn)(uint8_t *, uint64_t, int, const struct mmprep_backing *),
                int arg, const struct mmprep_backing *b) {
    while (len) {
        uint64_t n = GIB - (g & (GIB - 1));
        if (n > len) n = len;
        int r = fn(host(g), n, arg, b);
        if (r) return r;
        g += n;
        len -= n;
    }
    return 0;
}
static int h_map(uint8_t *h, uint64_t n, int prot, const struct mmprep_backing *b) {
    int share = b && b->kind == MMPREP_BACKING_FILE && b->shared ? MAP_SHARED : MAP_PRIVATE;
    return mmap(h, n, prot, MAP_FIXED | share | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -errno : 0;
}
static int h_reserve(uint8_t *h, uint64_t n, int unused, const struct mmprep_backing *b) {
    (void)unused, (void)b; /* back to reserved: never a hole in the window */
    return mmap(h, n, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED
               ? -errno : 0;
}
static int h_protect(uint8_t *h, uint64_t n, int prot, const struct mmprep_backing *b) {
    (void)b;
    return mprotect(h, n, prot) ? -errno : 0;
}
static int h_dontneed(uint8_t *h, uint64_t n, int unused, const struct mmprep_backing *b) {
    (void)unused, (void)b;
    return madvise(h, n, MADV_DONTNEED) ? -errno : 0;
}
static int h_zero(uint8_t *h, uint64_t n, int unused, const struct mmprep_backing *b) {
    (void)unused, (void)b;
    static const uint8_t zeros[4096];
    for (uint64_t o = 0; o < n; o += sizeof zeros) {
        size_t k = n - o < sizeof zeros ? (size_t)(n - o) : sizeof zeros;
        if (pwrite(procmem, zeros, k, (off_t)(uintptr_t)(h + o)) != (ssize_t)k) return -EIO;
    }
    return 0;
}

static int cb_map(void *ctx, uint64_t start, uint64_t len, int32_t prot, const struct mmprep_backing *b) {
    (void)ctx, ops_done++;
    return each(start, len, h_map, prot, b);
}
static int cb_unmap(void *ctx, uint64_t start, uint64_t len) {
    (void)ctx, ops_done++;
    return each(start, len, h_reserve, 0, NULL);
}
static int cb_protect(void *ctx, uint64_t start, uint64_t len, int32_t prot) {
    (void)ctx, ops_done++;
    return each(start, len, h_protect, prot, NULL);
}
static int cb_zap(void *ctx, uint64_t start, uint64_t len) {
    (void)ctx, ops_done++;
    return each(start, len, h_dontneed, 0, NULL);
}
static int cb_zero(void *ctx, uint64_t start, uint64_t len) {
    (void)ctx, ops_done++;
    return each(start, len, h_zero, 0, NULL);
}
/* mremap between windows, piece by piece; the source goes back to reserved unless kept. */
static int cb_mremap(void *ctx, uint64_t from, uint64_t to, uint64_t len, int32_t keep) {
    (void)ctx, ops_done++;
    while (len) {
        uint64_t n = len, a = GIB - (from & (GIB - 1)), c = GIB - (to & (GIB - 1));
        if (n > a) n = a;
        if (n > c) n = c;
        int fl = MREMAP_MAYMOVE | MREMAP_FIXED | (keep ? MREMAP_DONTUNMAP : 0);
        if (mremap(host(from), n, n, fl, host(to)) == MAP_FAILED) return -errno;
        if (!keep && h_reserve(host(from), n, 0, NULL)) return -errno;
        from += n, to += n, len -= n;
    }
    return 0;
}
static int cb_copy(void *ctx, uint64_t from, uint64_t to, uint64_t len) {
    (void)ctx, ops_done++;
    uint8_t buf[4096];
    for (uint64_t o = 0; o < len; o += sizeof buf) {
        size_t k = len - o < sizeof buf ? (size_t)(len - o) : sizeof buf;
        if (pread(procmem, buf, k, (off_t)(uintptr_t)host(from + o)) != (ssize_t)k) return -EIO;
        if (pwrite(procmem, buf, k, (off_t)(uintptr_t)host(to + o)) != (ssize_t)k) return -EIO;
    }
    return 0;
}
static struct mmprep_conflict last_conflict;
static struct mmprep_piece last_pieces[8];
static void cb_conflict(void *ctx, const struct mmprep_conflict *c) {
    (void)ctx;
    conflicts_seen++;
    last_conflict = *c; /* the pieces are borrowed: copy them */
    for (size_t i = 0; i < c->npieces && i < 8; i++) last_pieces[i] = c->pieces[i];
    last_conflict.pieces = last_pieces;
}
static const struct mmprep_backend host_backend = {
    NULL, cb_map, cb_unmap, cb_protect, cb_zap, cb_zero, cb_mremap, cb_copy, cb_conflict,
};

static void check(int ok, const char *what, uint64_t a, uint64_t b) {
    if (!ok) {
        printf("MISMATCH %s: %#" PRIx64 " vs %#" PRIx64 "\n", what, a, b);
        bad++;
    }
}

/* One call through the C entry: the engine applies it to the host through the backend. */
static int64_t call(mmprep_mm *mm, uint64_t nr, const uint64_t a[6]) {
    int32_t st;
    int64_t r = mmprep_syscall(mm, nr, a[0], a[1], a[2], a[3], a[4], a[5], &st);
    check(st == MMPREP_RETURNED || st == MMPREP_NOT_MEMORY || st == MMPREP_NOT_MODELLED, "status",
          (uint64_t)st, 0);
    return r;
}

/* Guest byte at g through the model and through host memory: they must agree with `want`. */
static void read_check(mmprep_mm *mm, uint64_t g, int want) {
    uint8_t m = 0xee;
    check(mmprep_read(mm, g, &m, 1, NULL, NULL) == 0, "model read", g, 0);
    check(m == *host(g), "model vs host byte", m, *host(g));
    if (want >= 0) check(m == want, "byte Linux gives", m, (uint64_t)want);
}

static void write_both(mmprep_mm *mm, uint64_t g, uint8_t v) {
    check(mmprep_write(mm, g, &v, 1, NULL, NULL) == 0, "model write", g, 0);
    *host(g) = v;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: embed TRACE\n"); return 2; }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    mmprep_mm *mm;
    if (mmprep_new("x86_64", &mm)) return 2;
    procmem = open("/proc/self/mem", O_RDWR);
    if (procmem < 0) { perror("/proc/self/mem"); return 2; }
    check(mmprep_set_backend(mm, &host_backend, 4096) == 0, "set_backend", 0, 0);
    struct mmprep_backend partial = host_backend;
    partial.copy = NULL;
    check(mmprep_set_backend(mm, &partial, 4096) == -22, "incomplete backend", 0, 0);
    check(mmprep_set_backend(mm, &host_backend, 12288) == -22, "granule not a power of two", 0, 0);
    mmprep_mm *none;
    check(mmprep_new("vax", &none) == -22, "unknown profile", 0, 0);
    char line[512], reg_path[256] = "";
    uint64_t reg_ino = 0;
    int calls = 0, loaded = 0, faults = 0;
    uint64_t stack = 0, start_data = 0, end_data = 0, start_brk = 0, bounds_set = 0;
    while (fgets(line, sizeof line, f)) {
        uint64_t lo, hi, off, ino, a[6], ret, addr, size;
        unsigned maj, min, kind_maj, kind_min, nr;
        char perms[8], path[256] = "", kind[16], rw[4], c;
        int fd, noexec;
        if (line[0] == '#') continue;
        if (sscanf(line, "import %*u %*u %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64, &stack,
                   &start_data, &end_data, &start_brk) == 4)
            continue;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %255s", &lo,
                   &hi, perms, &off, &maj, &min, &ino, path) >= 7) {
            /* The emulator's loader maps the initial image itself, MAP_FIXED. */
            if (hi > (1ull << 47)) continue; /* [vsyscall]: not in the guest's space */
            int prot = (perms[0] == 'r' ? 1 : 0) | (perms[1] == 'w' ? 2 : 0) | (perms[2] == 'x' ? 4 : 0);
            uint64_t fl = 0x12, fdarg = 5; /* MAP_PRIVATE|MAP_FIXED, fd 5 */
            if (ino == 0) {
                fl |= 0x20; /* MAP_ANONYMOUS (special mappings too, in this slice) */
                fdarg = (uint64_t)-1;
                if (!strcmp(path, "[stack]")) fl |= 0x100; /* MAP_GROWSDOWN */
            } else {
                struct mmprep_file mf = {MMPREP_FILE_REGULAR, maj, min, ino, off + (hi - lo), 1, 0, 0, path};
                check(mmprep_fd_file(mm, 5, &mf) == 0, "fd_file", ino, 0);
            }
            uint64_t args[6] = {lo, hi - lo, (uint64_t)prot, fl, fdarg, off};
            check(call(mm, 9, args) == (int64_t)lo, "loader mmap", lo, 0);
            loaded++;
            continue;
        }
        if (!bounds_set && start_brk) {
            check(mmprep_set_bounds(mm, start_data, end_data, start_brk, start_brk, stack) == 0,
                  "set_bounds", start_brk, 0);
            bounds_set = 1;
            mmprep_fd_close(mm, 5);
        }
        if (sscanf(line, "fd %*u %d %15s %u %u %" SCNx64 " %" SCNx64 " %3s %d %255s", &fd, kind,
                   &kind_maj, &kind_min, &ino, &size, rw, &noexec, path) == 9) {
            if (ino == reg_ino && !strcmp(path, reg_path)) continue; /* same open file */
            struct mmprep_file mf = {strcmp(kind, "regular") ? MMPREP_FILE_SHMEM : MMPREP_FILE_REGULAR,
                                     kind_maj, kind_min, ino, size, rw[0] == 'r', rw[1] == 'w',
                                     (uint8_t)noexec, path};
            check(mmprep_fd_file(mm, fd, &mf) == 0, "fd_file", ino, 0);
            reg_ino = ino;
            strcpy(reg_path, path);
            continue;
        }
        if (sscanf(line, "fault %*u %" SCNx64 " %c", &addr, &c) == 2) {
            if (c == 'w') write_both(mm, addr, 0x5a);
            else read_check(mm, addr, -1);
            faults++;
            continue;
        }
        if (sscanf(line, "call %*u %u %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64
                   " %" SCNx64 " %" SCNx64, &nr, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &ret) == 8) {
            int64_t r = call(mm, nr, a);
            check(r == (int64_t)ret, "recorded result", (uint64_t)r, ret);
            calls++;
        }
    }
    fclose(f);

    /* The emulator's own checks: anonymous memory reads zero, then what was written, then zero
     * again after MADV_DONTNEED; a fork copies it; unmapped memory faults. */
    uint64_t m[6] = {0, 4 * 4096, 3, 0x22, (uint64_t)-1, 0};
    int64_t base = call(mm, 9, m);
    check(base > 0, "anon mmap", (uint64_t)base, 0);
    read_check(mm, base + 100, 0);
    for (int i = 0; i < 4; i++) write_both(mm, base + i * 4096 + 7, (uint8_t)(0x10 + i));
    for (int i = 0; i < 4; i++) read_check(mm, base + i * 4096 + 7, 0x10 + i);
    mmprep_mm *child;
    check(mmprep_fork(mm, &child) == 0, "fork", 0, 0);
    uint64_t dn[6] = {(uint64_t)base + 4096, 2 * 4096, 4 /* MADV_DONTNEED */, 0, 0, 0};
    check(call(mm, 28, dn) == 0, "madvise", 0, 0);
    read_check(mm, base + 7, 0x10);
    read_check(mm, base + 4096 + 7, 0);
    read_check(mm, base + 2 * 4096 + 7, 0);
    read_check(mm, base + 3 * 4096 + 7, 0x13);
    uint8_t v = 0;
    check(mmprep_read(child, base + 4096 + 7, &v, 1, NULL, NULL) == 0 && v == 0x11, "child keeps", v, 0x11);
    mmprep_free(child);
    /* mremap: grow to 8 pages, then move with MREMAP_FIXED onto fresh memory: the engine moves
     * the host pages, and the bytes follow. */
    uint64_t dst[6] = {0, 8 * 4096, 3, 0x22, (uint64_t)-1, 0};
    int64_t to = call(mm, 9, dst);
    uint64_t mv[6] = {(uint64_t)base, 4 * 4096, 8 * 4096, 3 /* MAYMOVE|FIXED */, (uint64_t)to, 0};
    check(call(mm, 25, mv) == to, "mremap fixed", (uint64_t)to, 0);
    read_check(mm, to + 7, 0x10);
    read_check(mm, to + 3 * 4096 + 7, 0x13);
    read_check(mm, to + 6 * 4096, 0);
    uint64_t back[6] = {(uint64_t)to, 8 * 4096, 4 * 4096, 3, (uint64_t)base, 0};
    check(call(mm, 25, back) == base, "mremap back", (uint64_t)base, 0);
    /* mprotect read-only: the host page refuses stores as the guest's would. */
    uint64_t ro[6] = {(uint64_t)base, 4096, 1, 0, 0, 0};
    check(call(mm, 10, ro) == 0, "mprotect", 0, 0);
    int32_t rsig = 0;
    check(mmprep_write(mm, base + 1, &v, 1, NULL, &rsig) == -14 && rsig == 11, "read-only store", 0, 0);
    read_check(mm, base + 7, 0x10);
    uint64_t un[6] = {(uint64_t)base, 4 * 4096, 0, 0, 0, 0};
    check(call(mm, 11, un) == 0, "munmap", 0, 0);
    size_t done = 1;
    int32_t sig = 0;
    check(mmprep_read(mm, base, &v, 1, &done, &sig) == -14 && sig == 11 && done == 0, "fault", (uint64_t)sig, 11);
    int32_t st;
    mmprep_syscall(mm, 27, 0, 0, 0, 0, 0, 0, &st);
    check(st == MMPREP_NOT_MODELLED, "mincore status", (uint64_t)st, MMPREP_NOT_MODELLED);
    mmprep_syscall(mm, 39, 0, 0, 0, 0, 0, 0, &st);
    check(st == MMPREP_NOT_MEMORY, "getpid status", (uint64_t)st, MMPREP_NOT_MEMORY);
    /* Checking mode: the host said 0 for an munmap of nothing; the model agrees. A wrong host
     * value is reported as a divergence with both values. */
    int64_t mr = 1;
    check(mmprep_syscall_check(mm, 11, (uint64_t)base, 4096, 0, 0, 0, 0, 0, &mr, &st) == 0 && mr == 0,
          "check agrees", (uint64_t)mr, 0);
    check(mmprep_syscall_check(mm, 11, 1, 4096, 0, 0, 0, 0, 0, &mr, &st) == 1 && mr == -22,
          "check diverges", (uint64_t)mr, (uint64_t)-22);
    check(mmprep_syscall(NULL, 9, 0, 0, 0, 0, 0, 0, &st) == -14 && st == MMPREP_API_ERROR, "null handle", 0, 0);

    /* A 4 KiB guest on a 16 KiB-granule backend: one host granule holding rw- and r-- guest
     * pages is reported as a conflict, with the pieces, and gets the union of protections. */
    mmprep_mm *g16;
    check(mmprep_new("x86_64", &g16) == 0, "new", 0, 0);
    check(mmprep_set_backend(g16, &host_backend, 16384) == 0, "set 16K backend", 0, 0);
    uint64_t gb = 0x100000000000ull;
    uint64_t m16[6] = {gb, 4 * 4096, 3, 0x32 /* MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED */, (uint64_t)-1, 0};
    check(call(g16, 9, m16) == (int64_t)gb, "16K mmap", 0, 0);
    uint64_t p16[6] = {gb + 4096, 4096, 1, 0, 0, 0};
    int before = conflicts_seen;
    check(call(g16, 10, p16) == 0, "16K mprotect", 0, 0);
    check(conflicts_seen == before + 1 && last_conflict.start == gb && last_conflict.end == gb + 16384 &&
              last_conflict.npieces == 3 && last_conflict.prot == 3 && last_pieces[1].prot == 1 &&
              last_pieces[1].start == gb + 4096 && last_pieces[1].end == gb + 8192,
          "16K conflict", (uint64_t)conflicts_seen, (uint64_t)before + 1);
    printf("16K granule conflict: [%#" PRIx64 ", %#" PRIx64 ") %zu pieces, middle wants prot %d, granule gets %d\n",
           last_conflict.start, last_conflict.end, last_conflict.npieces, last_pieces[1].prot, last_conflict.prot);
    mmprep_free(g16);

    int64_t need = mmprep_maps(mm, NULL, 0);
    char *maps = malloc((size_t)need + 1);
    check(mmprep_maps(mm, maps, (size_t)need + 1) == need, "maps length", 0, 0);
    printf("%s", maps);
    free(maps);
    mmprep_free(mm);
    printf("c-embed: %d loader mappings, %d recorded calls, %d faults replayed, %d host operations; %d mismatches\n",
           loaded, calls, faults, ops_done, bad);
    return bad ? 1 : 0;
}

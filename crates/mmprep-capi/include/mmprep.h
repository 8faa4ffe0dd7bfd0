/* mmprep.h: the C ABI of the mmprep engine (crates/mmprep-capi/src/lib.rs).
 *
 * Written by hand and checked against the Rust source by crates/mmprep-capi/tests/header.rs
 * (every exported function declared here with the same number of parameters, and the header
 * compiles). Guide: docs/c-api.md.
 *
 * Ownership: a `struct mmprep_mm *` comes from mmprep_new or mmprep_fork and belongs to the
 * caller until mmprep_free. Every other pointer argument is borrowed for the call only: the
 * library copies what it needs (strings, file descriptions, buffers) and keeps nothing.
 * A handle must not be used by two threads at once.
 *
 * Return values: 0 (or a length, or the Linux return value of mmprep_syscall) on success,
 * -errno on failure: -EFAULT (14) a required pointer is null, or a guest access faulted;
 * -EINVAL (22) an argument out of range; -ENOMEM (12) the engine refused (fork); -EBADF (9)
 * closing an unregistered descriptor; -EIO (5) the engine panicked in this or an earlier call
 * on the handle: the handle is poisoned, only mmprep_free is still useful. No panic unwinds
 * into C.
 */
#ifndef MMPREP_H
#define MMPREP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* mmprep_syscall's *status. */
#define MMPREP_RETURNED 0     /* ran: the value is Linux's rax (address, 0, or -errno) */
#define MMPREP_NOT_MODELLED 1 /* a memory call the engine lacks (mincore...): value -ENOSYS */
#define MMPREP_NOT_MEMORY 2   /* not a memory call: value -ENOSYS; the embedder answers it */
#define MMPREP_API_ERROR 3    /* did not run: null/poisoned handle or a panic (-EFAULT/-EIO) */

/* struct mmprep_file's kind. */
#define MMPREP_FILE_REGULAR 0  /* a regular file on a disk filesystem (ext4's rules) */
#define MMPREP_FILE_SHMEM 1    /* tmpfs, /dev/shm, memfd (shmem's rules) */
#define MMPREP_FILE_DEV_ZERO 2 /* /dev/zero */
#define MMPREP_FILE_NO_MMAP 3  /* pipe, socket, directory: mmap fails with ENODEV */

/* One guest process's memory: an address space and its descriptor table. Opaque. */
typedef struct MmprepMm mmprep_mm;

/* An open file, as fstat and the open flags of the guest's descriptor describe it. */
struct mmprep_file {
    int32_t kind;        /* MMPREP_FILE_* */
    uint32_t dev_major;  /* major(st_dev) */
    uint32_t dev_minor;  /* minor(st_dev) */
    uint64_t ino;        /* st_ino */
    uint64_t size;       /* st_size */
    uint8_t readable;    /* open for reading: 0 or 1 */
    uint8_t writable;    /* open for writing: 0 or 1 */
    uint8_t noexec;      /* on a noexec mount: 0 or 1 */
    const char *path;    /* the path /proc/PID/maps prints (UTF-8) or NULL; borrowed, copied */
};

/* A new, empty address space for profile `profile` ("x86_64": the reference x86_64 host, 4K
 * pages, 47-bit). *out receives a handle owned by the caller (free with mmprep_free).
 * 0, -EFAULT, -EINVAL (unknown profile), -EIO. `profile` is borrowed. */
int64_t mmprep_new(const char *profile, mmprep_mm **out);

/* Frees a handle (NULL accepted), poisoned or not. The handle is not used again. */
void mmprep_free(mmprep_mm *mm);

/* Raw x86_64 system call `nr` with registers a0..a5 (rdi, rsi, rdx, r10, r8, r9): returns what
 * Linux returns. `status` may be NULL; else it receives MMPREP_RETURNED, MMPREP_NOT_MODELLED,
 * MMPREP_NOT_MEMORY or MMPREP_API_ERROR. */
int64_t mmprep_syscall(mmprep_mm *mm, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, int32_t *status);

/* Checking mode: mmprep_syscall with the host kernel's result for the same call in host_ret.
 * *model_ret (optional) gets the model's value, *status (optional) its status. Returns 0 the
 * model agrees, 1 a divergence (host_ret vs *model_ret), 2 the model did not answer
 * (NOT_MODELLED / NOT_MEMORY), or -EFAULT/-EIO as mmprep_syscall's MMPREP_API_ERROR. */
int64_t mmprep_syscall_check(mmprep_mm *mm, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                             uint64_t a3, uint64_t a4, uint64_t a5, int64_t host_ret,
                             int64_t *model_ret, int32_t *status);

/* Descriptor `fd` is now the open file `*file` (replacing what it was, like dup2). One new open
 * file per call: register once per guest open(), not per mmap. Same device and inode share one
 * inode. `file` and its path are borrowed. 0, -EFAULT, -EINVAL, -EIO. */
int64_t mmprep_fd_file(mmprep_mm *mm, int32_t fd, const struct mmprep_file *file);

/* Descriptor `fd` is a new memfd of `size` bytes named /memfd:NAME (deleted); `name` borrowed,
 * may be NULL. 0, -EFAULT, -EINVAL, -EIO. */
int64_t mmprep_fd_memfd(mmprep_mm *mm, int32_t fd, const char *name, uint64_t size);

/* Closes `fd` in the model's table (its mappings stay). 0, -EBADF, -EFAULT, -EINVAL, -EIO. */
int64_t mmprep_fd_close(mmprep_mm *mm, int32_t fd);

/* The program's addresses as the embedder's ELF loader set them (start_data, end_data,
 * start_brk page aligned, current brk, initial stack pointer). Until set, brk answers 0.
 * 0, -EINVAL, -EFAULT, -EIO. */
int64_t mmprep_set_bounds(mmprep_mm *mm, uint64_t start_data, uint64_t end_data,
                          uint64_t start_brk, uint64_t brk, uint64_t start_stack);

/* fork: *child receives a new handle owned by the caller, independent of the parent.
 * 0, -ENOMEM, -EFAULT, -EIO. */
int64_t mmprep_fork(mmprep_mm *mm, mmprep_mm **child);

/* /proc/PID/maps text into `buf` (caller's, `len` bytes), like snprintf: returns the full
 * length without the NUL; `buf` may be NULL when `len` is 0. -EFAULT, -EIO. */
int64_t mmprep_maps(mmprep_mm *mm, char *buf, size_t len);

/* Guest loads of `len` bytes at `addr` into `buf` (caller's). 0, or -EFAULT at a fault: then
 * *done (bytes read before it) and *signo (11 SIGSEGV, 7 SIGBUS); both optional (NULL). */
int64_t mmprep_read(mmprep_mm *mm, uint64_t addr, uint8_t *buf, size_t len, size_t *done,
                    int32_t *signo);

/* Guest stores of `len` bytes from `buf` (borrowed) at `addr`. Returns as mmprep_read. */
int64_t mmprep_write(mmprep_mm *mm, uint64_t addr, const uint8_t *buf, size_t len, size_t *done,
                     int32_t *signo);

#ifdef __cplusplus
}
#endif

#endif /* MMPREP_H */

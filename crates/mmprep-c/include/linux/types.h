/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: the kernel's basic types, written for userspace from their documented names and
 * shapes (not copied from Linux).
 */
#ifndef _MMPREP_LINUX_TYPES_H
#define _MMPREP_LINUX_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;

typedef unsigned long pgoff_t;
typedef u64 phys_addr_t;
typedef u64 resource_size_t;
typedef unsigned int gfp_t;
typedef unsigned int fmode_t;
typedef unsigned int vm_fault_t;
typedef unsigned long vm_flags_t;
typedef unsigned short umode_t;

#define __user
#define __iomem
#define __init
#define __exit
#define __must_check __attribute__((warn_unused_result))
#define __always_unused __attribute__((unused))
#define __maybe_unused __attribute__((unused))

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define BIT(nr) (1UL << (nr))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Count the arguments of a variadic macro (up to 32), as the kernel's COUNT_ARGS. */
#define __MMPREP_NARGS(...) (sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

#endif

/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* mmprep: error pointers (ERR_PTR, PTR_ERR, IS_ERR). */
#ifndef _MMPREP_LINUX_ERR_H
#define _MMPREP_LINUX_ERR_H

#include <linux/errno.h>
#include <linux/types.h>

#define IS_ERR_VALUE(x) unlikely((unsigned long)(void *)(x) >= (unsigned long)-MAX_ERRNO)

static inline void *ERR_PTR(long error) { return (void *)error; }
static inline long PTR_ERR(const void *ptr) { return (long)ptr; }
static inline bool IS_ERR(const void *ptr) { return IS_ERR_VALUE((unsigned long)ptr); }
static inline bool IS_ERR_OR_NULL(const void *ptr) { return !ptr || IS_ERR_VALUE((unsigned long)ptr); }

#endif

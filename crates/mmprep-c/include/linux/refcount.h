/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: reference counts. Taking a reference inside mmap_prepare is reported as a broken
 * rule (the mapping may still merge or fail: take it in vm_ops->mapped).
 */
#ifndef _MMPREP_LINUX_REFCOUNT_H
#define _MMPREP_LINUX_REFCOUNT_H

#include <linux/types.h>
#include <mmprep/runtime.h>

typedef struct {
	int refs;
} refcount_t;

#define REFCOUNT_INIT(n) { .refs = (n) }

static inline void refcount_set(refcount_t *r, int n) { r->refs = n; }
static inline unsigned int refcount_read(const refcount_t *r) { return (unsigned int)r->refs; }

static inline void refcount_inc(refcount_t *r)
{
	if (mmprep_in_mmap_prepare)
		mmprep_rule("mmap_prepare took a reference (refcount_inc) that outlives the call: take it in vm_ops->mapped");
	r->refs++;
}

static inline bool refcount_inc_not_zero(refcount_t *r)
{
	if (r->refs == 0)
		return false;
	refcount_inc(r);
	return true;
}

static inline bool refcount_dec_and_test(refcount_t *r) { return --r->refs == 0; }
static inline void refcount_dec(refcount_t *r) { r->refs--; }

#endif

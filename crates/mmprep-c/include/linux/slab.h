/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: the kernel allocator, on the harness's heap. A kmalloc() of a power-of-two size is
 * naturally aligned, as in the kernel. Allocations are counted, so that the harness can say
 * when mmap_prepare leaves memory behind (the HOWTO: per-mapping state belongs in ->mapped).
 */
#ifndef _MMPREP_LINUX_SLAB_H
#define _MMPREP_LINUX_SLAB_H

#include <linux/types.h>
#include <linux/gfp.h>

void *kmalloc(size_t size, gfp_t flags);
void kfree(const void *p);

static inline void *kzalloc(size_t size, gfp_t flags)
{
	return kmalloc(size, flags | __GFP_ZERO);
}

static inline void *kcalloc(size_t n, size_t size, gfp_t flags)
{
	if (size != 0 && n > (size_t)-1 / size)
		return NULL;
	return kzalloc(n * size, flags);
}

static inline void *kmalloc_array(size_t n, size_t size, gfp_t flags)
{
	if (size != 0 && n > (size_t)-1 / size)
		return NULL;
	return kmalloc(n * size, flags);
}

#define kvzalloc kzalloc
#define kvmalloc kmalloc
#define kvfree kfree
#define vzalloc(size) kzalloc(size, GFP_KERNEL)
#define vmalloc(size) kmalloc(size, GFP_KERNEL)
#define vfree kfree

#endif

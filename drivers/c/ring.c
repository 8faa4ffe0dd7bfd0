// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * ring: a ring buffer of kernel pages shared with user space (perf, io_uring style): the C
 * version of mmprep's Rust `ring` example.
 *
 * The driver owns `pages` kernel pages; the first holds a header ("RING", then the page count).
 * A mapping must be shared and cover exactly the whole buffer (EINVAL otherwise). The hook asks
 * for mmap_action_map_kernel_pages_full(), which adds VM_MIXEDMAP (a special flag: no merging);
 * ->mapped takes a reference on the buffer for the new mapping, ->open one for each VMA split or
 * forked from it, ->close gives them back. Every mapping sees the same bytes.
 *
 * Parameter: pages=4, the buffer's size in pages (1 to 1024).
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/refcount.h>
#include <linux/slab.h>

struct ring_buffer {
	struct page **pages;
	unsigned long nr_pages;
	refcount_t users;
};

static struct ring_buffer ring;

static int ring_mapped(unsigned long start, unsigned long end, pgoff_t pgoff,
		       const struct file *file, void **vm_private_data)
{
	(void)start;
	(void)end;
	(void)pgoff;
	(void)file;
	(void)vm_private_data;
	refcount_inc(&ring.users);
	return 0;
}

static void ring_vm_open(struct vm_area_struct *vma)
{
	(void)vma;
	refcount_inc(&ring.users);
}

static void ring_vm_close(struct vm_area_struct *vma)
{
	(void)vma;
	refcount_dec(&ring.users);
}

static const struct vm_operations_struct ring_vm_ops = {
	.open = ring_vm_open,
	.close = ring_vm_close,
	.mapped = ring_mapped,
};

static int ring_mmap_prepare(struct vm_area_desc *desc)
{
	if (!vma_desc_test(desc, VMA_MAYSHARE_BIT))
		return -EINVAL;
	if (desc->pgoff != 0 || vma_desc_pages(desc) != ring.nr_pages)
		return -EINVAL;

	desc->vm_ops = &ring_vm_ops;
	mmap_action_map_kernel_pages_full(desc, ring.pages);
	return 0;
}

static int ring_open(struct inode *inode, struct file *file)
{
	u64 n = mmprep_param_u64("pages", 4);
	u32 count = (u32)n;
	unsigned long i;

	(void)inode;
	(void)file;
	if (n == 0 || n > 1024)
		return -EINVAL;
	ring.pages = kcalloc(n, sizeof(*ring.pages), GFP_KERNEL);
	if (!ring.pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ring.pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!ring.pages[i])
			return -ENOMEM;
	}
	ring.nr_pages = n;
	refcount_set(&ring.users, 1);

	/* The header the kernel side keeps up to date. */
	memcpy_to_page(ring.pages[0], 0, "RING", 4);
	memcpy_to_page(ring.pages[0], 4, (const char *)&count, sizeof(count));
	return 0;
}

static const struct file_operations ring_fops = {
	.owner = THIS_MODULE,
	.open = ring_open,
	.mmap_prepare = ring_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

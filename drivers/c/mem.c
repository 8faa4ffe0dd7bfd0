// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * mem: a /dev/mem-style window onto physical memory: the C version of mmprep's Rust `mem`
 * example, in the shape of the kernel's mmap_mem_prepare (6.19+).
 *
 * The file offset is a physical address. The hook refuses an offset that does not fit a
 * physical address or a range that wraps (EINVAL), and a range outside what user space may map
 * (EPERM: range_is_allowed, standing in for devmem_is_allowed); it installs vm_ops with only
 * ->access (generic_access_phys, so ptrace can reach the mapping), asks for
 * mmap_action_remap_full(desc, desc->pgoff) and sets an error hook that turns a remap failure
 * into EAGAIN. The mappings are `io pf de dd` and never merge.
 *
 * Parameters: base=0xe0000, size=64K: the window of physical memory the driver allows, which
 * holds fill=0x4d bytes at first.
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>

static phys_addr_t window_base;
static phys_addr_t window_size;

static const struct vm_operations_struct mmap_mem_ops = {
	.access = generic_access_phys,
};

static int range_is_allowed(unsigned long pfn, unsigned long size)
{
	phys_addr_t start = PFN_PHYS(pfn);

	return start >= window_base && start + size >= start &&
	       start + size <= window_base + window_size;
}

static int mmap_mem_error_hook(int err)
{
	(void)err;
	return -EAGAIN;
}

static int mmap_mem_prepare(struct vm_area_desc *desc)
{
	size_t size = vma_desc_size(desc);
	phys_addr_t offset = (phys_addr_t)desc->pgoff << PAGE_SHIFT;

	/* Does it even fit in phys_addr_t? */
	if (offset >> PAGE_SHIFT != desc->pgoff)
		return -EINVAL;

	/* It's illegal to wrap around the end of the physical address space. */
	if (offset + (phys_addr_t)size < offset)
		return -EINVAL;

	if (!range_is_allowed(desc->pgoff, size))
		return -EPERM;

	desc->vm_ops = &mmap_mem_ops;

	/* Remap-pfn-range will mark the range VM_IO. */
	mmap_action_remap_full(desc, desc->pgoff);
	/* We filter remap errors to -EAGAIN. */
	desc->action.error_hook = mmap_mem_error_hook;

	return 0;
}

static int mem_open(struct inode *inode, struct file *file)
{
	u64 fill = mmprep_param_u64("fill", 0x4d);

	(void)inode;
	(void)file;
	window_base = mmprep_param_u64("base", 0xe0000);
	window_size = mmprep_param_u64("size", 64 << 10);
	if (!PAGE_ALIGNED(window_base) || !PAGE_ALIGNED(window_size) || window_size == 0 || fill > 0xff)
		return -EINVAL;
	/* The physical memory behind the window. */
	return mmprep_attach_ram(window_base, window_size, (u8)fill);
}

static const struct file_operations mem_fops = {
	.owner = THIS_MODULE,
	.open = mem_open,
	.mmap_prepare = mmap_mem_prepare,
	.fop_flags = FOP_UNSIGNED_OFFSET,
};

MODULE_LICENSE("Dual MIT/GPL");

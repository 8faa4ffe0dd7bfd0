// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * dumpless_legacy: device memory left out of core dumps, with the legacy ->mmap hook: the
 * "before" half of a conversion (dumpless.c is the "after"), and the C version of mmprep's Rust
 * `dumpless` example with legacy=1.
 *
 * The hook sets VM_DONTDUMP on the VMA. The kernel tried to merge the new range before calling
 * it, with the flags from before the hook (no VM_DONTDUMP), so a mapping that continues the
 * previous one never matches it: every mapping stays a VMA of its own.
 *
 * Parameter: size=64K, the device memory's size (its page cache, shared by every mapping).
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>

static const struct vm_operations_struct dumpless_vm_ops = {
	.fault = filemap_fault,
};

static int dumpless_mmap(struct file *file, struct vm_area_struct *vma)
{
	(void)file;
	vm_flags_set(vma, VM_DONTDUMP);
	vma->vm_ops = &dumpless_vm_ops;
	return 0;
}

static int dumpless_open(struct inode *inode, struct file *file)
{
	(void)file;
	inode->i_size = mmprep_param_u64("size", 64 << 10);
	return 0;
}

static const struct file_operations dumpless_fops = {
	.owner = THIS_MODULE,
	.open = dumpless_open,
	.mmap = dumpless_mmap,
};

MODULE_LICENSE("Dual MIT/GPL");

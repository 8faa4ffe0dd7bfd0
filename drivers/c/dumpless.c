// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * dumpless: device memory left out of core dumps, converted to ->mmap_prepare: the "after" half
 * of a conversion (dumpless_legacy.c is the "before"), and the C version of mmprep's Rust
 * `dumpless` example.
 *
 * The hook sets VMA_DONTDUMP_BIT on the descriptor, before the merge decision, so a mapping that
 * continues the previous one merges with it. `mmprep driver-diff dumpless_legacy.c dumpless.c`
 * shows that merge, and nothing else.
 *
 * Parameter: size=64K, the device memory's size (its page cache, shared by every mapping).
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>

static const struct vm_operations_struct dumpless_vm_ops = {
	.fault = filemap_fault,
};

static int dumpless_mmap_prepare(struct vm_area_desc *desc)
{
	vma_desc_set_flags(desc, VMA_DONTDUMP_BIT);
	desc->vm_ops = &dumpless_vm_ops;
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
	.mmap_prepare = dumpless_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

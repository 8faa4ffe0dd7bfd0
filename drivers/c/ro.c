// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * ro: a device that may not be written through a shared mapping: the C version of mmprep's Rust
 * `ro` example (generic_file_readonly_mmap_prepare's rule).
 *
 * A shared writable mapping is refused (EINVAL). A shared read-only one loses VM_MAYWRITE, so
 * mprotect can never add PROT_WRITE; a private one may be written (copy on write). Pages are
 * filled with fill=0x52 on their first fault.
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>

static u8 ro_fill;

static vm_fault_t ro_fault(struct vm_fault *vmf)
{
	struct page *page = alloc_page(GFP_KERNEL);
	char bytes[PAGE_SIZE];

	if (!page)
		return VM_FAULT_OOM;
	memset(bytes, ro_fill, sizeof(bytes));
	memcpy_to_page(page, 0, bytes, sizeof(bytes));
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct ro_vm_ops = {
	.fault = ro_fault,
};

static int ro_mmap_prepare(struct vm_area_desc *desc)
{
	if (vma_desc_test_all(desc, VMA_SHARED_BIT, VMA_MAYWRITE_BIT) && vma_desc_test(desc, VMA_WRITE_BIT))
		return -EINVAL;
	if (vma_desc_test(desc, VMA_MAYSHARE_BIT)) {
		if (vma_desc_test(desc, VMA_WRITE_BIT))
			return -EINVAL;
		vma_desc_clear_flags(desc, VMA_MAYWRITE_BIT);
	}
	desc->vm_ops = &ro_vm_ops;
	return 0;
}

static int ro_open(struct inode *inode, struct file *file)
{
	u64 fill = mmprep_param_u64("fill", 0x52);

	(void)inode;
	(void)file;
	if (fill > 0xff)
		return -EINVAL;
	ro_fill = (u8)fill;
	return 0;
}

static const struct file_operations ro_fops = {
	.owner = THIS_MODULE,
	.open = ro_open,
	.mmap_prepare = ro_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

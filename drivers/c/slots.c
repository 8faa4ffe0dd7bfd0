// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * slots: a device with a limited number of mapping slots, taken in vm_ops->mapped and returned
 * in vm_ops->close: the C version of mmprep's Rust `slots` example (TCMU-style).
 *
 * mmap_prepare stays stateless: the mapping may still merge or fail after it returns. The slot
 * is taken in ->mapped, which runs only for a new VMA, and recorded in the VMA's private data;
 * ->open (split, fork) takes another for the new VMA; ->close gives back what the record says
 * is held, so the close of a VMA whose ->mapped failed gives back nothing. When every slot is in
 * use ->mapped fails with -EBUSY and mmap() fails. VM_DONTEXPAND keeps the mappings from merging
 * (a merge would overwrite the record).
 *
 * Parameter: slots=2, how many mappings may exist at once.
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/refcount.h>
#include <linux/slab.h>

struct slots_device {
	u64 slots;
	u64 used;
};

static struct slots_device slots_dev;

/* The record, in a VMA's private data, that it holds a slot. */
static int slot_held;

static bool holds_slot(const struct vm_area_struct *vma)
{
	return vma->vm_private_data == &slot_held;
}

static int slots_mapped(unsigned long start, unsigned long end, pgoff_t pgoff,
			const struct file *file, void **vm_private_data)
{
	(void)start;
	(void)end;
	(void)pgoff;
	(void)file;
	if (slots_dev.used >= slots_dev.slots)
		return -EBUSY;
	slots_dev.used++;
	*vm_private_data = &slot_held;
	return 0;
}

static void slots_vm_open(struct vm_area_struct *vma)
{
	/* Another VMA that will be closed on its own: it holds a slot too. */
	if (holds_slot(vma))
		slots_dev.used++;
}

static void slots_vm_close(struct vm_area_struct *vma)
{
	if (holds_slot(vma))
		slots_dev.used--;
}

static vm_fault_t slots_fault(struct vm_fault *vmf)
{
	struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);

	if (!page)
		return VM_FAULT_OOM;
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct slots_vm_ops = {
	.open = slots_vm_open,
	.close = slots_vm_close,
	.mapped = slots_mapped,
	.fault = slots_fault,
};

static int slots_mmap_prepare(struct vm_area_desc *desc)
{
	/* As tcmu_mmap_prepare: special flags, so the mapping never merges. */
	vma_desc_set_flags(desc, VMA_DONTEXPAND_BIT, VMA_DONTDUMP_BIT);
	desc->vm_ops = &slots_vm_ops;
	return 0;
}

static int slots_open(struct inode *inode, struct file *file)
{
	(void)inode;
	(void)file;
	slots_dev.slots = mmprep_param_u64("slots", 2);
	slots_dev.used = 0;
	return 0;
}

static const struct file_operations slots_fops = {
	.owner = THIS_MODULE,
	.open = slots_open,
	.mmap_prepare = slots_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

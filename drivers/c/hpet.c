// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * hpet: the High Precision Event Timer's register page, mapped uncached: the C version of
 * mmprep's Rust `hpet` example, in the shape of the kernel's hpet_mmap_prepare (7.1 series).
 *
 * The register block must be page aligned (ENOSYS otherwise); the mapping is made uncached and
 * handed to mmap_action_simple_ioremap(), which maps the page and sets
 * VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP, so the mapping never merges. Every read of
 * the main counter reaches the device.
 *
 * Parameter: addr=0xfed00000, the physical address of the register block.
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>

struct hpets {
	phys_addr_t hp_hpet_phys;
};

static struct hpets the_hpet;
static struct hpets *hpets = &the_hpet;

static int hpet_open(struct inode *inode, struct file *file)
{
	(void)inode;
	(void)file;
	hpets->hp_hpet_phys = mmprep_param_u64("addr", 0xfed00000);
	/* The hardware a real driver finds through ACPI: the harness simulates it. */
	if (PAGE_ALIGNED(hpets->hp_hpet_phys))
		return mmprep_attach_device("hpet", hpets->hp_hpet_phys, PAGE_SIZE);
	return 0;
}

static int hpet_mmap_prepare(struct vm_area_desc *desc)
{
	unsigned long addr = hpets->hp_hpet_phys;

	if (addr & (PAGE_SIZE - 1))
		return -ENOSYS;

	desc->page_prot = pgprot_noncached(desc->page_prot);
	mmap_action_simple_ioremap(desc, addr, PAGE_SIZE);
	return 0;
}

static const struct file_operations hpet_fops = {
	.owner = THIS_MODULE,
	.open = hpet_open,
	.mmap_prepare = hpet_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

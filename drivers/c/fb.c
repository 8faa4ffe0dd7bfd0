// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * fb: framebuffer video memory mapped write-combining: the C version of mmprep's Rust `fb`
 * example (fbdev drivers' fb_mmap, converted).
 *
 * The offset is a page into video memory; a mapping that reaches past its end is refused
 * (EINVAL). The page protection becomes write-combining and the hook asks for
 * mmap_action_ioremap_full() of the video memory from that page, so the mapping is `pf io de dd`
 * and never merges.
 *
 * Parameter: size=64K, the size of video memory (placed in the physical address map at open).
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>

struct fb_info {
	phys_addr_t smem_start;
	unsigned long smem_len;
};

static struct fb_info info;

static int fb_mmap_prepare(struct vm_area_desc *desc)
{
	unsigned long pages = info.smem_len >> PAGE_SHIFT;

	if (desc->pgoff >= pages || vma_desc_pages(desc) > pages - desc->pgoff)
		return -EINVAL;

	desc->page_prot = pgprot_writecombine(desc->page_prot);
	mmap_action_ioremap_full(desc, PHYS_PFN(info.smem_start) + desc->pgoff);
	return 0;
}

static int fb_open(struct inode *inode, struct file *file)
{
	(void)inode;
	(void)file;
	info.smem_len = mmprep_param_u64("size", 64 << 10);
	if (info.smem_len == 0 || !PAGE_ALIGNED(info.smem_len))
		return -EINVAL;
	/* The video memory a PCI BAR would give. */
	info.smem_start = mmprep_place_ram(info.smem_len, 0);
	return info.smem_start ? 0 : -ENOMEM;
}

static const struct file_operations fb_fops = {
	.owner = THIS_MODULE,
	.open = fb_open,
	.mmap_prepare = fb_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

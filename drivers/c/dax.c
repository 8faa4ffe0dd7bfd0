// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * dax: a file on a DAX filesystem: the C version of mmprep's Rust `dax` example, the DAX branch
 * of ext4_file_mmap_prepare.
 *
 * The hook sets VMA_HUGEPAGE_BIT and installs the DAX vm_ops; the file accepts MAP_SYNC
 * (FOP_MMAP_SYNC) and places mappings 2 MiB aligned where it can (thp_get_unmapped_area). DAX
 * pages stand in as the file's page cache (filemap_fault), so every mapping sees the same bytes.
 *
 * Parameter: size=2M, the file's size.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>

static vm_fault_t ext4_dax_page_mkwrite(struct vm_fault *vmf)
{
	(void)vmf;
	return 0;
}

static const struct vm_operations_struct ext4_dax_vm_ops = {
	.fault = filemap_fault,
	.page_mkwrite = ext4_dax_page_mkwrite,
	.pfn_mkwrite = ext4_dax_page_mkwrite,
};

static int ext4_dax_mmap_prepare(struct vm_area_desc *desc)
{
	vma_desc_set_flags(desc, VMA_HUGEPAGE_BIT);
	desc->vm_ops = &ext4_dax_vm_ops;
	return 0;
}

static int ext4_dax_open(struct inode *inode, struct file *file)
{
	(void)file;
	inode->i_mode = S_IFREG | 0644;
	inode->i_size = mmprep_param_u64("size", 2 << 20);
	inode->i_flags |= S_DAX;
	return 0;
}

static const struct file_operations ext4_dax_fops = {
	.owner = THIS_MODULE,
	.open = ext4_dax_open,
	.mmap_prepare = ext4_dax_mmap_prepare,
	.get_unmapped_area = thp_get_unmapped_area,
	.fop_flags = FOP_MMAP_SYNC,
};

MODULE_LICENSE("Dual MIT/GPL");

// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * ext4: the mmap_prepare HOWTO's ext4 example, compiled as the HOWTO shows it, and the HOWTO's
 * VMA flag helpers, each used as its text describes.
 *
 * ext4_file_mmap_prepare below is the HOWTO's function word for word, but for its "..." (ext4's
 * checks for a shut-down filesystem and for MAP_SYNC without DAX, which this example does not
 * need). What the HOWTO leaves to the rest of ext4 is stubbed:
 *
 * - ext4_file_vm_ops and ext4_dax_vm_ops fault through the page cache (filemap_fault), so every
 *   mapping of the file sees the same pages;
 * - ext4_file_open makes the inode a regular file of size=64K bytes and, with dax=1, a DAX inode
 *   (what mounting with -o dax would do).
 *
 * The HOWTO puts the file_operations before the function; here it comes after, as in ext4's
 * file.c, where the function is defined first.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>

static const struct vm_operations_struct ext4_file_vm_ops = {
	.fault = filemap_fault,
};

static const struct vm_operations_struct ext4_dax_vm_ops = {
	.fault = filemap_fault,
};

static int ext4_file_mmap_prepare(struct vm_area_desc *desc)
{
    int ret;
    struct file *file = desc->file;
    struct inode *inode = file->f_mapping->host;

    file_accessed(file);
    if (IS_DAX(file_inode(file))) {
        desc->vm_ops = &ext4_dax_vm_ops;
        vma_desc_set_flags(desc, VMA_HUGEPAGE_BIT);
    } else {
        desc->vm_ops = &ext4_file_vm_ops;
    }
    return 0;
}

static int ext4_file_open(struct inode *inode, struct file *filp)
{
	(void)filp;
	inode->i_mode = S_IFREG | 0644;
	inode->i_size = mmprep_param_u64("size", 64 << 10);
	if (mmprep_param_u64("dax", 0))
		inode->i_flags |= S_DAX;
	return 0;
}

const struct file_operations ext4_file_operations = {
    .open            = ext4_file_open,
    .mmap_prepare    = ext4_file_mmap_prepare,
};

/*
 * The HOWTO's flag helpers: a file that may only be mapped read-only, for good.
 * vma_desc_test_flags() is true if any listed bit is set; vma_desc_clear_flags() and
 * vma_desc_set_flags() take comma-separated lists of bits.
 */
static int howto_flags_mmap_prepare(struct vm_area_desc *desc)
{
	if (vma_desc_test_flags(desc, VMA_WRITE_BIT))
		return -EPERM;
	vma_desc_clear_flags(desc, VMA_WRITE_BIT, VMA_MAYWRITE_BIT);
	vma_desc_set_flags(desc, VMA_DONTEXPAND_BIT, VMA_DONTDUMP_BIT);
	desc->vm_ops = &ext4_file_vm_ops;
	return 0;
}

static const struct file_operations howto_flags_fops = {
	.open = ext4_file_open,
	.mmap_prepare = howto_flags_mmap_prepare,
};

MODULE_LICENSE("Dual MIT/GPL");

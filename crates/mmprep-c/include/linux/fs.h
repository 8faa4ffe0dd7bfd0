/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: files and inodes as a driver's mmap code sees them. Each scenario `file NAME c ...`
 * line is a fresh inode opened once (read-write, or read-only with `ro`).
 */
#ifndef _MMPREP_LINUX_FS_H
#define _MMPREP_LINUX_FS_H

#include <linux/types.h>
#include <linux/errno.h>
#include <linux/mm_types.h>
#include <mmprep/runtime.h>

struct module;
struct inode;
struct poll_table_struct;

/* fop_flags */
#define FOP_MMAP_SYNC (1u << 2)
#define FOP_UNSIGNED_OFFSET (1u << 5)

#define FMODE_READ 0x1u
#define FMODE_WRITE 0x2u

#ifndef S_IFMT
#define S_IFMT 0170000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_ISREG(m) (((m) & S_IFMT) == S_IFREG)
#define S_ISCHR(m) (((m) & S_IFMT) == S_IFCHR)
#endif

#define S_DAX 8192u
#define IS_DAX(inode) (((inode)->i_flags & S_DAX) != 0)

struct address_space {
	struct inode *host;
};

struct inode {
	unsigned long i_ino;
	umode_t i_mode;
	dev_t i_rdev;
	loff_t i_size;
	unsigned int i_flags;
	struct address_space *i_mapping;
	void *i_private;
};

struct file {
	fmode_t f_mode;
	unsigned int f_flags;
	struct inode *f_inode;
	struct address_space *f_mapping;
	const struct file_operations *f_op;
	void *private_data;
	long f_count;
};

struct file_operations {
	struct module *owner;
	unsigned int fop_flags;
	loff_t (*llseek)(struct file *, loff_t, int);
	ssize_t (*read)(struct file *, char __user *, size_t, loff_t *);
	ssize_t (*write)(struct file *, const char __user *, size_t, loff_t *);
	unsigned int (*poll)(struct file *, struct poll_table_struct *);
	long (*unlocked_ioctl)(struct file *, unsigned int, unsigned long);
	long (*compat_ioctl)(struct file *, unsigned int, unsigned long);
	/* Legacy: sees the new VMA (not run by this harness yet). */
	int (*mmap)(struct file *, struct vm_area_struct *);
	/* The new hook: sees a struct vm_area_desc before any merge. */
	int (*mmap_prepare)(struct vm_area_desc *);
	int (*open)(struct inode *, struct file *);
	int (*flush)(struct file *, void *id);
	int (*release)(struct inode *, struct file *);
	int (*fasync)(int, struct file *, int);
	unsigned long (*get_unmapped_area)(struct file *, unsigned long, unsigned long, unsigned long,
					   unsigned long);
};

static inline struct inode *file_inode(const struct file *f)
{
	return f->f_inode;
}

static inline unsigned int iminor(const struct inode *inode)
{
	return (unsigned int)(inode->i_rdev & 0xff);
}

static inline unsigned int imajor(const struct inode *inode)
{
	return (unsigned int)(inode->i_rdev >> 8);
}

static inline loff_t i_size_read(const struct inode *inode)
{
	return inode->i_size;
}

/* Access-time update: nothing to do here. */
static inline void file_accessed(struct file *file)
{
	(void)file;
}

static inline struct file *get_file(struct file *f)
{
	if (mmprep_in_mmap_prepare)
		mmprep_rule("mmap_prepare took a file reference (get_file) that outlives the call: take it in vm_ops->mapped");
	f->f_count++;
	return f;
}

static inline void fput(struct file *f)
{
	f->f_count--;
}

static inline loff_t noop_llseek(struct file *f, loff_t off, int whence)
{
	(void)whence;
	(void)f;
	return off;
}

#endif

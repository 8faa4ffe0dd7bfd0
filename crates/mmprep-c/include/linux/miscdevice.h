/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: misc character devices. A driver without a file_operations table the harness can name
 * registers one from its module_init with misc_register(): the harness runs module_init when it
 * loads the driver and serves the file with the first table registered.
 */
#ifndef _MMPREP_LINUX_MISCDEVICE_H
#define _MMPREP_LINUX_MISCDEVICE_H

#include <linux/fs.h>
#include <linux/module.h>

#define MISC_DYNAMIC_MINOR 255

struct miscdevice {
	int minor;
	const char *name;
	const struct file_operations *fops;
	umode_t mode;
};

int misc_register(struct miscdevice *misc);
void misc_deregister(struct miscdevice *misc);

#define module_misc_device(misc)                        \
	static int __init misc##_init(void)             \
	{                                               \
		return misc_register(&(misc));          \
	}                                               \
	module_init(misc##_init)

#endif

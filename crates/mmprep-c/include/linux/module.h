/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* mmprep: module boilerplate, accepted and ignored. */
#ifndef _MMPREP_LINUX_MODULE_H
#define _MMPREP_LINUX_MODULE_H

#include <linux/types.h>

struct module;

#define THIS_MODULE ((struct module *)0)
#define MODULE_LICENSE(x)
#define MODULE_AUTHOR(x)
#define MODULE_DESCRIPTION(x)
#define MODULE_ALIAS(x)
#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)
#define module_param(name, type, perm)
#define MODULE_PARM_DESC(name, desc)
/*
 * The harness runs module_init once when it loads the driver (for each `file` line), before
 * f_op->open; module_exit never runs.
 */
#define module_init(fn) int (*mmprep_module_init_fn)(void) = fn;
#define module_exit(fn) static void (*__mmprep_unused_exit)(void) __attribute__((unused)) = fn;

#endif

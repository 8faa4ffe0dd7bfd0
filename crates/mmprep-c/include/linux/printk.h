/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* mmprep: printk into the scenario's `events` log, one event per message. */
#ifndef _MMPREP_LINUX_PRINTK_H
#define _MMPREP_LINUX_PRINTK_H

#include <linux/types.h>

void mmprep_printk(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_emerg(fmt, ...) mmprep_printk("pr_emerg", fmt, ##__VA_ARGS__)
#define pr_alert(fmt, ...) mmprep_printk("pr_alert", fmt, ##__VA_ARGS__)
#define pr_crit(fmt, ...) mmprep_printk("pr_crit", fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...) mmprep_printk("pr_err", fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) mmprep_printk("pr_warn", fmt, ##__VA_ARGS__)
#define pr_notice(fmt, ...) mmprep_printk("pr_notice", fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) mmprep_printk("pr_info", fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) do { if (0) mmprep_printk("pr_debug", fmt, ##__VA_ARGS__); } while (0)

#define WARN_ON(cond) ({ \
	int __ret_warn_on = !!(cond); \
	if (unlikely(__ret_warn_on)) \
		mmprep_printk("WARN_ON", "%s:%d: %s", __FILE__, __LINE__, #cond); \
	unlikely(__ret_warn_on); \
})
#define WARN_ON_ONCE(cond) WARN_ON(cond)

/* A kernel oops: the harness reports the crash with the hook it was in. */
#define BUG() __builtin_trap()
#define BUG_ON(cond) do { if (unlikely(cond)) BUG(); } while (0)

#endif

/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: what the kernel headers call into. The harness (Rust) fills `mmprep_rt` when it loads
 * a driver; each loaded driver has its own copy, so two `file` lines are two devices.
 *
 * A driver calls mmprep_param_u64() / mmprep_param_str() for the KEY=VALUE parameters of its
 * scenario `file` line, and mmprep_attach_device() to plug in the simulated hardware a real
 * driver would find by probing (the HPET register block...).
 */
#ifndef _MMPREP_RUNTIME_H
#define _MMPREP_RUNTIME_H

#include <linux/types.h>

struct mmprep_rt {
	void *ctx;
	u64 (*param_u64)(void *ctx, const char *key, u64 def);
	const char *(*param_str)(void *ctx, const char *key, const char *def);
	void (*printk)(void *ctx, const char *level, const char *text);
	int (*attach_device)(void *ctx, const char *model, u64 phys, u64 size, u64 arg);
	u64 (*alloc_page)(void *ctx);
	void (*put_page)(void *ctx, u64 page);
	void (*get_page)(void *ctx, u64 page);
	u64 (*filemap_page)(void *ctx, u64 pgoff);
	u64 (*register_ram)(void *ctx, void *virt, u64 size);
	int (*phys_access)(void *ctx, u64 phys, void *buf, u64 len, int write);
	int (*page_copy)(void *ctx, u64 page, u64 offset, void *buf, u64 len, int write);
	/* The crash guard: driver code starts (a sigjmp_buf *) or ends (NULL) on this thread. */
	void (*guard_set)(void *jb);
	/* Driver code crashed in HOOK (the guard jumped back to the shim). */
	void (*crashed)(void *ctx, const char *hook);
	/* Legacy ->mmap: remap_pfn_range and vm_insert_page on the VMA being set up. */
	int (*legacy_remap)(void *ctx, void *vma_io, u64 addr, u64 pfn, u64 size, u64 prot);
	int (*legacy_insert_page)(void *ctx, void *vma_io, u64 addr, u64 page);
	u64 (*place_device)(void *ctx, const char *model, u64 size, u64 arg);
};

/* The vm_operations_struct tables of the driver file with their names (for `events`). */
struct mmprep_named_ops {
	const struct vm_operations_struct *ops;
	const char *name;
};

extern struct mmprep_rt mmprep_rt;

/* Set while the harness is inside f_op->mmap_prepare (for the HOWTO's statelessness rule). */
extern int mmprep_in_mmap_prepare;

/* Reports a broken HOWTO rule into the scenario's `events`. */
void mmprep_rule(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The driver's parameter KEY from the scenario's `file` line, or DEF. */
static inline u64 mmprep_param_u64(const char *key, u64 def)
{
	return mmprep_rt.param_u64(mmprep_rt.ctx, key, def);
}

static inline const char *mmprep_param_str(const char *key, const char *def)
{
	return mmprep_rt.param_str(mmprep_rt.ctx, key, def);
}

/*
 * Plugs in simulated hardware MODEL at physical address PHYS ("hpet": the HPET register block,
 * "ram": plain memory, zero-filled). 0, or -EBUSY if the range is taken, -EINVAL for an unknown
 * model or a PHYS that is not page aligned.
 */
static inline int mmprep_attach_device(const char *model, phys_addr_t phys, unsigned long size)
{
	return mmprep_rt.attach_device(mmprep_rt.ctx, model, phys, size, 0);
}

/*
 * Plugs in simulated hardware MODEL wherever the physical address map has room (a BAR the
 * firmware placed): its physical address, or 0 for an unknown model.
 */
static inline phys_addr_t mmprep_place_device(const char *model, unsigned long size)
{
	return mmprep_rt.place_device(mmprep_rt.ctx, model, size, 0);
}

/* Plugs in SIZE bytes of plain memory wherever there is room, every byte FILL at first. */
static inline phys_addr_t mmprep_place_ram(unsigned long size, u8 fill)
{
	return mmprep_rt.place_device(mmprep_rt.ctx, "ram", size, fill);
}

/* Plugs in SIZE bytes of plain memory at PHYS, every byte FILL at first. */
static inline int mmprep_attach_ram(phys_addr_t phys, unsigned long size, u8 fill)
{
	return mmprep_rt.attach_device(mmprep_rt.ctx, "ram", phys, size, fill);
}

#endif

/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: physical addresses. virt_to_phys() works for memory from the harness's allocator
 * (kmalloc, kzalloc): the first call gives the allocation physical pages, and a mapping of that
 * physical range reads and writes the same bytes the driver sees. Such an allocation is kept
 * alive after kfree() (a mapping may still reach it).
 */
#ifndef _MMPREP_LINUX_IO_H
#define _MMPREP_LINUX_IO_H

#include <linux/types.h>
#include <linux/mm.h>

phys_addr_t virt_to_phys(const volatile void *address);

#endif

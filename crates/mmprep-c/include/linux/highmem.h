/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* mmprep: page copies (memcpy_to_page, memcpy_from_page, memzero_page live in <linux/mm.h>). */
#ifndef _MMPREP_LINUX_HIGHMEM_H
#define _MMPREP_LINUX_HIGHMEM_H

#include <linux/mm.h>

#endif

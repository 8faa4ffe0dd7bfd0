/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* mmprep: allocation flags (accepted; only __GFP_ZERO changes anything). */
#ifndef _MMPREP_LINUX_GFP_H
#define _MMPREP_LINUX_GFP_H

#include <linux/types.h>

#define __GFP_ZERO 0x100u
#define __GFP_NOWARN 0x2000u
#define GFP_ATOMIC 0x820u
#define GFP_KERNEL 0xcc0u
#define GFP_NOWAIT 0x800u
#define GFP_USER 0xcc0u
#define GFP_HIGHUSER 0xcc2u

#endif

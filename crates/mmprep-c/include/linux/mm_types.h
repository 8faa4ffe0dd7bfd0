/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: the mmap data types a driver sees, written from the mmap_prepare HOWTO and the
 * kernel's documented names and shapes (not copied from Linux).
 *
 * - vma_flags_t: a bitmap of NUM_VMA_FLAG_BITS bits, addressed by VMA_*_BIT numbers (the same
 *   numbers as the engine's VmaBit, x86_64);
 * - struct vm_area_desc: exactly the HOWTO's fields, in its order;
 * - struct mmap_action: what the mmap_action_*() helpers of <linux/mm.h> record;
 * - struct vm_area_struct: the fields a driver's hooks read (a copy the harness builds for each
 *   call).
 */
#ifndef _MMPREP_LINUX_MM_TYPES_H
#define _MMPREP_LINUX_MM_TYPES_H

#include <linux/types.h>

struct file;
struct page;
struct mm_struct;
struct vm_operations_struct;

/* ---- VMA flag bits (include/linux/mm.h numbering, x86_64) ---- */
#define VMA_READ_BIT 0
#define VMA_WRITE_BIT 1
#define VMA_EXEC_BIT 2
#define VMA_SHARED_BIT 3
#define VMA_MAYREAD_BIT 4
#define VMA_MAYWRITE_BIT 5
#define VMA_MAYEXEC_BIT 6
#define VMA_MAYSHARE_BIT 7
#define VMA_GROWSDOWN_BIT 8
#define VMA_UFFD_MISSING_BIT 9
#define VMA_PFNMAP_BIT 10
#define VMA_MAYBE_GUARD_BIT 11
#define VMA_UFFD_WP_BIT 12
#define VMA_LOCKED_BIT 13
#define VMA_IO_BIT 14
#define VMA_SEQ_READ_BIT 15
#define VMA_RAND_READ_BIT 16
#define VMA_DONTCOPY_BIT 17
#define VMA_DONTEXPAND_BIT 18
#define VMA_LOCKONFAULT_BIT 19
#define VMA_ACCOUNT_BIT 20
#define VMA_NORESERVE_BIT 21
#define VMA_HUGETLB_BIT 22
#define VMA_SYNC_BIT 23
#define VMA_ARCH_1_BIT 24
#define VMA_PAT_BIT VMA_ARCH_1_BIT
#define VMA_WIPEONFORK_BIT 25
#define VMA_DONTDUMP_BIT 26
#define VMA_SOFTDIRTY_BIT 27
#define VMA_MIXEDMAP_BIT 28
#define VMA_HUGEPAGE_BIT 29
#define VMA_NOHUGEPAGE_BIT 30
#define VMA_MERGEABLE_BIT 31
#define VMA_PKEY_BIT0_BIT 32
#define VMA_PKEY_BIT1_BIT 33
#define VMA_PKEY_BIT2_BIT 34
#define VMA_PKEY_BIT3_BIT 35
#define VMA_HIGH_ARCH_4_BIT 36
#define VMA_SHADOW_STACK_BIT 37
#define VMA_HIGH_ARCH_6_BIT 38
#define VMA_ALLOW_ANY_UNCACHED_BIT 39
#define VMA_DROPPABLE_BIT 40
#define VMA_UFFD_MINOR_BIT 41
#define VMA_SEALED_BIT 42

#define NUM_VMA_FLAG_BITS 128
#define __VMA_FLAGS_WORDS (NUM_VMA_FLAG_BITS / 64)

typedef int vma_flag_t;

/* The flags of a VMA or a descriptor: a bitmap wider than one word. */
typedef struct {
	unsigned long __vma_flags[__VMA_FLAGS_WORDS];
} vma_flags_t;

#define EMPTY_VMA_FLAGS ((vma_flags_t){ { 0 } })

/* The legacy one-word flags (VM_READ...), for legacy ->mmap code. */
#define VM_NONE 0UL
#define VM_READ BIT(VMA_READ_BIT)
#define VM_WRITE BIT(VMA_WRITE_BIT)
#define VM_EXEC BIT(VMA_EXEC_BIT)
#define VM_SHARED BIT(VMA_SHARED_BIT)
#define VM_MAYREAD BIT(VMA_MAYREAD_BIT)
#define VM_MAYWRITE BIT(VMA_MAYWRITE_BIT)
#define VM_MAYEXEC BIT(VMA_MAYEXEC_BIT)
#define VM_MAYSHARE BIT(VMA_MAYSHARE_BIT)
#define VM_GROWSDOWN BIT(VMA_GROWSDOWN_BIT)
#define VM_PFNMAP BIT(VMA_PFNMAP_BIT)
#define VM_LOCKED BIT(VMA_LOCKED_BIT)
#define VM_IO BIT(VMA_IO_BIT)
#define VM_DONTCOPY BIT(VMA_DONTCOPY_BIT)
#define VM_DONTEXPAND BIT(VMA_DONTEXPAND_BIT)
#define VM_ACCOUNT BIT(VMA_ACCOUNT_BIT)
#define VM_NORESERVE BIT(VMA_NORESERVE_BIT)
#define VM_SYNC BIT(VMA_SYNC_BIT)
#define VM_WIPEONFORK BIT(VMA_WIPEONFORK_BIT)
#define VM_DONTDUMP BIT(VMA_DONTDUMP_BIT)
#define VM_MIXEDMAP BIT(VMA_MIXEDMAP_BIT)
#define VM_HUGEPAGE BIT(VMA_HUGEPAGE_BIT)
#define VM_NOHUGEPAGE BIT(VMA_NOHUGEPAGE_BIT)

/* Page protection (x86 bit positions; the harness reads the cache mode from PWT/PCD). */
typedef struct {
	unsigned long pgprot;
} pgprot_t;

#define _PAGE_PRESENT 0x001UL
#define _PAGE_RW 0x002UL
#define _PAGE_USER 0x004UL
#define _PAGE_PWT 0x008UL
#define _PAGE_PCD 0x010UL
#define _PAGE_NX (1UL << 63)
#define _PAGE_CACHE_MASK (_PAGE_PWT | _PAGE_PCD)

#define pgprot_val(x) ((x).pgprot)
#define __pgprot(x) ((pgprot_t){ (x) })

/* What an mmap_action asks for once the mapping exists. */
enum mmap_action_type {
	MMAP_NOTHING,
	MMAP_REMAP_PFN,
	MMAP_IO_REMAP_PFN,
	MMAP_SIMPLE_IO_REMAP,
	MMAP_MAP_KERNEL_PAGES,
};

struct vm_area_struct;

/*
 * Recorded by the mmap_action_*() helpers of <linux/mm.h>; never set by hand. With
 * MMPREP_MMAP_ACTION_ERROR_OVERRIDE defined before the first include, the newer form with
 * error_override replaces error_hook.
 */
struct mmap_action {
	union {
		struct {
			unsigned long start;
			unsigned long start_pfn;
			unsigned long size;
			pgprot_t pgprot;
		} remap;
		struct {
			phys_addr_t start_phys_addr;
			unsigned long size;
		} simple_ioremap;
		struct {
			unsigned long start;
			struct page **pages;
			unsigned long nr_pages;
			pgoff_t pgoff;
		} map_kernel;
	};
	enum mmap_action_type type;
	/* Run once the new (unmerged) mapping is complete; an error unmaps it. */
	int (*success_hook)(const struct vm_area_struct *vma);
#ifdef MMPREP_MMAP_ACTION_ERROR_OVERRIDE
	/* If non-zero, the errno mmap() returns when completing the action fails. */
	int error_override;
#else
	/* Turns the errno of a failed completion into the one mmap() returns. */
	int (*error_hook)(int err);
#endif
	bool hide_from_rmap_until_complete;
};

/* The proposed mapping, as mmap_prepare sees it (the HOWTO's struct, field for field). */
struct vm_area_desc {
	/* Immutable state. */
	const struct mm_struct *const mm;
	struct file *const file; /* May vary from vm_file in stacked callers. */
	unsigned long start;
	unsigned long end;

	/* Mutable fields. Populated with initial state. */
	pgoff_t pgoff;
	struct file *vm_file;
	vma_flags_t vma_flags;
	pgprot_t page_prot;

	/* Write-only fields. */
	const struct vm_operations_struct *vm_ops;
	void *private_data;

	/* Take further action? */
	struct mmap_action action;
};

/* A VMA as a driver's hooks see it: a copy the harness makes for each call. */
struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
	struct mm_struct *vm_mm;
	pgprot_t vm_page_prot;
	union {
		const vm_flags_t vm_flags;
		vma_flags_t flags;
	};
	unsigned long vm_pgoff;
	struct file *vm_file;
	void *vm_private_data;
	const struct vm_operations_struct *vm_ops;
};

#endif

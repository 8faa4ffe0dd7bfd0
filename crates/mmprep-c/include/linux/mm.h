/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mmprep: what a driver's mmap code uses from <linux/mm.h>, written from the mmap_prepare HOWTO
 * and the kernel's documented names and shapes (not copied from Linux):
 *
 * - PAGE_SIZE and friends;
 * - the VMA flag helpers: mk_vma_flags(), vma_desc_test_flags() / vma_desc_set_flags() /
 *   vma_desc_clear_flags() with a comma-separated list of VMA_*_BIT numbers (the HOWTO's names),
 *   vma_desc_test(), vma_desc_test_any(), vma_desc_test_all();
 * - vma_desc_size(), vma_desc_pages();
 * - the mmap_action_*() helpers;
 * - struct vm_operations_struct and struct vm_fault;
 * - kernel pages: alloc_page(), get_page(), put_page().
 */
#ifndef _MMPREP_LINUX_MM_H
#define _MMPREP_LINUX_MM_H

#include <string.h>

#include <linux/types.h>
#include <linux/errno.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/printk.h>
#include <linux/mm_types.h>
#include <mmprep/runtime.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define PAGE_ALIGN(addr) (((addr) + PAGE_SIZE - 1) & PAGE_MASK)
#define PAGE_ALIGNED(addr) ((((unsigned long)(addr)) & (PAGE_SIZE - 1)) == 0)
#define offset_in_page(p) ((unsigned long)(p) & ~PAGE_MASK)
#define PFN_DOWN(x) ((unsigned long)((x) >> PAGE_SHIFT))
#define PFN_UP(x) ((unsigned long)(((x) + PAGE_SIZE - 1) >> PAGE_SHIFT))
#define PFN_PHYS(x) ((phys_addr_t)(x) << PAGE_SHIFT)
#define PHYS_PFN(x) ((unsigned long)((x) >> PAGE_SHIFT))

/* ---- VMA flags ---- */

static inline vma_flags_t __mk_vma_flags(size_t count, const vma_flag_t *bits)
{
	vma_flags_t flags = EMPTY_VMA_FLAGS;
	size_t i;

	for (i = 0; i < count; i++)
		flags.__vma_flags[bits[i] / 64] |= 1UL << (bits[i] % 64);
	return flags;
}

/* mk_vma_flags(VMA_READ_BIT, VMA_WRITE_BIT): a vma_flags_t with exactly these bits. */
#define mk_vma_flags(...) __mk_vma_flags(__MMPREP_NARGS(__VA_ARGS__), (const vma_flag_t[]){ __VA_ARGS__ })

static inline bool vma_flags_test(const vma_flags_t *flags, vma_flag_t bit)
{
	return flags->__vma_flags[bit / 64] & (1UL << (bit % 64));
}

static inline bool vma_flags_test_any_mask(const vma_flags_t *flags, vma_flags_t mask)
{
	int i;

	for (i = 0; i < __VMA_FLAGS_WORDS; i++)
		if (flags->__vma_flags[i] & mask.__vma_flags[i])
			return true;
	return false;
}

static inline bool vma_flags_test_all_mask(const vma_flags_t *flags, vma_flags_t mask)
{
	int i;

	for (i = 0; i < __VMA_FLAGS_WORDS; i++)
		if ((flags->__vma_flags[i] & mask.__vma_flags[i]) != mask.__vma_flags[i])
			return false;
	return true;
}

static inline void vma_flags_set_mask(vma_flags_t *flags, vma_flags_t mask)
{
	int i;

	for (i = 0; i < __VMA_FLAGS_WORDS; i++)
		flags->__vma_flags[i] |= mask.__vma_flags[i];
}

static inline void vma_flags_clear_mask(vma_flags_t *flags, vma_flags_t mask)
{
	int i;

	for (i = 0; i < __VMA_FLAGS_WORDS; i++)
		flags->__vma_flags[i] &= ~mask.__vma_flags[i];
}

#define vma_flags_test_any(flags, ...) vma_flags_test_any_mask(flags, mk_vma_flags(__VA_ARGS__))
#define vma_flags_test_all(flags, ...) vma_flags_test_all_mask(flags, mk_vma_flags(__VA_ARGS__))
#define vma_flags_set(flags, ...) vma_flags_set_mask(flags, mk_vma_flags(__VA_ARGS__))
#define vma_flags_clear(flags, ...) vma_flags_clear_mask(flags, mk_vma_flags(__VA_ARGS__))

/* The HOWTO's helpers: true if *any* of the listed bits is set. */
#define vma_desc_test_flags(desc, ...) vma_flags_test_any_mask(&(desc)->vma_flags, mk_vma_flags(__VA_ARGS__))
#define vma_desc_set_flags(desc, ...) vma_flags_set_mask(&(desc)->vma_flags, mk_vma_flags(__VA_ARGS__))
#define vma_desc_clear_flags(desc, ...) vma_flags_clear_mask(&(desc)->vma_flags, mk_vma_flags(__VA_ARGS__))

/* The newer names. */
static inline bool vma_desc_test(const struct vm_area_desc *desc, vma_flag_t bit)
{
	return vma_flags_test(&desc->vma_flags, bit);
}
#define vma_desc_test_any(desc, ...) vma_flags_test_any_mask(&(desc)->vma_flags, mk_vma_flags(__VA_ARGS__))
#define vma_desc_test_all(desc, ...) vma_flags_test_all_mask(&(desc)->vma_flags, mk_vma_flags(__VA_ARGS__))

static inline bool vma_test(const struct vm_area_struct *vma, vma_flag_t bit)
{
	return vma_flags_test(&vma->flags, bit);
}

static inline unsigned long vma_desc_size(const struct vm_area_desc *desc)
{
	return desc->end - desc->start;
}

static inline unsigned long vma_desc_pages(const struct vm_area_desc *desc)
{
	return vma_desc_size(desc) >> PAGE_SHIFT;
}

static inline unsigned long vma_pages(const struct vm_area_struct *vma)
{
	return (vma->vm_end - vma->vm_start) >> PAGE_SHIFT;
}

/* ---- page protection ---- */

/* Uncached (x86: UC-, PCD). */
static inline pgprot_t pgprot_noncached(pgprot_t prot)
{
	return __pgprot((pgprot_val(prot) & ~_PAGE_CACHE_MASK) | _PAGE_PCD);
}

/* Write-combining (x86 with PAT: PWT selects WC). */
static inline pgprot_t pgprot_writecombine(pgprot_t prot)
{
	return __pgprot((pgprot_val(prot) & ~_PAGE_CACHE_MASK) | _PAGE_PWT);
}

/* ---- actions ---- */

/* After the mapping is made, map SIZE bytes of physical pages from START_PFN at START. */
static inline void mmap_action_remap(struct vm_area_desc *desc, unsigned long start,
				     unsigned long start_pfn, unsigned long size)
{
	struct mmap_action *action = &desc->action;

	action->remap.start = start;
	action->remap.start_pfn = start_pfn;
	action->remap.size = size;
	action->remap.pgprot = desc->page_prot;
	action->type = MMAP_REMAP_PFN;
}

static inline void mmap_action_remap_full(struct vm_area_desc *desc, unsigned long start_pfn)
{
	mmap_action_remap(desc, desc->start, start_pfn, vma_desc_size(desc));
}

/* As mmap_action_remap(), for I/O memory. */
static inline void mmap_action_ioremap(struct vm_area_desc *desc, unsigned long start,
				       unsigned long start_pfn, unsigned long size)
{
	mmap_action_remap(desc, start, start_pfn, size);
	desc->action.type = MMAP_IO_REMAP_PFN;
}

static inline void mmap_action_ioremap_full(struct vm_area_desc *desc, unsigned long start_pfn)
{
	mmap_action_ioremap(desc, desc->start, start_pfn, vma_desc_size(desc));
}

/*
 * Map the physical region [START_PHYS_ADDR, START_PHYS_ADDR + SIZE) over the whole mapping,
 * starting desc->pgoff pages into it (bounds checked when the action is prepared).
 */
static inline void mmap_action_simple_ioremap(struct vm_area_desc *desc, phys_addr_t start_phys_addr,
					      unsigned long size)
{
	struct mmap_action *action = &desc->action;

	action->simple_ioremap.start_phys_addr = start_phys_addr;
	action->simple_ioremap.size = size;
	action->type = MMAP_SIMPLE_IO_REMAP;
}

/* Map NR_PAGES kernel pages from START. */
static inline void mmap_action_map_kernel_pages(struct vm_area_desc *desc, unsigned long start,
						struct page **pages, unsigned long nr_pages)
{
	struct mmap_action *action = &desc->action;

	action->map_kernel.start = start;
	action->map_kernel.pages = pages;
	action->map_kernel.nr_pages = nr_pages;
	action->map_kernel.pgoff = desc->pgoff;
	action->type = MMAP_MAP_KERNEL_PAGES;
}

static inline void mmap_action_map_kernel_pages_full(struct vm_area_desc *desc, struct page **pages)
{
	mmap_action_map_kernel_pages(desc, desc->start, pages, vma_desc_pages(desc));
}

/* ---- faults and vm_ops ---- */

#define VM_FAULT_OOM 0x000001u
#define VM_FAULT_SIGBUS 0x000002u
#define VM_FAULT_NOPAGE 0x000100u
#define VM_FAULT_LOCKED 0x000200u
#define VM_FAULT_ERROR (VM_FAULT_OOM | VM_FAULT_SIGBUS)

#define FAULT_FLAG_WRITE 0x01u

struct vm_fault {
	struct vm_area_struct *vma;
	gfp_t gfp_mask;
	pgoff_t pgoff;
	unsigned long address;
	unsigned int flags;
	/* Set by ->fault: the page to map (with a reference the fault handler hands over). */
	struct page *page;
};

struct vm_operations_struct {
	/* A new VMA was made from this one (split, fork, mremap move). */
	void (*open)(struct vm_area_struct *area);
	/* The VMA is going away. */
	void (*close)(struct vm_area_struct *area);
	/*
	 * A new, unmerged mapping is in place: per-mapping work goes here. An error unmaps it and
	 * fails mmap(); *vm_private_data is written back only on success.
	 */
	int (*mapped)(unsigned long start, unsigned long end, pgoff_t pgoff, const struct file *file,
		      void **vm_private_data);
	int (*may_split)(struct vm_area_struct *area, unsigned long addr);
	int (*mremap)(struct vm_area_struct *area);
	vm_fault_t (*fault)(struct vm_fault *vmf);
	vm_fault_t (*page_mkwrite)(struct vm_fault *vmf);
	vm_fault_t (*pfn_mkwrite)(struct vm_fault *vmf);
	/* Another process (ptrace, /proc/PID/mem) reads or writes an I/O or PFN mapping. */
	int (*access)(struct vm_area_struct *vma, unsigned long addr, void *buf, int len, int write);
	const char *(*name)(struct vm_area_struct *vma);
};

/* ->access for PFN mappings of physical memory: reads or writes the physical page behind ADDR. */
int generic_access_phys(struct vm_area_struct *vma, unsigned long addr, void *buf, int len, int write);

/* ---- the legacy ->mmap hook's view of the VMA ---- */

static inline void vm_flags_init(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->flags.__vma_flags[0] = flags;
}

static inline void vm_flags_reset(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->flags.__vma_flags[0] = flags;
}

static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->flags.__vma_flags[0] |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->flags.__vma_flags[0] &= ~flags;
}

static inline void vm_flags_mod(struct vm_area_struct *vma, vm_flags_t set, vm_flags_t clear)
{
	vma->flags.__vma_flags[0] = (vma->flags.__vma_flags[0] | set) & ~clear;
}

static inline bool is_cow_mapping(vm_flags_t flags)
{
	return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE;
}

/*
 * Legacy ->mmap only: map SIZE bytes of physical memory from PFN at ADDR now (sets VM_IO,
 * VM_PFNMAP, VM_DONTEXPAND, VM_DONTDUMP); insert one kernel page (sets VM_MIXEDMAP).
 */
int remap_pfn_range(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn,
		    unsigned long size, pgprot_t prot);
int io_remap_pfn_range(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn,
		       unsigned long size, pgprot_t prot);
int vm_insert_page(struct vm_area_struct *vma, unsigned long addr, struct page *page);

/*
 * f_op->get_unmapped_area of files that like 2 MiB alignment (ext4, DAX): the harness places
 * such mappings as the kernel's thp_get_unmapped_area does. Only its address is used.
 */
unsigned long thp_get_unmapped_area(struct file *filp, unsigned long addr, unsigned long len,
				    unsigned long pgoff, unsigned long flags);

/* ---- kernel pages (opaque handles on the harness's frames) ---- */

static inline struct page *alloc_page(gfp_t gfp)
{
	(void)gfp;
	return (struct page *)(uintptr_t)mmprep_rt.alloc_page(mmprep_rt.ctx);
}

static inline void put_page(struct page *page)
{
	mmprep_rt.put_page(mmprep_rt.ctx, (u64)(uintptr_t)page);
}

static inline void get_page(struct page *page)
{
	mmprep_rt.get_page(mmprep_rt.ctx, (u64)(uintptr_t)page);
}

#define __free_page(page) put_page(page)

/*
 * ->fault of a file in the page cache: the page at vmf->pgoff of the file's inode, created
 * zero-filled; SIGBUS at or past i_size (set it in f_op->open). Shared by every mapping of the
 * file, as the kernel's page cache is.
 */
vm_fault_t filemap_fault(struct vm_fault *vmf);

/* Copy LEN bytes into (or out of) a kernel page at OFFSET (<linux/highmem.h> has them too). */
static inline void memcpy_to_page(struct page *page, size_t offset, const char *from, size_t len)
{
	mmprep_rt.page_copy(mmprep_rt.ctx, (u64)(uintptr_t)page, offset, (void *)from, len, 1);
}

static inline void memcpy_from_page(char *to, struct page *page, size_t offset, size_t len)
{
	mmprep_rt.page_copy(mmprep_rt.ctx, (u64)(uintptr_t)page, offset, to, len, 0);
}

static inline void memzero_page(struct page *page, size_t offset, size_t len)
{
	char zero[256] = { 0 };

	while (len > 0) {
		size_t n = len < sizeof(zero) ? len : sizeof(zero);

		memcpy_to_page(page, offset, zero, n);
		offset += n;
		len -= n;
	}
}

#endif

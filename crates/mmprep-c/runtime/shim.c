// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * mmprep: the C half of the harness, compiled into every driver library beside the driver.
 *
 * The Rust half never touches a kernel struct: it hands plain structs of 64-bit words
 * (struct mmprep_desc_io, struct mmprep_vma_io) to the functions here, which build the
 * struct vm_area_desc / struct vm_area_struct the driver expects, call the driver, and copy back
 * only what the kernel copies back. The HOWTO's rules that C can see are checked here too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MMPREP_SANITIZE
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

#include <linux/fs.h>
#include <linux/io.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <mmprep/runtime.h>

struct mmprep_rt mmprep_rt;
int mmprep_in_mmap_prepare;

/* From the generated unit that includes the driver file (NULL: module_init registers one). */
extern const struct file_operations *const mmprep_fops;
/* The driver's module_init, if it has one. */
extern int (*mmprep_module_init_fn)(void) __attribute__((weak));

/* The table the file is served with: mmprep_fops, or the first misc_register()ed. */
static const struct file_operations *fops;
extern const struct mmprep_named_ops mmprep_vm_ops_names[];

struct mm_struct {
	int unused;
};
static struct mm_struct mmprep_mm;

void mmprep_shim_init(const struct mmprep_rt *rt)
{
	mmprep_rt = *rt;
}

/*
 * Every call into driver code runs under the crash guard: a SIGSEGV, SIGBUS, SIGFPE or SIGILL
 * there jumps back here, the harness reports the crash with HOOK, and the shim function returns
 * FAIL (nothing for a void one).
 */
#define GUARD_BEGIN(hook, fail)                                  \
	sigjmp_buf guard_jb;                                     \
	if (sigsetjmp(guard_jb, 1)) {                            \
		mmprep_in_mmap_prepare = 0;                      \
		mmprep_rt.guard_set(NULL);                       \
		mmprep_rt.crashed(mmprep_rt.ctx, hook);          \
		return fail;                                     \
	}                                                        \
	mmprep_rt.guard_set(&guard_jb)
#define GUARD_END() mmprep_rt.guard_set(NULL)

/* ---- module_init, misc_register ---- */

int misc_register(struct miscdevice *misc)
{
	if (!fops)
		fops = misc->fops;
	return 0;
}

void misc_deregister(struct miscdevice *misc)
{
	(void)misc;
}

/*
 * Runs the driver's module_init (if any) and picks the table to serve: 0, the errno module_init
 * returned, or -ENODEV when there is no table.
 */
int mmprep_shim_start(void)
{
	int ret = 0;

	fops = mmprep_fops;
	if (&mmprep_module_init_fn && mmprep_module_init_fn) {
		ret = -EFAULT;
		GUARD_BEGIN("module_init", -EFAULT);
		ret = mmprep_module_init_fn();
		GUARD_END();
	}
	if (ret)
		return ret;
	return fops ? 0 : -ENODEV;
}

/* ---- printk ---- */

static void vlog(const char *level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	mmprep_rt.printk(mmprep_rt.ctx, level, buf);
}

void mmprep_printk(const char *level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

/* Rules reported so far (the state check below stays quiet when another rule said why). */
static long rules_reported;

void mmprep_rule(const char *fmt, ...)
{
	va_list ap;

	rules_reported++;
	va_start(ap, fmt);
	vlog("rule", fmt, ap);
	va_end(ap);
}

/* ---- the allocator ---- */

struct allocation {
	void *p;
	size_t size;	/* rounded up to whole pages */
	phys_addr_t phys; /* 0 until virt_to_phys() gave it physical pages */
	int freed;
	struct allocation *next;
};

static struct allocation *allocations;
static long live_allocations;

void *kmalloc(size_t size, gfp_t flags)
{
	size_t rounded = (size + PAGE_SIZE - 1) & PAGE_MASK;
	size_t align = PAGE_SIZE;
	struct allocation *a;
	void *p;

	if (size == 0)
		return NULL;
	/* Whole pages, so that virt_to_phys() can map them; a power of two is naturally aligned. */
	if ((size & (size - 1)) == 0 && size > align)
		align = size;
	if (posix_memalign(&p, align, rounded))
		return NULL;
	a = calloc(1, sizeof(*a));
	if (!a) {
		free(p);
		return NULL;
	}
	if (flags & __GFP_ZERO)
		memset(p, 0, rounded);
	/* Under AddressSanitizer the slack after SIZE is off limits, as past a kmalloc's end. */
	ASAN_POISON_MEMORY_REGION((char *)p + size, rounded - size);
	a->p = p;
	a->size = rounded;
	a->next = allocations;
	allocations = a;
	live_allocations++;
	return p;
}

static struct allocation *find_allocation(const volatile void *addr, struct allocation ***link)
{
	struct allocation **l;

	for (l = &allocations; *l; l = &(*l)->next) {
		struct allocation *a = *l;
		const char *base = a->p;

		if (!a->freed && (const char *)addr >= base && (const char *)addr < base + a->size) {
			if (link)
				*link = l;
			return a;
		}
	}
	return NULL;
}

void kfree(const void *p)
{
	struct allocation **link;
	struct allocation *a;

	if (!p)
		return;
	a = find_allocation(p, &link);
	if (!a || a->p != p) {
		mmprep_rule("kfree of %p, which kmalloc did not return (or was freed already)", p);
		return;
	}
	live_allocations--;
	if (a->phys) {
		/* A mapping may still reach these pages: keep them. */
		a->freed = 1;
		return;
	}
	*link = a->next;
	ASAN_UNPOISON_MEMORY_REGION(a->p, a->size);
	free(a->p);
	free(a);
}

phys_addr_t virt_to_phys(const volatile void *address)
{
	struct allocation *a = find_allocation(address, NULL);

	if (!a) {
		mmprep_rule("virt_to_phys(%p): not memory from kmalloc/kzalloc", (const void *)address);
		return 0;
	}
	if (!a->phys)
		a->phys = mmprep_rt.register_ram(mmprep_rt.ctx, a->p, a->size);
	return a->phys + (phys_addr_t)((const char *)address - (const char *)a->p);
}

int generic_access_phys(struct vm_area_struct *vma, unsigned long addr, void *buf, int len, int write)
{
	unsigned long offset = addr & ~PAGE_MASK;
	phys_addr_t phys = ((phys_addr_t)(vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT)) << PAGE_SHIFT) + offset;

	if ((unsigned long)len > PAGE_SIZE - offset)
		len = (int)(PAGE_SIZE - offset);
	return mmprep_rt.phys_access(mmprep_rt.ctx, phys, buf, (u64)len, write);
}

vm_fault_t filemap_fault(struct vm_fault *vmf)
{
	u64 page = mmprep_rt.filemap_page(mmprep_rt.ctx, vmf->pgoff);

	if (!page)
		return VM_FAULT_SIGBUS;
	vmf->page = (struct page *)(uintptr_t)page;
	return 0;
}

/* ---- files ---- */

#define MMPREP_FOP_MMAP_PREPARE 1u
#define MMPREP_FOP_MMAP 2u
#define MMPREP_FOP_GET_UNMAPPED_AREA 4u

unsigned int mmprep_shim_fops_hooks(void)
{
	unsigned int hooks = 0;

	if (fops->mmap_prepare)
		hooks |= MMPREP_FOP_MMAP_PREPARE;
	if (fops->mmap)
		hooks |= MMPREP_FOP_MMAP;
	if (fops->get_unmapped_area)
		hooks |= MMPREP_FOP_GET_UNMAPPED_AREA;
	return hooks;
}

unsigned long thp_get_unmapped_area(struct file *filp, unsigned long addr, unsigned long len,
				    unsigned long pgoff, unsigned long flags)
{
	/* Never called: the engine places the mapping (mmprep_shim_area_policy says how). */
	(void)filp;
	(void)len;
	(void)pgoff;
	(void)flags;
	return addr;
}

/* How f_op->get_unmapped_area places mappings: 0 the default, 1 thp_get_unmapped_area, 2 the
 * driver's own (not run: the default). */
unsigned int mmprep_shim_area_policy(void)
{
	if (!fops->get_unmapped_area)
		return 0;
	return fops->get_unmapped_area == thp_get_unmapped_area ? 1 : 2;
}

unsigned int mmprep_shim_fop_flags(void)
{
	return fops->fop_flags;
}

/*
 * A fresh inode INO opened once; *ERR is what f_op->open returned, *SIZE and *MODE what it left
 * in i_size and i_mode.
 */
struct file *mmprep_shim_open(int read_only, unsigned long ino, int *err, u64 *size, unsigned int *mode)
{
	struct inode *inode = calloc(1, sizeof(*inode));
	struct address_space *mapping = calloc(1, sizeof(*mapping));
	struct file *file = calloc(1, sizeof(*file));

	*err = 0;
	if (!inode || !mapping || !file) {
		*err = -ENOMEM;
		return NULL;
	}
	inode->i_ino = ino;
	inode->i_mode = S_IFCHR | 0600;
	inode->i_mapping = mapping;
	mapping->host = inode;
	file->f_mode = FMODE_READ | (read_only ? 0 : FMODE_WRITE);
	file->f_inode = inode;
	file->f_mapping = mapping;
	file->f_op = fops;
	file->f_count = 1;
	*size = 0;
	*mode = 0;
	if (fops->open) {
		*err = -EFAULT; /* what a crash in ->open leaves */
		GUARD_BEGIN("open", file);
		*err = fops->open(inode, file);
		GUARD_END();
	}
	*size = inode->i_size > 0 ? (u64)inode->i_size : 0;
	*mode = inode->i_mode;
	return file;
}

/* ---- mmap_prepare ---- */

struct mmprep_desc_io {
	/* in */
	u64 start, end;
	/* in and out: the mutable fields */
	u64 pgoff;
	u64 flags[2];
	u64 prot;
	u64 vm_file_changed;
	/* out: the write-only fields and the action */
	u64 vm_ops, private_data;
	u64 type, a_start, a_pfn, a_size, a_prot, a_phys, a_pages, a_nr, a_pgoff;
	u64 success_hook, error_hook, error_override;
};

/* ---- the driver's own state ---- */

extern char mmprep_data_begin[], mmprep_data_end[], mmprep_bss_begin[], mmprep_bss_end[];

struct state_copy {
	unsigned char *data, *bss;
	size_t data_len, bss_len;
};

static size_t span(const char *begin, const char *end)
{
	/* Only the order data_begin.c, unit.c, data_end.c gives a sane span; anything else is skipped. */
	if (end <= begin + 1 || (size_t)(end - begin) > (64u << 20))
		return 0;
	return (size_t)(end - begin) - 1;
}

/* Copies the driver's .data and .bss (not under AddressSanitizer: its redzones sit between them). */
static void state_save(struct state_copy *c)
{
	memset(c, 0, sizeof(*c));
#ifndef MMPREP_SANITIZE
	c->data_len = span(mmprep_data_begin, mmprep_data_end);
	c->bss_len = span(mmprep_bss_begin, mmprep_bss_end);
	c->data = c->data_len ? malloc(c->data_len) : NULL;
	c->bss = c->bss_len ? malloc(c->bss_len) : NULL;
	if (c->data)
		memcpy(c->data, mmprep_data_begin + 1, c->data_len);
	if (c->bss)
		memcpy(c->bss, mmprep_bss_begin + 1, c->bss_len);
#endif
}

static size_t differing(const unsigned char *a, const char *b, size_t n)
{
	size_t i, d = 0;

	for (i = 0; a && i < n; i++)
		d += a[i] != (unsigned char)b[i];
	return d;
}

/* Bytes of the driver's static data that differ from the copy; frees the copy. */
static size_t state_changed(struct state_copy *c)
{
	size_t d = differing(c->data, mmprep_data_begin + 1, c->data_len) +
		   differing(c->bss, mmprep_bss_begin + 1, c->bss_len);

	free(c->data);
	free(c->bss);
	return d;
}

int mmprep_shim_mmap_prepare(struct file *file, struct mmprep_desc_io *io)
{
	long before = live_allocations;
	long rules_before;
	struct state_copy state;
	size_t changed;
	struct vm_area_desc desc = {
		.mm = &mmprep_mm,
		.file = file,
		.start = io->start,
		.end = io->end,
		.pgoff = io->pgoff,
		.vm_file = file,
		.vma_flags = { { io->flags[0], io->flags[1] } },
		.page_prot = { io->prot },
	};
	int ret;

	state_save(&state);
	rules_before = rules_reported;
	GUARD_BEGIN("mmap_prepare", -EFAULT);
	mmprep_in_mmap_prepare = 1;
	ret = fops->mmap_prepare(&desc);
	mmprep_in_mmap_prepare = 0;
	GUARD_END();
	changed = state_changed(&state);

	/* The immutable fields: the kernel ignores a change; say that it happened. */
	if (desc.mm != &mmprep_mm)
		mmprep_rule("mmap_prepare changed desc->mm, which is immutable (the change is ignored)");
	if (desc.file != file)
		mmprep_rule("mmap_prepare changed desc->file, which is immutable (the change is ignored)");
	if (desc.start != io->start || desc.end != io->end)
		mmprep_rule("mmap_prepare changed desc->start/end, which are immutable (the change is ignored)");
	if (live_allocations > before)
		mmprep_rule("mmap_prepare allocated memory that outlives the call (%ld allocations): the mapping may still merge or fail; allocate in vm_ops->mapped",
			    live_allocations - before);
	if (changed && rules_reported == rules_before)
		mmprep_rule("mmap_prepare changed the driver's own state (%zu bytes of static data) that outlives the call: the mapping may still merge or fail; change it in vm_ops->mapped",
			    changed);

	io->pgoff = desc.pgoff;
	io->flags[0] = desc.vma_flags.__vma_flags[0];
	io->flags[1] = desc.vma_flags.__vma_flags[1];
	io->prot = desc.page_prot.pgprot;
	io->vm_file_changed = desc.vm_file != file;
	io->vm_ops = (u64)(uintptr_t)desc.vm_ops;
	io->private_data = (u64)(uintptr_t)desc.private_data;
	io->type = desc.action.type;
	switch (desc.action.type) {
	case MMAP_REMAP_PFN:
	case MMAP_IO_REMAP_PFN:
		io->a_start = desc.action.remap.start;
		io->a_pfn = desc.action.remap.start_pfn;
		io->a_size = desc.action.remap.size;
		io->a_prot = desc.action.remap.pgprot.pgprot;
		break;
	case MMAP_SIMPLE_IO_REMAP:
		io->a_phys = desc.action.simple_ioremap.start_phys_addr;
		io->a_size = desc.action.simple_ioremap.size;
		break;
	case MMAP_MAP_KERNEL_PAGES:
		io->a_start = desc.action.map_kernel.start;
		io->a_pages = (u64)(uintptr_t)desc.action.map_kernel.pages;
		io->a_nr = desc.action.map_kernel.nr_pages;
		io->a_pgoff = desc.action.map_kernel.pgoff;
		break;
	default:
		break;
	}
	io->success_hook = (u64)(uintptr_t)desc.action.success_hook;
#ifdef MMPREP_MMAP_ACTION_ERROR_OVERRIDE
	io->error_hook = 0;
	io->error_override = (u64)(s64)desc.action.error_override;
#else
	io->error_hook = (u64)(uintptr_t)desc.action.error_hook;
	io->error_override = 0;
#endif
	return ret;
}

/* Entry I of a struct page * array an action named (0 for NULL). */
u64 mmprep_shim_page_at(u64 pages, u64 i)
{
	struct page **array = (struct page **)(uintptr_t)pages;

	return array ? (u64)(uintptr_t)array[i] : 0;
}

/* ---- vm_ops ---- */

struct mmprep_vma_io {
	u64 start, end, pgoff;
	u64 flags[2];
	u64 prot;
	u64 file;
	u64 private_data;
	u64 vm_ops;
};

#define MAKE_VMA(io) { \
	.vm_start = (io)->start, \
	.vm_end = (io)->end, \
	.vm_mm = &mmprep_mm, \
	.vm_page_prot = { (io)->prot }, \
	.flags = { { (io)->flags[0], (io)->flags[1] } }, \
	.vm_pgoff = (io)->pgoff, \
	.vm_file = (struct file *)(uintptr_t)(io)->file, \
	.vm_private_data = (void *)(uintptr_t)(io)->private_data, \
	.vm_ops = (const struct vm_operations_struct *)(uintptr_t)(io)->vm_ops, \
}

#define OPS(io) ((const struct vm_operations_struct *)(uintptr_t)(io)->vm_ops)

/* Which members are non-NULL, in the engine's VmHooks bit order. */
unsigned int mmprep_shim_vm_hooks(u64 ops_ptr)
{
	const struct vm_operations_struct *ops = (const void *)(uintptr_t)ops_ptr;
	unsigned int hooks = 0;

	if (ops->open)
		hooks |= 1u << 0;
	if (ops->close)
		hooks |= 1u << 1;
	if (ops->may_split)
		hooks |= 1u << 2;
	if (ops->mapped)
		hooks |= 1u << 3;
	if (ops->name)
		hooks |= 1u << 4;
	if (ops->fault)
		hooks |= 1u << 5;
	if (ops->mremap)
		hooks |= 1u << 6;
	if (ops->page_mkwrite)
		hooks |= 1u << 8;
	if (ops->pfn_mkwrite)
		hooks |= 1u << 9;
	if (ops->access)
		hooks |= 1u << 10;
	return hooks;
}

const char *mmprep_shim_vm_ops_name(u64 ops_ptr)
{
	const struct mmprep_named_ops *n;

	for (n = mmprep_vm_ops_names; n->ops; n++)
		if ((u64)(uintptr_t)n->ops == ops_ptr)
			return n->name;
	return NULL;
}

void mmprep_shim_vm_open(struct mmprep_vma_io *io)
{
	struct vm_area_struct vma = MAKE_VMA(io);

	GUARD_BEGIN("open", );
	OPS(io)->open(&vma);
	GUARD_END();
	io->private_data = (u64)(uintptr_t)vma.vm_private_data;
}

void mmprep_shim_vm_close(struct mmprep_vma_io *io)
{
	struct vm_area_struct vma = MAKE_VMA(io);

	GUARD_BEGIN("close", );
	OPS(io)->close(&vma);
	GUARD_END();
}

int mmprep_shim_vm_may_split(struct mmprep_vma_io *io, u64 addr)
{
	struct vm_area_struct vma = MAKE_VMA(io);

	int ret;

	GUARD_BEGIN("may_split", -EFAULT);
	ret = OPS(io)->may_split(&vma, addr);
	GUARD_END();
	return ret;
}

int mmprep_shim_vm_mremap(struct mmprep_vma_io *io)
{
	struct vm_area_struct vma = MAKE_VMA(io);

	int ret;

	GUARD_BEGIN("mremap", -EFAULT);
	ret = OPS(io)->mremap(&vma);
	GUARD_END();
	return ret;
}

const char *mmprep_shim_vm_name(struct mmprep_vma_io *io)
{
	struct vm_area_struct vma = MAKE_VMA(io);

	const char *name;

	GUARD_BEGIN("name", NULL);
	name = OPS(io)->name(&vma);
	GUARD_END();
	return name;
}

int mmprep_shim_vm_mapped(u64 ops_ptr, u64 start, u64 end, u64 pgoff, u64 file, u64 *private_data)
{
	const struct vm_operations_struct *ops = (const void *)(uintptr_t)ops_ptr;
	void *priv = (void *)(uintptr_t)*private_data;
	int ret;

	GUARD_BEGIN("mapped", -EFAULT);
	ret = ops->mapped(start, end, pgoff, (const struct file *)(uintptr_t)file, &priv);
	GUARD_END();
	*private_data = (u64)(uintptr_t)priv;
	return ret;
}

/* KIND: 0 fault, 1 page_mkwrite, 2 pfn_mkwrite. *PAGE gets vmf->page. */
unsigned int mmprep_shim_vm_fault(struct mmprep_vma_io *io, int kind, u64 pgoff, u64 address, int write,
				  u64 *page)
{
	struct vm_area_struct vma = MAKE_VMA(io);
	struct vm_fault vmf = {
		.vma = &vma,
		.gfp_mask = GFP_KERNEL,
		.pgoff = pgoff,
		.address = address,
		.flags = write ? FAULT_FLAG_WRITE : 0,
		.page = NULL,
	};
	vm_fault_t ret;

	*page = 0;
	GUARD_BEGIN(kind == 0 ? "fault" : kind == 1 ? "page_mkwrite" : "pfn_mkwrite", VM_FAULT_SIGBUS);
	if (kind == 0)
		ret = OPS(io)->fault(&vmf);
	else if (kind == 1)
		ret = OPS(io)->page_mkwrite(&vmf);
	else
		ret = OPS(io)->pfn_mkwrite(&vmf);
	GUARD_END();
	*page = (u64)(uintptr_t)vmf.page;
	return ret;
}

int mmprep_shim_vm_access(struct mmprep_vma_io *io, u64 addr, void *buf, int len, int write)
{
	struct vm_area_struct vma = MAKE_VMA(io);

	int ret;

	GUARD_BEGIN("access", -EFAULT);
	ret = OPS(io)->access(&vma, addr, buf, len, write);
	GUARD_END();
	return ret;
}

/* ---- the legacy ->mmap hook ---- */

static void vma_to_io(const struct vm_area_struct *vma, struct mmprep_vma_io *io)
{
	io->start = vma->vm_start;
	io->end = vma->vm_end;
	io->pgoff = vma->vm_pgoff;
	io->flags[0] = vma->flags.__vma_flags[0];
	io->flags[1] = vma->flags.__vma_flags[1];
	io->prot = vma->vm_page_prot.pgprot;
	io->file = (u64)(uintptr_t)vma->vm_file;
	io->private_data = (u64)(uintptr_t)vma->vm_private_data;
	io->vm_ops = (u64)(uintptr_t)vma->vm_ops;
}

/* What the harness changed on the VMA (a remap sets flags, a private one the pgoff). */
static void io_to_vma(const struct mmprep_vma_io *io, struct vm_area_struct *vma)
{
	vma->flags.__vma_flags[0] = io->flags[0];
	vma->flags.__vma_flags[1] = io->flags[1];
	vma->vm_pgoff = io->pgoff;
}

int remap_pfn_range(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn,
		    unsigned long size, pgprot_t prot)
{
	struct mmprep_vma_io io;
	int ret;

	vma_to_io(vma, &io);
	ret = mmprep_rt.legacy_remap(mmprep_rt.ctx, &io, addr, pfn, size, prot.pgprot);
	io_to_vma(&io, vma);
	return ret;
}

int io_remap_pfn_range(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn,
		       unsigned long size, pgprot_t prot)
{
	return remap_pfn_range(vma, addr, pfn, size, prot);
}

int vm_insert_page(struct vm_area_struct *vma, unsigned long addr, struct page *page)
{
	struct mmprep_vma_io io;
	int ret;

	vma_to_io(vma, &io);
	ret = mmprep_rt.legacy_insert_page(mmprep_rt.ctx, &io, addr, (u64)(uintptr_t)page);
	io_to_vma(&io, vma);
	return ret;
}

/* f_op->mmap(file, vma) on the VMA in IO; what the driver set comes back in IO. */
int mmprep_shim_legacy_mmap(struct file *file, struct mmprep_vma_io *io)
{
	struct vm_area_struct vma = MAKE_VMA(io);
	int ret;

	GUARD_BEGIN("mmap", -EFAULT);
	ret = fops->mmap(file, &vma);
	GUARD_END();
	vma_to_io(&vma, io);
	return ret;
}

/* ---- action hooks ---- */

int mmprep_shim_success_hook(u64 hook, struct mmprep_vma_io *io)
{
	int (*fn)(const struct vm_area_struct *) = (void *)(uintptr_t)hook;
	struct vm_area_struct vma = MAKE_VMA(io);
	int ret;

	GUARD_BEGIN("success_hook", -EFAULT);
	ret = fn(&vma);
	GUARD_END();
	return ret;
}

int mmprep_shim_error_hook(u64 hook, int err)
{
	int (*fn)(int) = (void *)(uintptr_t)hook;
	int ret;

	GUARD_BEGIN("error_hook", err);
	ret = fn(err);
	GUARD_END();
	return ret;
}

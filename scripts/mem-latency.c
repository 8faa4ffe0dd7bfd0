/*
 * The latency of one dependent memory read at a random place in a block of N MiB: a pointer
 * chase through a random cycle of 64-byte lines, so no read can start before the last ended and
 * no prefetcher can guess the next. With "huge" as a second argument the block gets
 * MADV_HUGEPAGE first. docs/performance.md uses it to say what a random operation on a large
 * tree cannot go below on a given machine.
 *
 * usage: cc -O2 -o /tmp/mem-latency scripts/mem-latency.c && /tmp/mem-latency 400 [huge]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MiB [huge]\n", argv[0]);
		return 2;
	}
	size_t lines = (size_t)atoi(argv[1]) * 1024 * 1024 / 64;
	if (lines < 2) {
		fprintf(stderr, "MiB must be at least 1\n");
		return 2;
	}
	char *buf = mmap(NULL, lines * 64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t *perm = malloc(lines * sizeof(size_t));
	if (buf == MAP_FAILED || !perm) {
		perror("allocation");
		return 1;
	}
	if (argc > 2)
		madvise(buf, lines * 64, MADV_HUGEPAGE);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < lines; i++)
		perm[i] = i;
	for (size_t i = lines - 1; i > 0; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t j = x % (i + 1), t = perm[i];
		perm[i] = perm[j], perm[j] = t;
	}
	for (size_t i = 0; i < lines; i++)
		*(size_t *)(buf + perm[i] * 64) = perm[(i + 1) % lines] * 64;
	const int reads = 2000000;
	struct timespec a, b;
	size_t p = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < reads; i++)
		p = *(size_t *)(buf + p);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%s MiB%s: %.1f ns per dependent read (%zu)\n", argv[1], argc > 2 ? " huge" : "", ns / reads, p & 1);
	return 0;
}

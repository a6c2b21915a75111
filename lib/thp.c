/* SPDX-License-Identifier: MIT */
/* thp: see thp.h. */
#include "lib/thp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

/* One mapping of smaps being read: its range, whether anonymous, its Rss. */
struct map {
	uintptr_t lo, hi;
	int anon, seen_rss;
	uint64_t rss;
};

static void apply(const struct map *m, size_t min_bytes, struct thp_result *r)
{
	uint64_t len = m->hi - m->lo;

	if (!m->anon || !m->seen_rss || len < min_bytes || m->rss * 10 < len * 9)
		return;
	if (madvise((void *)m->lo, len, MADV_HUGEPAGE) != 0)
		return;
	r->advised_bytes += len;
	if (madvise((void *)m->lo, len, MADV_COLLAPSE) == 0)
		r->collapsed_bytes += len;
}

/* AnonHugePages of the whole process, in bytes (0 when unknown). */
static uint64_t huge_now(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	unsigned long long kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

int thp_advise(size_t min_bytes, struct thp_result *r)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	struct map m = {0};
	int have = 0;

	memset(r, 0, sizeof *r);
	if (f == NULL)
		return -1;
	/* advising while reading is safe: madvise splits no mapping of these flags (the
	 * reader's next line may then describe a range it has seen: harmless) */
	while (fgets(line, sizeof line, f) != NULL) {
		uintptr_t lo, hi;
		char perms[8], path[256] = "";
		unsigned long long off, inode, kb;
		char dev[16];
		int n = sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %15s %llu %255s", &lo, &hi,
		               perms, &off, dev, &inode, path);

		if (n >= 6 && strchr(line, '-') != NULL && line[0] != ' ' &&
		    strncmp(line, "Rss:", 4) != 0) {
			if (have)
				apply(&m, min_bytes, r);
			m = (struct map){.lo = lo, .hi = hi};
			/* private, writable, not a file: malloc's mmap'd chunks, its arenas, the heap */
			m.anon = perms[1] == 'w' && perms[3] == 'p' && inode == 0 &&
			         (n == 6 || strcmp(path, "[heap]") == 0);
			have = 1;
		} else if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
			m.rss = (uint64_t)kb * 1024;
			m.seen_rss = 1;
		}
	}
	if (have)
		apply(&m, min_bytes, r);
	fclose(f);
	r->huge_bytes = huge_now();
	return 0;
}

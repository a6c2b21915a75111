/* SPDX-License-Identifier: MIT */
/* Tests of lib/thp.c: a large, written anonymous mapping is advised (and, where the kernel
 * has MADV_COLLAPSE and THP, moved onto huge pages at once); a large reservation that is
 * barely touched, and a small written one, are left alone. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/thp.h"
#include "tests/harness.h"

#define MIB (1024u * 1024u)

static void test_written_mapping(void)
{
	size_t big = 64 * MIB, small = 4 * MIB, sparse = 1024 * MIB;
	char *b = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *s = mmap(NULL, small, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *r = mmap(NULL, sparse, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	               -1, 0);
	struct thp_result t, t0;

	CHECK(b != MAP_FAILED && s != MAP_FAILED && r != MAP_FAILED);
	CHECK_INT(thp_advise(32 * MIB, &t0), 0);
	memset(b, 7, big);
	memset(s, 7, small);
	r[0] = r[sparse - 1] = 1; /* two pages of a gigabyte */
	CHECK_INT(thp_advise(32 * MIB, &t), 0);
	/* the big one, and nothing else of its size class that appeared: not the sparse one */
	CHECK(t.advised_bytes >= t0.advised_bytes + big);
	CHECK(t.advised_bytes < t0.advised_bytes + big + sparse);
	if (t.collapsed_bytes >= big) /* a kernel with MADV_COLLAPSE and THP not "never" */
		CHECK(t.huge_bytes >= 32 * MIB);
	for (size_t i = 0; i < big; i += 4096) /* the contents are the same */
		if (b[i] != 7) {
			CHECK(b[i] == 7);
			break;
		}
	munmap(b, big);
	munmap(s, small);
	munmap(r, sparse);
}

int main(void)
{
	HARNESS_RUN(test_written_mapping);
	return harness_done();
}

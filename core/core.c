/* SPDX-License-Identifier: MIT */
/* core: the tunables every service's jobs read the same way. */
#include "core/core.h"

#include <unistd.h>

#include "store/store.h"

uint64_t core_chunk_rows(const struct core *c, uint64_t dflt)
{
	uint64_t n = c->job_chunk ? c->job_chunk : dflt;

	/* whole row-array blocks, so that a chunk never rewrites a block another chunk wrote */
	return (n + STORE_ARRAY_ROWS - 1) / STORE_ARRAY_ROWS * STORE_ARRAY_ROWS;
}

void core_throttle(const struct core *c)
{
	if (c->job_throttle_ms > 0)
		usleep(c->job_throttle_ms * 1000u);
}

/* SPDX-License-Identifier: MIT */
/* clock: CLOCK_MONOTONIC in seconds. */
#include "lib/clock.h"

#include <time.h>

double clock_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

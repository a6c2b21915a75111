/* SPDX-License-Identifier: MIT */
/* harness: counts tests, reports failures with file and line, prints the summary line. */
#include "tests/harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int passed, failed, failed_now;
static const char *current;

void harness_run(const char *name, void (*fn)(void))
{
	struct timespec t0, t1;

	current = name;
	failed_now = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fn();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (failed_now) {
		failed++;
		printf("FAIL %s\n", name);
	} else {
		passed++;
		printf("ok   %s (%.0f ms)\n", name,
		       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	}
	fflush(stdout);
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	failed_now = 1;
	printf("  %s:%d: %s: check failed: ", file, line, current ? current : "?");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int harness_failed_now(void)
{
	return failed_now;
}

int harness_done(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/* test_par: par_run runs its function once on every part (none for n = 0), on more than one
 * thread, with part 0 on the caller's; also past the handles kept on the stack. */
#include "lib/par.h"
#include "tests/harness.h"

#include <pthread.h>
#include <stdint.h>

struct part {
	unsigned index, runs;
	pthread_t who;
	uint64_t sum; /* some work, so that the threads overlap */
};

static void *run(void *arg)
{
	struct part *p = arg;

	p->runs++;
	p->who = pthread_self();
	for (uint64_t i = 0; i < 2000000; i++)
		p->sum += i ^ p->index;
	return NULL;
}

static void check_parts(unsigned n)
{
	struct part parts[40] = {{0}};
	unsigned others = 0;

	for (unsigned i = 0; i < n; i++)
		parts[i].index = i;
	par_run(run, parts, sizeof parts[0], n);
	for (unsigned i = 0; i < 40; i++)
		CHECK_INT(parts[i].runs, i < n ? 1 : 0);
	if (n == 0)
		return;
	CHECK(pthread_equal(parts[0].who, pthread_self()));
	for (unsigned i = 1; i < n; i++)
		others += !pthread_equal(parts[i].who, pthread_self());
	CHECK_INT(others, n - 1); /* every other part had a thread of its own */
}

static void test_parts(void)
{
	check_parts(0);
	check_parts(1);
	check_parts(2);
	check_parts(7);
	check_parts(40); /* past the 32 handles on the stack */
}

int main(void)
{
	HARNESS_RUN(test_parts);
	return harness_done();
}

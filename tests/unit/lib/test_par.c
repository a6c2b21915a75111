/* SPDX-License-Identifier: MIT */
/* test_par: par_run runs its function once on every part (none for n = 0), on more than one
 * thread, with part 0 on the caller's; also past the handles kept on the stack. par_team runs
 * every part once on at most its `threads` threads (one: the caller's alone), also from a
 * thread of par_run's and for more parts than threads. */
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

/* par_team over n parts on at most threads threads: every part once, and no more distinct
 * threads than asked for (1: the caller's alone) */
static void check_team(unsigned n, unsigned threads)
{
	struct part parts[40] = {{0}};
	pthread_t seen[40];
	unsigned distinct = 0;

	for (unsigned i = 0; i < n; i++)
		parts[i].index = i;
	par_team(run, parts, sizeof parts[0], n, threads);
	for (unsigned i = 0; i < 40; i++)
		CHECK_INT(parts[i].runs, i < n ? 1 : 0);
	for (unsigned i = 0; i < n; i++) {
		unsigned j = 0;

		while (j < distinct && !pthread_equal(seen[j], parts[i].who))
			j++;
		if (j == distinct)
			seen[distinct++] = parts[i].who;
	}
	CHECK(distinct <= (threads > 0 ? threads : 1));
	if (threads <= 1 && n > 0)
		CHECK(pthread_equal(seen[0], pthread_self()));
}

static void test_team(void)
{
	check_team(0, 2);
	check_team(1, 2);
	check_team(7, 1);
	check_team(7, 2);
	check_team(40, 2);
	check_team(40, 4);
	check_team(3, 8); /* fewer parts than threads */
}

struct nested {
	unsigned ok;
};

static void *team_inside(void *arg)
{
	struct nested *p = arg;
	struct part parts[16] = {{0}};
	unsigned runs = 0;

	par_team(run, parts, sizeof parts[0], 16, 2);
	for (unsigned i = 0; i < 16; i++)
		runs += parts[i].runs;
	p->ok = runs == 16;
	return NULL;
}

/* par_team from par_run's threads (a batch on a pool thread, several at once) */
static void test_team_in_threads(void)
{
	struct nested ns[3] = {{0}};

	par_run(team_inside, ns, sizeof ns[0], 3);
	for (unsigned i = 0; i < 3; i++)
		CHECK_INT(ns[i].ok, 1);
}

int main(void)
{
	HARNESS_RUN(test_parts);
	HARNESS_RUN(test_team);
	HARNESS_RUN(test_team_in_threads);
	return harness_done();
}

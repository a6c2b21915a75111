/* SPDX-License-Identifier: MIT */
/* par: see par.h. */
#include "lib/par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

enum { PAR_STACK = 32 }; /* parts whose thread handles fit on the stack */

unsigned par_cpus(void)
{
	static atomic_uint cpus; /* 0: not read yet (two first callers may both read it) */
	unsigned n = atomic_load_explicit(&cpus, memory_order_relaxed);

	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c < 1 ? 1 : c > 1024 ? 1024 : (unsigned)c;
		atomic_store_explicit(&cpus, n, memory_order_relaxed);
	}
	return n;
}

void par_run(void *(*fn)(void *), void *parts, size_t size, unsigned n)
{
	pthread_t stack_th[PAR_STACK], *th = n <= PAR_STACK ? stack_th : malloc(n * sizeof *th);
	char stack_up[PAR_STACK], *up = n <= PAR_STACK ? stack_up : calloc(n, 1);
	char *p = parts;

	if (th == NULL || up == NULL) { /* no memory for the handles: one part after another */
		for (unsigned i = 0; i < n; i++)
			fn(p + i * size);
	} else {
		for (unsigned i = 1; i < n; i++)
			up[i] = pthread_create(&th[i], NULL, fn, p + i * size) == 0;
		if (n > 0)
			fn(p);
		for (unsigned i = 1; i < n; i++) {
			if (up[i])
				pthread_join(th[i], NULL);
			else
				fn(p + i * size); /* no thread to be had: do it here */
		}
	}
	if (th != stack_th)
		free(th);
	if (up != stack_up)
		free(up);
}

void par_team(void *(*fn)(void *), void *parts, size_t size, unsigned n, unsigned threads)
{
	char *p = parts;

	if (threads > n)
		threads = n;
#ifdef _OPENMP
	if (threads > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
		for (unsigned i = 0; i < n; i++)
			fn(p + i * size);
		return;
	}
#endif
	for (unsigned i = 0; i < n; i++)
		fn(p + i * size);
}

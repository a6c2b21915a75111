/* SPDX-License-Identifier: MIT */
/* par: see par.h. */
#include "lib/par.h"

#include <pthread.h>
#include <stdlib.h>

enum { PAR_STACK = 32 }; /* parts whose thread handles fit on the stack */

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

/* SPDX-License-Identifier: MIT */
/* par: one function over the parts of a split piece of work, on threads. The calling
 * thread runs part 0 and every other part gets a thread of its own; a part whose thread
 * cannot be started runs on the calling thread once the others are under way, so the work
 * is always done. Used by the scoring passes (curate/instance.c) and the full scans of
 * search (index/faiss.c, search/catalog.c), with the CPU count they size themselves by;
 * par_team, on an OpenMP team instead, by the per-query work of a search batch. */
#ifndef WINNOW_PAR_H
#define WINNOW_PAR_H

#include <stddef.h>

/* The CPUs online (at least 1, at most 1024), read once: sysconf() reads a /sys file at
 * every call (20 us, measured per search on a 2-core machine). Thread-safe. */
unsigned par_cpus(void);

/* fn(parts + i * size) for i in [0, n), returning when all have. Thread-safe. */
void par_run(void *(*fn)(void *), void *parts, size_t size, unsigned n);

/* The same, on the calling thread's OpenMP team of at most `threads` (the one FAISS's search
 * has just used: its threads are started already), each member taking the next part when it
 * is free. For many small parts right after a FAISS search: a thread created per call cost
 * a clone and a wake-up on the other core, and a fixed split waited for the slower half
 * (issue 20). Without OpenMP (the clang fuzz build) the parts run one after another here.
 * Thread-safe; a part run inside another team's region runs on that member alone. */
void par_team(void *(*fn)(void *), void *parts, size_t size, unsigned n, unsigned threads);

#endif

/* SPDX-License-Identifier: MIT */
/* thp: transparent huge pages for the process's large, populated anonymous memory.
 *
 * An HNSW search reads vectors at random across the whole index: with 4 KiB pages nearly
 * every vector it scores is a TLB miss. Linux backs memory with 2 MiB pages when asked
 * (madvise MADV_HUGEPAGE; the usual system setting, "madvise", does so only when asked),
 * and MADV_COLLAPSE (Linux 6.1) moves memory already written onto them at once. The index
 * memory belongs to FAISS, so this finds it as the mappings of /proc/self/smaps that are
 * anonymous, at least min_bytes long and nearly all resident (which leaves out reserved,
 * sparse ranges such as a sanitizer's shadow memory). Safe to call at any time, from any
 * thread; a kernel without the calls changes nothing. */
#ifndef WINNOW_THP_H
#define WINNOW_THP_H

#include <stddef.h>
#include <stdint.h>

struct thp_result {
	uint64_t advised_bytes;   /* in mappings given MADV_HUGEPAGE */
	uint64_t collapsed_bytes; /* of those, collapsed onto huge pages by MADV_COLLAPSE */
	uint64_t huge_bytes;      /* the process's AnonHugePages after (smaps_rollup) */
};

/* Advise (and collapse) every anonymous mapping of at least min_bytes whose resident share is
 * at least 90%. 0, or -1 when /proc/self/smaps cannot be read (r zeroed). */
int thp_advise(size_t min_bytes, struct thp_result *r);

#endif

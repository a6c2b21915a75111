/* SPDX-License-Identifier: MIT */
/* fuzz_util: what the libFuzzer drivers share: the input as a NUL-terminated string, and as
 * a file (for the parsers that read one: the config and keys files). Header-only (each
 * driver is its own program); built by `make fuzz` with clang. */
#ifndef WINNOW_FUZZ_UTIL_H
#define WINNOW_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A new NUL-terminated copy of the input (free it), or NULL. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s != NULL) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

/* The input written to a private temporary file; its path in path (size >= 64). 0 or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path)
{
	static char dir[64];
	FILE *f;

	if (dir[0] == '\0')
		snprintf(dir, sizeof dir, "/tmp/winnow-fuzz-%d", (int)getpid());
	snprintf(path, 64, "%s.in", dir);
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	if (size > 0 && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

#endif

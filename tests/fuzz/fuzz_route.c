/* SPDX-License-Identifier: MIT */
/* fuzz_route: libFuzzer driver for URL routing: the first byte picks a method, the rest is a
 * decoded path through routes_match; a match's captured segments must lie inside the path,
 * and a path that matches must match again the same way. */
#include "api/routes.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"};
	struct route_match m, again;
	char *path;
	size_t n;

	if (size < 1 || (path = fuzz_str(data + 1, size - 1)) == NULL)
		return 0;
	n = strlen(path);
	if (routes_match(methods[data[0] % 6], path, &m) == 0) {
		for (size_t i = 0; i < m.nparams; i++)
			if (m.param_off[i] > n || m.param_len[i] > n - m.param_off[i])
				abort();
		if (routes_match(methods[data[0] % 6], path, &again) != 0 || again.route != m.route)
			abort();
	}
	free(path);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* fuzz_keys: libFuzzer driver for the API keys file (daemon/auth.c, `--api-keys FILE`):
 * any bytes as a file through auth_load; a loaded file answers a key check. */
#include "daemon/auth.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct auth *a = NULL;
	struct err e = {0};

	if (fuzz_file(data, size, path) != 0)
		return 0;
	if (auth_load(&a, path, &e) == 0) {
		(void)auth_count(a);
		auth_free(a);
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* fuzz_config: libFuzzer driver for the config file (daemon/config.c, `--config FILE`):
 * any bytes as a file, parsed with config_load; a file it accepts is printed (-n) and read
 * back, which must give the same settings. */
#include "daemon/config.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	char *argv[] = {"winnowd", "--config", path, NULL};
	struct config c;
	struct err e = {0};

	if (fuzz_file(data, size, path) != 0)
		return 0;
	memset(&c, 0, sizeof c);
	unsetenv("WINNOW_CONFIG");
	if (config_load(&c, 3, argv, &e) == 0) {
		FILE *f = fopen(path, "w");
		struct config back;

		if (f != NULL) {
			config_print(&c, f);
			fclose(f);
			memset(&back, 0, sizeof back);
			memset(&e, 0, sizeof e);
			if (config_load(&back, 3, argv, &e) != 0 || back.listen_port != c.listen_port ||
			    back.map_size != c.map_size || back.threads != c.threads ||
			    strcmp(back.data_dir, c.data_dir) != 0)
				abort(); /* what -n prints must read back as the same settings */
			config_free(&back);
		}
	}
	config_free(&c);
	return 0;
}

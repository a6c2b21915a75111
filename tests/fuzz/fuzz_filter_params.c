/* SPDX-License-Identifier: MIT */
/* fuzz_filter_params: libFuzzer driver for filter definitions: the first byte picks a type
 * from the registry, the rest is its params as JSON (as PUT .../filters/{name} passes them)
 * through filter_create against a fixed image-text schema. Every outcome must be a clean
 * error or an instance that frees. */
#include <jansson.h>

#include "filters/filter.h"
#include "filters/registry.h"
#include "lib/err.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct store_schema schema = {
		.nspaces = 2,
		.spaces = {{"image", 4, STORE_F16}, {"text", 4, STORE_F32}},
		.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT,
	};
	const struct filter_ops *const *table;
	struct filter *f = NULL;
	struct err e = {0};
	json_error_t jerr;
	json_t *params;
	size_t n;

	if (size < 1)
		return 0;
	table = registry_table(&n);
	params = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
	if (params == NULL)
		return 0;
	if (filter_create(&f, table[data[0] % n], params, &schema, &e) == 0)
		filter_free(f);
	json_decref(params);
	return 0;
}

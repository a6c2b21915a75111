/* SPDX-License-Identifier: MIT */
/* fuzz_signals: libFuzzer driver for signals patches (api/signals.c): the first byte picks
 * the bulk form (with "id") or one record's PATCH, the rest is the JSON; an accepted patch is
 * merged (RFC 7396) into a stored record's body, which must stay an object with no null
 * left where the patch removed a key. */
#include <jansson.h>

#include "api/signals.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = {0};
	const char *id = NULL;
	json_t *patch, *body;

	if (size < 1 || size > 16384)
		return 0;
	patch = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
	if (patch == NULL)
		return 0;
	if (signals_check(patch, data[0] & 1, &id, &e) == 0) {
		body = json_pack("{s:s, s:{s:f, s:{s:f}}}", "text", "a", "signals", "loss", 1.5, "color",
		                 "prior_nll", 2.0);
		if (body == NULL || signals_merge(json_object_get(body, "signals"),
		                                  json_object_get(patch, "signals")) != 0 ||
		    !json_is_object(json_object_get(body, "signals")))
			abort();
		json_decref(body);
	}
	json_decref(patch);
	return 0;
}

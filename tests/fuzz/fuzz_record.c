/* SPDX-License-Identifier: MIT */
/* fuzz_record: libFuzzer driver for the untrusted-bytes path of ingest: one NDJSON line
 * through jansson and codec_parse_record against a fixed two-space schema, and the bytes
 * through b64_decode. Built and run by `make fuzz` (clang). Crashing inputs become
 * regression cases in tests/fuzz/corpus/record. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "api/b64.h"
#include "api/codec.h"
#include "daemon/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct store_schema schema = {
		.nspaces = 2,
		.spaces = {{"image", 4, STORE_F16}, {"text", 3, STORE_F32}},
		.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT,
	};
	struct codec_record rec;
	struct err e = {0};
	json_error_t jerr;
	json_t *obj;
	uint8_t *out;
	size_t n = 0;

	obj = json_loadb((const char *)data, size, 0, &jerr);
	if (obj != NULL) {
		if (codec_parse_record(obj, &schema, &rec, NULL, &e) == 0)
			codec_record_free(&rec);
		json_decref(obj);
	}
	out = malloc(b64_decoded_max(size) + 1);
	if (out != NULL) {
		(void)b64_decode((const char *)data, size, out, &n);
		free(out);
	}
	return 0;
}

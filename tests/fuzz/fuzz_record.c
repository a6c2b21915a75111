/* SPDX-License-Identifier: MIT */
/* fuzz_record: libFuzzer driver for the untrusted-bytes path of ingest: one NDJSON line
 * through the fast path (codec_parse_line) and through jansson + codec_parse_record
 * against a fixed two-space schema, aborting when the two disagree on a line the fast path
 * takes; and the bytes through b64_decode. Built and run by `make fuzz` (clang). Crashing inputs become
 * regression cases in tests/fuzz/corpus/record. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "api/codec.h"
#include "lib/err.h"

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

	struct codec_record fast;
	struct err ef = {0};
	json_t *fobj = NULL;
	const char *id = NULL;
	int rf, rs = 1;

	rf = codec_parse_line((const char *)data, size, &schema, &fast, &fobj, &id, &ef);
	if (rf == 0)
		codec_record_free(&fast);
	json_decref(fobj);
	obj = json_loadb((const char *)data, size, 0, &jerr);
	if (obj != NULL) {
		rs = codec_parse_record(obj, &schema, &rec, NULL, &e);
		if (rs == 0)
			codec_record_free(&rec);
		json_decref(obj);
	}
	if (rf != 1 && (rf != rs || strcmp(ef.slug, e.slug) != 0))
		abort(); /* the fast path must agree with the jansson path */
	out = malloc(b64_decoded_max(size) + 1);
	if (out != NULL) {
		(void)b64_decode((const char *)data, size, out, &n);
		free(out);
	}
	return 0;
}

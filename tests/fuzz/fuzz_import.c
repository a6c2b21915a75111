/* SPDX-License-Identifier: MIT */
/* fuzz_import: libFuzzer driver for the bulk import's parsers (api/import.c): the input's
 * first line is a Content-Type, the rest a multipart/form-data body; every part found must lie
 * inside the body, and each part (and the whole input) goes through the .npy parser, whose
 * answer must describe exactly the bytes after its header. */
#include "api/import.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_npy(const uint8_t *p, size_t len)
{
	struct import_npy npy;
	struct err e = {0};

	if (import_npy_parse(p, len, &npy, &e) != 0) {
		if (e.code != ERR_INVALID || e.detail[0] == '\0')
			abort();
		return;
	}
	if (npy.elt != 2 && npy.elt != 4)
		abort();
	if ((const uint8_t *)npy.data < p + 10 || (const uint8_t *)npy.data > p + len)
		abort();
	if ((size_t)(p + len - (const uint8_t *)npy.data) != npy.rows * npy.cols * npy.elt)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct import_part parts[IMPORT_MAX_PARTS];
	const uint8_t *nl = memchr(data, '\n', size);
	struct err e = {0};
	char *ctype, *body;
	size_t clen, blen, n = 0;
	int rc;

	check_npy(data, size);
	if (nl == NULL)
		return 0;
	clen = (size_t)(nl - data);
	blen = size - clen - 1;
	ctype = fuzz_str(data, clen);
	body = malloc(blen ? blen : 1); /* exactly blen bytes: ASan sees any read past it */
	if (ctype == NULL || body == NULL) {
		free(ctype);
		free(body);
		return 0;
	}
	memcpy(body, nl + 1, blen);
	rc = import_multipart_parse(ctype, body, blen, parts, IMPORT_MAX_PARTS, &n, &e);
	if (rc != 0 && (e.detail[0] == '\0' || (rc != ERR_MEDIA_TYPE && rc != ERR_MALFORMED &&
	                                        rc != ERR_INVALID)))
		abort();
	if (n > IMPORT_MAX_PARTS)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (parts[i].name_len == 0 || parts[i].data < body ||
		    parts[i].data + parts[i].len > body + blen || parts[i].name < body ||
		    parts[i].name + parts[i].name_len > body + blen)
			abort();
		check_npy((const uint8_t *)parts[i].data, parts[i].len);
	}
	free(ctype);
	free(body);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* import: POST /v1/datasets/{name}/records:import, the bulk import of the files curation
 * pipelines already have: one NDJSON metadata part (line i = record i, as in ingest but
 * without "embeddings" for the spaces given as arrays) and one `.npy` part per space (row i =
 * record i, `<f2` or `<f4`, C order), sent as multipart/form-data. The vectors are taken from
 * the buffered body as they are (converted only when the array's dtype is not the space's), so
 * no base64 or JSON numbers are parsed for them.
 *
 * The two parsers are exported for the fuzz driver (tests/fuzz/fuzz_import.c); they are pure
 * functions over caller buffers and thread-safe. */
#ifndef WINNOW_IMPORT_H
#define WINNOW_IMPORT_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct http_req;
struct http_res;

/* At most this many parts in one request (metadata plus one per space, with room to name
 * an unexpected one in the error). */
#define IMPORT_MAX_PARTS 16

/* One part of a multipart body: every pointer borrows from the body. */
struct import_part {
	const char *name; /* the Content-Disposition name, not NUL-terminated */
	size_t name_len;
	const char *data; /* the part's content */
	size_t len;
};

/* Split body (len bytes, borrowed) of a multipart/form-data request whose Content-Type
 * header is ctype (borrowed, with its boundary parameter) into parts (borrowed, room for max
 * entries); *n gets their count. Every part needs a Content-Disposition with a name.
 * Returns 0; ERR_MEDIA_TYPE (unsupported_media_type) when ctype is not multipart/form-data
 * or has no usable boundary; ERR_MALFORMED (malformed_multipart) with a detail for a body
 * that does not parse, ERR_INVALID (too_many_parts) past max parts. */
int import_multipart_parse(const char *ctype, const char *body, size_t len,
                           struct import_part *parts, size_t max, size_t *n, struct err *e);

/* A parsed `.npy` array of shape (rows, cols), dtype <f2 (elt 2) or <f4 (elt 4), C order. */
struct import_npy {
	uint64_t rows, cols;
	unsigned elt;     /* 2: float16, 4: float32 */
	const void *data; /* rows * cols * elt bytes, borrowed from the input, maybe unaligned */
};

/* Parse an `.npy` file held in buf (len bytes, borrowed): magic, version 1.0, 2.0 or 3.0, the
 * header dict's 'descr' ('<f2' or '<f4'), 'fortran_order' (False) and 'shape' (two
 * dimensions), then exactly rows * cols * elt data bytes. Returns 0 with *out filled, or
 * ERR_INVALID (slug invalid_npy) with a detail saying what is wrong. */
int import_npy_parse(const void *buf, size_t len, struct import_npy *out, struct err *e);

/* POST /v1/datasets/{name}/records:import (scope admin). Answers like ingest: 200
 * {"accepted", "rejected", "errors"} (errors carry the 1-based metadata line), 422
 * no_records_accepted when every record is rejected, and a problem naming the part for a
 * request that is wrong as a whole (a bad array, a row count mismatch, an unknown part). */
int import_post(struct http_req *r, struct http_res *res);

#endif

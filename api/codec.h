/* SPDX-License-Identifier: MIT */
/* codec: the JSON wire format of datasets and records, to and from the store's structs.
 *
 * Parsing validates everything the API promises to reject (see docs/api.md): ids,
 * kinds, field types, spaces, dimensions, non-finite values, base64 and its length.
 * Vectors are converted to the space's storage dtype here, so the store only copies.
 * Stateless and thread-safe. */
#ifndef WINNOW_CODEC_H
#define WINNOW_CODEC_H

#include <stddef.h>

#include "store/store.h"

struct err;
typedef struct json_t json_t;

/* A parsed record: rec's pointers point into mem, one allocation owned by this struct. */
struct codec_record {
	struct store_record rec;
	void *mem;
};

/* Parse a dataset definition {"spaces": {...}, "kinds": [...]}. obj is borrowed.
 * ERR_INVALID with a slug and a detail naming the field on any problem. */
int codec_parse_schema(const json_t *obj, struct store_schema *out, struct err *e);

/* The dataset object of the API: name, spaces, kinds, counts, created_at. New reference. */
json_t *codec_dataset_json(const struct store_dataset_info *ds);

/* A record's "signals" (borrowed): an object whose values are numbers or objects of numbers.
 * 0, or ERR_INVALID (slug invalid_field) with a detail naming the bad key. */
int codec_check_signals(const json_t *sig, struct err *e);

/* Parse one record object against schema. obj is borrowed. On success out->mem is new
 * (codec_record_free). On failure ERR_INVALID with the rejection's slug (missing_id,
 * invalid_id, invalid_kind, invalid_field, unknown_space, dimension_mismatch, non_finite,
 * invalid_embedding) and a detail; *id_out (may be NULL) is set to the record's id
 * string when it has a usable one (borrowed from obj), else NULL. */
int codec_parse_record(const json_t *obj, const struct store_schema *schema,
                       struct codec_record *out, const char **id_out, struct err *e);

/* The ingest fast path for one NDJSON line: the same result as json_loadb() followed by
 * codec_parse_record(), much faster when the "embeddings" value has the common shape.
 * Returns 1 when it does not handle the line (then use that slow path: it reports any
 * error exactly); otherwise codec_parse_record's result, with *obj_out the parsed rest
 * of the line (new reference, decref it after using *id_out, which it holds). */
int codec_parse_line(const char *line, size_t len, const struct store_schema *schema,
                     struct codec_record *out, json_t **obj_out, const char **id_out,
                     struct err *e);

void codec_record_free(struct codec_record *r);

/* The record as the API returns it: the stored body's fields plus id, kind, row and,
 * when with_vectors, "embeddings" with every stored vector as numbers. New reference, or
 * NULL when the stored body does not parse (ERR_INTERNAL in e). */
json_t *codec_record_json(const struct store_schema *schema, const char *id, size_t id_len,
                          const struct store_record_out *r, int with_vectors, struct err *e);

/* "image-text" / "text" for a kind bit, NULL for anything else. */
const char *codec_kind_name(unsigned kind);

#endif

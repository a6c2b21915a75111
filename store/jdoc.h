/* SPDX-License-Identifier: MIT */
/* jdoc: JSON documents in the store's document table (filter instances, subsets, jobs):
 * parse on read, compact serialisation on write, and RFC 3339 times for their views.
 * Stateless and thread-safe; every function works inside the caller's transaction or
 * reader and follows its rules (store/store.h). */
#ifndef WINNOW_JDOC_H
#define WINNOW_JDOC_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct store;
struct store_reader;
struct store_txn;
typedef struct json_t json_t;

/* Document (ds, ns, key) as JSON: *out new (json_decref). ERR_NOT_FOUND when absent (e left
 * for the caller to name what is missing); ERR_INTERNAL when it is not a JSON object. */
int jdoc_txn_get(struct store_txn *t, uint32_t ds, char ns, const char *key, json_t **out,
                 struct err *e);
int jdoc_reader_get(struct store_reader *r, uint32_t ds, char ns, const char *key,
                    json_t **out, struct err *e);

/* The same with a binary key of key_len bytes (job ids). */
int jdoc_txn_getb(struct store_txn *t, uint32_t ds, char ns, const char *key, size_t key_len,
                  json_t **out, struct err *e);
int jdoc_reader_getb(struct store_reader *r, uint32_t ds, char ns, const char *key,
                     size_t key_len, json_t **out, struct err *e);

/* Write doc (borrowed) as compact JSON under (ds, ns, key[, key_len]). */
int jdoc_txn_put(struct store_txn *t, uint32_t ds, char ns, const char *key, const json_t *doc,
                 struct err *e);
int jdoc_txn_putb(struct store_txn *t, uint32_t ds, char ns, const char *key, size_t key_len,
                  const json_t *doc, struct err *e);

/* Every document of (ds, ns) that parses, in key order, as a new JSON array in *out. */
int jdoc_reader_list(struct store_reader *r, uint32_t ds, char ns, json_t **out,
                     struct err *e);

/* The listing of a dataset's resources: every document of namespace ns of the dataset named
 * dataset (one read snapshot), each turned by view(ctx, dataset id, doc) into a new reference
 * (NULL: left out), as a new JSON array in *out. ERR_NOT_FOUND (named) for no such dataset. */
int jdoc_list_views(struct store *s, const char *dataset, char ns,
                    json_t *(*view)(void *ctx, uint32_t ds, const json_t *doc), void *ctx,
                    json_t **out, struct err *e);

/* unix seconds as an RFC 3339 UTC string ("2026-11-29T01:02:03Z"); a non-integer v gives
 * null. New reference. */
json_t *jdoc_time(const json_t *v);

#endif

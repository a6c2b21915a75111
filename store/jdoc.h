/* SPDX-License-Identifier: MIT */
/* jdoc: JSON documents in the store's document table (filter instances, subsets, indexes,
 * normalisers, adapters, jobs): parse on read, compact serialisation on write, the named
 * documents' get / list / version / delete, and RFC 3339 times for their views.
 * Stateless and thread-safe; every function works inside the caller's transaction or
 * reader and follows its rules (store/store.h). */
#ifndef WINNOW_JDOC_H
#define WINNOW_JDOC_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct store;
struct store_dataset_info;
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

/* Delete document (ds, ns, key) if there is one: 0 also when it is absent. */
int jdoc_txn_drop(struct store_txn *t, uint32_t ds, char ns, const char *key, struct err *e);

/* ---- Named documents ---------------------------------------------------------------
 * Filter instances, subsets, index definitions, hubness normalisers and Cosine Adapters are
 * each one JSON object per name in a namespace of their dataset (key: the name). These are
 * their get, list, version and delete, so that a missing one is named the same way everywhere
 * and a delete removes the service's derived data in the same transaction as the document. */
struct jdoc_kind {
	char ns;          /* enum store_ns */
	const char *code; /* the problem code of a missing one, e.g. "filter_not_found" */
	const char *what; /* its detail reads "no <what> '<name>'", e.g. "filter" */
};

/* Turns a stored document of dataset ds into its API view: a new reference, or NULL when out of
 * memory (a listing leaves it out). doc is borrowed for the call. */
typedef json_t *(*jdoc_view_fn)(void *ctx, uint32_t ds, const json_t *doc);

/* Document name of kind k in dataset ds, in t or r: *out new (json_decref). ERR_NOT_FOUND with
 * k's code and detail when there is none; ERR_INTERNAL when it is not a JSON object. */
int jdoc_named_txn_get(struct store_txn *t, const struct jdoc_kind *k, uint32_t ds,
                       const char *name, json_t **out, struct err *e);
int jdoc_named_reader_get(struct store_reader *r, const struct jdoc_kind *k, uint32_t ds,
                          const char *name, json_t **out, struct err *e);

/* The same by dataset name, in a reader of its own: ERR_NOT_FOUND (dataset_not_found) for no
 * such dataset. info (may be NULL) gets the dataset's info; *out new. */
int jdoc_named_get(struct store *s, const struct jdoc_kind *k, const char *dataset,
                   const char *name, struct store_dataset_info *info, json_t **out, struct err *e);

/* GET of one resource: jdoc_named_get turned by view(ctx, dataset id, doc) into *out (new).
 * ERR_NOMEM when view gives NULL. */
int jdoc_named_view(struct store *s, const struct jdoc_kind *k, const char *dataset,
                    const char *name, jdoc_view_fn view, void *ctx, json_t **out, struct err *e);

/* The listing of a dataset's resources: every document of kind k of the dataset named dataset
 * (one read snapshot, in name order), each turned by view into a new reference (NULL: left
 * out), as a new JSON array in *out. ERR_NOT_FOUND (dataset_not_found) for no such dataset. */
int jdoc_named_list(struct store *s, const struct jdoc_kind *k, const char *dataset,
                    jdoc_view_fn view, void *ctx, json_t **out, struct err *e);

/* The document a PUT of name replaces, and the version the new one gets: *old new (or NULL
 * when there is none) and *version its "version" + 1 (1 when there is none). Returns 0 in
 * both cases; other failures as jdoc_named_txn_get. */
int jdoc_named_txn_previous(struct store_txn *t, const struct jdoc_kind *k, uint32_t ds,
                            const char *name, json_t **old, uint64_t *version, struct err *e);

/* Write doc (borrowed) as document name of kind k in dataset ds. */
int jdoc_named_txn_put(struct store_txn *t, const struct jdoc_kind *k, uint32_t ds,
                       const char *name, const json_t *doc, struct err *e);

/* The service's part of a delete: drop what it derived from doc (row arrays, blobs), inside
 * the delete's transaction t. Returns 0, or a code that aborts the delete. */
typedef int (*jdoc_cleanup_fn)(void *ctx, struct store_txn *t, uint32_t ds, const char *name,
                               const json_t *doc, struct err *e);

/* Delete document name of kind k in dataset ds (an id, so that a caller that looked the
 * dataset up for its own needs does not look twice), and run cleanup(ctx, ...) (may be NULL)
 * with the document before it goes, all in one committed transaction: either everything goes
 * or nothing. ERR_NOT_FOUND named as jdoc_named_txn_get; a cleanup failure is returned. */
int jdoc_named_delete(struct store *s, const struct jdoc_kind *k, uint32_t ds, const char *name,
                      jdoc_cleanup_fn cleanup, void *ctx, struct err *e);

/* unix seconds as an RFC 3339 UTC string ("2026-11-29T01:02:03Z"); a non-integer v gives
 * null. New reference. */
json_t *jdoc_time(const json_t *v);

#endif

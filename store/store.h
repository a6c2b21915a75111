/* SPDX-License-Identifier: MIT */
/* store: the LMDB layer. The only code in winnow that calls mdb_*.
 *
 * Owns one LMDB environment in the data directory and everything in it: datasets and
 * their schemas, records, per-space vector blocks, and the row numbering that later
 * layers (filter scores, indexes, subsets) key their arrays by.
 *
 * Data model (see docs/storage.md for the on-disk layout):
 *  - A dataset has a schema: up to STORE_MAX_SPACES named embedding spaces, each with a
 *    dimension and a storage dtype (f32 or f16), and the record kinds it accepts.
 *  - A record has the caller's id (1..STORE_ID_MAX bytes), a kind, a JSON body holding
 *    every non-vector field, and at most one vector per space.
 *  - Every record gets a dense row number (0, 1, 2, ...) in its dataset on first insert.
 *    An upsert of an existing id keeps its row. A deleted record's row is never given
 *    to another id (rows are only renumbered by a future compaction).
 *  - Vectors live apart from the records, in blocks of STORE_BLOCK_ROWS rows per space,
 *    so that a scan over one space reads only that space's bytes, sequentially.
 *
 * Durability: a function that returns 0 after writing has committed its LMDB
 * transaction (fsync'd, the environment is opened without MDB_NOSYNC).
 * The map grows on its own: MDB_MAP_FULL aborts, doubles the map, and retries.
 *
 * Threading: every function may be called from any thread concurrently. Writers are
 * serialised by LMDB; readers never block writers. Map resizes briefly exclude both
 * (a gate: a count of open transactions under a mutex, which a resize closes and waits
 * to drain; a rwlock cannot serve, since with MDB_NOTLS a reader may be closed by another
 * thread than the one that opened it). A resize that still waits after 10 s gives up with
 * ERR_UNAVAILABLE: a thread must not write while it holds a reader. */
#ifndef WINNOW_STORE_H
#define WINNOW_STORE_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct store;

#define STORE_MAX_SPACES 16
#define STORE_NAME_MAX 64  /* dataset and space names: [A-Za-z0-9._-]{1,64} */
#define STORE_ID_MAX 256   /* record ids: 1..256 bytes */
#define STORE_DIM_MAX 65536
#define STORE_BLOCK_ROWS 64 /* rows per vector block */
#define STORE_FORMAT_VERSION 2

enum store_dtype { STORE_F32 = 0, STORE_F16 = 1 };

enum store_kind {
	STORE_KIND_IMAGE_TEXT = 1u << 0,
	STORE_KIND_TEXT = 1u << 1,
};

struct store_config {
	const char *dir;      /* borrowed; created if missing */
	size_t map_size;      /* initial LMDB map size in bytes (grows on demand) */
	unsigned max_readers; /* 0 = default (126 + 8 * online CPUs) */
};

struct store_space {
	char name[STORE_NAME_MAX + 1];
	uint32_t dim;
	enum store_dtype dtype;
};

struct store_schema {
	unsigned nspaces;
	struct store_space spaces[STORE_MAX_SPACES];
	unsigned kinds; /* bitwise or of enum store_kind, non-zero */
};

struct store_dataset_info {
	char name[STORE_NAME_MAX + 1];
	uint32_t id;          /* internal id, never reused after a delete */
	struct store_schema schema;
	uint64_t records;     /* live records */
	uint64_t next_row;    /* rows handed out so far (live + deleted) */
	int64_t created_unix; /* seconds since the epoch */
};

/* One record to write. Every pointer is borrowed for the duration of the call. */
struct store_record {
	const char *id;
	size_t id_len;
	unsigned kind;    /* one enum store_kind bit */
	const char *body; /* JSON text of the non-vector fields, stored as given */
	size_t body_len;
	/* vec[i] is the vector for schema space i, already in that space's dtype
	 * (dim * 4 bytes for f32, dim * 2 for f16, little-endian), or NULL if absent. */
	const void *vec[STORE_MAX_SPACES];
};

/* A record read back. Every pointer is new, owned by the struct: store_record_out_free. */
struct store_record_out {
	uint64_t row;
	unsigned kind;
	char *body;
	size_t body_len;
	/* vec[i]: the stored bytes of schema space i (in its dtype) or NULL if the record
	 * has none there or vectors were not asked for. */
	void *vec[STORE_MAX_SPACES];
};

struct store_stats {
	uint64_t map_size;   /* current LMDB map size in bytes */
	uint64_t used_bytes; /* pages in use * page size */
	uint64_t page_size;
	unsigned datasets;
};

/* Open (creating if needed) the environment in cfg->dir. Checks the stored format
 * version: ERR_VERSION with a clear detail when the directory is from a newer winnow.
 * Migrates a format 1 directory (builds every dataset's live array; see docs/storage.md).
 * Finishes any dataset deletion that a crash interrupted. *out set only on success. */
int store_open(struct store **out, const struct store_config *cfg, struct err *e);

/* Close the environment. All readers must be closed. s may be NULL. */
void store_close(struct store *s);

/* True when name matches [A-Za-z0-9._-]{1,64}. */
int store_name_valid(const char *name);

/* Bytes of one vector of the space. */
size_t store_space_bytes(const struct store_space *sp);

/* Index of space name in schema, or -1. */
int store_schema_find(const struct store_schema *schema, const char *name);

/* Create dataset name with schema. Idempotent: the same schema again gives 0 with
 * *created = 0; a different schema gives ERR_CONFLICT. created may be NULL. */
int store_dataset_create(struct store *s, const char *name, const struct store_schema *schema,
                         int *created, struct err *e);

/* Fill *out with the dataset's schema and counts. ERR_NOT_FOUND if there is none. */
int store_dataset_get(struct store *s, const char *name, struct store_dataset_info *out,
                      struct err *e);

/* All datasets, sorted by name. *out is new (free()); *n its length. */
int store_dataset_list(struct store *s, struct store_dataset_info **out, size_t *n, struct err *e);

/* Delete the dataset and all its data. The name disappears (and can be re-created with
 * a new id) in the first commit; the data is then reclaimed in bounded transactions.
 * ERR_NOT_FOUND if there is none. */
int store_dataset_delete(struct store *s, const char *name, struct err *e);

/* Upsert n records into the dataset with internal id ds_id (from store_dataset_get;
 * ERR_NOT_FOUND if that dataset no longer exists, e.g. deleted and re-created since).
 * Records are validated by the caller against the schema; this only writes.
 * A record replaces any earlier one with the same id, all its vectors included
 * (spaces it leaves NULL become absent). Within one call, later duplicates win.
 * Commits in chunks of bounded size; on return 0 every record is committed. On
 * failure, a prefix of the records may have been committed (upserts are idempotent,
 * so a retry of the whole call is safe). rows_out (borrowed, n entries, may be NULL) gets
 * the row of each record on success (a duplicate within the call gets the same row). */
int store_put_records(struct store *s, uint32_t ds_id, const struct store_record *recs, size_t n,
                      uint64_t *rows_out, struct err *e);

/* Read the record id. with_vectors = 0 skips the vector reads. ERR_NOT_FOUND if absent. */
int store_get_record(struct store *s, uint32_t ds_id, const char *id, size_t id_len,
                     int with_vectors, struct store_record_out *out, struct err *e);

void store_record_out_free(struct store_record_out *r);

/* Delete the record id and its vectors: their present bits (store_reader_block) are cleared
 * in the transaction that clears its live flag, so a present bit always means a live row.
 * ERR_NOT_FOUND if absent. row_out (may be NULL) gets
 * the row it had, on success: what the layers keyed by row (scores, indexes) must forget. */
int store_delete_record(struct store *s, uint32_t ds_id, const char *id, size_t id_len,
                        uint64_t *row_out, struct err *e);

/* Environment statistics for /metrics. */
int store_stats(struct store *s, struct store_stats *out);

/* ---- Snapshot reads, for scans and exports ---------------------------------------
 * A reader is one LMDB read transaction: everything read through it is one consistent
 * snapshot, whatever commits meanwhile. Pointers it returns are borrowed and point into the
 * map, valid until the reader is closed; the one exception is store_reader_block (see there).
 * A reader belongs to one thread at a time. Keep readers short: a map resize waits for all
 * of them. */
struct store_reader;

int store_reader_open(struct store *s, struct store_reader **out, struct err *e);
void store_reader_close(struct store_reader *r);

/* Visit live rows of dataset ds_id in row order, starting at row first.
 * For each row: fn(ctx, row, kind, id, id_len, body, body_len); fn returns 0 to go on, 1 to
 * stop (store_reader_rows then returns 0), or a negative code that is returned. id and body
 * point into the map and stay valid until the reader is closed (not only until the next
 * call), so a caller may gather a batch of rows before using them. */
typedef int (*store_row_fn)(void *ctx, uint64_t row, unsigned kind, const char *id,
                            size_t id_len, const char *body, size_t body_len);
int store_reader_rows(struct store_reader *r, uint32_t ds_id, uint64_t first, store_row_fn fn,
                      void *ctx, struct err *e);

/* The vector block of space index space holding rows [block * STORE_BLOCK_ROWS, +64).
 * *data points at STORE_BLOCK_ROWS vectors in the space's dtype (absent rows zeroed);
 * *present has bit i set when row block*64+i has a vector. ERR_NOT_FOUND when the block
 * holds no vector at all. *data points into the map (valid until the reader is closed)
 * unless LMDB keeps the block unaligned for floats (small blocks inside a leaf page): then it
 * is an aligned copy in a scratch buffer of the reader, which the next store_reader_block
 * call on the same reader overwrites or frees. Use or copy *data before that call. */
int store_reader_block(struct store_reader *r, uint32_t ds_id, unsigned space, uint64_t block,
                       const void **data, uint64_t *present, struct err *e);


/* Dataset info (as store_dataset_get) by internal id, inside the reader's snapshot.
 * ERR_NOT_FOUND when no dataset has that id in this snapshot. */
int store_reader_dataset(struct store_reader *r, uint32_t ds_id, struct store_dataset_info *out,
                         struct err *e);

/* Dataset info by name, inside the reader's snapshot. ERR_NOT_FOUND (dataset_not_found). */
int store_reader_dataset_named(struct store_reader *r, const char *name,
                               struct store_dataset_info *out, struct err *e);

/* The row of record id, in the snapshot. ERR_NOT_FOUND if absent. */
int store_reader_find(struct store_reader *r, uint32_t ds_id, const char *id, size_t id_len,
                      uint64_t *row, struct err *e);

/* The record at row (live), in the snapshot: kind, id and body, valid until the reader is
 * closed. ERR_NOT_FOUND when the row is not live. Any output may be NULL. */
int store_reader_row(struct store_reader *r, uint32_t ds_id, uint64_t row, unsigned *kind,
                     const char **id, size_t *id_len, const char **body, size_t *body_len,
                     struct err *e);

/* ---- Row arrays and documents: the storage of filters, subsets and jobs --------------
 * A row array is a dense array of fixed-size elements indexed by row, owned by a dataset
 * and named by a u32 array id (filter scores, score status, subset membership, cluster ids).
 * It is kept in blocks of STORE_ARRAY_ROWS elements, so a scan of 10 million f32 scores
 * reads 40 MB in key order. Elements never written read as zero bytes. Every write of one
 * array uses the same element size (1..16 bytes); the store does not record it.
 *
 * Array id STORE_ARRAY_LIVE is maintained by the store itself: one u8 per row, 1 while the
 * row holds a live record, 0 after its delete (and for rows never written). Callers only
 * read it. Other ids come from store_txn_counter_next(t, "array", ...).
 *
 * A document is a byte string (JSON for definitions, binary for fitted state) keyed by
 * (dataset id, namespace byte, key bytes); dataset id 0 is global (jobs). enum store_ns
 * below lists every namespace (docs/storage.md has the same table).
 *
 * Deleting a dataset reclaims its arrays and documents with the rest of its data. */
#define STORE_ARRAY_ROWS 4096
#define STORE_ARRAY_LIVE 0u
#define STORE_DOC_KEY_MAX 256

/* Every document namespace: the byte after the dataset id in a document key. The store only
 * walks and reclaims them; the owner named here is the one module that reads or writes it.
 * A new namespace gets a byte no other uses, a line here and one in docs/storage.md. */
enum store_ns {
	/* global (dataset 0): jobs, JSON; key: the job id, u64 big-endian (8 bytes); core/jobs.c */
	STORE_NS_JOB = 'j',
	/* filter instances, JSON (type, params, version, array ids); key: the name;
	 * curate/instance.c */
	STORE_NS_FILTER = 'f',
	/* a filter instance's fitted state, binary (the filter's own blob); key: the instance's
	 * name; curate/instance.c */
	STORE_NS_FITTED = 'b',
	/* subsets, JSON (steps, provenance, fate array id); key: the name; curate/subset.c */
	STORE_NS_SUBSET = 's',
	/* index definitions, JSON (factory, metric, version); key: the space name;
	 * search/catalog.c */
	STORE_NS_INDEX = 'x',
	/* hubness normalisers, JSON (space, betas, k, banks, version, array id); key: the name;
	 * search/normalizers.c */
	STORE_NS_NORMALIZER = 'h',
	/* a normaliser's banks, binary ("HUB1" vectors and gallery rows); key: its name;
	 * search/normalizers.c */
	STORE_NS_NORMALIZER_BANKS = 'H',
	/* a normaliser's top-k of every bank item over the gallery, binary; key: its name;
	 * search/normalizers.c */
	STORE_NS_NORMALIZER_TOPK = 'T',
	/* Cosine Adapters, JSON (definition, version, pair counts, training); key: the name;
	 * search/adapters.c */
	STORE_NS_ADAPTER = 'a',
	/* an adapter's trained weights, binary (version, threshold, space, then algo/adapter's
	 * blob); key: its name; search/adapters.c */
	STORE_NS_ADAPTER_WEIGHTS = 'w',
	/* an adapter's labelled pairs, binary ("WNQ1" batch); key: "<name>/<batch, 10 digits>";
	 * search/adapters.c */
	STORE_NS_ADAPTER_PAIRS = 'q',
};

/* One write transaction, handed to a store_write callback; valid only inside it. */
struct store_txn;

/* fn(ctx, t, e) does its reads and writes through t and returns 0 to commit or a non-zero
 * code to abort (that code is returned). fn may run more than once: when the map is full the
 * transaction is aborted, the map grown and fn called again from the start, so fn must
 * not keep side effects of an earlier attempt (reset its outputs at its start). An LMDB
 * failure inside fn fails the attempt with ERR_STORE whatever fn returns (so MDB_MAP_FULL is
 * retried even if fn mapped it to another code). The e fn gets is per attempt: what fn sets
 * there reaches the caller's e only when the call fails. */
typedef int (*store_txn_fn)(void *ctx, struct store_txn *t, struct err *e);

/* Run fn in one LMDB write transaction and commit it (durable on return 0). Writers are
 * serialised: keep fn short (bounded work; large jobs commit in chunks). Do not call from a
 * thread that holds a store_reader. */
int store_write(struct store *s, store_txn_fn fn, void *ctx, struct err *e);

/* ERR_NOT_FOUND when dataset ds_id does not exist (any more) in t. */
int store_txn_dataset(struct store_txn *t, uint32_t ds_id, struct store_dataset_info *out,
                      struct err *e);

/* Write n elements (n * elem_size bytes of data, borrowed) at rows [first, first + n) of
 * array arr of dataset ds_id. A partial block is read, modified and written back inside t.
 * ERR_INVALID for elem_size outside 1..16, arr == STORE_ARRAY_LIVE, first + n past
 * UINT64_MAX, or a block written before with another elem_size (slug "array_elem_size");
 * ERR_NOT_FOUND if the dataset does not exist. */
int store_txn_array_put(struct store_txn *t, uint32_t ds_id, uint32_t arr, size_t elem_size,
                        uint64_t first, size_t n, const void *data, struct err *e);

/* Read n elements at rows [first, first + n) into out (borrowed, n * elem_size bytes),
 * as the transaction sees them (its own writes included). Unwritten elements are zero, and
 * so are those of a dataset that does not exist. ERR_INVALID as for the put (reading
 * STORE_ARRAY_LIVE is allowed, with elem_size 1 only). */
int store_txn_array_get(struct store_txn *t, uint32_t ds_id, uint32_t arr, size_t elem_size,
                        uint64_t first, size_t n, void *out, struct err *e);

/* Delete every block of array arr of ds_id (no error if there is none). Large arrays are
 * deleted here in full; 10 million f32 elements are about 2,500 blocks. */
int store_txn_array_drop(struct store_txn *t, uint32_t ds_id, uint32_t arr, struct err *e);

/* Put document (ds_id, ns, key) = val (borrowed, len bytes, may be 0). Key 1..STORE_DOC_KEY_MAX
 * bytes (ERR_INVALID otherwise). ds_id 0 is global; any other ds_id must exist (ERR_NOT_FOUND). */
int store_txn_doc_put(struct store_txn *t, uint32_t ds_id, char ns, const char *key,
                      size_t key_len, const void *val, size_t len, struct err *e);

/* Get a document; *val is borrowed until the transaction ends. ERR_NOT_FOUND if absent. */
int store_txn_doc_get(struct store_txn *t, uint32_t ds_id, char ns, const char *key,
                      size_t key_len, const void **val, size_t *len, struct err *e);

/* Delete a document. ERR_NOT_FOUND if absent. */
int store_txn_doc_del(struct store_txn *t, uint32_t ds_id, char ns, const char *key,
                      size_t key_len, struct err *e);

/* Next value of the named global counter (stored in meta as "counter.<name>"): 1, 2, 3, ...
 * never reused. name: 1..32 bytes of [a-z_]. */
int store_txn_counter_next(struct store_txn *t, const char *name, uint64_t *out, struct err *e);

/* ---- Record bodies inside a write transaction (signals patches) ----
 * The row of record id in t: ERR_NOT_FOUND (slug record_not_found) when there is none. */
int store_txn_find(struct store_txn *t, uint32_t ds_id, const char *id, size_t id_len,
                   uint64_t *row, struct err *e);

/* The body of the live record at row as t sees it (its own writes included): *body borrowed
 * until the next write in t or its end (copy it out). ERR_NOT_FOUND when the row is not live. */
int store_txn_body_get(struct store_txn *t, uint32_t ds_id, uint64_t row, const char **body,
                       size_t *len, struct err *e);

/* Replace the body of the live record at row with body (borrowed, len bytes: JSON text of the
 * non-vector fields, stored as given). Its id, kind, row and vectors stay. ERR_NOT_FOUND when
 * the row is not live. */
int store_txn_body_put(struct store_txn *t, uint32_t ds_id, uint64_t row, const char *body,
                       size_t len, struct err *e);

/* Reader side of store_txn_array_get, inside the reader's snapshot (a copy into out). */
int store_reader_array(struct store_reader *r, uint32_t ds_id, uint32_t arr, size_t elem_size,
                       uint64_t first, size_t n, void *out, struct err *e);

/* Get a document; *val is borrowed until the reader is closed. ERR_NOT_FOUND if absent. */
int store_reader_doc_get(struct store_reader *r, uint32_t ds_id, char ns, const char *key,
                         size_t key_len, const void **val, size_t *len, struct err *e);

/* Visit every document of (ds_id, ns) in key order (bytewise). fn returns 0 to go on, 1 to
 * stop, or a negative code that is returned. Pointers valid until the reader is closed. */
typedef int (*store_doc_fn)(void *ctx, const char *key, size_t key_len, const void *val,
                            size_t len);
int store_reader_docs(struct store_reader *r, uint32_t ds_id, char ns, store_doc_fn fn,
                      void *ctx, struct err *e);

/* A commit that fails with EIO is taken for a full disk when the volume has less than this
 * left (some file systems report ENOSPC at write-back as EIO). */
#define STORE_FULL_MARGIN (64u << 20)

/* 1 when the last write transaction failed because the disk is full (ENOSPC, EDQUOT, EFBIG,
 * or EIO with under STORE_FULL_MARGIN left), until a write commits again. Such a write
 * returns ERR_NOSPACE ("insufficient_storage", HTTP 507) and changes nothing. /readyz
 * reports it. Thread-safe. */
int store_full(const struct store *s);

#endif

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
#define STORE_FORMAT_VERSION 1

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
 * so a retry of the whole call is safe). */
int store_put_records(struct store *s, uint32_t ds_id, const struct store_record *recs, size_t n,
                      struct err *e);

/* Read the record id. with_vectors = 0 skips the vector reads. ERR_NOT_FOUND if absent. */
int store_get_record(struct store *s, uint32_t ds_id, const char *id, size_t id_len,
                     int with_vectors, struct store_record_out *out, struct err *e);

void store_record_out_free(struct store_record_out *r);

/* Delete the record id and its vectors. ERR_NOT_FOUND if absent. */
int store_delete_record(struct store *s, uint32_t ds_id, const char *id, size_t id_len,
                        struct err *e);

/* Environment statistics for /metrics. */
int store_stats(struct store *s, struct store_stats *out);

/* ---- Snapshot reads, for scans and exports ---------------------------------------
 * A reader is one LMDB read transaction: everything read through it is one consistent
 * snapshot, whatever commits meanwhile. Pointers it returns are borrowed and valid until
 * the next call on the same reader or its close. A reader belongs to one thread at a
 * time. Keep readers short: a map resize waits for all of them. */
struct store_reader;

int store_reader_open(struct store *s, struct store_reader **out, struct err *e);
void store_reader_close(struct store_reader *r);

/* Visit live rows of dataset ds_id in row order, starting at row first.
 * For each row: fn(ctx, row, id, id_len, body, body_len); fn returns 0 to go on, 1 to
 * stop (store_reader_rows then returns 0), or a negative code that is returned. */
typedef int (*store_row_fn)(void *ctx, uint64_t row, const char *id, size_t id_len,
                            const char *body, size_t body_len);
int store_reader_rows(struct store_reader *r, uint32_t ds_id, uint64_t first, store_row_fn fn,
                      void *ctx, struct err *e);

/* The vector block of space index space holding rows [block * STORE_BLOCK_ROWS, +64).
 * *data points at STORE_BLOCK_ROWS vectors in the space's dtype (absent rows zeroed);
 * *present has bit i set when row block*64+i has a vector. ERR_NOT_FOUND when the block
 * holds no vector at all. */
int store_reader_block(struct store_reader *r, uint32_t ds_id, unsigned space, uint64_t block,
                       const void **data, uint64_t *present, struct err *e);

#endif

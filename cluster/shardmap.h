/* SPDX-License-Identifier: MIT */
/* shardmap: the cluster file (shards.json) and record placement (CLUSTER.md, docs/scale.md).
 *
 * Placement of a record id: v = the big-endian uint64 of the first 8 bytes of SHA-256(id
 * bytes) mod virtual_shards; shard = floor(v * n_shards / virtual_shards) (contiguous ranges
 * of virtual shards per shard). The map is immutable once loaded; any thread may read it. */
#ifndef WINNOW_SHARDMAP_H
#define WINNOW_SHARDMAP_H

#include <stddef.h>
#include <stdint.h>

struct err;

#define SHARDMAP_MAX_SHARDS 256
#define SHARDMAP_DEFAULT_VIRTUAL 1024u
#define SHARDMAP_MAX_VIRTUAL (1u << 20)

struct shardmap {
	uint32_t virtual_shards;  /* 1..2^20, default 1024 */
	size_t n;                 /* shards, 1..SHARDMAP_MAX_SHARDS */
	char *url[SHARDMAP_MAX_SHARDS]; /* base URLs without a trailing '/', owned */
	char *key;                /* the bearer key sent to the shards, or NULL; owned */
};

/* Parse the cluster file text (JSON) strictly: unknown fields, a missing or empty "shards",
 * a URL that is not http:// or https://, virtual_shards out of range or below the number of
 * shards are ERR_INVALID (slug bad_cluster_file) with e naming the field. dir is the directory
 * that shard_key_file is relative to (NULL = the current one). WINNOW_SHARD_KEY, when set and
 * non-empty, overrides the key file. m is filled (shardmap_free frees it). */
int shardmap_parse(struct shardmap *m, const char *text, size_t len, const char *dir,
                   struct err *e);

/* shardmap_parse of the file at path (dir = the file's directory). */
int shardmap_load(struct shardmap *m, const char *path, struct err *e);

void shardmap_free(struct shardmap *m);

/* The virtual shard of id (len bytes): first 8 bytes of SHA-256 big-endian mod virtual. */
uint32_t shardmap_virtual(uint32_t virtual_shards, const void *id, size_t len);

/* The shard index that owns id. */
size_t shardmap_place(const struct shardmap *m, const void *id, size_t len);

#endif

/* SPDX-License-Identifier: MIT */
/* shardmap: the strict parser of shards.json and the SHA-256 placement. */
#include "cluster/shardmap.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/sha256.h"

#define SLUG "bad_cluster_file"

uint32_t shardmap_virtual(uint32_t virtual_shards, const void *id, size_t len)
{
	struct sha256_ctx c;
	uint8_t d[32];
	uint64_t v = 0;

	sha256_init(&c);
	sha256_update(&c, id, len);
	sha256_final(&c, d);
	for (int i = 0; i < 8; i++)
		v = (v << 8) | d[i];
	return (uint32_t)(v % virtual_shards);
}

size_t shardmap_place(const struct shardmap *m, const void *id, size_t len)
{
	uint64_t v = shardmap_virtual(m->virtual_shards, id, len);

	return (size_t)(v * m->n / m->virtual_shards);
}

void shardmap_free(struct shardmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->url[i]);
	free(m->key);
	memset(m, 0, sizeof *m);
}

/* The key file's first line, trimmed; ERR_INVALID when unreadable or empty. */
static int read_key(const char *dir, const char *file, char **out, struct err *e)
{
	char path[4096], buf[1024];
	FILE *f;
	size_t n;

	if (file[0] == '/' || dir == NULL)
		snprintf(path, sizeof path, "%s", file);
	else
		snprintf(path, sizeof path, "%s/%s", dir, file);
	f = fopen(path, "r");
	if (f == NULL)
		return err_set(e, ERR_INVALID, SLUG, "shard_key_file '%s': %s", path, strerror(errno));
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	while (n > 0 && (buf[strlen(buf) - 1] == ' ' || buf[strlen(buf) - 1] == '\t'))
		buf[strlen(buf) - 1] = '\0', n--;
	if (buf[0] == '\0')
		return err_set(e, ERR_INVALID, SLUG, "shard_key_file '%s' is empty", path);
	*out = strdup(buf);
	return *out != NULL ? 0 : err_set(e, ERR_NOMEM, NULL, "out of memory");
}

static int parse_shards(struct shardmap *m, const json_t *arr, struct err *e)
{
	size_t i;
	json_t *s;

	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > SHARDMAP_MAX_SHARDS)
		return err_set(e, ERR_INVALID, SLUG, "\"shards\" must be an array of 1 to %d shards",
		               SHARDMAP_MAX_SHARDS);
	json_array_foreach(arr, i, s) {
		const char *key, *u;
		json_t *v;
		size_t len;

		if (!json_is_object(s))
			return err_set(e, ERR_INVALID, SLUG, "shards[%zu] is not an object", i);
		json_object_foreach(s, key, v)
			if (strcmp(key, "url") != 0)
				return err_set(e, ERR_INVALID, SLUG, "shards[%zu]: unknown field '%s'",
				               i, key);
		u = json_string_value(json_object_get(s, "url"));
		if (u == NULL || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
		    strlen(u) > 2000)
			return err_set(e, ERR_INVALID, SLUG,
			               "shards[%zu].url must be an http:// or https:// URL", i);
		if ((m->url[i] = strdup(u)) == NULL)
			return err_set(e, ERR_NOMEM, NULL, "out of memory");
		m->n = i + 1;
		len = strlen(m->url[i]);
		while (len > 0 && m->url[i][len - 1] == '/')
			m->url[i][--len] = '\0';
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->url[k], m->url[i]) == 0)
				return err_set(e, ERR_INVALID, SLUG, "shards[%zu].url repeats shards[%zu]",
				               i, k);
	}
	return 0;
}

int shardmap_parse(struct shardmap *m, const char *text, size_t len, const char *dir,
                   struct err *e)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *v;
	const char *key, *env;
	int rc = 0;

	memset(m, 0, sizeof *m);
	m->virtual_shards = SHARDMAP_DEFAULT_VIRTUAL;
	if (doc == NULL || !json_is_object(doc)) {
		rc = err_set(e, ERR_INVALID, SLUG, "the cluster file is not a JSON object: %s (line %d)",
		             doc == NULL ? jerr.text : "not an object", doc == NULL ? jerr.line : 1);
		goto out;
	}
	json_object_foreach(doc, key, v) {
		if (strcmp(key, "virtual_shards") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > SHARDMAP_MAX_VIRTUAL) {
				rc = err_set(e, ERR_INVALID, SLUG,
				             "virtual_shards must be an integer from 1 to %u",
				             SHARDMAP_MAX_VIRTUAL);
				goto out;
			}
			m->virtual_shards = (uint32_t)json_integer_value(v);
		} else if (strcmp(key, "shards") != 0 && strcmp(key, "shard_key_file") != 0) {
			rc = err_set(e, ERR_INVALID, SLUG, "unknown field '%s' (virtual_shards, shards, "
			             "shard_key_file)", key);
			goto out;
		}
	}
	if ((rc = parse_shards(m, json_object_get(doc, "shards"), e)) != 0)
		goto out;
	if (m->n > m->virtual_shards) {
		rc = err_set(e, ERR_INVALID, SLUG, "%zu shards need virtual_shards >= %zu", m->n, m->n);
		goto out;
	}
	v = json_object_get(doc, "shard_key_file");
	env = getenv("WINNOW_SHARD_KEY");
	if (env != NULL && env[0] != '\0') {
		if ((m->key = strdup(env)) == NULL)
			rc = err_set(e, ERR_NOMEM, NULL, "out of memory");
	} else if (v != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			rc = err_set(e, ERR_INVALID, SLUG, "shard_key_file must be a file name");
		else
			rc = read_key(dir, json_string_value(v), &m->key, e);
	}
out:
	json_decref(doc);
	if (rc != 0)
		shardmap_free(m);
	return rc;
}

int shardmap_load(struct shardmap *m, const char *path, struct err *e)
{
	FILE *f = fopen(path, "rb");
	char *buf, dir[4096], *slash;
	size_t n;
	int rc;

	memset(m, 0, sizeof *m);
	if (f == NULL)
		return err_set(e, ERR_INVALID, SLUG, "cannot read cluster file '%s': %s", path,
		               strerror(errno));
	buf = malloc(1 << 20);
	if (buf == NULL) {
		fclose(f);
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	rc = shardmap_parse(m, buf, n, slash != NULL ? dir : NULL, e);
	free(buf);
	return rc;
}

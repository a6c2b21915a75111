/* SPDX-License-Identifier: MIT */
/* test_shardmap: the cluster file parser (strict: unknown fields, bad URLs, ranges, the key
 * file and WINNOW_SHARD_KEY) and the placement against values computed independently with
 * Python's hashlib (int.from_bytes(sha256(id).digest()[:8], "big") % V, then v * n // V).
 * Also float keys of algo/select.h (order and round trip), which the router's histograms use.
 *
 *   test_shardmap --place V N ID...   prints "ID SHARD" lines (for tests/integration) */
#include "algo/select.h"
#include "cluster/shardmap.h"
#include "lib/err.h"
#include "tests/harness.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(struct shardmap *m, const char *text, struct err *e)
{
	memset(e, 0, sizeof *e);
	return shardmap_parse(m, text, strlen(text), NULL, e);
}

static void test_placement_vectors(void)
{
	/* python3: int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") % v, * n // v */
	static const struct {
		const char *id;
		unsigned v1024, s3, v1000, s7, s3m;
	} vec[] = {
		{"", 20, 0, 652, 4, 2},
		{"a", 458, 1, 250, 1, 2},
		{"r0", 738, 2, 714, 4, 2},
		{"r1", 909, 2, 141, 0, 2},
		{"139e4a9b22a614771f06c700a8ebe150", 357, 1, 389, 2, 1},
		{"h\xc3\xa9llo", 581, 1, 717, 5, 1},
	};
	struct shardmap m3 = {.virtual_shards = 1024, .n = 3};
	struct shardmap m7 = {.virtual_shards = 1000, .n = 7};
	struct shardmap mm = {.virtual_shards = 1u << 20, .n = 3};

	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		size_t len = strlen(vec[i].id);

		CHECK_INT(shardmap_virtual(1024, vec[i].id, len), vec[i].v1024);
		CHECK_INT(shardmap_place(&m3, vec[i].id, len), vec[i].s3);
		CHECK_INT(shardmap_virtual(1000, vec[i].id, len), vec[i].v1000);
		CHECK_INT(shardmap_place(&m7, vec[i].id, len), vec[i].s7);
		CHECK_INT(shardmap_place(&mm, vec[i].id, len), vec[i].s3m);
	}
}

static void test_parse_ok(void)
{
	struct shardmap m;
	struct err e;

	unsetenv("WINNOW_SHARD_KEY");
	CHECK_INT(parse(&m, "{\"shards\": [{\"url\": \"http://a:1/\"}, {\"url\": \"https://b\"}]}",
	                &e), 0);
	CHECK_INT(m.n, 2);
	CHECK_INT(m.virtual_shards, 1024);
	CHECK(strcmp(m.url[0], "http://a:1") == 0); /* the trailing '/' goes */
	CHECK(strcmp(m.url[1], "https://b") == 0);
	CHECK(m.key == NULL);
	shardmap_free(&m);
	CHECK_INT(parse(&m, "{\"virtual_shards\": 2, \"shards\": [{\"url\": \"http://a\"}]}", &e),
	          0);
	CHECK_INT(m.virtual_shards, 2);
	shardmap_free(&m);
	setenv("WINNOW_SHARD_KEY", "sekrit", 1);
	CHECK_INT(parse(&m, "{\"shards\": [{\"url\": \"http://a\"}], \"shard_key_file\": \"/x/none\"}",
	                &e), 0);
	CHECK(m.key != NULL && strcmp(m.key, "sekrit") == 0); /* the variable wins */
	shardmap_free(&m);
	unsetenv("WINNOW_SHARD_KEY");
}

static void test_key_file(void)
{
	char dir[] = "/tmp/winnow-shardmap-XXXXXX", path[256];
	struct shardmap m;
	struct err e = {0};
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/shard.key", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("abc123  \n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/shards.json", dir);
	f = fopen(path, "w");
	fputs("{\"shards\": [{\"url\": \"http://a\"}], \"shard_key_file\": \"shard.key\"}", f);
	fclose(f);
	CHECK_INT(shardmap_load(&m, path, &e), 0);
	CHECK(m.key != NULL && strcmp(m.key, "abc123") == 0); /* relative to the file, trimmed */
	shardmap_free(&m);
	unlink(path);
	snprintf(path, sizeof path, "%s/shard.key", dir);
	unlink(path);
	rmdir(dir);
}

static void test_parse_errors(void)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{}",
		"{\"shards\": []}",
		"{\"shards\": [{\"url\": \"ftp://a\"}]}",
		"{\"shards\": [{\"url\": \"http://a\", \"weight\": 2}]}",
		"{\"shards\": [{\"url\": \"http://a\"}], \"replicas\": 2}",
		"{\"shards\": [{\"url\": \"http://a\"}, {\"url\": \"http://a/\"}]}",
		"{\"virtual_shards\": 0, \"shards\": [{\"url\": \"http://a\"}]}",
		"{\"virtual_shards\": 1048577, \"shards\": [{\"url\": \"http://a\"}]}",
		"{\"virtual_shards\": 1, \"shards\": [{\"url\": \"http://a\"}, {\"url\": \"http://b\"}]}",
		"{\"shards\": [{\"url\": \"http://a\"}], \"shard_key_file\": \"/nonexistent/k\"}",
		"{\"shards\": [{\"url\": \"http://a\"}], \"shards\": []}",
	};
	struct shardmap m;
	struct err e;

	unsetenv("WINNOW_SHARD_KEY");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_INT(parse(&m, bad[i], &e), ERR_INVALID);
		CHECK(strcmp(e.slug, "bad_cluster_file") == 0);
		CHECK_INT(m.n, 0);
	}
}

static void test_float_keys(void)
{
	static const float v[] = {-FLT_MAX, -1.5f, -1e-30f, -0.0f, 0.0f, 1e-38f, 0.25f, 1.0f,
	                          FLT_MAX};

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		CHECK(select_key_float(select_float_key(v[i])) == v[i]);
		if (i > 0 && v[i - 1] < v[i])
			CHECK(select_float_key(v[i - 1]) < select_float_key(v[i]));
	}
	CHECK(select_float_key(-0.0f) == select_float_key(0.0f));
	CHECK(!signbit(select_key_float(select_float_key(-0.0f))));
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "--place") == 0) {
		struct shardmap m = {.virtual_shards = (uint32_t)atoi(argv[2]),
		                     .n = (size_t)atoi(argv[3])};

		for (int i = 4; i < argc; i++)
			printf("%s %zu\n", argv[i], shardmap_place(&m, argv[i], strlen(argv[i])));
		return 0;
	}
	HARNESS_RUN(test_placement_vectors);
	HARNESS_RUN(test_parse_ok);
	HARNESS_RUN(test_key_file);
	HARNESS_RUN(test_parse_errors);
	HARNESS_RUN(test_float_keys);
	return harness_done();
}

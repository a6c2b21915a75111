/* SPDX-License-Identifier: MIT */
/* Tests of cluster/models.c's merges: the activation sets from the shards' top-k (each bank
 * item's k best of all shards, ties by id), the CoLoR-Filter counts summed (saturating as a
 * model does), and the answers that do not fit together refused. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "cluster/models.h"
#include "lib/err.h"
#include "tests/harness.h"

static json_t *j(const char *s)
{
	return json_loads(s, 0, NULL);
}

static void test_topk_sets(void)
{
	/* 2 query-bank items, 1 gallery-bank item, k = 2, three shards */
	json_t *parts[3] = {
	        j("{\"k\": 2, \"version\": 1,"
	          " \"query_bank\": [[{\"id\": \"a\", \"score\": 0.9}, {\"id\": \"b\", \"score\": 0.5}],"
	          "                  [{\"id\": \"a\", \"score\": 0.1}]],"
	          " \"gallery_bank\": [[{\"id\": \"b\", \"score\": 0.7}]]}"),
	        j("{\"k\": 2, \"version\": 3,"
	          " \"query_bank\": [[{\"id\": \"c\", \"score\": 0.5}], [{\"id\": \"d\", \"score\": 0.8}]],"
	          " \"gallery_bank\": [[]]}"),
	        j("{\"k\": 2, \"version\": 1,"
	          " \"query_bank\": [[{\"id\": \"e\", \"score\": 0.2}], [{\"id\": \"f\", \"score\": 0.3}]],"
	          " \"gallery_bank\": [[{\"id\": \"g\", \"score\": 0.7}, {\"id\": \"h\", \"score\": 0.6}]]}")};
	json_t *sets = models_topk_sets(parts, 3), *want;

	CHECK(sets != NULL);
	/* item 0: a 0.9, then b and c tie at 0.5: b (the smaller id); item 1: d, f;
	 * gallery item: b and g tie at 0.7, both kept, h out */
	want = j("{\"in_aq\": [\"a\", \"b\", \"d\", \"f\"], \"in_ag\": [\"b\", \"g\"]}");
	CHECK(json_equal(sets, want));
	json_decref(sets);
	json_decref(want);
	/* a shard with another number of bank items (another normaliser) does not fit */
	json_array_remove(json_object_get(parts[1], "query_bank"), 1);
	CHECK(models_topk_sets(parts, 3) == NULL);
	for (int i = 0; i < 3; i++)
		json_decref(parts[i]);
}

static void test_counts_merge(void)
{
	json_t *parts[2] = {
	        j("{\"format\": \"color_ngram_counts/1\", \"order\": 3,"
	          " \"priors\": [{\"<s> 00000000000000aa\": 2}, {}], \"down\": {\"x y\": 4294967290}}"),
	        j("{\"format\": \"color_ngram_counts/1\", \"order\": 3,"
	          " \"priors\": [{\"<s> 00000000000000aa\": 3, \"a b c\": 1}, {\"z </s>\": 5}],"
	          " \"down\": {\"x y\": 10}}")};
	json_t *out = NULL, *want;
	struct err e = {0};

	CHECK_INT(models_counts_merge(parts, 2, &out, &e), 0);
	want = j("{\"format\": \"color_ngram_counts/1\", \"order\": 3,"
	         " \"priors\": [{\"<s> 00000000000000aa\": 5, \"a b c\": 1}, {\"z </s>\": 5}],"
	         " \"down\": {\"x y\": 4294967295}}");
	CHECK(json_equal(out, want));
	json_decref(out);
	json_decref(want);
	/* another order (or number of folds) does not fit */
	json_object_set_new(parts[1], "order", json_integer(4));
	CHECK_INT(models_counts_merge(parts, 2, &out, &e), ERR_GATEWAY);
	CHECK_STR(e.slug, "shards_disagree");
	json_decref(parts[0]);
	json_decref(parts[1]);
}

int main(void)
{
	HARNESS_RUN(test_topk_sets);
	HARNESS_RUN(test_counts_merge);
	return harness_done();
}

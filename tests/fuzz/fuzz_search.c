/* SPDX-License-Identifier: MIT */
/* fuzz_search: libFuzzer driver for a search request, both wire formats and the query
 * engine behind them, page tokens included: the first byte picks the form, the rest is a
 * JSON body (search_wire_json) or a query string of name=value pairs joined by '&'
 * (search_wire_arg, with 4 f32 rows as the body), decoded against a space of dim 4, then
 * run by query_run over a small real store (a Flat-less dataset: exact scans, thresholds,
 * pages, counts). Bits 2-3 of the first byte pick the answer's format (JSON, binary, either:
 * enum query_answer). Every outcome must be an answer in a format asked for (a binary one
 * whole) or a clean error. */
#include <jansson.h>
#include <stdlib.h>

#include "api/search.h"
#include "core/core.h"
#include "lib/err.h"
#include "lib/hits.h"
#include "lib/vec.h"
#include "search/catalog.h"
#include "search/query.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct core core;

static void setup(void)
{
	static const struct store_schema schema = {
		.nspaces = 1, .spaces = {{"v", 4, STORE_F32}}, .kinds = STORE_KIND_TEXT};
	char dir[64];
	struct store_config sc = {0};
	struct store_dataset_info ds;
	struct store_record recs[16];
	char ids[16][8];
	float vecs[16][4];
	int created;

	snprintf(dir, sizeof dir, "/tmp/winnow-fuzz-search-%d", (int)getpid());
	sc.dir = dir;
	sc.map_size = 16u << 20;
	if (store_open(&core.store, &sc, NULL) != 0 ||
	    store_dataset_create(core.store, "d", &schema, &created, NULL) != 0 ||
	    store_dataset_get(core.store, "d", &ds, NULL) != 0 ||
	    catalog_open(&core.catalog, &core, NULL) != 0)
		abort();
	for (int i = 0; i < 16; i++) {
		snprintf(ids[i], sizeof ids[i], "r%d", i);
		for (int k = 0; k < 4; k++)
			vecs[i][k] = (float)((i * 5 + k * 3) % 7) - 3.0f;
		recs[i] = (struct store_record){.id = ids[i], .id_len = strlen(ids[i]),
		                                .kind = STORE_KIND_TEXT, .body = "{}", .body_len = 2,
		                                .vec = {vecs[i]}};
	}
	if (store_put_records(core.store, ds.id, recs, 16, NULL, NULL) != 0)
		abort();
}

/* A binary answer (lib/hits.h) that holds together: its length from its header, counts
 * within the limit, id ends that never go back nor past the id bytes. */
static int hits_valid(const unsigned char *p, size_t n)
{
	uint32_t nq, limit, ids, end = 0;
	const unsigned char *counts = p + 16, *ends;

	if (n < 16)
		return 0;
	nq = vec_le32_get(p + 4);
	limit = vec_le32_get(p + 8);
	ids = vec_le32_get(p + 12);
	if (n != 16 + 8 * (size_t)nq + 8 * (size_t)nq * limit + ids)
		return 0;
	ends = p + 16 + 8 * (size_t)nq + 4 * (size_t)nq * limit;
	for (size_t i = 0; i < nq; i++) {
		if (vec_le32_get(counts + 4 * i) > limit)
			return 0;
		for (size_t j = 0; j < limit; j++) {
			uint32_t e = vec_le32_get(ends + 4 * (i * limit + j));

			if (e < end || e > ids)
				return 0;
			end = e;
		}
	}
	return end == ids;
}

static void run(struct search_wire *w)
{
	struct err e = {0};
	char *out = NULL;
	size_t len = 0;

	if (search_wire_vectors(w, 4, &e) == 0 && query_run(&core, &w->req, &out, &len, &e) == 0) {
		json_t *ans;

		if (hits_is(out, len)) {
			if (w->req.hits == QUERY_ANSWER_JSON || !hits_valid((const unsigned char *)out, len))
				abort(); /* binary only when asked, and whole */
		} else if (w->req.hits == QUERY_ANSWER_HITS ||
		           (ans = json_loadb(out, len, 0, NULL)) == NULL) {
			abort(); /* otherwise always JSON */
		} else {
			json_decref(ans);
		}
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct search_wire w;
	struct err e = {0};

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1 || size > 4096)
		return 0;
	search_wire_init(&w, "d", data[0] & 2);
	w.req.hits = (enum query_answer)((data[0] >> 2) % 3); /* JSON, binary, either */
	if (data[0] & 1) { /* raw rows with a query string */
		static const float rows[4] = {1, 0, 0, 0};
		char *q = fuzz_str(data + 1, size - 1), *save = NULL, *kv;
		int rc = 0;

		if (q == NULL)
			return 0;
		w.rows = rows;
		w.rows_len = sizeof rows;
		for (kv = strtok_r(q, "&", &save); kv != NULL && rc == 0; kv = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(kv, '=');

			if (eq != NULL)
				*eq++ = '\0';
			rc = search_wire_arg(&w, kv, eq, &e);
		}
		if (rc == 0)
			run(&w);
		search_wire_free(&w);
		free(q);
	} else {
		json_t *body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);

		if (body != NULL && search_wire_json(&w, body, &e) == 0)
			run(&w);
		search_wire_free(&w);
		json_decref(body);
	}
	return 0;
}

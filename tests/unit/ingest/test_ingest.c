/* SPDX-License-Identifier: MIT */
/* test_ingest: ingest_commit and ingest_delete called from C, as the benches call them, against a
 * real store, job runner and catalog: a filter defined before the records has their scores
 * (checked against a double-precision cosine) and an index their vectors once ingest_commit
 * returns; a delete resets the row's score and status, drops it from the stats and the index. */
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "core/jobs.h"
#include "curate/instance.h"
#include "filters/filter.h"
#include "ingest/ingest.h"
#include "lib/err.h"
#include "search/catalog.h"
#include "store/store.h"
#include "tests/harness.h"

#define N 50
#define D 8
#define NO_TEXT 7 /* the record without a text vector: unscorable */

static char tmp_root[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tmp_done(void)
{
	if (tmp_root[0] != '\0')
		nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmp_root[0] = '\0';
}

/* Wait until job id is no longer queued or running; its final state ("" on a timeout). */
static const char *wait_job(struct jobs *js, uint64_t id, char *state, size_t size)
{
	state[0] = '\0';
	for (int i = 0; i < 3000; i++) {
		json_t *j = NULL;
		const char *s;

		if (jobs_get_json(js, id, &j, NULL) != 0)
			return state;
		s = json_string_value(json_object_get(j, "state"));
		if (s != NULL && strcmp(s, "queued") != 0 && strcmp(s, "running") != 0) {
			snprintf(state, size, "%s", s);
			json_decref(j);
			return state;
		}
		json_decref(j);
		usleep(10000);
	}
	return state;
}

static json_t *stats(struct core *core)
{
	json_t *s = NULL;

	if (instance_stats_json(core, "d", "clip", 10, NAN, NULL, &s, NULL) != 0)
		return NULL;
	return s;
}

static long long stat_int(json_t *s, const char *key)
{
	return (long long)json_integer_value(json_object_get(s, key));
}

static long long index_vectors(struct core *core)
{
	json_t *v = NULL;
	long long n;

	if (catalog_get_json(core, "d", "image", &v, NULL) != 0)
		return -1;
	n = (long long)json_integer_value(json_object_get(v, "vectors"));
	json_decref(v);
	return n;
}

/* The score and status at row of filter clip, read from a fresh snapshot. */
static int read_score(struct core *core, uint32_t ds, uint64_t row, float *score,
                      uint8_t *status)
{
	struct store_reader *r = NULL;
	struct instance_ref ref;
	int rc;

	if ((rc = store_reader_open(core->store, &r, NULL)) != 0)
		return rc;
	if ((rc = instance_ref_read(r, ds, "clip", &ref, NULL)) == 0 &&
	    (rc = store_reader_array(r, ds, ref.arr_score, 4, row, 1, score, NULL)) == 0)
		rc = store_reader_array(r, ds, ref.arr_status, 1, row, 1, status, NULL);
	store_reader_close(r);
	return rc;
}

static void test_commit_runs_the_hooks(void)
{
	static const struct job_kind kinds[] = {{"score", instance_job_score},
	                                        {"index", catalog_job_build}};
	struct jobs_config jc = {.kinds = kinds, .nkinds = 2, .threads = 1};
	struct store_config sc = {0};
	struct store_schema schema = {0};
	struct store_dataset_info ds;
	struct core core = {0};
	static float img[N][D], txt[N][D];
	static char ids[N][16];
	struct store_record recs[N];
	uint64_t rows[N], row = 0, job = 0;
	json_t *body, *view = NULL, *s;
	char state[32];
	int created = 0;
	double worst = 0;

	strcpy(tmp_root, "/tmp/winnow-test-ingest-XXXXXX");
	CHECK(mkdtemp(tmp_root) != NULL);
	sc.dir = tmp_root;
	schema.nspaces = 2;
	schema.kinds = STORE_KIND_IMAGE_TEXT;
	schema.spaces[0] = (struct store_space){.name = "image", .dim = D, .dtype = STORE_F32};
	schema.spaces[1] = (struct store_space){.name = "text", .dim = D, .dtype = STORE_F32};
	CHECK_INT(store_open(&core.store, &sc, NULL), 0);
	core.data_dir = tmp_root;
	CHECK_INT(store_dataset_create(core.store, "d", &schema, NULL, NULL), 0);
	CHECK_INT(store_dataset_get(core.store, "d", &ds, NULL), 0);
	CHECK_INT(catalog_open(&core.catalog, &core, NULL), 0);
	CHECK_INT(jobs_open(&core.jobs, &core, &jc, NULL), 0);

	/* a filter and an index defined while the dataset is empty: their jobs find nothing, so
	 * what they hold afterwards came from the hooks */
	body = json_pack("{s:s, s:{s:s, s:s}}", "type", "clip_score", "params", "image_space",
	                 "image", "text_space", "text");
	CHECK_INT(instance_put(&core, "d", "clip", body, &view, &job, &created, NULL), 0);
	json_decref(body);
	json_decref(view);
	CHECK_STR(wait_job(core.jobs, job, state, sizeof state), "succeeded");
	body = json_pack("{s:s, s:s}", "factory", "Flat", "metric", "cosine");
	CHECK_INT(catalog_put(&core, "d", "image", body, &view, &job, &created, NULL), 0);
	json_decref(body);
	json_decref(view);
	CHECK_STR(wait_job(core.jobs, job, state, sizeof state), "succeeded");
	CHECK_INT(index_vectors(&core), 0);

	srand(7);
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < D; k++) {
			float shared = (float)rand() / RAND_MAX - 0.5f;

			img[i][k] = shared + 0.5f * ((float)rand() / RAND_MAX - 0.5f);
			txt[i][k] = shared + 0.5f * ((float)rand() / RAND_MAX - 0.5f);
		}
		snprintf(ids[i], sizeof ids[i], "r%02d", i);
		recs[i] = (struct store_record){.id = ids[i], .id_len = strlen(ids[i]),
		                                .kind = STORE_KIND_IMAGE_TEXT, .body = "{}",
		                                .body_len = 2};
		recs[i].vec[0] = img[i];
		recs[i].vec[1] = i == NO_TEXT ? NULL : txt[i];
	}
	CHECK_INT(ingest_commit(&core, &ds, recs, N, rows, NULL), 0);

	/* scored by the time ingest_commit returned (no job ran since) */
	s = stats(&core);
	CHECK(s != NULL);
	CHECK_INT(stat_int(s, "records"), N);
	CHECK_INT(stat_int(s, "count"), N - 1);
	CHECK_INT(stat_int(s, "unscorable"), 1);
	CHECK_INT(stat_int(s, "pending"), 0);
	json_decref(s);
	for (int i = 0; i < N; i++) {
		double ab = 0, aa = 0, bb = 0;
		float got;
		uint8_t st;

		CHECK_INT(rows[i], i);
		CHECK_INT(read_score(&core, ds.id, rows[i], &got, &st), 0);
		if (i == NO_TEXT) {
			CHECK(isnan(got));
			CHECK_INT(st, FILTER_NO_VECTOR);
			continue;
		}
		for (int k = 0; k < D; k++) {
			ab += (double)img[i][k] * txt[i][k];
			aa += (double)img[i][k] * img[i][k];
			bb += (double)txt[i][k] * txt[i][k];
		}
		CHECK(filter_status_scored(st));
		if (fabs(got - ab / sqrt(aa * bb)) > worst)
			worst = fabs(got - ab / sqrt(aa * bb));
	}
	CHECK(worst < 1e-6);
	CHECK_INT(index_vectors(&core), N);

	/* the delete reaches the filter's arrays, its stats and the index */
	CHECK_INT(ingest_delete(&core, &ds, "r03", 3, &row, NULL), 0);
	CHECK_INT(row, rows[3]);
	{
		float got = 0;
		uint8_t st = 99;

		CHECK_INT(read_score(&core, ds.id, row, &got, &st), 0);
		CHECK(isnan(got));
		CHECK_INT(st, FILTER_PENDING);
	}
	s = stats(&core);
	CHECK(s != NULL);
	CHECK_INT(stat_int(s, "records"), N - 1);
	CHECK_INT(stat_int(s, "count"), N - 2);
	json_decref(s);
	CHECK_INT(index_vectors(&core), N - 1);
	{
		struct err e = {0};

		CHECK_INT(ingest_delete(&core, &ds, "r03", 3, NULL, &e), ERR_NOT_FOUND);
		CHECK_INT(index_vectors(&core), N - 1);
	}

	jobs_close(core.jobs);
	catalog_close(core.catalog);
	store_close(core.store);
	tmp_done();
}

int main(void)
{
	HARNESS_RUN(test_commit_runs_the_hooks);
	tmp_done();
	return harness_done();
}

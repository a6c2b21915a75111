/* SPDX-License-Identifier: MIT */
/* fuzz_definitions: libFuzzer driver for the definitions a PUT sends, through the services
 * that judge them over a small real store: the first byte picks a subset (steps),
 * a filter instance (type and params), a Cosine Adapter or a hubness normaliser, the rest
 * is the JSON body. A definition the service accepts is stored and its job (a no-op here)
 * queued; every other outcome must be a clean error. */
#include <jansson.h>
#include <stdlib.h>

#include "core/core.h"
#include "core/jobs.h"
#include "curate/instance.h"
#include "curate/subset.h"
#include "lib/err.h"
#include "search/adapters.h"
#include "search/catalog.h"
#include "search/normalizers.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct core core;

static int nothing(struct job *j, struct err *e)
{
	(void)j;
	(void)e;
	return 0;
}

static const struct job_kind kinds[] = {
	{"adapter_train", nothing}, {"hubness", nothing}, {"index", nothing},
	{"score", nothing},         {"subset", nothing},
};

static void setup(void)
{
	static const struct store_schema schema = {
		.nspaces = 2,
		.spaces = {{"image", 4, STORE_F16}, {"text", 4, STORE_F32}},
		.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT};
	struct jobs_config jc = {kinds, sizeof kinds / sizeof kinds[0], 1, 100};
	struct store_config sc = {0};
	char dir[64];
	int created;

	snprintf(dir, sizeof dir, "/tmp/winnow-fuzz-defs-%d", (int)getpid());
	sc.dir = dir;
	sc.map_size = 64u << 20;
	if (store_open(&core.store, &sc, NULL) != 0 ||
	    store_dataset_create(core.store, "d", &schema, &created, NULL) != 0 ||
	    catalog_open(&core.catalog, &core, NULL) != 0 ||
	    jobs_open(&core.jobs, &core, &jc, NULL) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct err e = {0};
	json_t *body, *view = NULL;
	uint64_t job = 0;
	int created = 0;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1 || size > 8192)
		return 0;
	body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
	if (body == NULL)
		return 0;
	switch (data[0] % 4) {
	case 0: subset_put(&core, "d", "s", body, &view, &job, &created, &e); break;
	case 1: instance_put(&core, "d", "f", body, &view, &job, &created, &e); break;
	case 2: adapters_put(&core, "d", "a", body, &view, &created, &e); break;
	default: normalizers_put(&core, "d", "h", body, &view, &job, &created, &e); break;
	}
	json_decref(view);
	json_decref(body);
	return 0;
}

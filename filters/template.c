/* SPDX-License-Identifier: MIT */
/* template: a compiling example filter that shows every method of struct filter_ops. It is
 * built into the library but not registered; copy it to start a new type (see "how to add
 * a filter" in filters/filter.h).
 *
 * It scores every record with the constant param "value" (default 0.5), reads nothing,
 * and "fits" by counting the live records it is shown, which it saves and loads as its
 * fitted state. Threading: score only reads the instance. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/registry.h"

struct template_filter {
	struct filter base; /* first: the framework's part */
	double value;       /* from params */
	uint64_t seen;      /* fitted state: records seen by fit */
};

static int template_create(struct filter *f, const json_t *params,
                           const struct store_schema *schema, struct err *e)
{
	static const char *const known[] = {"value", NULL};
	struct template_filter *t = (struct template_filter *)f;
	int rc;

	(void)schema;
	t->value = 0.5;
	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_number(params, "value", -1e30, 1e30, 0, &t->value, e)) != 0)
		return rc;
	f->ninputs = 0; /* no embedding spaces; set f->inputs[] and f->needs as needed */
	return 0;
}

static int template_fit(struct filter *f, struct filter_scan *scan, struct err *e)
{
	struct template_filter *t = (struct template_filter *)f;
	const struct filter_batch *b;
	int rc;

	t->seen = 0;
	while ((rc = filter_scan_next(scan, &b, e)) == 1)
		t->seen += b->n;
	return rc;
}

static int template_save(const struct filter *f, void **blob, size_t *len, struct err *e)
{
	const struct template_filter *t = (const struct template_filter *)f;
	unsigned char *p = malloc(8);

	if (p == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(t->seen >> (8 * i));
	*blob = p;
	*len = 8;
	return 0;
}

static int template_load(struct filter *f, const void *blob, size_t len, struct err *e)
{
	struct template_filter *t = (struct template_filter *)f;
	const unsigned char *p = blob;

	if (len != 8)
		return err_set(e, ERR_INVALID, "bad_state", "template state is 8 bytes, got %zu",
		               len);
	t->seen = 0;
	for (int i = 0; i < 8; i++)
		t->seen |= (uint64_t)p[i] << (8 * i);
	return 0;
}

static int template_score(const struct filter *f, const struct filter_batch *b, float *scores,
                          uint8_t *status, struct err *e)
{
	const struct template_filter *t = (const struct template_filter *)f;

	(void)e;
	for (size_t i = 0; i < b->n; i++) {
		scores[i] = (float)t->value;
		status[i] = FILTER_SCORED;
	}
	return 0;
}

static int template_rescore(const struct filter *f, const float *query, uint32_t dim, size_t n,
                            const uint64_t *rows, const float *raw, float *out, struct err *e)
{
	(void)f;
	(void)query;
	(void)dim;
	(void)rows;
	(void)e;
	memcpy(out, raw, n * sizeof *out); /* identity: a real type maps raw cosines */
	return 0;
}

static void template_destroy(struct filter *f)
{
	(void)f; /* nothing allocated beyond the instance */
}

const struct filter_ops template_filter_ops = {
	.name = "template",
	.summary = "an example: a constant score",
	.size = sizeof(struct template_filter),
	.cheap = 1,
	.needs_fit = 0,
	.reasons = NULL,
	.create = template_create,
	.fit = template_fit,
	.save = template_save,
	.load = template_load,
	.score = template_score,
	.rescore = template_rescore,
	.destroy = template_destroy,
};

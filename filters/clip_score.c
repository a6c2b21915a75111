/* SPDX-License-Identifier: MIT */
/* clip_score: the CLIP / DFN score (spec section 1.2): the cosine of the L2-normalised image
 * and text embeddings of one dual encoder. DFN changes only which model made the vectors.
 *
 * Cheap (scored on ingest), no fit. A record without either vector is unscorable
 * (no_vector), one with a zero vector too (zero_vector): dividing by a zero norm is never
 * done. Threading: score only reads the instance. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "store/store.h"
#include "lib/vec.h"

struct clip_score {
	struct filter base;
};

static int clip_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                       struct err *e)
{
	static const char *const known[] = {"image_space", "text_space", NULL};
	unsigned img = 0, txt = 0;
	int rc;

	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_space(params, "image_space", schema, 1, &img, e)) != 0 ||
	    (rc = filter_param_space(params, "text_space", schema, 1, &txt, e)) != 0)
		return rc;
	if (img == txt)
		return err_set(e, ERR_INVALID, "bad_param",
		               "image_space and text_space name the same space '%s'",
		               schema->spaces[img].name);
	if (schema->spaces[img].dim != schema->spaces[txt].dim)
		return err_set(e, ERR_INVALID, "bad_param",
		               "image_space '%s' has dim %u and text_space '%s' dim %u: a cosine "
		               "needs one dimension (one dual encoder)",
		               schema->spaces[img].name, (unsigned)schema->spaces[img].dim,
		               schema->spaces[txt].name, (unsigned)schema->spaces[txt].dim);
	f->ninputs = 2;
	f->inputs[0] = img;
	f->inputs[1] = txt;
	f->needs = FILTER_ACCEPTS_F16;
	return 0;
}

/* Row i of input k as f32: the batch's own, or converted into buf (dim floats). */
static const float *row_f32(const struct filter_batch *b, unsigned k, size_t i, float *buf)
{
	uint32_t dim = b->dims[k];

	if (b->vecs[k] != NULL)
		return b->vecs[k] + (size_t)dim * i;
	vec_f16_to_f32(b->f16[k] + (size_t)dim * i, buf, dim);
	return buf;
}

static int clip_score_batch(const struct filter *f, const struct filter_batch *b, float *scores,
                            uint8_t *status, struct err *e)
{
	uint32_t dim = b->dims[0];
	float *buf = NULL;

	(void)f;
	if (b->n > 0 && (b->vecs[0] == NULL) != (b->vecs[1] == NULL)) {
		/* one side f16, the other f32: convert the f16 side row by row */
		buf = malloc((size_t)dim * sizeof *buf);
		if (buf == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	for (size_t i = 0; i < b->n; i++) {
		double xt, xx, tt;

		if (!b->has_vec[0][i] || !b->has_vec[1][i]) {
			status[i] = FILTER_NO_VECTOR;
			scores[i] = NAN;
			continue;
		}
		if (b->vecs[0] == NULL && b->vecs[1] == NULL)
			vec_f16_dot3(b->f16[0] + (size_t)dim * i, b->f16[1] + (size_t)dim * i, dim,
			             &xt, &xx, &tt);
		else
			vec_f32_dot3(row_f32(b, 0, i, buf), row_f32(b, 1, i, buf), dim, &xt, &xx,
			             &tt);
		if (!(xx > 0) || !(tt > 0)) {
			status[i] = FILTER_ZERO_VECTOR;
			scores[i] = NAN;
			continue;
		}
		/* x/|x| . t/|t| = x.t / sqrt(|x|^2 |t|^2) */
		scores[i] = (float)(xt / sqrt(xx * tt));
		status[i] = FILTER_SCORED;
	}
	free(buf);
	return 0;
}

const struct filter_ops clip_score_filter_ops = {
	.name = "clip_score",
	.summary = "CLIP / DFN score: cosine of the image and text embeddings (CLIP score, DataComp; DFN, Fang et al. 2023; docs/filters.md)",
	.size = sizeof(struct clip_score),
	.cheap = 1,
	.create = clip_create,
	.score = clip_score_batch,
};

/* SPDX-License-Identifier: MIT */
/* scan: store snapshot -> filter batches, one vector block (64 rows) at a time. */
#include "filters/scan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "store/store.h"
#include "lib/vec.h"

struct scan {
	struct filter_scan_ext base; /* first: filter_fit pulls through it */
	struct store_reader *r;
	uint32_t ds;
	const struct store_schema *schema;
	const struct filter *f;
	uint64_t next, end;
	scan_stop_fn stop;
	void *stop_ctx;

	/* the live flags of one array block, cached */
	uint64_t live_block;
	int live_valid;
	uint8_t live[STORE_ARRAY_ROWS];

	/* the batch and its buffers */
	struct filter_batch b;
	uint64_t rows[STORE_BLOCK_ROWS];
	unsigned kinds[STORE_BLOCK_ROWS];
	const char *ids[STORE_BLOCK_ROWS];
	char *idbuf[STORE_BLOCK_ROWS]; /* NUL-terminated copies */
	json_t *bodies[STORE_BLOCK_ROWS];
	float *vecs[FILTER_MAX_INPUTS];
	uint16_t *halves[FILTER_MAX_INPUTS]; /* compacted f16 rows, for FILTER_ACCEPTS_F16 */
	uint8_t has_vec[FILTER_MAX_INPUTS][STORE_BLOCK_ROWS];
	float *tmp; /* one row converted */
};

static int scan_next_base(struct filter_scan *base, const struct filter_batch **b, struct err *e)
{
	return scan_next((struct scan *)base, b, e);
}

/* A scan of another dataset for open_other: it owns that dataset's info (its schema). */
struct other {
	struct filter_scan base;
	struct store_dataset_info info;
	struct scan *sc;
};

static int other_next(struct filter_scan *base, const struct filter_batch **b, struct err *e)
{
	return scan_next(((struct other *)base)->sc, b, e);
}

static void other_close(struct filter_scan *base)
{
	struct other *o = (struct other *)base;

	scan_close(o->sc);
	free(o);
}

static int other_open(struct filter_scan *base, const char *dataset, struct filter_scan **out,
                      struct err *e)
{
	struct scan *sc = (struct scan *)base;
	struct other *o;
	int rc;

	if (sc->f->ninputs != 0)
		return err_set(e, ERR_INVALID, "no_other_datasets",
		               "a filter with embedding inputs reads only its own dataset");
	o = calloc(1, sizeof *o);
	if (o == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	o->base.next = other_next;
	if ((rc = store_reader_dataset_named(sc->r, dataset, &o->info, e)) != 0 ||
	    (rc = scan_open(&o->sc, sc->r, o->info.id, &o->info.schema, sc->f, 0,
	                    o->info.next_row, sc->stop, sc->stop_ctx, e)) != 0) {
		free(o);
		return rc;
	}
	*out = &o->base;
	return 0;
}

int scan_open(struct scan **out, struct store_reader *r, uint32_t ds_id,
              const struct store_schema *schema, const struct filter *f, uint64_t first,
              uint64_t end, scan_stop_fn stop, void *stop_ctx, struct err *e)
{
	struct scan *sc = calloc(1, sizeof *sc);
	uint32_t maxdim = 1;

	if (sc == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	sc->base.base.next = filter_scan_ext_next;
	sc->base.next = scan_next_base;
	sc->base.open_other = other_open;
	sc->base.close_other = other_close;
	sc->r = r;
	sc->ds = ds_id;
	sc->schema = schema;
	sc->f = f;
	sc->next = first;
	sc->end = end;
	sc->stop = stop;
	sc->stop_ctx = stop_ctx;
	for (unsigned i = 0; i < f->ninputs; i++) {
		const struct store_space *sp;

		if (f->inputs[i] >= schema->nspaces) {
			scan_close(sc);
			return err_set(e, ERR_INTERNAL, "bad_input", "filter input %u is not a space",
			               f->inputs[i]);
		}
		sp = &schema->spaces[f->inputs[i]];
		sc->vecs[i] = malloc((size_t)sp->dim * STORE_BLOCK_ROWS * sizeof(float));
		if (sc->vecs[i] == NULL)
			goto nomem;
		if ((f->needs & FILTER_ACCEPTS_F16) && sp->dtype == STORE_F16 &&
		    (sc->halves[i] = malloc((size_t)sp->dim * STORE_BLOCK_ROWS * 2)) == NULL)
			goto nomem;
		if (sp->dim > maxdim)
			maxdim = sp->dim;
		sc->b.vecs[i] = sc->vecs[i];
		sc->b.has_vec[i] = sc->has_vec[i];
		sc->b.dims[i] = sp->dim;
	}
	sc->tmp = malloc((size_t)maxdim * sizeof(float));
	if (sc->tmp == NULL)
		goto nomem;
	sc->b.rows = sc->rows;
	*out = sc;
	return 0;
nomem:
	scan_close(sc);
	return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

struct filter_scan *scan_base(struct scan *sc)
{
	return &sc->base.base;
}

static void clear_batch(struct scan *sc)
{
	for (size_t i = 0; i < sc->b.n; i++) {
		json_decref(sc->bodies[i]);
		sc->bodies[i] = NULL;
		free(sc->idbuf[i]);
		sc->idbuf[i] = NULL;
	}
	sc->b.n = 0;
}

void scan_close(struct scan *sc)
{
	if (sc == NULL)
		return;
	clear_batch(sc);
	for (unsigned i = 0; i < FILTER_MAX_INPUTS; i++) {
		free(sc->vecs[i]);
		free(sc->halves[i]);
	}
	free(sc->tmp);
	free(sc);
}

static int live_at(struct scan *sc, uint64_t row, int *live, struct err *e)
{
	uint64_t blk = row / STORE_ARRAY_ROWS;
	int rc;

	if (!sc->live_valid || sc->live_block != blk) {
		rc = store_reader_array(sc->r, sc->ds, STORE_ARRAY_LIVE, 1, blk * STORE_ARRAY_ROWS,
		                        STORE_ARRAY_ROWS, sc->live, e);
		if (rc != 0)
			return rc;
		sc->live_block = blk;
		sc->live_valid = 1;
	}
	*live = sc->live[row % STORE_ARRAY_ROWS] != 0;
	return 0;
}

/* Collects the id, kind and body of the batch's rows from the row scan. */
struct collect {
	struct scan *sc;
	uint64_t end;
	size_t at;
	int rc;
};

static int collect_fn(void *ctx, uint64_t row, unsigned kind, const char *id, size_t id_len,
                      const char *body, size_t body_len)
{
	struct collect *c = ctx;
	struct scan *sc = c->sc;

	if (row >= c->end)
		return 1;
	while (c->at < sc->b.n && sc->rows[c->at] < row)
		c->at++;
	if (c->at >= sc->b.n)
		return 1;
	if (sc->rows[c->at] != row)
		return 0; /* live in rows but not in the live array: cannot happen in a snapshot */
	sc->kinds[c->at] = kind;
	if (sc->f->needs & FILTER_NEEDS_ID) {
		sc->idbuf[c->at] = strndup(id, id_len);
		if (sc->idbuf[c->at] == NULL) {
			c->rc = ERR_NOMEM;
			return ERR_NOMEM;
		}
		sc->ids[c->at] = sc->idbuf[c->at];
	}
	if (sc->f->needs & FILTER_NEEDS_BODY)
		sc->bodies[c->at] = json_loadb(body, body_len, 0, NULL);
	c->at++;
	return 0;
}

int scan_next(struct scan *sc, const struct filter_batch **b, struct err *e)
{
	int rc;

	clear_batch(sc);
	while (sc->next < sc->end) {
		uint64_t blk = sc->next / STORE_BLOCK_ROWS;
		uint64_t lo = sc->next, hi = (blk + 1) * STORE_BLOCK_ROWS;
		size_t n = 0;

		if (hi > sc->end)
			hi = sc->end;
		if (sc->stop != NULL && (rc = sc->stop(sc->stop_ctx, lo)) != 0)
			return rc;
		sc->next = hi;
		for (uint64_t row = lo; row < hi; row++) {
			int live;

			if ((rc = live_at(sc, row, &live, e)) != 0)
				return rc;
			if (live)
				sc->rows[n++] = row;
		}
		if (n == 0)
			continue;
		sc->b.n = n;
		if (sc->f->needs & (FILTER_NEEDS_BODY | FILTER_NEEDS_ID)) {
			struct collect c = {.sc = sc, .end = hi};

			for (size_t j = 0; j < n; j++) {
				sc->kinds[j] = 0;
				sc->ids[j] = "";
			}
			rc = store_reader_rows(sc->r, sc->ds, lo, collect_fn, &c, e);
			if (rc == 0 && c.rc != 0)
				rc = c.rc;
			if (rc != 0)
				return rc == ERR_NOMEM ? err_set(e, ERR_NOMEM, "out_of_memory",
				                                 "out of memory")
				                       : rc;
			sc->b.kinds = sc->kinds;
			sc->b.ids = (sc->f->needs & FILTER_NEEDS_ID) ? sc->ids : NULL;
			sc->b.bodies = (sc->f->needs & FILTER_NEEDS_BODY) ? sc->bodies : NULL;
		} else {
			sc->b.kinds = NULL;
			sc->b.ids = NULL;
			sc->b.bodies = NULL;
		}
		for (unsigned i = 0; i < sc->f->ninputs; i++) {
			const struct store_space *sp = &sc->schema->spaces[sc->f->inputs[i]];
			const void *data = NULL;
			uint64_t present = 0;
			size_t vb = store_space_bytes(sp);

			rc = store_reader_block(sc->r, sc->ds, sc->f->inputs[i], blk, &data, &present,
			                        e);
			if (rc == ERR_NOT_FOUND) {
				present = 0;
			} else if (rc != 0) {
				return rc;
			}
			sc->b.f16[i] = NULL;
			sc->b.vecs[i] = sc->vecs[i];
			if (sc->halves[i] != NULL && present != 0) {
				/* the type reads halves: a full block as stored, else compacted */
				sc->b.vecs[i] = NULL;
				if (n == STORE_BLOCK_ROWS) {
					sc->b.f16[i] = data;
				} else {
					for (size_t j = 0; j < n; j++)
						memcpy(sc->halves[i] + (size_t)sp->dim * j,
						       (const char *)data +
						               vb * (sc->rows[j] % STORE_BLOCK_ROWS),
						       vb);
					sc->b.f16[i] = sc->halves[i];
				}
				for (size_t j = 0; j < n; j++)
					sc->has_vec[i][j] = (uint8_t)(present >>
					                              (sc->rows[j] % STORE_BLOCK_ROWS) & 1);
				continue;
			}
			if (present != 0 && n == STORE_BLOCK_ROWS) { /* a full block: one pass */
				if (sp->dtype == STORE_F16)
					vec_f16_to_f32(data, sc->vecs[i], (size_t)sp->dim * n);
				else
					memcpy(sc->vecs[i], data, vb * n);
				for (size_t j = 0; j < n; j++)
					sc->has_vec[i][j] = (uint8_t)(present >> j & 1);
				continue;
			}
			for (size_t j = 0; j < n; j++) {
				unsigned off = (unsigned)(sc->rows[j] % STORE_BLOCK_ROWS);
				float *dst = sc->vecs[i] + (size_t)sp->dim * j;

				sc->has_vec[i][j] = (uint8_t)(present >> off & 1);
				if (!sc->has_vec[i][j]) {
					memset(dst, 0, (size_t)sp->dim * sizeof(float));
				} else if (sp->dtype == STORE_F16) {
					vec_f16_to_f32((const uint16_t *)((const char *)data + vb * off),
					               dst, sp->dim);
				} else {
					memcpy(dst, (const char *)data + vb * off, vb);
				}
			}
		}
		*b = &sc->b;
		return 1;
	}
	return 0;
}

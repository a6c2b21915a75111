/* SPDX-License-Identifier: MIT */
/* ingest: record writes (ingest, delete, signals patch), each durable first, then every hook
 * that keeps derived state per row, in the order ingest.h gives. */
#include "ingest/ingest.h"

#include <stdlib.h>

#include "core/core.h"
#include "curate/instance.h"
#include "lib/err.h"
#include "lib/log.h"
#include "search/catalog.h"
#include "search/normalizers.h"
#include "store/store.h"

int ingest_commit(struct core *core, const struct store_dataset_info *ds,
                  const struct store_record *recs, size_t n, uint64_t *rows_out, struct err *e)
{
	uint64_t *rows = rows_out;
	struct err e2 = {0};
	int rc;

	if (n == 0)
		return 0;
	if (rows == NULL && (rows = malloc(n * sizeof *rows)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	catalog_before_ingest(core, ds->id); /* a saved index stops counting as current */
	if ((rc = store_put_records(core->store, ds->id, recs, n, rows, e)) != 0)
		goto out;
	/* The records are committed: from here on it is 0 whatever happens. Cheap filters score
	 * them now; a failure leaves them pending (counted in .../stats). */
	if (instance_on_ingest(core, ds->id, &ds->schema, recs, rows, n, &e2) != 0)
		log_msg(LOG_WARN, "ingest_scoring", "dataset=%s records=%zu msg=\"%s\"", ds->name, n,
		        e2.detail[0] ? e2.detail : err_str(e2.code));
	catalog_on_ingest(core, ds->id, &ds->schema, recs, rows, n);
	normalizers_on_ingest(core, ds->id, &ds->schema, recs, rows, n);
out:
	if (rows != rows_out)
		free(rows);
	return rc;
}

int ingest_delete(struct core *core, const struct store_dataset_info *ds, const char *id,
                  size_t id_len, uint64_t *row_out, struct err *e)
{
	struct err e2 = {0};
	uint64_t row;
	int rc;

	/* the delete changes the indexes that can remove: a saved file would hold the vector */
	catalog_before_ingest(core, ds->id);
	if ((rc = store_delete_record(core->store, ds->id, id, id_len, &row, e)) != 0)
		return rc;
	if (instance_on_delete(core, ds->id, row, &e2) != 0)
		log_msg(LOG_WARN, "delete_scores", "dataset=%s row=%llu msg=\"%s\"", ds->name,
		        (unsigned long long)row, e2.detail[0] ? e2.detail : err_str(e2.code));
	catalog_on_delete(core, ds->id, &ds->schema, row);
	normalizers_on_delete(core, ds->id, row);
	if (row_out != NULL)
		*row_out = row;
	return 0;
}

int ingest_patch(struct core *core, const struct store_dataset_info *ds, store_txn_fn fn,
                 void *ctx, uint64_t *rows, size_t n, struct err *e)
{
	struct err e2 = {0};
	int rc;

	if ((rc = store_write(core->store, fn, ctx, e)) != 0)
		return rc;
	/* Committed: a failed rescoring leaves the old scores, and POST .../filters/{name}:score
	 * recomputes them. */
	if (instance_on_patch(core, ds->id, &ds->schema, rows, n, &e2) != 0)
		log_msg(LOG_WARN, "patch_scoring", "dataset=%s records=%zu msg=\"%s\"", ds->name, n,
		        e2.detail[0] ? e2.detail : err_str(e2.code));
	return 0;
}

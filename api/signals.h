/* SPDX-License-Identifier: MIT */
/* signals: attach or update the signals of existing records (losses from an offline scorer)
 * without re-sending their embeddings: PATCH /v1/datasets/{name}/records/{id*} for one
 * record, POST /v1/datasets/{name}/records:signals with NDJSON for many.
 * Route handlers: each fills res (see api/http.h for ownership) and returns 0. */
#ifndef WINNOW_SIGNALS_H
#define WINNOW_SIGNALS_H

struct err;
struct http_req;
typedef struct json_t json_t;
struct http_res;

int signals_patch_one(struct http_req *r, struct http_res *res);
int signals_patch_bulk(struct http_req *r, struct http_res *res);

/* The parsers of a patch, exported for the fuzzer. */

/* Check one patch object ({"signals": {...}}, and "id" when with_id: the bulk form);
 * *id_out borrows the id. 0, or ERR_INVALID naming the field. */
int signals_check(const json_t *obj, int with_id, const char **id_out, struct err *e);

/* RFC 7396: merge patch into target (both objects), null removes. 0 or ERR_NOMEM. */
int signals_merge(json_t *target, const json_t *patch);

#endif

/* SPDX-License-Identifier: MIT */
/* signals: attach or update the signals of existing records (losses from an offline scorer)
 * without re-sending their embeddings: PATCH /v1/datasets/{name}/records/{id*} for one
 * record, POST /v1/datasets/{name}/records:signals with NDJSON for many.
 * Route handlers: each fills res (see api/http.h for ownership) and returns 0. */
#ifndef WINNOW_SIGNALS_H
#define WINNOW_SIGNALS_H

struct http_req;
struct http_res;

int signals_patch_one(struct http_req *r, struct http_res *res);
int signals_patch_bulk(struct http_req *r, struct http_res *res);

#endif

/* SPDX-License-Identifier: MIT */
/* recommend: POST /v1/datasets/{ds}/filters/{f}:recommend, the compute-aware keep fraction
 * (spec section 6, algo/scaling): the predicted error of keeping the top m buckets of the
 * filter's ranking under a training budget, the best m, and the score threshold that
 * realises its keep fraction on the dataset's stored scores. Route handler: fills res (see
 * api/http.h) and returns 0. */
#ifndef WINNOW_API_RECOMMEND_H
#define WINNOW_API_RECOMMEND_H

struct http_req;
struct http_res;

int recommend_post(struct http_req *r, struct http_res *res);

#endif

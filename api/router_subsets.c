/* SPDX-License-Identifier: MIT */
/* router_subsets: exact global subsets and merged exports. */
#include "api/router_subsets.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_util.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/npy.h"

int rsubsets_put(struct http_req *r, struct http_res *res)
{
	return rutil_broadcast(r, res);
}

int rsubsets_export(struct http_req *r, struct http_res *res)
{
	struct err e = {0};

	err_set(&e, ERR_NOT_SUPPORTED, "not_supported_by_router", "export: not yet");
	return http_problem(res, r, ERR_NOT_SUPPORTED, &e, NULL);
}

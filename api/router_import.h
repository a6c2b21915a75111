/* SPDX-License-Identifier: MIT */
/* router_import: POST .../records:import (multipart: NDJSON metadata + one .npy per space)
 * through the router. The router parses the parts with the daemon's own parsers
 * (api/import.h), splits the metadata lines by the placement of their id (a line without a
 * readable id goes to shard 0, which rejects it as one daemon does), cuts every array's rows
 * the same way into a new .npy per shard (the same dtype, the rows in the same order), sends
 * every shard its multipart body at once, and sums the answers with every error on the
 * client's metadata line. A request that is wrong as a whole (a part, an array header, a row
 * count) goes whole to shard 0, which answers the single daemon's problem and stores nothing.
 * As on one daemon, records are committed as they come: a shard that fails after others
 * stored their part is a 502 "partial", and sending the same import again is safe (upsert). */
#ifndef WINNOW_ROUTER_IMPORT_H
#define WINNOW_ROUTER_IMPORT_H

struct http_req;
struct http_res;

int rimport_post(struct http_req *r, struct http_res *res);

#endif

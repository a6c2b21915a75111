/* SPDX-License-Identifier: MIT */
/* router_stats: GET .../filters/{f}/stats through the router, the statistics one daemon holding
 * every record gives. The shards' counts are summed (records, count, unscorable, pending,
 * at_or_above, and per reason), min and max are the extremes of the shards', the mean is the
 * shards' means weighted by their counts (equal to one daemon's up to double rounding). The
 * histogram is asked again of every shard over the global [min, max] (?lo=&hi=), so that every
 * score falls in the bin it falls in on one daemon and the bins add up exactly. The quantiles
 * are exact: each is interpolated (numpy's linear method) between two order statistics of the
 * pool, each found over the shards by cluster/gselect.h (the probes of exact selection). */
#ifndef WINNOW_ROUTER_STATS_H
#define WINNOW_ROUTER_STATS_H

struct http_req;
struct http_res;

int rstats_get(struct http_req *r, struct http_res *res);

#endif

/* SPDX-License-Identifier: MIT */
/* fanout: libcurl multi transfers to the shards, a pool of multi handles for connection reuse. */
#include "cluster/fanout.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/shardmap.h"
#include "lib/err.h"

#define FANOUT_POOL 64

struct fanout {
	const struct shardmap *map;
	unsigned timeout_s;
	pthread_mutex_t mu;
	CURLM *pool[FANOUT_POOL]; /* idle multi handles, each with its connection cache */
	size_t npool;
};

/* One transfer in flight. */
struct xfer {
	struct fanout_call *call;
	CURL *h;
	struct curl_slist *hdrs;
	size_t cap;
	int too_big;
};

int fanout_open(struct fanout **out, const struct shardmap *map, unsigned timeout_s,
                struct err *e)
{
	struct fanout *f;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(e, ERR_INTERNAL, "curl_init", "libcurl could not start");
	f = calloc(1, sizeof *f);
	if (f == NULL)
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	f->map = map;
	f->timeout_s = timeout_s ? timeout_s : 300;
	pthread_mutex_init(&f->mu, NULL);
	*out = f;
	return 0;
}

void fanout_close(struct fanout *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->npool; i++)
		curl_multi_cleanup(f->pool[i]);
	pthread_mutex_destroy(&f->mu);
	free(f);
	curl_global_cleanup();
}

const struct shardmap *fanout_map(const struct fanout *f)
{
	return f->map;
}

static CURLM *multi_take(struct fanout *f)
{
	CURLM *m = NULL;

	pthread_mutex_lock(&f->mu);
	if (f->npool > 0)
		m = f->pool[--f->npool];
	pthread_mutex_unlock(&f->mu);
	if (m == NULL) {
		m = curl_multi_init();
		if (m != NULL)
			curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 32L);
	}
	return m;
}

static void multi_give(struct fanout *f, CURLM *m)
{
	pthread_mutex_lock(&f->mu);
	if (f->npool < FANOUT_POOL) {
		f->pool[f->npool++] = m;
		m = NULL;
	}
	pthread_mutex_unlock(&f->mu);
	if (m != NULL)
		curl_multi_cleanup(m);
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	struct fanout_call *c = x->call;
	size_t n = sz * nm;

	if (c->resp_len + n + 1 > FANOUT_MAX_BODY) {
		x->too_big = 1;
		return 0;
	}
	if (c->resp_len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 16384;
		char *nb;

		while (cap < c->resp_len + n + 1)
			cap *= 2;
		if ((nb = realloc(c->resp, cap)) == NULL)
			return 0;
		c->resp = nb;
		x->cap = cap;
	}
	memcpy(c->resp + c->resp_len, p, n);
	c->resp_len += n;
	c->resp[c->resp_len] = '\0';
	return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;

	if (n > 13 && strncasecmp(p, "content-type:", 13) == 0) {
		size_t o = 13, len;

		while (o < n && p[o] == ' ')
			o++;
		len = n - o;
		while (len > 0 && (p[o + len - 1] == '\r' || p[o + len - 1] == '\n'))
			len--;
		if (len >= sizeof x->call->resp_type)
			len = sizeof x->call->resp_type - 1;
		memcpy(x->call->resp_type, p + o, len);
		x->call->resp_type[len] = '\0';
	}
	return n;
}

static int xfer_setup(struct fanout *f, struct xfer *x, const char *request_id)
{
	struct fanout_call *c = x->call;
	char url[4096], hdr[1200];
	CURL *h = curl_easy_init();

	if (h == NULL)
		return -1;
	x->h = h;
	snprintf(url, sizeof url, "%s%s", f->map->url[c->shard], c->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, f->timeout_s < 5 ? f->timeout_s * 1000L : 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)f->timeout_s * 1000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (strcmp(c->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (c->body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
		snprintf(hdr, sizeof hdr, "Content-Type: %s",
		         c->content_type ? c->content_type : "application/json");
		x->hdrs = curl_slist_append(x->hdrs, hdr);
	}
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	if (f->map->key != NULL) {
		snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", f->map->key);
		x->hdrs = curl_slist_append(x->hdrs, hdr);
	}
	if (request_id != NULL && request_id[0] != '\0') {
		snprintf(hdr, sizeof hdr, "X-Request-Id: %s", request_id);
		x->hdrs = curl_slist_append(x->hdrs, hdr);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
	return 0;
}

static void xfer_done(struct xfer *x, CURLcode res)
{
	struct fanout_call *c = x->call;
	long code = 0;

	if (res == CURLE_OK) {
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
		c->status = (int)code;
		if (c->resp == NULL && (c->resp = strdup("")) == NULL)
			c->status = 0;
		return;
	}
	c->status = 0;
	snprintf(c->error, sizeof c->error, "%s",
	         x->too_big ? "the answer is larger than the router takes" : curl_easy_strerror(res));
}

int fanout_run(struct fanout *f, struct fanout_call *calls, size_t n, const char *request_id,
               struct err *e)
{
	struct xfer *xs = calloc(n ? n : 1, sizeof *xs);
	CURLM *m = multi_take(f);
	int running = 0, rc = 0;

	if (xs == NULL || m == NULL) {
		free(xs);
		if (m != NULL)
			multi_give(f, m);
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		calls[i].status = 0;
		calls[i].resp = NULL;
		calls[i].resp_len = 0;
		calls[i].resp_type[0] = calls[i].error[0] = '\0';
		xs[i].call = &calls[i];
		if (xfer_setup(f, &xs[i], request_id) != 0) {
			snprintf(calls[i].error, sizeof calls[i].error, "out of memory");
			continue;
		}
		curl_easy_setopt(xs[i].h, CURLOPT_PRIVATE, &xs[i]);
		curl_multi_add_handle(m, xs[i].h);
	}
	do {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct xfer *x = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			xfer_done(x, msg->data.result);
		}
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	} while (running > 0);
	for (size_t i = 0; i < n; i++) {
		if (xs[i].h != NULL) {
			curl_multi_remove_handle(m, xs[i].h);
			curl_easy_cleanup(xs[i].h);
		}
		curl_slist_free_all(xs[i].hdrs);
		if (calls[i].status == 0 && rc == 0)
			rc = err_set(e, ERR_GATEWAY, "shard_unreachable", "shard %zu (%s) did not answer: %s",
			             calls[i].shard, f->map->url[calls[i].shard],
			             calls[i].error[0] ? calls[i].error : "no answer");
	}
	multi_give(f, m);
	free(xs);
	return rc;
}

int fanout_all(struct fanout *f, struct fanout_call *calls, const char *method, const char *path,
               const char *body, size_t body_len, const char *content_type,
               const char *request_id, struct err *e)
{
	for (size_t i = 0; i < f->map->n; i++)
		calls[i] = (struct fanout_call){.shard = i, .method = method, .path = path,
		                                .body = body, .body_len = body_len,
		                                .content_type = content_type};
	return fanout_run(f, calls, f->map->n, request_id, e);
}

json_t *fanout_json(const struct fanout_call *c)
{
	if (c->resp == NULL || c->resp_len == 0)
		return NULL;
	return json_loadb(c->resp, c->resp_len, 0, NULL);
}

void fanout_calls_free(struct fanout_call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(calls[i].resp);
		calls[i].resp = NULL;
		calls[i].resp_len = 0;
	}
}

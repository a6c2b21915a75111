/* SPDX-License-Identifier: MIT */
/* ui: serves the dashboard's embedded static files with strict security headers. */
#include "api/ui.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/ui_assets.h"
#include "lib/err.h"

/* Everything is same-origin and nothing is inline: scripts, styles and fetches from 'self'
 * only, no frames, no forms posting elsewhere. SVG charts are built with the DOM, and
 * element.style assignments are CSSOM, which style-src does not govern. */
#define UI_CSP                                                                            \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "    \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct ui_file {
	const char *name;
	const char *type;
	const char *bytes;
	const size_t *len;
};

static const struct ui_file files[] = {
	{"index.html", "text/html; charset=utf-8", ui_index_html, &ui_index_html_len},
	{"app.js", "text/javascript; charset=utf-8", ui_app_js, &ui_app_js_len},
	{"style.css", "text/css; charset=utf-8", ui_style_css, &ui_style_css_len},
};

/* FNV-1a 64 of the bytes: the files change only with the binary, so a content hash lets
 * the browser revalidate cheaply instead of caching a stale page after an upgrade. */
static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int ui_get(struct http_req *r, struct http_res *res)
{
	const char *name = r->params[0] != NULL ? r->params[0] : "index.html";
	const struct ui_file *f = NULL;
	const char *inm;
	struct err e = {0};

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (strcmp(files[i].name, name) == 0)
			f = &files[i];
	if (f == NULL) {
		err_set(&e, ERR_NOT_FOUND, "ui_file_not_found", "the dashboard has no file named %s",
		        name);
		return http_problem(res, r, ERR_NOT_FOUND, &e, NULL);
	}
	snprintf(res->etag, sizeof res->etag, "\"%016llx\"",
	         (unsigned long long)fnv1a(f->bytes, *f->len));
	res->cache_control = "no-cache";
	res->csp = UI_CSP;
	res->content_type = f->type;
	inm = http_header(r, "If-None-Match");
	if (inm != NULL && strstr(inm, res->etag) != NULL) {
		res->status = 304;
		res->body = NULL;
		res->len = 0;
		return 0;
	}
	res->body = malloc(*f->len + 1);
	if (res->body == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	memcpy(res->body, f->bytes, *f->len + 1);
	res->len = *f->len;
	res->status = 200;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* ui: the dashboard's static files at /ui/ (issue 17 item 4). The page itself needs no key;
 * every API call it makes carries the key the user typed (docs/ui.md). */
#ifndef WINNOW_UI_H
#define WINNOW_UI_H

struct http_req;
struct http_res;

/* GET /ui/ and GET /ui/{file}: the embedded file (index.html for /ui/) with its media type,
 * an ETag (304 when If-None-Match matches), Cache-Control: no-cache and a strict
 * Content-Security-Policy that allows only same-origin scripts, styles and API calls.
 * An unknown file is a 404 problem `ui_file_not_found`. Returns 0. */
int ui_get(struct http_req *r, struct http_res *res);

#endif

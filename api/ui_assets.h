/* SPDX-License-Identifier: MIT */
/* ui_assets: the dashboard's static files (api/ui/), each embedded at build time by
 * scripts/embed.sh into a generated C file, so that winnowd serves /ui/ without reading files. */
#ifndef WINNOW_UI_ASSETS_H
#define WINNOW_UI_ASSETS_H

#include <stddef.h>

extern const char ui_index_html[]; /* NUL-terminated bytes of api/ui/index.html */
extern const size_t ui_index_html_len;
extern const char ui_app_js[];     /* api/ui/app.js */
extern const size_t ui_app_js_len;
extern const char ui_style_css[];  /* api/ui/style.css */
extern const size_t ui_style_css_len;

#endif

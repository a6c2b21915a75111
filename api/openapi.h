/* SPDX-License-Identifier: MIT */
/* openapi: the OpenAPI 3.1 document (api/openapi.json), embedded at build time into a
 * generated C file so that the daemon serves it without reading files. */
#ifndef WINNOW_OPENAPI_H
#define WINNOW_OPENAPI_H

#include <stddef.h>

extern const char openapi_json[];   /* NUL-terminated JSON text */
extern const size_t openapi_json_len;

#endif

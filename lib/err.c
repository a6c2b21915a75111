/* SPDX-License-Identifier: MIT */
/* err: names of the error codes and the detail setter. No state, thread-safe. */
#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *err_str(int code)
{
	switch (code) {
	case ERR_OK: return "ok";
	case ERR_NOMEM: return "out_of_memory";
	case ERR_MALFORMED: return "malformed";
	case ERR_INVALID: return "invalid";
	case ERR_NOT_FOUND: return "not_found";
	case ERR_CONFLICT: return "conflict";
	case ERR_TOO_LARGE: return "too_large";
	case ERR_MEDIA_TYPE: return "unsupported_media_type";
	case ERR_UNAUTHORIZED: return "unauthorized";
	case ERR_FORBIDDEN: return "forbidden";
	case ERR_UNAVAILABLE: return "unavailable";
	case ERR_IO: return "io_error";
	case ERR_STORE: return "storage_error";
	case ERR_VERSION: return "version_mismatch";
	case ERR_METHOD: return "method_not_allowed";
	case ERR_INTERNAL: return "internal";
	case ERR_CANCELLED: return "cancelled";
	case ERR_NOSPACE: return "insufficient_storage";
	case ERR_GATEWAY: return "bad_gateway";
	case ERR_NOT_SUPPORTED: return "not_supported_by_router";
	case ERR_NOT_ACCEPTABLE: return "not_acceptable";
	}
	return "unknown_error";
}

int err_set(struct err *e, int code, const char *slug, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL || e->code != 0)
		return code;
	e->code = code;
	snprintf(e->slug, sizeof e->slug, "%s", slug ? slug : err_str(code));
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof e->detail, fmt, ap);
	va_end(ap);
	return code;
}

void err_clear(struct err *e)
{
	if (e != NULL)
		memset(e, 0, sizeof *e);
}

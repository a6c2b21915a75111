/* SPDX-License-Identifier: MIT */
/* err: the project's one error enum, its names, and the optional user-facing detail.
 *
 * Every fallible function returns 0 or a negative enum err_code. Detail meant for
 * the API caller travels in an optional struct err (NULL allowed everywhere); api/
 * maps the codes to HTTP statuses in one table (api/problem.c). Thread-safe: no state. */
#ifndef WINNOW_ERR_H
#define WINNOW_ERR_H

#include <stddef.h>

enum err_code {
	ERR_OK = 0,
	ERR_NOMEM = -1,        /* allocation failed (500) */
	ERR_MALFORMED = -2,    /* the bytes do not parse: bad JSON, bad base64 (400) */
	ERR_INVALID = -3,      /* parses but means nothing valid: wrong dim, NaN (422) */
	ERR_NOT_FOUND = -4,    /* unknown dataset, record, route (404) */
	ERR_CONFLICT = -5,     /* exists with another definition (409) */
	ERR_TOO_LARGE = -6,    /* over a configured limit (413) */
	ERR_MEDIA_TYPE = -7,   /* unsupported Content-Type (415) */
	ERR_UNAUTHORIZED = -8, /* no or unknown credentials (401) */
	ERR_FORBIDDEN = -9,    /* credentials lack the scope (403) */
	ERR_UNAVAILABLE = -10, /* not ready or shutting down (503) */
	ERR_IO = -11,          /* a system call failed (500) */
	ERR_STORE = -12,       /* LMDB failed (500) */
	ERR_VERSION = -13,     /* data directory written by a newer winnow (500 at open) */
	ERR_METHOD = -14,      /* route exists, method does not (405) */
	ERR_INTERNAL = -15,    /* a bug: an invariant did not hold (500) */
	ERR_CANCELLED = -16,   /* the work was cancelled on request (499-like, 409 to callers) */
	ERR_NOSPACE = -17,     /* the disk holding the data is full (507) */
	ERR_GATEWAY = -18,     /* a shard behind the router failed or is unreachable (502) */
	ERR_NOT_SUPPORTED = -19, /* the router cannot serve this route (501) */
	ERR_NOT_ACCEPTABLE = -20, /* no answer in a media type the client accepts (406) */
};

/* Detail for whoever asked: a stable machine code string and a human sentence. */
struct err {
	int code;          /* enum err_code, 0 while unset */
	char slug[48];     /* stable machine string, e.g. "dimension_mismatch" */
	char detail[512];  /* human sentence, e.g. "space 'image' has dim 768, got 512" */
};

/* Name of a code, e.g. "not_found". Borrowed static string, never NULL. */
const char *err_str(int code);

/* Record code, slug and printf-style detail in e (e may be NULL); returns code so that
 * callers can write `return err_set(e, ERR_INVALID, "bad_dim", "...")`. The first
 * error set wins: a later call on an already-set e only returns code. */
int err_set(struct err *e, int code, const char *slug, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Clear e so it can be reused. e may be NULL. */
void err_clear(struct err *e);

#endif

/* SPDX-License-Identifier: MIT */
/* log: logfmt lines on stderr, one per event.
 *
 * Owns the process-wide log level (the one global the house style allows: an atomic
 * int). Thread-safe: each line is formatted on the caller's stack and written with one
 * write(2), so lines from different threads never interleave. Lines longer than
 * LOG_LINE_MAX are cut (and end in "..."). */
#ifndef WINNOW_LOG_H
#define WINNOW_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Longest line written, newline included. */
#define LOG_LINE_MAX 65536

/* How lines are written: logfmt (the default) or one JSON object a line with the same keys
 * ({"ts": ..., "level": ..., "event": ..., "status": 200, ...}; values that are JSON
 * numbers stay numbers, everything else is a string). */
enum log_format { LOG_LOGFMT = 0, LOG_JSON = 1 };

/* Set the process-wide format. */
void log_set_format(enum log_format f);

/* "logfmt" or "json": 0 and *out; ERR_INVALID otherwise (NULL included). */
int log_format_parse(const char *s, enum log_format *out);

/* Set the process-wide level; messages below it are dropped. Default LOG_INFO.
 * Out-of-range values are clamped into debug..error. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "debug", "info", "warn" (or "warning"), "error", case-insensitive.
 * 0 and *out on success, ERR_INVALID otherwise (s NULL included; *out untouched). */
int log_level_parse(const char *s, enum log_level *out);

/* "debug", "info", "warn", "error"; "unknown" for anything else. Static string. */
const char *log_level_name(enum log_level l);

/* Write one logfmt line on stderr:
 *   ts=2026-11-28T17:50:00.123Z level=info event=EVENT <fmt-expanded text>\n
 * event is a short constant token (quoted if it ever needs to be); fmt may be NULL
 * (nothing after event). The caller quotes values with log_quote(). Messages below the
 * level return before any formatting. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Quote a value for logfmt into buf: copied as is when it is a plain token, else
 * wrapped in double quotes with \" \\ \n \r \t and \u00XX escapes. Empty and NULL
 * become "". The result is always NUL-terminated and cut to fit size (a cut quoted
 * value keeps its closing quote). Returns buf (borrowed from the caller). size >= 3
 * is needed to hold "" at all; with size 0 nothing is written. */
const char *log_quote(const char *s, char *buf, size_t size);

#endif

/* SPDX-License-Identifier: MIT */
/* log: logfmt lines on stderr with one write(2) each, and the process-wide level.
 *
 * Owns the level (an atomic int, the only global). Thread-safe. A line is formatted in
 * a stack buffer; only lines that do not fit fall back to the heap (and, if that
 * fails, are written cut). */
#include "lib/log.h"


#include "lib/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level_cur = LOG_INFO;
static atomic_int log_format_cur = LOG_LOGFMT;

void log_set_format(enum log_format f)
{
	atomic_store_explicit(&log_format_cur, f == LOG_JSON ? LOG_JSON : LOG_LOGFMT,
	                      memory_order_relaxed);
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (s != NULL && strcasecmp(s, "logfmt") == 0)
		*out = LOG_LOGFMT;
	else if (s != NULL && strcasecmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return ERR_INVALID;
	return 0;
}

void log_set_level(enum log_level level)
{
	int l = (int)level;

	if (l < LOG_DEBUG)
		l = LOG_DEBUG;
	if (l > LOG_ERROR)
		l = LOG_ERROR;
	atomic_store_explicit(&log_level_cur, l, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level_cur, memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{"debug", LOG_DEBUG}, {"info", LOG_INFO},   {"warn", LOG_WARN},
		{"warning", LOG_WARN}, {"error", LOG_ERROR},
	};
	size_t i;

	if (s == NULL)
		return ERR_INVALID;
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return ERR_INVALID;
}

const char *log_level_name(enum log_level l)
{
	switch (l) {
	case LOG_DEBUG: return "debug";
	case LOG_INFO: return "info";
	case LOG_WARN: return "warn";
	case LOG_ERROR: return "error";
	}
	return "unknown";
}

static int needs_quote(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (*p == '\0')
		return 1;
	for (; *p; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '=' || *p == '\\')
			return 1;
	}
	return 0;
}

const char *log_quote(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	size_t pos = 0;

	if (size == 0)
		return buf;
	if (s == NULL)
		s = "";
	if (!needs_quote(s)) {
		snprintf(buf, size, "%s", s);
		return buf;
	}
	if (size < 3) {
		buf[0] = '\0';
		return buf;
	}
	buf[pos++] = '"';
	for (p = (const unsigned char *)s; *p; p++) {
		char esc[7];
		size_t n;

		switch (*p) {
		case '"': memcpy(esc, "\\\"", n = 2); break;
		case '\\': memcpy(esc, "\\\\", n = 2); break;
		case '\n': memcpy(esc, "\\n", n = 2); break;
		case '\r': memcpy(esc, "\\r", n = 2); break;
		case '\t': memcpy(esc, "\\t", n = 2); break;
		default:
			if (*p < ' ' || *p == 0x7f) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 15];
				n = 6;
			} else {
				esc[0] = (char)*p;
				n = 1;
			}
		}
		/* Keep room for the closing quote and the NUL; never split an escape. */
		if (pos + n + 2 > size)
			break;
		memcpy(buf + pos, esc, n);
		pos += n;
	}
	buf[pos++] = '"';
	buf[pos] = '\0';
	return buf;
}

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		p += w;
		n -= (size_t)w;
	}
}

/* JSON string content of p[0..n) (a logfmt value already unquoted or not) into out. */
static size_t json_chars(char *out, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 15];
			o += 6;
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

/* A token that JSON takes as a number as it is: -?digits[.digits][e[+-]digits], no
 * leading zero before more digits. */
static int json_number(const char *p, size_t n)
{
	size_t i = 0, d;

	if (i < n && p[i] == '-')
		i++;
	for (d = i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		;
	if (i == d || (p[d] == '0' && i - d > 1))
		return 0;
	if (i < n && p[i] == '.') {
		for (d = ++i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		if (++i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		for (d = i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	return i == n;
}

/* Write the logfmt line p[0..n) (no newline) as one JSON object: key=value and
 * key="quoted \"value\"" pairs become members, in order. A value with escapes is
 * unescaped first (\n, \t, \r, \", \\, \u00XX) and escaped again for JSON. */
static void write_json(const char *p, size_t n)
{
	char *out = malloc(n * 6 + 8), *val = malloc(n + 1);
	size_t o = 0, i = 0;

	if (out == NULL || val == NULL) {
		free(out);
		free(val);
		write_all(p, n);
		write_all("\n", 1);
		return;
	}
	out[o++] = '{';
	while (i < n) {
		size_t k0, k1, v = 0;
		int quoted = 0;

		while (i < n && p[i] == ' ')
			i++;
		k0 = i;
		while (i < n && p[i] != '=' && p[i] != ' ')
			i++;
		k1 = i;
		if (k1 == k0)
			break;
		if (i < n && p[i] == '=')
			i++;
		if (i < n && p[i] == '"') {
			quoted = 1;
			for (i++; i < n && p[i] != '"'; i++) {
				if (p[i] == '\\' && i + 1 < n) {
					char c = p[++i];

					if (c == 'n')
						val[v++] = '\n';
					else if (c == 't')
						val[v++] = '\t';
					else if (c == 'r')
						val[v++] = '\r';
					else if (c == 'u' && i + 4 < n) {
						val[v++] = (char)strtol((char[]){p[i + 3], p[i + 4], 0}, NULL, 16);
						i += 4;
					} else
						val[v++] = c;
				} else {
					val[v++] = p[i];
				}
			}
			i++; /* the closing quote */
		} else {
			while (i < n && p[i] != ' ')
				val[v++] = p[i++];
		}
		if (out[o - 1] != '{')
			out[o++] = ',';
		out[o++] = '"';
		o += json_chars(out + o, p + k0, k1 - k0);
		out[o++] = '"';
		out[o++] = ':';
		if (!quoted && json_number(val, v)) {
			memcpy(out + o, val, v);
			o += v;
		} else {
			out[o++] = '"';
			o += json_chars(out + o, val, v);
			out[o++] = '"';
		}
	}
	out[o++] = '}';
	out[o++] = '\n';
	write_all(out, o);
	free(out);
	free(val);
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	char stack[1024], *line = stack, *heap = NULL, ev[128];
	size_t cap = sizeof stack, head;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if ((int)level < atomic_load_explicit(&log_level_cur, memory_order_relaxed))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(stack, sizeof stack,
	             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	             tm.tm_sec, ts.tv_nsec / 1000000L, log_level_name(level),
	             log_quote(event ? event : "", ev, sizeof ev));
	if (n < 0)
		return;
	head = (size_t)n; /* < sizeof stack: the prefix is bounded (ev is 128 bytes) */
	if (fmt != NULL && fmt[0] != '\0') {
		stack[head++] = ' ';
		va_start(ap, fmt);
		n = vsnprintf(stack + head, cap - head, fmt, ap);
		va_end(ap);
		if (n < 0)
			n = 0;
		if ((size_t)n + head + 1 >= cap) {
			size_t want = (size_t)n + head + 2;

			if (want > LOG_LINE_MAX)
				want = LOG_LINE_MAX;
			heap = malloc(want);
			if (heap != NULL) {
				memcpy(heap, stack, head);
				line = heap;
				cap = want;
				va_start(ap, fmt);
				n = vsnprintf(line + head, cap - head, fmt, ap);
				va_end(ap);
				if (n < 0)
					n = 0;
			}
		}
		if ((size_t)n + head + 1 >= cap) {
			/* Cut: mark it so a reader knows the line is incomplete. */
			head = cap - 2;
			memcpy(line + head - 3, "...", 3);
		} else {
			head += (size_t)n;
		}
	}
	line[head++] = '\n';
	if (atomic_load_explicit(&log_format_cur, memory_order_relaxed) == LOG_JSON)
		write_json(line, head - 1);
	else
		write_all(line, head);
	free(heap);
}

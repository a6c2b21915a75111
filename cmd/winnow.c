/* SPDX-License-Identifier: MIT */
/* winnow: the command-line client of winnowd (libcurl + jansson), one verb per invocation.
 *
 * A verb is one request (datasets, filters, subsets, indexes, adapters, hubness, signals,
 * jobs), or a short conversation: `wait` and the `--wait` of the verbs that start a job poll
 * the job; `ingest` sends a file of any size in batches under the daemon's body limit;
 * `export` streams the answer to a file; `search --all` follows page tokens. One curl
 * handle is reused, so a conversation keeps its connection. Single-threaded.
 *
 * Output: the daemon's JSON answer (or a summary the verb builds) on stdout; problems,
 * per-batch reports and progress on stderr. The progress bar is drawn only when stderr is
 * a terminal; otherwise stderr carries plain lines without control characters. Exit codes
 * are in usage() (EXIT_*). */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/import.h"
#include "lib/b64.h"
#include "lib/err.h"
#include "lib/jsonnum.h"

#define WINNOW_DEFAULT_URL "http://127.0.0.1:8080"
#define DEFAULT_BATCH_BYTES (64ull << 20)
#define IMPORT_BATCH_BYTES (32ull << 20) /* import: well under the default 256M body limit */
#define IMPORT_MAX_SPACES 8
#define MAX_SUMMARY_ERRORS 1000 /* per-line errors kept in ingest's stdout summary */
#define MAX_PRINTED_ERRORS 20   /* per batch, on stderr */

enum {
	EXIT_HTTP = 1,     /* the daemon answered with an error */
	EXIT_USAGE = 2,    /* bad arguments, or a local file that cannot be read or written */
	EXIT_CONN = 3,     /* the daemon is not reachable, or the connection broke */
	EXIT_JOB = 4,      /* a job ended failed or cancelled */
	EXIT_TIMEOUT = 5,  /* wait --timeout passed before the job ended */
	EXIT_REJECTED = 6, /* ingest: some lines were rejected (the others are stored) */
};

/* ---- options ------------------------------------------------------------------------ */

enum opt {
	O_WAIT, O_TIMEOUT, O_BINS, O_THRESHOLD, O_METRIC, O_FORMAT, O_OUTPUT, O_FIELDS,
	O_SLICES, O_SLICE, O_SUBSET, O_SPACE, O_VFILE, O_VECTOR, O_RECORD, O_QSPACE, O_LIMIT,
	O_ALL, O_DATASET, O_BATCH, O_FROM, O_WITH, O_EXACT, O_EPS, O_NOEMB, O_DTYPE,
	O_TABLE, O_META, O_BATCHN, O_EFC, O_COUNT_
};

#define B(o) (1u << (o))

static const struct optdef {
	const char *name;
	enum opt id;
	int value; /* takes a value */
} optdefs[] = {
	{"--wait", O_WAIT, 0},           {"--timeout", O_TIMEOUT, 1},
	{"--bins", O_BINS, 1},           {"--threshold", O_THRESHOLD, 1},
	{"--metric", O_METRIC, 1},       {"--format", O_FORMAT, 1},
	{"-o", O_OUTPUT, 1},             {"--output", O_OUTPUT, 1},
	{"--fields", O_FIELDS, 1},       {"--slices", O_SLICES, 1},
	{"--slice", O_SLICE, 1},         {"--subset", O_SUBSET, 1},
	{"--space", O_SPACE, 1},         {"--vector-file", O_VFILE, 1},
	{"--vector", O_VECTOR, 1},       {"--record", O_RECORD, 1},
	{"--query-space", O_QSPACE, 1},  {"--limit", O_LIMIT, 1},
	{"--all", O_ALL, 0},             {"--dataset", O_DATASET, 1},
	{"--batch-bytes", O_BATCH, 1},   {"--from-line", O_FROM, 1},
	{"--with", O_WITH, 1},           {"--exact", O_EXACT, 0},
	{"--eps", O_EPS, 1},             {"--no-embeddings", O_NOEMB, 0},
	{"--dtype", O_DTYPE, 1},         {"--table", O_TABLE, 0},
	{"--metadata", O_META, 1},       {"--batch", O_BATCHN, 1},
	{"--ef-construction", O_EFC, 1},
};

struct opts {
	const char *v[O_COUNT_]; /* value, or "" for a flag given; NULL when absent */
	const char *spaces[IMPORT_MAX_SPACES]; /* every --space value in order (import) */
	int nspaces;
};

/* ---- the session --------------------------------------------------------------------- */

struct cli {
	char *base;      /* the daemon's URL, without a trailing '/' */
	const char *key; /* API key or NULL */
	int quiet;       /* no progress, no per-batch reports */
	int tty;         /* stderr is a terminal: progress is a redrawn bar */
	CURL *h;         /* reused: one connection for a whole conversation */
	double last_draw;
	int bar_shown; /* a bar is on the terminal's current line */
};

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *q;

		while (cap < b->len + n + 1)
			cap *= 2;
		q = realloc(b->p, cap);
		if (q == NULL)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request. The answer of a 2xx goes to sink when set (and is counted), else to ans. */
struct call {
	const char *method;
	const char *path; /* from the base URL on, percent-encoded */
	const char *body; /* borrowed; NULL = none */
	size_t body_len;
	const char *ctype;
	FILE *upload; /* borrowed; streamed as the body when set */
	FILE *sink;   /* borrowed */
	int (*progress)(void *ud, double down, double up);
	void *progress_ud;
	/* out */
	CURL *h;
	long status;
	struct buf ans;
	size_t sunk;      /* bytes written to sink */
	size_t newlines;  /* '\n' bytes written to sink */
	char tail[4096];  /* the last bytes written to sink (for a trailing NDJSON error line) */
	size_t tail_len;
	int sink_error;
};

static void call_free(struct call *c)
{
	free(c->ans.p);
	c->ans.p = NULL;
	c->ans.len = c->ans.cap = 0;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct call *c = ud;
	size_t n = size * nmemb;

	if (c->sink != NULL) {
		if (c->status == 0)
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
		if (c->status >= 200 && c->status < 300) {
			if (fwrite(ptr, 1, n, c->sink) != n) {
				c->sink_error = errno ? errno : EIO;
				return 0;
			}
			c->sunk += n;
			for (const char *q = ptr; (q = memchr(q, '\n', (size_t)(ptr + n - q))) != NULL; q++)
				c->newlines++;
			if (n >= sizeof c->tail) {
				memcpy(c->tail, ptr + n - sizeof c->tail, sizeof c->tail);
				c->tail_len = sizeof c->tail;
			} else {
				size_t keep = c->tail_len + n > sizeof c->tail ? sizeof c->tail - n : c->tail_len;

				memmove(c->tail, c->tail + c->tail_len - keep, keep);
				memcpy(c->tail + keep, ptr, n);
				c->tail_len = keep + n;
			}
			return n;
		}
	}
	return buf_add(&c->ans, ptr, n) == 0 ? n : 0;
}

/* Stream the upload; a read error aborts the request rather than ending the body early
 * (which would store a truncated file and report success). */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	FILE *f = ud;
	size_t n = fread(buf, size, nitems, f);

	if (n == 0 && ferror(f))
		return CURL_READFUNC_ABORT;
	return n;
}

static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
	struct call *c = ud;

	(void)dltotal;
	(void)ultotal;
	return c->progress(c->progress_ud, (double)dlnow, (double)ulnow);
}

/* Perform c. Returns 0 when the daemon answered (any status: see c->status), EXIT_CONN
 * after printing why it could not be reached, EXIT_USAGE on a local error. */
static int http(struct cli *s, struct call *c)
{
	struct curl_slist *hdr = NULL;
	char *url = NULL, *auth = NULL, *ct = NULL;
	CURLcode cc;
	int rc = EXIT_USAGE;

	c->h = s->h;
	c->status = 0;
	if (asprintf(&url, "%s%s", s->base, c->path) < 0) {
		url = NULL;
		goto nomem;
	}
	curl_easy_reset(s->h);
	curl_easy_setopt(s->h, CURLOPT_URL, url);
	curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s->h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(s->h, CURLOPT_USERAGENT, "winnow-cli/2");
	if (s->key != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s", s->key) < 0) {
			auth = NULL;
			goto nomem;
		}
		hdr = curl_slist_append(hdr, auth);
	}
	if (c->body != NULL || c->upload != NULL) {
		if (asprintf(&ct, "Content-Type: %s", c->ctype) < 0) {
			ct = NULL;
			goto nomem;
		}
		hdr = curl_slist_append(hdr, ct);
	}
	/* curl's "Expect: 100-continue" waits a second for a 100 that the daemon may not
	 * send before reading the body: a delay on every batch */
	hdr = curl_slist_append(hdr, "Expect:");
	if (c->upload != NULL) {
		struct stat st;

		curl_easy_setopt(s->h, CURLOPT_POST, 1L);
		curl_easy_setopt(s->h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(s->h, CURLOPT_READDATA, c->upload);
		/* A regular file announces its length; a pipe goes chunked. */
		if (fstat(fileno(c->upload), &st) == 0 && S_ISREG(st.st_mode))
			curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE,
			                 (curl_off_t)(st.st_size - ftello(c->upload)));
		else
			hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
	} else if (c->body != NULL) {
		curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
	}
	if (c->progress != NULL) {
		curl_easy_setopt(s->h, CURLOPT_XFERINFOFUNCTION, on_xfer);
		curl_easy_setopt(s->h, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(s->h, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(s->h, CURLOPT_CUSTOMREQUEST, c->method);
	curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, hdr);
	cc = curl_easy_perform(s->h);
	if (cc != CURLE_OK) {
		if (s->bar_shown) {
			fputs("\r\033[K", stderr);
			s->bar_shown = 0;
		}
		if (c->sink_error != 0) {
			fprintf(stderr, "winnow: cannot write the answer: %s\n", strerror(c->sink_error));
		} else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		           cc == CURLE_COULDNT_RESOLVE_PROXY ||
		           (cc == CURLE_OPERATION_TIMEDOUT && c->status == 0)) {
			fprintf(stderr,
			        "winnow: the daemon is not reachable at %s (%s); start winnowd, or point "
			        "WINNOW_URL or --url at it\n",
			        s->base, curl_easy_strerror(cc));
			rc = EXIT_CONN;
		} else {
			fprintf(stderr, "winnow: %s %s: %s\n", c->method, url, curl_easy_strerror(cc));
			rc = EXIT_CONN;
		}
		goto out;
	}
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &c->status);
	rc = 0;
	goto out;
nomem:
	fprintf(stderr, "winnow: out of memory\n");
out:
	curl_slist_free_all(hdr);
	free(url);
	free(auth);
	free(ct);
	return rc;
}

/* ---- printing ------------------------------------------------------------------------ */

/* Remove the bar from the terminal line before a message is printed. */
static void bar_clear(struct cli *s)
{
	if (s->bar_shown) {
		fputs("\r\033[K", stderr);
		s->bar_shown = 0;
	}
}

/* One per-line error of an ingest-like answer, its line mapped through map (NULL: as is). */
static void print_line_error(json_t *e, const size_t *map, size_t nmap, size_t *file_line)
{
	const char *id = json_string_value(json_object_get(e, "id"));
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *detail = json_string_value(json_object_get(e, "detail"));
	json_t *line = json_object_get(e, "line");

	fprintf(stderr, "  ");
	if (json_is_integer(line)) {
		json_int_t l = json_integer_value(line);

		if (map != NULL && l >= 1 && (size_t)l <= nmap)
			l = (json_int_t)map[l - 1];
		if (file_line != NULL)
			*file_line = (size_t)l;
		fprintf(stderr, "line %lld ", (long long)l);
	}
	if (id != NULL)
		fprintf(stderr, "id %s ", id);
	fprintf(stderr, "%s: %s\n", code ? code : "error", detail ? detail : "");
}

/* Problem details on stderr: status, code and detail, then any per-line errors. */
static void report_problem(struct cli *s, long status, const struct buf *a)
{
	json_t *j = a->p ? json_loadb(a->p, a->len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(j, "code"));
	const char *detail = json_string_value(json_object_get(j, "detail"));
	const char *title = json_string_value(json_object_get(j, "title"));
	const char *rid = json_string_value(json_object_get(j, "request_id"));
	json_t *errs = json_object_get(j, "errors"), *e;
	size_t i;

	bar_clear(s);
	if (j == NULL || !json_is_object(j)) {
		fprintf(stderr, "winnow: HTTP %ld%s%.*s\n", status, a->len ? ": " : "",
		        (int)(a->len > 2000 ? 2000 : a->len), a->p ? a->p : "");
		json_decref(j);
		return;
	}
	fprintf(stderr, "winnow: HTTP %ld %s: %s", status, code ? code : (title ? title : "error"),
	        detail ? detail : (title ? title : ""));
	if (rid != NULL)
		fprintf(stderr, " (request %s)", rid);
	fputc('\n', stderr);
	json_array_foreach(errs, i, e) {
		if (i == MAX_PRINTED_ERRORS) {
			fprintf(stderr, "  ... %zu more\n", json_array_size(errs) - i);
			break;
		}
		print_line_error(e, NULL, 0, NULL);
	}
	json_decref(j);
}

/* Print a 2xx answer on stdout (newline-terminated). */
static int print_answer(const struct buf *a)
{
	if (a->len > 0) {
		fwrite(a->p, 1, a->len, stdout);
		if (a->p[a->len - 1] != '\n')
			fputc('\n', stdout);
	}
	return fflush(stdout) == 0 ? 0 : EXIT_USAGE;
}

static int print_json(json_t *v)
{
	char *t = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	int rc;

	if (t == NULL) {
		fprintf(stderr, "winnow: out of memory\n");
		return EXIT_USAGE;
	}
	/* answers the CLI puts together print reals as the daemon does: 0.3, not jansson's
	 * 0.29999999999999999 */
	jsonnum_shorten(t, strlen(t));
	rc = puts(t) < 0 || fflush(stdout) != 0 ? EXIT_USAGE : 0;
	free(t);
	return rc;
}

/* A request whose answer is printed: 2xx on stdout, else the problem on stderr. */
static int simple(struct cli *s, const char *method, const char *path, const char *body,
                  const char *ctype)
{
	struct call c = {.method = method, .path = path, .body = body,
	                 .body_len = body ? strlen(body) : 0, .ctype = ctype};
	int rc = http(s, &c);

	if (rc == 0) {
		if (c.status >= 200 && c.status < 300) {
			rc = print_answer(&c.ans);
		} else {
			report_problem(s, c.status, &c.ans);
			rc = EXIT_HTTP;
		}
	}
	call_free(&c);
	return rc;
}

/* A request whose 2xx JSON answer is returned in *out (new reference); a problem is
 * reported. Returns 0 or an exit status. */
static int get_json(struct cli *s, const char *method, const char *path, const char *body,
                    json_t **out)
{
	struct call c = {.method = method, .path = path, .body = body,
	                 .body_len = body ? strlen(body) : 0, .ctype = "application/json"};
	int rc = http(s, &c);

	*out = NULL;
	if (rc == 0) {
		if (c.status >= 200 && c.status < 300) {
			*out = json_loadb(c.ans.p ? c.ans.p : "", c.ans.len, 0, NULL);
			if (*out == NULL) {
				fprintf(stderr, "winnow: %s %s: the answer is not JSON\n", method, path);
				rc = EXIT_HTTP;
			}
		} else {
			report_problem(s, c.status, &c.ans);
			rc = EXIT_HTTP;
		}
	}
	call_free(&c);
	return rc;
}

/* ---- paths --------------------------------------------------------------------------- */

/* RFC 3986: everything but the unreserved characters as %XX, so that ids holding '/',
 * '?', '%', spaces or any other byte reach the daemon intact. */
static int pct_add(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			if (buf_add(b, s, 1) != 0)
				return -1;
		} else if (buf_add(b, e, 3) != 0) {
			return -1;
		}
	}
	return 0;
}

/* A path from fmt where every "%s" is an argument percent-encoded. Returns a new string;
 * exits on out of memory (nothing sensible is left to do then). */
static char *upath(const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	int bad = 0;

	va_start(ap, fmt);
	for (const char *p = fmt; *p != '\0' && !bad; p++) {
		if (p[0] == '%' && p[1] == 's') {
			bad = pct_add(&b, va_arg(ap, const char *)) != 0;
			p++;
		} else {
			bad = buf_add(&b, p, 1) != 0;
		}
	}
	va_end(ap);
	if (bad) {
		fprintf(stderr, "winnow: out of memory\n");
		exit(EXIT_USAGE);
	}
	return b.p;
}

/* Append "?name=value" or "&name=value" (value encoded) when value is not NULL. */
static void qadd(char **path, const char *name, const char *value)
{
	struct buf b = {0};

	if (value == NULL)
		return;
	if (buf_add(&b, *path, strlen(*path)) != 0 ||
	    buf_add(&b, strchr(*path, '?') ? "&" : "?", 1) != 0 ||
	    buf_add(&b, name, strlen(name)) != 0 || buf_add(&b, "=", 1) != 0 ||
	    pct_add(&b, value) != 0) {
		fprintf(stderr, "winnow: out of memory\n");
		exit(EXIT_USAGE);
	}
	free(*path);
	*path = b.p;
}

/* ---- small helpers ------------------------------------------------------------------- */

/* Read a whole (small) file. Returns a new string, or NULL with errno set. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct buf a = {0};
	char chunk[65536];
	size_t n;
	int bad = 0;

	if (f == NULL)
		return NULL;
	while (!bad && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		bad = buf_add(&a, chunk, n) != 0;
	if (ferror(f) || bad) {
		errno = bad ? ENOMEM : EIO;
		free(a.p);
		a.p = NULL;
	} else if (a.p == NULL) {
		a.p = strdup("");
	}
	if (f != stdin)
		fclose(f);
	if (len != NULL)
		*len = a.len;
	return a.p;
}

/* A JSON argument: the text itself, or "@FILE" (@- for stdin). Checked to be JSON, so a
 * typo is caught here rather than as the daemon's 400. Returns a new string or NULL. */
static char *json_arg(const char *arg, json_t **parsed)
{
	char *t = arg[0] == '@' ? slurp(arg + 1, NULL) : strdup(arg);
	json_error_t je;
	json_t *v;

	if (t == NULL) {
		fprintf(stderr, "winnow: cannot read %s: %s\n", arg + 1, strerror(errno));
		return NULL;
	}
	v = json_loads(t, JSON_DECODE_ANY, &je);
	if (v == NULL) {
		fprintf(stderr, "winnow: %s is not JSON: %s (line %d, column %d)\n",
		        arg[0] == '@' ? arg + 1 : "the argument", je.text, je.line, je.column);
		free(t);
		return NULL;
	}
	if (parsed != NULL)
		*parsed = v;
	else
		json_decref(v);
	return t;
}

/* {"key": v} as compact JSON text (v borrowed). Returns a new string or NULL. */
static char *dump_wrapped(const char *key, json_t *v)
{
	json_t *o = json_object();
	char *t = NULL;

	if (o != NULL && json_object_set(o, key, v) == 0)
		t = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(o);
	return t;
}

/* The same JSON value the daemon makes of a query-string number (api/search.c qs_number),
 * so that a page token of a raw-rows search continues as a JSON search. */
static json_t *qs_number(const char *v)
{
	char *end;
	long long i;
	double x;

	errno = 0;
	i = strtoll(v, &end, 10);
	if (*v != '\0' && *end == '\0' && errno == 0)
		return json_integer(i);
	x = strtod(v, &end);
	if (*v != '\0' && *end == '\0' && isfinite(x))
		return json_real(x);
	return json_string(v);
}

static int parse_num(const char *what, const char *v, double lo, double hi, double *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (*v == '\0' || *end != '\0' || errno != 0 || !(x >= lo && x <= hi)) {
		fprintf(stderr, "winnow: %s must be a number from %g to %g (got '%s')\n", what, lo, hi,
		        v);
		return EXIT_USAGE;
	}
	*out = x;
	return 0;
}

/* A size with an optional K, M or G suffix (powers of 1024). */
static int parse_size(const char *what, const char *v, unsigned long long *out)
{
	char *end;
	unsigned long long x, mul = 1;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30;
	if (mul != 1)
		end++;
	if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || x == 0 ||
	    x > (1ull << 40) / mul) {
		fprintf(stderr, "winnow: %s must be a positive size like 65536, 512K or 64M (got '%s')\n",
		        what, v);
		return EXIT_USAGE;
	}
	*out = x * mul;
	return 0;
}

/* ---- progress ------------------------------------------------------------------------ */

static void fmt_rate(char *out, size_t n, double r, const char *unit)
{
	if (!(r >= 0))
		snprintf(out, n, "-- %s/s", unit);
	else if (r >= 1e9)
		snprintf(out, n, "%.1fG %s/s", r / 1e9, unit);
	else if (r >= 1e6)
		snprintf(out, n, "%.1fM %s/s", r / 1e6, unit);
	else if (r >= 1e4)
		snprintf(out, n, "%.1fk %s/s", r / 1e3, unit);
	else
		snprintf(out, n, "%.0f %s/s", r, unit);
}

static void fmt_eta(char *out, size_t n, double eta)
{
	if (!(eta >= 0) || eta > 1e8)
		snprintf(out, n, "ETA --");
	else if (eta < 60)
		snprintf(out, n, "ETA %.0fs", ceil(eta));
	else if (eta < 3600)
		snprintf(out, n, "ETA %dm%02ds", (int)eta / 60, (int)eta % 60);
	else
		snprintf(out, n, "ETA %dh%02dm", (int)eta / 3600, (int)eta % 3600 / 60);
}

static void fmt_bytes(char *out, size_t n, double b)
{
	if (b >= (double)(1ull << 30))
		snprintf(out, n, "%.1f GiB", b / (double)(1ull << 30));
	else if (b >= (double)(1ull << 20))
		snprintf(out, n, "%.1f MiB", b / (double)(1ull << 20));
	else if (b >= 1024)
		snprintf(out, n, "%.1f KiB", b / 1024);
	else
		snprintf(out, n, "%.0f B", b);
}

static int term_cols(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* Redraw the bar: frac in [0, 1] (negative: unknown), then text. Only on a terminal. */
static void bar_draw(struct cli *s, double frac, const char *text)
{
	char line[512];
	int cols = term_cols(), w = 20, len = 0, fill;

	if (!s->tty || s->quiet)
		return;
	if (frac >= 0) {
		if (frac > 1)
			frac = 1;
		fill = (int)(frac * w + 1e-9);
		line[len++] = '[';
		for (int i = 0; i < w; i++)
			line[len++] = i < fill ? '#' : '.';
		len += snprintf(line + len, sizeof line - (size_t)len, "] %3d%%  %s",
		                (int)(frac * 100 + 1e-9), text);
	} else {
		len += snprintf(line + len, sizeof line - (size_t)len, "%s", text);
	}
	if (len > (int)sizeof line - 1)
		len = (int)sizeof line - 1;
	if (len > cols - 1)
		len = cols - 1;
	fprintf(stderr, "\r%.*s\033[K", len, line);
	fflush(stderr);
	s->bar_shown = 1;
	s->last_draw = now_s();
}

/* End the bar's line, keeping its last state on the screen. */
static void bar_done(struct cli *s)
{
	if (s->bar_shown) {
		fputc('\n', stderr);
		s->bar_shown = 0;
	}
}

/* ---- jobs ---------------------------------------------------------------------------- */

static const char *job_str(json_t *j, const char *k)
{
	const char *v = json_string_value(json_object_get(j, k));

	return v ? v : "";
}

static double job_num(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);

	return json_is_number(v) ? json_number_value(v) : -1;
}

/* The bar of job j. A finished job has no rate any more (null): last_rate, the last one
 * seen while it ran, stands in. */
static void job_draw(struct cli *s, json_t *j, double last_rate)
{
	double done = job_num(j, "processed"), total = job_num(j, "total");
	double rate_v = job_num(j, "rate_per_s");
	char rate[32], eta[32], text[256], st[24] = "";
	const char *state = job_str(j, "state");

	fmt_rate(rate, sizeof rate, rate_v >= 0 ? rate_v : last_rate, "rec");
	fmt_eta(eta, sizeof eta, job_num(j, "eta_s"));
	if (strcmp(state, "succeeded") == 0)
		snprintf(eta, sizeof eta, "done");
	else if (strcmp(state, "running") != 0)
		snprintf(st, sizeof st, "%s ", state);
	snprintf(text, sizeof text, "%.0f/%.0f  %s  %s  %s%s %s/%s", done < 0 ? 0 : done,
	         total < 0 ? 0 : total, rate, eta, st, job_str(j, "kind"), job_str(j, "dataset"),
	         job_str(j, "target"));
	bar_draw(s, total > 0 ? done / total : (strcmp(state, "succeeded") == 0 ? 1 : 0), text);
}

/* Poll job id until it ends (or timeout seconds pass, when > 0). *out gets the last job
 * object (new reference) when not NULL. Returns 0 when it succeeded, else an exit status
 * (the reason printed). */
static int job_wait(struct cli *s, const char *id, double timeout, json_t **out)
{
	char *path = upath("/v1/jobs/%s", id);
	double t0 = now_s(), last_rate = -1;
	json_t *j = NULL;
	const char *state;
	int rc;

	for (;;) {
		json_decref(j);
		rc = get_json(s, "GET", path, NULL, &j);
		if (rc != 0)
			goto out;
		state = job_str(j, "state");
		if (job_num(j, "rate_per_s") >= 0)
			last_rate = job_num(j, "rate_per_s");
		if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)
			break;
		if (s->tty && !s->quiet)
			job_draw(s, j, last_rate);
		if (timeout > 0 && now_s() - t0 >= timeout) {
			bar_done(s);
			fprintf(stderr, "winnow: job %s is still %s after %g s (it goes on: winnow wait %s)\n",
			        id, state, timeout, id);
			rc = EXIT_TIMEOUT;
			goto out;
		}
		usleep(s->tty ? 150000 : 200000);
	}
	if (s->tty && !s->quiet) {
		job_draw(s, j, last_rate);
		bar_done(s);
	} else if (!s->quiet) {
		char rate[32] = "";

		if (last_rate >= 0) {
			rate[0] = ',';
			rate[1] = ' ';
			fmt_rate(rate + 2, sizeof rate - 2, last_rate, "rec");
		}
		fprintf(stderr, "winnow: job %s %s: %.0f/%.0f processed%s\n", id, state,
		        job_num(j, "processed"), job_num(j, "total"), rate);
	}
	if (strcmp(state, "succeeded") != 0) {
		json_t *err = json_object_get(j, "error");

		fprintf(stderr, "winnow: job %s %s", id, state);
		if (json_is_object(err))
			fprintf(stderr, ": %s: %s", job_str(err, "code"), job_str(err, "detail"));
		fputc('\n', stderr);
		rc = EXIT_JOB;
	}
out:
	free(path);
	if (out != NULL)
		*out = j;
	else
		json_decref(j);
	return rc;
}

/* The id of o when o is a job still queued or running, else NULL (new string). */
static char *live_job_id(json_t *o)
{
	const char *st = job_str(o, "state");
	json_t *id = json_object_get(o, "id");
	char tmp[32];

	if (!json_is_object(o) || id == NULL ||
	    (strcmp(st, "queued") != 0 && strcmp(st, "running") != 0))
		return NULL;
	if (json_is_string(id))
		return strdup(json_string_value(id));
	snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(id));
	return strdup(tmp);
}

/* The job a PUT/POST answer started: "job" of a 202, or (for an unchanged 200) a job still
 * running inside the resource, up to two levels down (a filter's "scoring", an index's
 * "build", a subset's "job"). Returns a new string or NULL. */
static char *job_of(json_t *ans)
{
	json_t *v = json_object_get(ans, "job"), *o, *w;
	const char *k;
	char tmp[32], *id;

	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
		return strdup(tmp);
	}
	json_object_foreach(ans, k, o) {
		const char *k2;

		if ((id = live_job_id(o)) != NULL)
			return id;
		if (!json_is_object(o))
			continue;
		json_object_foreach(o, k2, w)
			if ((id = live_job_id(w)) != NULL)
				return id;
	}
	return NULL;
}

/* Send a request that may start a job. Without --wait, print the answer. With it, wait for
 * the job, then print the resource at `resource` as it is now. */
static int start_job(struct cli *s, const struct opts *o, const char *method, const char *path,
                     const char *body, const char *resource)
{
	json_t *ans = NULL, *res = NULL;
	char *id;
	int rc;

	if (o->v[O_WAIT] == NULL)
		return simple(s, method, path, body, "application/json");
	rc = get_json(s, method, path, body, &ans);
	if (rc != 0)
		return rc;
	id = job_of(ans);
	if (id != NULL) {
		double timeout = 0;

		if (o->v[O_TIMEOUT] != NULL &&
		    parse_num("--timeout", o->v[O_TIMEOUT], 0, 1e9, &timeout) != 0) {
			rc = EXIT_USAGE;
		} else {
			rc = job_wait(s, id, timeout, NULL);
		}
		free(id);
	}
	if (rc == 0 && get_json(s, "GET", resource, NULL, &res) == 0)
		rc = print_json(res);
	else if (rc == 0)
		rc = EXIT_HTTP;
	json_decref(ans);
	json_decref(res);
	return rc;
}

/* ---- verbs --------------------------------------------------------------------------- */

typedef int (*verb_fn)(struct cli *s, char **a, const struct opts *o);

/* Every page of the list, as one {"datasets": [...]}. */
static int v_datasets(struct cli *s, char **a, const struct opts *o)
{
	json_t *all = json_array(), *page = NULL;
	const char *tok = NULL;
	int rc = 0;
	(void)a;

	do {
		char *p = upath("/v1/datasets");

		qadd(&p, "page_size", o->v[O_LIMIT]);
		qadd(&p, "page_token", tok);
		json_decref(page);
		page = NULL;
		rc = get_json(s, "GET", p, NULL, &page);
		free(p);
		if (rc != 0)
			break;
		json_array_extend(all, json_object_get(page, "datasets"));
		tok = json_string_value(json_object_get(page, "next_page_token"));
	} while (tok != NULL);
	if (rc == 0) {
		json_t *out = json_object();

		json_object_set(out, "datasets", all);
		rc = print_json(out);
		json_decref(out);
	}
	json_decref(page);
	json_decref(all);
	return rc;
}

static int v_health(struct cli *s, char **a, const struct opts *o)
{
	(void)a;
	(void)o;
	return simple(s, "GET", "/readyz", NULL, NULL);
}

static int v_filter_types(struct cli *s, char **a, const struct opts *o)
{
	(void)a;
	(void)o;
	return simple(s, "GET", "/v1/filter-types", NULL, NULL);
}

/* GET or DELETE of a path made of the verb's arguments. */
static int one(struct cli *s, const char *method, char *path)
{
	int rc = simple(s, method, path, NULL, NULL);

	free(path);
	return rc;
}

static int v_dataset(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s", a[0]));
}

static int v_drop(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s", a[0]));
}

/* PUT or POST of a JSON argument (text or @FILE). */
static int put_json(struct cli *s, const char *method, char *path, const char *arg)
{
	char *body = json_arg(arg, NULL);
	int rc = body ? simple(s, method, path, body, "application/json") : EXIT_USAGE;

	free(body);
	free(path);
	return rc;
}

static int v_create(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return put_json(s, "PUT", upath("/v1/datasets/%s", a[0]), a[1]);
}

static int v_get(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/records/%s", a[0], a[1]);

	if (o->v[O_NOEMB] != NULL)
		qadd(&p, "embeddings", "false");
	return one(s, "GET", p);
}

static int v_delete(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s/records/%s", a[0], a[1]));
}

/* POST a file as the streamed body (stdin with "-"). */
static int post_file(struct cli *s, char *path, const char *file, const char *ctype)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	struct call c = {.method = "POST", .path = path, .upload = f, .ctype = ctype};
	int rc;

	if (f == NULL) {
		fprintf(stderr, "winnow: cannot open %s: %s\n", file, strerror(errno));
		free(path);
		return EXIT_USAGE;
	}
	rc = http(s, &c);
	if (rc == 0) {
		if (c.status >= 200 && c.status < 300) {
			rc = print_answer(&c.ans);
		} else {
			report_problem(s, c.status, &c.ans);
			rc = EXIT_HTTP;
		}
	}
	if (f != stdin)
		fclose(f);
	call_free(&c);
	free(path);
	return rc;
}

/* ---- ingest ---- */

struct ingest {
	struct cli *s;
	double t0, file_size; /* file_size < 0: unknown (a pipe) */
	double done_bytes;    /* bytes of the file consumed before the batch in flight */
	double batch_bytes;   /* bytes of the file the batch in flight covers */
	size_t lines_sent;    /* records sent before the batch in flight */
	size_t batch_lines;
	const char *ctype;    /* of the batches: NULL for NDJSON */
};

static void ingest_draw(struct ingest *g, double up_frac)
{
	double bytes = g->done_bytes + g->batch_bytes * up_frac, el = now_s() - g->t0;
	char b1[32], b2[32], rate[32], eta[32], text[256];

	fmt_bytes(b1, sizeof b1, bytes);
	fmt_rate(rate, sizeof rate, el > 0.05 ? bytes / el / (1 << 20) : -1, "MiB");
	if (g->file_size > 0) {
		fmt_bytes(b2, sizeof b2, g->file_size);
		fmt_eta(eta, sizeof eta,
		        bytes > 0 && el > 0.05 ? (g->file_size - bytes) / (bytes / el) : -1);
		snprintf(text, sizeof text, "%s/%s  %zu lines  %s  %s", b1, b2,
		         g->lines_sent + (size_t)((double)g->batch_lines * up_frac), rate, eta);
		bar_draw(g->s, bytes / g->file_size, text);
	} else {
		snprintf(text, sizeof text, "ingest: %s  %zu lines  %s", b1,
		         g->lines_sent + (size_t)((double)g->batch_lines * up_frac), rate);
		bar_draw(g->s, -1, text);
	}
}

static int ingest_progress(void *ud, double down, double up)
{
	struct ingest *g = ud;
	(void)down;

	if (now_s() - g->s->last_draw >= 0.1 && g->batch_bytes > 0)
		ingest_draw(g, up / g->batch_bytes > 1 ? 1 : up / g->batch_bytes);
	return 0;
}

static int is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return 1;
}

/* Totals of a whole ingest, printed on stdout at the end. */
struct totals {
	long long accepted, rejected, batches;
	json_t *errors; /* with file line numbers, up to MAX_SUMMARY_ERRORS */
};

/* Send one batch; map[i] is the file line of the batch's (i+1)-th record. Returns 0, or an
 * exit status after which the ingest stops. */
static int ingest_batch(struct ingest *g, const char *path, struct buf *batch, const size_t *map,
                        size_t n, struct totals *t)
{
	struct cli *s = g->s;
	struct call c = {.method = "POST", .path = path, .body = batch->p, .body_len = batch->len,
	                 .ctype = g->ctype ? g->ctype : "application/x-ndjson"};
	json_t *ans, *errs, *e;
	long long acc, rej;
	size_t i, last = 0;
	int rc;

	if (s->tty && !s->quiet) {
		c.progress = ingest_progress;
		c.progress_ud = g;
	}
	rc = http(s, &c);
	if (rc != 0) {
		call_free(&c);
		return rc;
	}
	ans = json_loadb(c.ans.p ? c.ans.p : "", c.ans.len, 0, NULL);
	/* 422 no_records_accepted is a batch whose every line was rejected: reported like
	 * the others, and the ingest goes on */
	if (!(c.status == 200 || (c.status == 422 && json_is_array(json_object_get(ans, "errors")) &&
	                          json_is_integer(json_object_get(ans, "rejected"))))) {
		report_problem(s, c.status, &c.ans);
		json_decref(ans);
		call_free(&c);
		return EXIT_HTTP;
	}
	acc = json_integer_value(json_object_get(ans, "accepted"));
	rej = json_integer_value(json_object_get(ans, "rejected"));
	errs = json_object_get(ans, "errors");
	t->accepted += acc;
	t->rejected += rej;
	t->batches++;
	if (!s->quiet || rej > 0) {
		bar_clear(s);
		fprintf(stderr, "winnow: batch %lld, lines %zu-%zu: %lld accepted, %lld rejected\n",
		        t->batches, map[0], map[n - 1], acc, rej);
	}
	json_array_foreach(errs, i, e) {
		json_t *line = json_object_get(e, "line"), *copy;

		if (i < MAX_PRINTED_ERRORS)
			print_line_error(e, map, n, &last);
		else if (i == MAX_PRINTED_ERRORS)
			fprintf(stderr, "  ... %lld more in this batch (all in the summary on stdout, up "
			        "to %d)\n", rej - (long long)i, MAX_SUMMARY_ERRORS);
		if (json_array_size(t->errors) >= MAX_SUMMARY_ERRORS)
			continue;
		copy = json_deep_copy(e);
		if (copy != NULL && json_is_integer(line) && json_integer_value(line) >= 1 &&
		    (size_t)json_integer_value(line) <= n)
			json_object_set_new(copy, "line",
			                    json_integer((json_int_t)map[json_integer_value(line) - 1]));
		json_array_append_new(t->errors, copy);
	}
	json_decref(ans);
	call_free(&c);
	return 0;
}

static int v_ingest(struct cli *s, char **a, const struct opts *o)
{
	const char *file = a[1];
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	unsigned long long limit = DEFAULT_BATCH_BYTES;
	double from = 1;
	struct ingest g = {.s = s, .t0 = now_s(), .file_size = -1};
	struct totals t = {.errors = json_array()};
	struct buf batch = {0};
	size_t *map = NULL, nmap = 0, capmap = 0, lineno = 0, cap = 0, first_unsent = 0;
	char *line = NULL, *path = upath("/v1/datasets/%s/records", a[0]);
	ssize_t len;
	struct stat st;
	double consumed = 0, batch_start = 0;
	int rc = 0;

	if (f == NULL) {
		fprintf(stderr, "winnow: cannot open %s: %s\n", file, strerror(errno));
		rc = EXIT_USAGE;
		goto out;
	}
	if ((o->v[O_BATCH] && parse_size("--batch-bytes", o->v[O_BATCH], &limit) != 0) ||
	    (o->v[O_FROM] && parse_num("--from-line", o->v[O_FROM], 1, 1e15, &from) != 0)) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
		g.file_size = (double)st.st_size;
	for (;;) {
		len = getline(&line, &cap, f);
		if (len < 0 || (batch.len > 0 && batch.len + (size_t)len + 1 > limit)) {
			/* send what is gathered: at the end, or before a line that would not fit */
			if (batch.len > 0) {
				g.done_bytes = batch_start;
				g.batch_bytes = consumed - batch_start;
				g.lines_sent = (size_t)(t.accepted + t.rejected);
				g.batch_lines = nmap;
				rc = ingest_batch(&g, path, &batch, map, nmap, &t);
				if (rc != 0) {
					first_unsent = map[0];
					break;
				}
				batch.len = 0;
				nmap = 0;
				batch_start = consumed;
				if (s->tty && !s->quiet) {
					g.done_bytes = consumed;
					g.batch_bytes = 0;
					g.lines_sent = (size_t)(t.accepted + t.rejected);
					ingest_draw(&g, 0);
				}
			}
			if (len < 0)
				break;
		}
		lineno++;
		consumed += (double)len;
		if ((double)lineno < from || is_blank(line, (size_t)len)) {
			if (batch.len == 0)
				batch_start = consumed;
			continue;
		}
		if (nmap == capmap) {
			size_t nc = capmap ? capmap * 2 : 4096;
			size_t *m = realloc(map, nc * sizeof *map);

			if (m == NULL)
				goto nomem;
			map = m;
			capmap = nc;
		}
		map[nmap++] = lineno;
		if (buf_add(&batch, line, (size_t)len) != 0 ||
		    (line[len - 1] != '\n' && buf_add(&batch, "\n", 1) != 0))
			goto nomem;
	}
	if (ferror(f)) {
		fprintf(stderr, "winnow: cannot read %s: %s\n", file, strerror(errno));
		rc = EXIT_USAGE;
		first_unsent = first_unsent ? first_unsent : lineno + 1;
	}
	bar_done(s);
	if (rc == 0 && t.batches == 0) {
		fprintf(stderr, "winnow: %s has no records%s\n", file,
		        from > 1 ? " at or after --from-line" : "");
		rc = EXIT_USAGE;
	}
	if (rc != 0 && first_unsent > 0)
		fprintf(stderr, "winnow: stopped; lines before %zu are sent (resume with --from-line "
		        "%zu)\n", first_unsent, first_unsent);
	{
		json_t *sum = json_pack("{s:I, s:I, s:I, s:I, s:I, s:O}", "accepted",
		                        (json_int_t)t.accepted, "rejected", (json_int_t)t.rejected,
		                        "batches", (json_int_t)t.batches, "lines", (json_int_t)lineno,
		                        "from_line", (json_int_t)from, "errors", t.errors);
		if (first_unsent > 0)
			json_object_set_new(sum, "resume_from_line", json_integer((json_int_t)first_unsent));
		if (sum != NULL && print_json(sum) != 0 && rc == 0)
			rc = EXIT_USAGE;
		json_decref(sum);
	}
	if (rc == 0 && t.rejected > 0)
		rc = EXIT_REJECTED;
	goto out;
nomem:
	fprintf(stderr, "winnow: out of memory\n");
	rc = EXIT_USAGE;
out:
	if (f != NULL && f != stdin)
		fclose(f);
	json_decref(t.errors);
	free(batch.p);
	free(map);
	free(line);
	free(path);
	return rc;
}

/* ---- import ---- */

/* One --space NAME=FILE.npy: the mapped file and its parsed header. */
struct imp_space {
	char name[80];
	const char *file;
	void *map;
	size_t map_len;
	struct import_npy npy;
};

/* Write into buf (room for 192 bytes) the v1.0 header numpy writes for a C-order (rows, cols)
 * array of elt-byte little-endian floats: magic, version, u16 length, the dict padded with
 * spaces and a final '\n' to a multiple of 64 bytes. Returns its length. */
static size_t imp_npy_header(char *buf, unsigned elt, size_t rows, size_t cols)
{
	char dict[128];
	int n = snprintf(dict, sizeof dict,
	                 "{'descr': '<f%u', 'fortran_order': False, 'shape': (%zu, %zu), }", elt,
	                 rows, cols);
	size_t total = (10 + (size_t)n + 1 + 63) & ~(size_t)63, hlen = total - 10;

	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (char)(hlen & 0xff);
	buf[9] = (char)(hlen >> 8);
	memcpy(buf + 10, dict, (size_t)n);
	memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
	buf[total - 1] = '\n';
	return total;
}

/* The multipart body of one batch: the metadata lines, then rows [first, first + n) of
 * every array as an .npy of its own. */
static int imp_body(struct buf *body, const char *boundary, const struct buf *meta,
                    const struct imp_space *sp, int nsp, size_t first, size_t n)
{
	char hdr[256], npy[192];
	int len;

	body->len = 0;
	len = snprintf(hdr, sizeof hdr,
	               "--%s\r\nContent-Disposition: form-data; name=\"metadata\"\r\n"
	               "Content-Type: application/x-ndjson\r\n\r\n", boundary);
	if (buf_add(body, hdr, (size_t)len) != 0 || buf_add(body, meta->p, meta->len) != 0 ||
	    buf_add(body, "\r\n", 2) != 0)
		return -1;
	for (int k = 0; k < nsp; k++) {
		size_t rowb = (size_t)sp[k].npy.cols * sp[k].npy.elt;
		size_t hl = imp_npy_header(npy, sp[k].npy.elt, n, (size_t)sp[k].npy.cols);

		len = snprintf(hdr, sizeof hdr,
		               "--%s\r\nContent-Disposition: form-data; name=\"space.%s\"\r\n"
		               "Content-Type: application/octet-stream\r\n\r\n", boundary, sp[k].name);
		if (buf_add(body, hdr, (size_t)len) != 0 || buf_add(body, npy, hl) != 0 ||
		    buf_add(body, (const char *)sp[k].npy.data + first * rowb, n * rowb) != 0 ||
		    buf_add(body, "\r\n", 2) != 0)
			return -1;
	}
	len = snprintf(hdr, sizeof hdr, "--%s--\r\n", boundary);
	return buf_add(body, hdr, (size_t)len);
}

/* Map every --space NAME=FILE and check that the arrays have one row count. */
static int imp_open_spaces(const struct opts *o, struct imp_space *sp, int *nsp,
                           uint64_t *rows, size_t *rowbytes)
{
	*nsp = 0;
	*rowbytes = 0;
	for (int k = 0; k < o->nspaces; k++) {
		const char *v = o->spaces[k], *eq = strchr(v, '=');
		struct imp_space *p = &sp[k];
		struct err e = {0};
		struct stat st;
		int fd;

		if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof p->name || eq[1] == '\0') {
			fprintf(stderr, "winnow: --space takes NAME=FILE.npy (got '%s')\n", v);
			return EXIT_USAGE;
		}
		memcpy(p->name, v, (size_t)(eq - v));
		p->name[eq - v] = '\0';
		p->file = eq + 1;
		if ((fd = open(p->file, O_RDONLY)) < 0 || fstat(fd, &st) != 0) {
			fprintf(stderr, "winnow: cannot open %s: %s\n", p->file, strerror(errno));
			if (fd >= 0)
				close(fd);
			return EXIT_USAGE;
		}
		p->map_len = (size_t)st.st_size;
		p->map = p->map_len ? mmap(NULL, p->map_len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
		close(fd);
		(*nsp)++;
		if (p->map == MAP_FAILED) {
			p->map = NULL;
			fprintf(stderr, "winnow: cannot map %s: %s\n", p->file, strerror(errno));
			return EXIT_USAGE;
		}
		if (import_npy_parse(p->map ? p->map : "", p->map_len, &p->npy, &e) != 0) {
			fprintf(stderr, "winnow: %s: %s\n", p->file, e.detail);
			return EXIT_USAGE;
		}
		if (k > 0 && p->npy.rows != *rows) {
			fprintf(stderr, "winnow: %s has %llu rows, %s has %llu\n", p->file,
			        (unsigned long long)p->npy.rows, sp[0].file, (unsigned long long)*rows);
			return EXIT_USAGE;
		}
		*rows = p->npy.rows;
		*rowbytes += (size_t)(p->npy.cols * p->npy.elt);
	}
	return 0;
}

/* Non-blank lines of f (a regular file), which is rewound. */
static long long imp_count(FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long long n = 0;

	while ((len = getline(&line, &cap, f)) >= 0)
		n += !is_blank(line, (size_t)len);
	free(line);
	if (ferror(f) || fseeko(f, 0, SEEK_SET) != 0)
		return -1;
	return n;
}

static int v_import(struct cli *s, char **a, const struct opts *o)
{
	struct imp_space sp[IMPORT_MAX_SPACES];
	const char *file = o->v[O_META];
	FILE *f = NULL;
	unsigned long long limit = IMPORT_BATCH_BYTES;
	double from = 1, batchn = 1e9;
	char boundary[48], ctype[96];
	struct ingest g = {.s = s, .t0 = now_s(), .file_size = -1, .ctype = ctype};
	struct totals t = {.errors = json_array()};
	struct buf meta = {0}, body = {0};
	size_t *map = NULL, nmap = 0, capmap = 0, lineno = 0, cap = 0, first_unsent = 0;
	size_t rec = 0, batch_first = 0, rowbytes = 0;
	uint64_t rows = 0;
	char *line = NULL, *path = upath("/v1/datasets/%s/records:import", a[0]);
	ssize_t len;
	struct stat st;
	double consumed = 0, batch_start = 0;
	int rc = 0, nsp = 0;

	memset(sp, 0, sizeof sp);
	/* a boundary the data cannot plausibly hold: 128 bits from the clock and the pid */
	snprintf(boundary, sizeof boundary, "winnow-%016llx%08lx%08x",
	         (unsigned long long)(now_s() * 1e9), (unsigned long)getpid(),
	         (unsigned)rand() ^ (unsigned)time(NULL));
	snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", boundary);
	if (file == NULL || o->nspaces == 0) {
		fprintf(stderr, "winnow: import needs --metadata FILE.ndjson and at least one --space "
		        "NAME=FILE.npy (records without arrays: winnow ingest)\n");
		rc = EXIT_USAGE;
		goto out;
	}
	if ((o->v[O_BATCH] && parse_size("--batch-bytes", o->v[O_BATCH], &limit) != 0) ||
	    (o->v[O_FROM] && parse_num("--from-line", o->v[O_FROM], 1, 1e15, &from) != 0) ||
	    (o->v[O_BATCHN] && parse_num("--batch", o->v[O_BATCHN], 1, 1e9, &batchn) != 0) ||
	    (rc = imp_open_spaces(o, sp, &nsp, &rows, &rowbytes)) != 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	batchn = floor(batchn);
	if ((f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb")) == NULL) {
		fprintf(stderr, "winnow: cannot open %s: %s\n", file, strerror(errno));
		rc = EXIT_USAGE;
		goto out;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
		/* a count mismatch is found before anything is sent */
		long long n = imp_count(f);

		if (n >= 0 && (uint64_t)n != rows) {
			fprintf(stderr, "winnow: %s has %lld records, the arrays have %llu rows\n", file, n,
			        (unsigned long long)rows);
			rc = EXIT_USAGE;
			goto out;
		}
		g.file_size = (double)st.st_size + (double)rows * (double)rowbytes;
	}
	for (;;) {
		len = getline(&line, &cap, f);
		/* send what is gathered: at the end, at --batch records, or before a record that
		 * would take the body past --batch-bytes (1 KiB for the part headers) */
		if (len < 0 || (nmap > 0 && ((double)nmap >= batchn ||
		                             meta.len + (size_t)len + (nmap + 1) * rowbytes + 1024 > limit))) {
			if (nmap > 0) {
				if (imp_body(&body, boundary, &meta, sp, nsp, batch_first, nmap) != 0)
					goto nomem;
				g.done_bytes = batch_start;
				g.batch_bytes = consumed - batch_start;
				g.lines_sent = (size_t)(t.accepted + t.rejected);
				g.batch_lines = nmap;
				rc = ingest_batch(&g, path, &body, map, nmap, &t);
				if (rc != 0) {
					first_unsent = map[0];
					break;
				}
				meta.len = 0;
				nmap = 0;
				batch_start = consumed;
				if (s->tty && !s->quiet) {
					g.done_bytes = consumed;
					g.batch_bytes = 0;
					g.lines_sent = (size_t)(t.accepted + t.rejected);
					ingest_draw(&g, 0);
				}
			}
			if (len < 0)
				break;
		}
		lineno++;
		consumed += (double)len;
		if (is_blank(line, (size_t)len)) {
			if (nmap == 0)
				batch_start = consumed;
			continue;
		}
		if (rec >= rows) {
			fprintf(stderr, "winnow: %s line %zu: more records than the arrays' %llu rows\n",
			        file, lineno, (unsigned long long)rows);
			rc = EXIT_USAGE;
			first_unsent = nmap > 0 ? map[0] : lineno;
			break;
		}
		consumed += (double)rowbytes;
		if ((double)lineno < from) {
			rec++;
			if (nmap == 0)
				batch_start = consumed;
			continue;
		}
		if (nmap == capmap) {
			size_t nc = capmap ? capmap * 2 : 4096;
			size_t *m = realloc(map, nc * sizeof *map);

			if (m == NULL)
				goto nomem;
			map = m;
			capmap = nc;
		}
		if (nmap == 0)
			batch_first = rec;
		map[nmap++] = lineno;
		rec++;
		if (buf_add(&meta, line, (size_t)len) != 0 ||
		    (line[len - 1] != '\n' && buf_add(&meta, "\n", 1) != 0))
			goto nomem;
	}
	if (ferror(f)) {
		fprintf(stderr, "winnow: cannot read %s: %s\n", file, strerror(errno));
		rc = EXIT_USAGE;
		first_unsent = first_unsent ? first_unsent : lineno + 1;
	} else if (rc == 0 && rec < rows) {
		fprintf(stderr, "winnow: %s has %zu records, the arrays have %llu rows\n", file, rec,
		        (unsigned long long)rows);
		rc = EXIT_USAGE;
	}
	bar_done(s);
	if (rc == 0 && t.batches == 0) {
		fprintf(stderr, "winnow: %s has no records%s\n", file,
		        from > 1 ? " at or after --from-line" : "");
		rc = EXIT_USAGE;
	}
	if (rc != 0 && first_unsent > 0)
		fprintf(stderr, "winnow: stopped; lines before %zu are sent (resume with --from-line "
		        "%zu)\n", first_unsent, first_unsent);
	{
		json_t *sum = json_pack("{s:I, s:I, s:I, s:I, s:I, s:O}", "accepted",
		                        (json_int_t)t.accepted, "rejected", (json_int_t)t.rejected,
		                        "batches", (json_int_t)t.batches, "lines", (json_int_t)lineno,
		                        "from_line", (json_int_t)from, "errors", t.errors);
		if (first_unsent > 0)
			json_object_set_new(sum, "resume_from_line", json_integer((json_int_t)first_unsent));
		if (sum != NULL && print_json(sum) != 0 && rc == 0)
			rc = EXIT_USAGE;
		json_decref(sum);
	}
	if (rc == 0 && t.rejected > 0)
		rc = EXIT_REJECTED;
	goto out;
nomem:
	fprintf(stderr, "winnow: out of memory\n");
	rc = EXIT_USAGE;
out:
	if (f != NULL && f != stdin)
		fclose(f);
	for (int k = 0; k < nsp; k++)
		if (sp[k].map != NULL)
			munmap(sp[k].map, sp[k].map_len);
	json_decref(t.errors);
	free(meta.p);
	free(body.p);
	free(map);
	free(line);
	free(path);
	return rc;
}

/* ---- filters ---- */

static int v_filter_put(struct cli *s, char **a, const struct opts *o)
{
	char *body = json_arg(a[2], NULL), *p = upath("/v1/datasets/%s/filters/%s", a[0], a[1]);
	int rc = body ? start_job(s, o, "PUT", p, body, p) : EXIT_USAGE;

	free(body);
	free(p);
	return rc;
}

static int v_filter_score(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/filters/%s:score", a[0], a[1]);
	char *r = upath("/v1/datasets/%s/filters/%s", a[0], a[1]);
	int rc = start_job(s, o, "POST", p, NULL, r);

	free(p);
	free(r);
	return rc;
}

static int v_filter_get(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/filters/%s", a[0], a[1]));
}

static int v_filter_list(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/filters", a[0]));
}

static int v_filter_delete(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s/filters/%s", a[0], a[1]));
}

static int v_filter_stats(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/filters/%s/stats", a[0], a[1]);

	qadd(&p, "bins", o->v[O_BINS]);
	qadd(&p, "threshold", o->v[O_THRESHOLD]);
	return one(s, "GET", p);
}

static int v_filter_record(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/filters/%s/records/%s", a[0], a[1], a[2]));
}

static int v_filter_sweep(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/filters/%s:sweep", a[0], a[1]), *body;
	json_t *eps;
	int rc;

	if (a[2] != NULL)
		return put_json(s, "POST", p, a[2]);
	if (o->v[O_EPS] == NULL) {
		fprintf(stderr, "winnow: filter sweep needs --eps LIST or a JSON body\n");
		free(p);
		return EXIT_USAGE;
	}
	eps = json_array();
	for (const char *q = o->v[O_EPS]; *q != '\0';) {
		size_t n = strcspn(q, ",");
		char tmp[64];
		double x;

		snprintf(tmp, sizeof tmp, "%.*s", (int)(n < 63 ? n : 63), q);
		if (parse_num("--eps", tmp, 0, 1, &x) != 0) {
			json_decref(eps);
			free(p);
			return EXIT_USAGE;
		}
		json_array_append_new(eps, json_real(x));
		q += n + (q[n] == ',');
	}
	body = dump_wrapped("eps", eps);
	json_decref(eps);
	rc = body ? simple(s, "POST", p, body, "application/json") : EXIT_USAGE;
	free(body);
	free(p);
	return rc;
}

/* The :recommend answer as a table: one row a number of top buckets kept, the best marked. */
static void print_recommend_table(const json_t *a)
{
	const json_t *curve = json_object_get(a, "curve"), *pt;
	json_int_t best = json_integer_value(json_object_get(a, "best_m"));
	size_t i;

	printf("budget %.6g samples seen, pool %.6g, bucket size %.6g, scale_c %s\n",
	       json_number_value(json_object_get(a, "budget_samples")),
	       json_number_value(json_object_get(a, "pool_size")),
	       json_number_value(json_object_get(a, "bucket_size")),
	       json_is_true(json_object_get(a, "scale_c")) ? "on" : "off");
	printf("   %3s  %6s  %12s  %10s  %9s  %9s\n", "m", "keep", "threshold", "kept", "error",
	       "accuracy");
	json_array_foreach(curve, i, pt) {
		json_int_t m = json_integer_value(json_object_get(pt, "m"));
		const json_t *thr = json_object_get(pt, "threshold");
		char t[32] = "-";

		if (json_is_number(thr))
			snprintf(t, sizeof t, "%.6g", json_number_value(thr));
		printf(" %s %3lld  %6.3f  %12s  %10lld  %9.5f  %9.5f\n", m == best ? "*" : " ",
		       (long long)m, json_number_value(json_object_get(pt, "keep_fraction")), t,
		       (long long)json_integer_value(json_object_get(pt, "kept")),
		       json_number_value(json_object_get(pt, "predicted_error")),
		       json_number_value(json_object_get(pt, "predicted_accuracy")));
	}
	if (json_object_get(a, "fit") != NULL)
		printf("fitted: residual %.6g, rmse %.6g\n",
		       json_number_value(json_object_get(json_object_get(a, "fit"), "residual")),
		       json_number_value(json_object_get(json_object_get(a, "fit"), "rmse")));
}

static int v_recommend(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/filters/%s:recommend", a[0], a[1]), *body;
	json_t *ans = NULL;
	int rc;

	if (o->v[O_TABLE] == NULL)
		return put_json(s, "POST", p, a[2]);
	if ((body = json_arg(a[2], NULL)) == NULL) {
		free(p);
		return EXIT_USAGE;
	}
	rc = get_json(s, "POST", p, body, &ans);
	if (rc == 0)
		print_recommend_table(ans);
	json_decref(ans);
	free(body);
	free(p);
	return rc;
}

/* ---- subsets ---- */

static int v_subset_put(struct cli *s, char **a, const struct opts *o)
{
	json_t *v = NULL;
	char *body = json_arg(a[2], &v), *p = upath("/v1/datasets/%s/subsets/%s", a[0], a[1]);
	int rc = EXIT_USAGE;

	/* a bare list of steps is the common case: wrap it */
	if (body != NULL && json_is_array(v)) {
		free(body);
		body = dump_wrapped("steps", v);
	}
	if (body != NULL)
		rc = start_job(s, o, "PUT", p, body, p);
	json_decref(v);
	free(body);
	free(p);
	return rc;
}

static int v_subset_get(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/subsets/%s", a[0], a[1]));
}

static int v_subset_list(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/subsets", a[0]));
}

static int v_subset_delete(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s/subsets/%s", a[0], a[1]));
}

static int v_why(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/records/%s/decisions", a[0], a[1]);

	qadd(&p, "subset", o->v[O_SUBSET]);
	return one(s, "GET", p);
}

struct xfer {
	struct cli *s;
	double t0;
};

static int export_progress(void *ud, double down, double up)
{
	struct xfer *x = ud;
	char b[32], rate[32], text[128];
	double el = now_s() - x->t0;
	(void)up;

	if (now_s() - x->s->last_draw < 0.1)
		return 0;
	fmt_bytes(b, sizeof b, down);
	fmt_rate(rate, sizeof rate, el > 0.05 ? down / el / (1 << 20) : -1, "MiB");
	snprintf(text, sizeof text, "export: %s  %s", b, rate);
	bar_draw(x->s, -1, text);
	return 0;
}

static int v_export(struct cli *s, char **a, const struct opts *o)
{
	const char *fmt = o->v[O_FORMAT] ? o->v[O_FORMAT] : "ndjson";
	const char *out = o->v[O_OUTPUT];
	int to_stdout = out == NULL || strcmp(out, "-") == 0;
	char *p = upath("/v1/datasets/%s/subsets/%s:export", a[0], a[1]), *part = NULL;
	struct xfer x = {s, now_s()};
	struct call c = {.method = "GET", .path = p};
	json_t *sum;
	long long count = -1;
	int rc;

	if (strcmp(fmt, "ndjson") != 0 && strcmp(fmt, "ids") != 0 && strcmp(fmt, "npy") != 0) {
		fprintf(stderr, "winnow: --format is ndjson, ids or npy (got '%s')\n", fmt);
		free(p);
		return EXIT_USAGE;
	}
	if ((o->v[O_SLICES] == NULL) != (o->v[O_SLICE] == NULL)) {
		fprintf(stderr, "winnow: --slices N and --slice I go together\n");
		free(p);
		return EXIT_USAGE;
	}
	qadd(&p, "format", fmt);
	qadd(&p, "fields", o->v[O_FIELDS]);
	qadd(&p, "slices", o->v[O_SLICES]);
	qadd(&p, "slice_id", o->v[O_SLICE]);
	c.path = p;
	/* written next to the target and renamed at the end: a failed export leaves no file
	 * that looks complete */
	if (to_stdout) {
		c.sink = stdout;
	} else if (asprintf(&part, "%s.part", out) < 0 || (c.sink = fopen(part, "wb")) == NULL) {
		fprintf(stderr, "winnow: cannot write %s: %s\n", part ? part : out, strerror(errno));
		free(part);
		free(p);
		return EXIT_USAGE;
	}
	if (s->tty && !s->quiet) {
		c.progress = export_progress;
		c.progress_ud = &x;
	}
	rc = http(s, &c);
	bar_done(s);
	if (rc == 0 && (c.status < 200 || c.status >= 300)) {
		report_problem(s, c.status, &c.ans);
		rc = EXIT_HTTP;
	}
	if (rc == 0 && strcmp(fmt, "ndjson") == 0 && c.tail_len > 0) {
		/* the last line may be an error that cut the stream short */
		size_t end = c.tail_len, st;
		json_t *last;

		while (end > 0 && c.tail[end - 1] == '\n')
			end--;
		st = end;
		while (st > 0 && c.tail[st - 1] != '\n')
			st--;
		last = json_loadb(c.tail + st, end - st, 0, NULL);
		if (json_is_object(json_object_get(last, "error"))) {
			json_t *e = json_object_get(last, "error");

			fprintf(stderr, "winnow: the export broke off: %s: %s\n", job_str(e, "code"),
			        job_str(e, "detail"));
			rc = EXIT_HTTP;
		} else if (json_is_integer(json_object_get(json_object_get(last, "summary"), "count"))) {
			count = json_integer_value(json_object_get(json_object_get(last, "summary"), "count"));
		}
		json_decref(last);
	}
	if (rc == 0 && strcmp(fmt, "npy") == 0 && c.sunk >= 128)
		count = (long long)(c.sunk - 128) / 16;
	if (rc == 0 && (strcmp(fmt, "ids") == 0 || (strcmp(fmt, "ndjson") == 0 && count < 0)))
		count = (long long)c.newlines; /* one member a line (no summary line unless asked) */
	if (!to_stdout) {
		if (fclose(c.sink) != 0 && rc == 0) {
			fprintf(stderr, "winnow: cannot write %s: %s\n", part, strerror(errno));
			rc = EXIT_USAGE;
		}
		if (rc == 0 && rename(part, out) != 0) {
			fprintf(stderr, "winnow: cannot rename %s to %s: %s\n", part, out, strerror(errno));
			rc = EXIT_USAGE;
		}
		if (rc != 0)
			unlink(part);
		if (rc == 0) {
			sum = json_pack("{s:s, s:s, s:I}", "file", out, "format", fmt, "bytes",
			                (json_int_t)c.sunk);
			if (count >= 0)
				json_object_set_new(sum, "count", json_integer(count));
			rc = print_json(sum);
			json_decref(sum);
		}
	}
	call_free(&c);
	free(part);
	free(p);
	return rc;
}

/* ---- indexes and search ---- */

static int v_index_put(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/indexes/%s", a[0], a[1]), *body;
	json_t *b = json_pack("{s:s}", "factory", a[2]);
	int rc;

	if (o->v[O_METRIC] != NULL)
		json_object_set_new(b, "metric", json_string(o->v[O_METRIC]));
	if (o->v[O_EFC] != NULL) /* the daemon judges it: a bad value is its 422 */
		json_object_set_new(b, "ef_construction", qs_number(o->v[O_EFC]));
	body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	rc = body ? start_job(s, o, "PUT", p, body, p) : EXIT_USAGE;
	free(body);
	free(p);
	return rc;
}

static int v_index_get(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/indexes/%s", a[0], a[1]));
}

static int v_index_list(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/indexes", a[0]));
}

static int v_index_delete(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s/indexes/%s", a[0], a[1]));
}

/* The search parameters other than the query, as the JSON body fields; the same values
 * that the query string of a raw-rows search stands for. */
static json_t *search_params(const struct opts *o)
{
	json_t *b = json_object();

	if (o->v[O_SPACE])
		json_object_set_new(b, "space", json_string(o->v[O_SPACE]));
	if (o->v[O_LIMIT])
		json_object_set_new(b, "limit", qs_number(o->v[O_LIMIT]));
	if (o->v[O_THRESHOLD])
		json_object_set_new(b, "score_threshold", qs_number(o->v[O_THRESHOLD]));
	if (o->v[O_METRIC])
		json_object_set_new(b, "metric", json_string(o->v[O_METRIC]));
	if (o->v[O_SUBSET])
		json_object_set_new(b, "subset", json_string(o->v[O_SUBSET]));
	if (o->v[O_WITH]) {
		json_t *w = json_array();

		for (const char *p = o->v[O_WITH]; *p != '\0';) {
			size_t n = strcspn(p, ",");

			json_array_append_new(w, json_stringn(p, n));
			p += n + (p[n] == ',');
		}
		json_object_set_new(b, "with", w);
	}
	if (o->v[O_EXACT])
		json_object_set_new(b, "params", json_pack("{s:b}", "exact", 1));
	if (o->v[O_QSPACE])
		json_object_set_new(b, "query_space", json_string(o->v[O_QSPACE]));
	return b;
}

/* The query string of a raw-rows search: the same parameters as search_params(). */
static char *rows_path(const char *ds, const struct opts *o, int count)
{
	char *p = upath(count ? "/v1/datasets/%s/search:count" : "/v1/datasets/%s/search", ds);

	qadd(&p, "space", o->v[O_SPACE]);
	qadd(&p, "limit", o->v[O_LIMIT]);
	qadd(&p, "score_threshold", o->v[O_THRESHOLD]);
	qadd(&p, "metric", o->v[O_METRIC]);
	qadd(&p, "subset", o->v[O_SUBSET]);
	qadd(&p, "with", o->v[O_WITH]);
	qadd(&p, "exact", o->v[O_EXACT] ? "true" : NULL);
	qadd(&p, "dtype", o->v[O_DTYPE]);
	return p;
}

/* Follow one query's page tokens: body is the search for it (without page_token), ans its
 * first answer. Appends every later page's results to ans's. */
static int follow_pages(struct cli *s, const char *path, json_t *body, json_t *ans)
{
	json_t *results = json_object_get(ans, "results");
	long long pages = 1;
	int rc = 0;

	while (rc == 0 && json_is_string(json_object_get(ans, "page_token"))) {
		json_t *next = NULL;
		char *t;

		json_object_set(body, "page_token", json_object_get(ans, "page_token"));
		t = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17));
		if (t == NULL)
			return EXIT_USAGE;
		rc = get_json(s, "POST", path, t, &next);
		free(t);
		if (rc != 0)
			break;
		json_array_extend(results, json_object_get(next, "results"));
		json_object_set(ans, "page_token", json_object_get(next, "page_token"));
		json_object_set(ans, "stats", json_object_get(next, "stats"));
		pages++;
		json_decref(next);
		if (s->tty && !s->quiet && now_s() - s->last_draw >= 0.1) {
			char text[96];

			snprintf(text, sizeof text, "search: %zu hits, %lld pages",
			         json_array_size(results), pages);
			bar_draw(s, -1, text);
		}
	}
	json_object_del(body, "page_token");
	json_object_set_new(ans, "count", json_integer((json_int_t)json_array_size(results)));
	json_object_set_new(ans, "pages", json_integer(pages));
	return rc;
}

static int search_or_count(struct cli *s, char **a, const struct opts *o, int count)
{
	int nq = (o->v[O_VFILE] != NULL) + (o->v[O_VECTOR] != NULL) + (o->v[O_RECORD] != NULL);
	char *path = upath(count ? "/v1/datasets/%s/search:count" : "/v1/datasets/%s/search", a[0]);
	json_t *params = search_params(o), *ans = NULL, *vecs = NULL, *qv = NULL;
	char *raw = NULL, *body = NULL;
	size_t raw_len = 0, esz = o->v[O_DTYPE] && strcmp(o->v[O_DTYPE], "f16") == 0 ? 2 : 4;
	int rc = EXIT_USAGE;

	if (nq != 1) {
		fprintf(stderr, "winnow: give one query: --vector-file FILE, --vector JSON or "
		        "--record ID\n");
		goto out;
	}
	if (o->v[O_VFILE] != NULL) {
		struct call c = {.method = "POST", .ctype = "application/octet-stream"};
		char *rp = rows_path(a[0], o, count);

		raw = slurp(o->v[O_VFILE], &raw_len);
		if (raw == NULL) {
			fprintf(stderr, "winnow: cannot read %s: %s\n", o->v[O_VFILE], strerror(errno));
			free(rp);
			goto out;
		}
		if (raw_len == 0 || raw_len % esz != 0) {
			fprintf(stderr, "winnow: %s holds %zu bytes: not rows of %s values\n",
			        o->v[O_VFILE], raw_len, esz == 2 ? "f16" : "f32");
			free(rp);
			goto out;
		}
		c.path = rp;
		c.body = raw;
		c.body_len = raw_len;
		rc = http(s, &c);
		free(rp);
		if (rc == 0 && (c.status < 200 || c.status >= 300)) {
			report_problem(s, c.status, &c.ans);
			rc = EXIT_HTTP;
		}
		if (rc == 0 && o->v[O_ALL] == NULL)
			rc = print_answer(&c.ans);
		else if (rc == 0 && (ans = json_loadb(c.ans.p, c.ans.len, 0, NULL)) == NULL)
			rc = EXIT_HTTP;
		call_free(&c);
		if (rc != 0 || o->v[O_ALL] == NULL)
			goto out;
		/* continue each query of the batch as a JSON search of its own row: the daemon
		 * binds a token to the parameters and the vector's values, not their encoding */
		{
			json_t *qs = json_object_get(ans, "queries"), *q;
			size_t nrows = json_array_size(qs), i, dim = nrows ? raw_len / esz / nrows : 0;

			json_array_foreach(qs, i, q) {
				char *b = b64_encode(raw + i * dim * esz, dim * esz, NULL);

				json_object_set_new(params, "vector", json_pack("{s:s, s:s}", "dtype",
				                    esz == 2 ? "f16" : "f32", "b64", b ? b : ""));
				free(b);
				if ((rc = follow_pages(s, path, params, q)) != 0)
					goto out;
			}
			bar_clear(s);
			rc = print_json(nrows == 1 ? json_array_get(qs, 0) : ans);
		}
		goto out;
	}
	if (o->v[O_VECTOR] != NULL) {
		char *t = json_arg(o->v[O_VECTOR], &qv);

		if (t == NULL)
			goto out;
		free(t);
		vecs = json_is_array(qv) && json_is_array(json_array_get(qv, 0)) ? qv : NULL;
		json_object_set(params, vecs ? "vectors" : "vector", qv);
	} else {
		json_object_set_new(params, "record_id", json_string(o->v[O_RECORD]));
	}
	body = json_dumps(params, JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (body == NULL)
		goto out;
	if (o->v[O_ALL] == NULL || count) {
		rc = simple(s, "POST", path, body, "application/json");
		goto out;
	}
	if ((rc = get_json(s, "POST", path, body, &ans)) != 0)
		goto out;
	if (vecs != NULL) {
		json_t *q;
		size_t i;

		json_object_del(params, "vectors");
		json_array_foreach(json_object_get(ans, "queries"), i, q) {
			json_object_set(params, "vector", json_array_get(vecs, i));
			if ((rc = follow_pages(s, path, params, q)) != 0)
				goto out;
		}
	} else if ((rc = follow_pages(s, path, params, ans)) != 0) {
		goto out;
	}
	bar_clear(s);
	rc = print_json(ans);
out:
	json_decref(params);
	json_decref(ans);
	json_decref(qv);
	free(raw);
	free(body);
	free(path);
	return rc;
}

static int v_search(struct cli *s, char **a, const struct opts *o)
{
	return search_or_count(s, a, o, 0);
}

static int v_count(struct cli *s, char **a, const struct opts *o)
{
	return search_or_count(s, a, o, 1);
}

/* ---- adapters, hubness, signals ---- */

static int v_adapter_put(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return put_json(s, "PUT", upath("/v1/datasets/%s/adapters/%s", a[0], a[1]), a[2]);
}

static int v_adapter_get(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/adapters/%s", a[0], a[1]));
}

static int v_adapter_list(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/adapters", a[0]));
}

static int v_adapter_delete(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s/adapters/%s", a[0], a[1]));
}

static int v_adapter_pairs(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return post_file(s, upath("/v1/datasets/%s/adapters/%s/pairs", a[0], a[1]), a[2],
	                 "application/x-ndjson");
}

static int v_adapter_train(struct cli *s, char **a, const struct opts *o)
{
	char *p = upath("/v1/datasets/%s/adapters/%s:train", a[0], a[1]);
	char *r = upath("/v1/datasets/%s/adapters/%s", a[0], a[1]);
	int rc = start_job(s, o, "POST", p, NULL, r);

	free(p);
	free(r);
	return rc;
}

static int v_hub_put(struct cli *s, char **a, const struct opts *o)
{
	char *body = json_arg(a[2], NULL), *p = upath("/v1/datasets/%s/hubness/%s", a[0], a[1]);
	int rc = body ? start_job(s, o, "PUT", p, body, p) : EXIT_USAGE;

	free(body);
	free(p);
	return rc;
}

static int v_hub_get(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/hubness/%s", a[0], a[1]));
}

static int v_hub_list(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/datasets/%s/hubness", a[0]));
}

static int v_hub_delete(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/datasets/%s/hubness/%s", a[0], a[1]));
}

static int v_hub_report(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return put_json(s, "POST", upath("/v1/datasets/%s/hubness/%s:report", a[0], a[1]), a[2]);
}

static int v_signals(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return post_file(s, upath("/v1/datasets/%s/records:signals", a[0]), a[1],
	                 "application/x-ndjson");
}

static int v_signal(struct cli *s, char **a, const struct opts *o)
{
	json_t *v = NULL;
	char *body = json_arg(a[2], &v), *p = upath("/v1/datasets/%s/records/%s", a[0], a[1]);
	int rc = EXIT_USAGE;
	(void)o;

	/* {"clip_b32": 0.3} is the signals themselves; {"signals": {...}} the whole patch */
	if (body != NULL && json_is_object(v) && json_object_get(v, "signals") == NULL) {
		free(body);
		body = dump_wrapped("signals", v);
	}
	if (body != NULL)
		rc = simple(s, "PATCH", p, body, "application/merge-patch+json");
	json_decref(v);
	free(body);
	free(p);
	return rc;
}

/* ---- jobs ---- */

static int v_jobs(struct cli *s, char **a, const struct opts *o)
{
	char *p = o->v[O_DATASET] ? upath("/v1/datasets/%s/jobs", o->v[O_DATASET])
	                          : upath("/v1/jobs");
	(void)a;

	qadd(&p, "limit", o->v[O_LIMIT]);
	return one(s, "GET", p);
}

static int v_job(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "GET", upath("/v1/jobs/%s", a[0]));
}

static int v_cancel(struct cli *s, char **a, const struct opts *o)
{
	(void)o;
	return one(s, "DELETE", upath("/v1/jobs/%s", a[0]));
}

static int v_wait(struct cli *s, char **a, const struct opts *o)
{
	double timeout = 0;
	json_t *j = NULL;
	int rc;

	if (o->v[O_TIMEOUT] != NULL && parse_num("--timeout", o->v[O_TIMEOUT], 0, 1e9, &timeout) != 0)
		return EXIT_USAGE;
	rc = job_wait(s, a[0], timeout, &j);
	if (j != NULL && print_json(j) != 0 && rc == 0)
		rc = EXIT_USAGE;
	json_decref(j);
	return rc;
}

/* ---- the verb table ------------------------------------------------------------------ */

#define SEARCH_OPTS                                                                         \
	(B(O_SPACE) | B(O_VFILE) | B(O_VECTOR) | B(O_RECORD) | B(O_QSPACE) | B(O_LIMIT) |       \
	 B(O_THRESHOLD) | B(O_METRIC) | B(O_SUBSET) | B(O_WITH) | B(O_EXACT) | B(O_DTYPE))
#define WAIT_OPTS (B(O_WAIT) | B(O_TIMEOUT))

static const struct verb {
	const char *name, *sub;
	int min, max; /* positional arguments after the verb words */
	unsigned opts;
	verb_fn fn;
	const char *synopsis, *help;
} verbs[] = {
	{"health", NULL, 0, 0, 0, v_health, "health", "is the daemon ready (GET /readyz)"},
	{"datasets", NULL, 0, 0, B(O_LIMIT), v_datasets, "datasets [--limit PAGE_SIZE]",
	 "list every dataset (all pages)"},
	{"dataset", NULL, 1, 1, 0, v_dataset, "dataset DS", "one dataset: schema and counts"},
	{"create", NULL, 2, 2, 0, v_create, "create DS SCHEMA", "create a dataset (JSON or @FILE)"},
	{"drop", NULL, 1, 1, 0, v_drop, "drop DS", "delete a dataset and everything in it"},
	{"ingest", NULL, 2, 2, B(O_BATCH) | B(O_FROM), v_ingest,
	 "ingest DS FILE.ndjson [--batch-bytes N] [--from-line N]",
	 "upsert records, in batches (- for stdin)"},
	{"import", NULL, 1, 1, B(O_META) | B(O_SPACE) | B(O_BATCHN) | B(O_BATCH) | B(O_FROM),
	 v_import,
	 "import DS --metadata FILE.ndjson --space NAME=FILE.npy [--space ...]\n"
	 "         [--batch N] [--batch-bytes N] [--from-line N]",
	 "upsert records from NDJSON metadata and one .npy array per space"},
	{"get", NULL, 2, 2, B(O_NOEMB), v_get, "get DS ID [--no-embeddings]", "one record"},
	{"delete", NULL, 2, 2, 0, v_delete, "delete DS ID", "delete one record"},
	{"signals", NULL, 2, 2, 0, v_signals, "signals DS FILE.ndjson",
	 "patch signals of many records ({\"id\",\"signals\"} lines)"},
	{"signal", NULL, 3, 3, 0, v_signal, "signal DS ID JSON", "merge-patch one record's signals"},
	{"filter-types", NULL, 0, 0, 0, v_filter_types, "filter-types", "the filter types"},
	{"filter", "put", 3, 3, WAIT_OPTS, v_filter_put, "filter put DS NAME JSON [--wait]",
	 "define a filter and score the dataset"},
	{"filter", "get", 2, 2, 0, v_filter_get, "filter get DS NAME", "a filter and its scoring job"},
	{"filter", "list", 1, 1, 0, v_filter_list, "filter list DS", "the filters of a dataset"},
	{"filter", "stats", 2, 2, B(O_BINS) | B(O_THRESHOLD), v_filter_stats,
	 "filter stats DS NAME [--bins N] [--threshold X]", "score distribution"},
	{"filter", "sweep", 2, 3, B(O_EPS), v_filter_sweep, "filter sweep DS NAME --eps A,B,..",
	 "records kept per eps (semdedup)"},
	{"filter", "score", 2, 2, WAIT_OPTS, v_filter_score, "filter score DS NAME [--wait]",
	 "score every record again"},
	{"filter", "recommend", 3, 3, B(O_TABLE), v_recommend,
	 "filter recommend DS NAME JSON [--table]",
	 "the compute-aware keep fraction for a budget (--table: one row per m)"},
	{"filter", "record", 3, 3, 0, v_filter_record, "filter record DS NAME ID",
	 "one record's score and explanation"},
	{"filter", "delete", 2, 2, 0, v_filter_delete, "filter delete DS NAME",
	 "delete a filter and its scores"},
	{"subset", "put", 3, 3, WAIT_OPTS, v_subset_put, "subset put DS NAME STEPS [--wait]",
	 "define and materialise a subset"},
	{"subset", "get", 2, 2, 0, v_subset_get, "subset get DS NAME", "state and provenance"},
	{"subset", "list", 1, 1, 0, v_subset_list, "subset list DS", "the subsets of a dataset"},
	{"subset", "delete", 2, 2, 0, v_subset_delete, "subset delete DS NAME", "delete a subset"},
	{"export", NULL, 2, 2,
	 B(O_OUTPUT) | B(O_FORMAT) | B(O_FIELDS) | B(O_SLICES) | B(O_SLICE), v_export,
	 "export DS SUBSET -o FILE [--format ndjson|ids|npy]\n"
	 "         [--fields LIST] [--slices N --slice I]",
	 "stream a subset's members to FILE"},
	{"why", NULL, 2, 2, B(O_SUBSET), v_why, "why DS ID --subset S",
	 "the decisions on one record"},
	{"index", "put", 3, 3, WAIT_OPTS | B(O_METRIC) | B(O_EFC), v_index_put,
	 "index put DS SPACE FACTORY [--metric M] [--ef-construction N] [--wait]",
	 "define and build an index"},
	{"index", "get", 2, 2, 0, v_index_get, "index get DS SPACE", "an index and its build"},
	{"index", "list", 1, 1, 0, v_index_list, "index list DS", "the indexes of a dataset"},
	{"index", "delete", 2, 2, 0, v_index_delete, "index delete DS SPACE", "delete an index"},
	{"search", NULL, 1, 1, SEARCH_OPTS | B(O_ALL), v_search,
	 "search DS --space S (--vector-file F | --vector JSON | --record ID)\n"
	 "         [--limit K] [--threshold X] [--all] [--subset S] [--with LIST]\n"
	 "         [--exact] [--metric M] [--query-space S] [--dtype f32|f16]",
	 "nearest records; --all follows page tokens"},
	{"count", NULL, 1, 1, SEARCH_OPTS, v_count, "count DS --space S --threshold X (query)",
	 "how many records score >= X"},
	{"adapter", "put", 3, 3, 0, v_adapter_put, "adapter put DS NAME JSON",
	 "define a Cosine Adapter"},
	{"adapter", "get", 2, 2, 0, v_adapter_get, "adapter get DS NAME", "an adapter and its report"},
	{"adapter", "list", 1, 1, 0, v_adapter_list, "adapter list DS", "the adapters"},
	{"adapter", "delete", 2, 2, 0, v_adapter_delete, "adapter delete DS NAME", "delete one"},
	{"adapter", "pairs", 3, 3, 0, v_adapter_pairs, "adapter pairs DS NAME FILE.ndjson",
	 "add labelled pairs"},
	{"adapter", "train", 2, 2, WAIT_OPTS, v_adapter_train, "adapter train DS NAME [--wait]",
	 "train on the pairs"},
	{"hubness", "put", 3, 3, WAIT_OPTS, v_hub_put, "hubness put DS NAME JSON [--wait]",
	 "define a normaliser, compute its statistics"},
	{"hubness", "get", 2, 2, 0, v_hub_get, "hubness get DS NAME", "a normaliser"},
	{"hubness", "list", 1, 1, 0, v_hub_list, "hubness list DS", "the normalisers"},
	{"hubness", "delete", 2, 2, 0, v_hub_delete, "hubness delete DS NAME", "delete one"},
	{"hubness", "report", 3, 3, 0, v_hub_report, "hubness report DS NAME JSON",
	 "N_k skewness before/after"},
	{"jobs", NULL, 0, 0, B(O_DATASET) | B(O_LIMIT), v_jobs, "jobs [--dataset DS] [--limit N]",
	 "recent jobs, newest first"},
	{"job", NULL, 1, 1, 0, v_job, "job ID", "one job"},
	{"wait", NULL, 1, 1, B(O_TIMEOUT), v_wait, "wait ID [--timeout S]",
	 "wait for a job to end (progress bar)"},
	{"cancel", NULL, 1, 1, 0, v_cancel, "cancel ID", "cancel a job"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: winnow [--url URL] [--key KEY] [--quiet] VERB [ARG...] [OPTION...]\n\n");
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		const char *syn = verbs[i].synopsis;
		int len = (int)strlen(syn);

		/* a long synopsis gets its description on a line of its own */
		if (strchr(syn, '\n') != NULL || len > 49)
			fprintf(f, "  %s\n  %50s %s\n", syn, "", verbs[i].help);
		else
			fprintf(f, "  %s%*s %s\n", syn, 50 - len, "", verbs[i].help);
	}
	fprintf(f,
	        "\n"
	        "JSON arguments are JSON text or @FILE (@- for stdin); STEPS may be a list of\n"
	        "steps or {\"steps\": [...]}. Options may come before or after the arguments.\n"
	        "  --url URL    the daemon (env WINNOW_URL, default " WINNOW_DEFAULT_URL ")\n"
	        "  --key KEY    API key sent as a Bearer token (env WINNOW_KEY)\n"
	        "  --quiet, -q  no progress and no per-batch reports on stderr\n"
	        "  --wait       wait for the job the verb starts (a progress bar on a terminal),\n"
	        "               then print the resource; --timeout S bounds the wait\n"
	        "\n"
	        "Prints the daemon's JSON answer (or the verb's summary) on stdout; problems on\n"
	        "stderr. Progress is a bar on stderr only when stderr is a terminal.\n"
	        "Exit status:\n"
	        "  0  success\n"
	        "  1  the daemon answered with an error (its code and detail on stderr)\n"
	        "  2  usage error, or a local file that cannot be read or written\n"
	        "  3  the daemon is not reachable (or the connection broke)\n"
	        "  4  the job ended failed or cancelled (wait, --wait)\n"
	        "  5  --timeout passed before the job ended (the job goes on)\n"
	        "  6  ingest, import: some lines were rejected (the others are stored)\n");
}

static const struct optdef *find_opt(const char *a, const char **inline_val)
{
	*inline_val = NULL;
	for (size_t i = 0; i < sizeof optdefs / sizeof optdefs[0]; i++) {
		size_t n = strlen(optdefs[i].name);

		if (strncmp(a, optdefs[i].name, n) != 0)
			continue;
		if (a[n] == '\0')
			return &optdefs[i];
		if (a[n] == '=' && optdefs[i].value) {
			*inline_val = a + n + 1;
			return &optdefs[i];
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *url = getenv("WINNOW_URL"), *key = getenv("WINNOW_KEY");
	struct cli s = {0};
	struct opts o;
	char *pos[16];
	int npos = 0, rc, only_pos = 0;
	const struct verb *v = NULL;
	unsigned given = 0;
	size_t n;

	memset(&o, 0, sizeof o);
	if (url == NULL || url[0] == '\0')
		url = WINNOW_DEFAULT_URL;
	if (key != NULL && key[0] == '\0')
		key = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *iv;
		const struct optdef *d;

		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (npos == (int)(sizeof pos / sizeof pos[0])) {
				fprintf(stderr, "winnow: too many arguments\n");
				return EXIT_USAGE;
			}
			pos[npos++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			s.quiet = 1;
		} else if (strncmp(a, "--url=", 6) == 0) {
			url = a + 6;
		} else if (strncmp(a, "--key=", 6) == 0) {
			key = a + 6;
		} else if ((strcmp(a, "--url") == 0 || strcmp(a, "--key") == 0) && i + 1 < argc) {
			if (a[2] == 'u')
				url = argv[++i];
			else
				key = argv[++i];
		} else if ((d = find_opt(a, &iv)) != NULL && (!d->value || iv || i + 1 < argc)) {
			o.v[d->id] = d->value ? (iv ? iv : argv[++i]) : "";
			if (d->id == O_SPACE && o.nspaces < IMPORT_MAX_SPACES)
				o.spaces[o.nspaces++] = o.v[d->id];
			given |= B(d->id);
		} else {
			fprintf(stderr, "winnow: unknown or incomplete option '%s' (winnow --help)\n", a);
			return EXIT_USAGE;
		}
	}
	if (npos == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0] && v == NULL; i++) {
		if (strcmp(verbs[i].name, pos[0]) != 0)
			continue;
		if (verbs[i].sub == NULL || (npos > 1 && strcmp(verbs[i].sub, pos[1]) == 0))
			v = &verbs[i];
	}
	if (v == NULL) {
		int known = 0;

		for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
			known |= strcmp(verbs[i].name, pos[0]) == 0;
		if (known)
			fprintf(stderr, "winnow: '%s' needs one of the words winnow --help lists after it\n",
			        pos[0]);
		else
			fprintf(stderr, "winnow: unknown command '%s' (winnow --help lists them)\n", pos[0]);
		return EXIT_USAGE;
	}
	{
		int skip = v->sub ? 2 : 1, nargs = npos - skip;

		if (nargs < v->min || nargs > v->max) {
			fprintf(stderr, "winnow: usage: winnow %s\n", v->synopsis);
			return EXIT_USAGE;
		}
		if ((given & ~v->opts) != 0) {
			for (size_t i = 0; i < sizeof optdefs / sizeof optdefs[0]; i++)
				if (given & ~v->opts & B(optdefs[i].id)) {
					fprintf(stderr, "winnow: %s does not take %s (usage: winnow %s)\n",
					        v->name, optdefs[i].name, v->synopsis);
					break;
				}
			return EXIT_USAGE;
		}
		for (int i = npos; i < (int)(sizeof pos / sizeof pos[0]); i++)
			pos[i] = NULL;
		if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
			fprintf(stderr, "winnow: --url must start with http:// or https:// (got '%s')\n",
			        url);
			return EXIT_USAGE;
		}
		s.base = strdup(url);
		if (s.base == NULL)
			return EXIT_USAGE;
		/* "http://host:8080/" and "http://host:8080" name the same daemon. */
		n = strlen(s.base);
		while (n > 0 && s.base[n - 1] == '/')
			s.base[--n] = '\0';
		s.key = key;
		s.tty = isatty(STDERR_FILENO);
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (s.h = curl_easy_init()) == NULL) {
			fprintf(stderr, "winnow: libcurl failed to start\n");
			free(s.base);
			return EXIT_USAGE;
		}
		rc = v->fn(&s, pos + skip, &o);
	}
	bar_clear(&s);
	curl_easy_cleanup(s.h);
	curl_global_cleanup();
	free(s.base);
	return rc;
}

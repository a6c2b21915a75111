/* SPDX-License-Identifier: MIT */
/* winnow: the command-line client of winnowd (one HTTP request per invocation, libcurl).
 *
 * Owns nothing past one request: the answer is buffered, printed on stdout for 2xx, and
 * turned into a short message on stderr otherwise. Single-threaded. Exit status: 0 for a
 * 2xx answer, 1 for an HTTP error answer, 2 for a usage, file or connection error.
 * Ingest streams its file (stdin with "-"), so files larger than memory are fine; answers
 * are small and are held in memory. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WINNOW_DEFAULT_URL "http://127.0.0.1:8080"

enum { EXIT_HTTP = 1, EXIT_USAGE = 2 };

struct answer {
	char *p;
	size_t len, cap;
};

/* What one command sends. */
struct request {
	const char *method;
	char *path;         /* new, percent-encoded, from the base URL on */
	const char *body;   /* borrowed; NULL = none */
	FILE *upload;       /* borrowed; streamed as the body when set */
	const char *ctype;  /* Content-Type of the body */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: winnow [--url URL] [--key KEY] COMMAND [ARG...]\n"
	        "\n"
	        "  datasets                     list the datasets\n"
	        "  dataset NAME                 one dataset: schema and counts\n"
	        "  create NAME SCHEMA_JSON      create a dataset (SCHEMA_JSON, or @FILE)\n"
	        "  drop NAME                    delete a dataset and its records\n"
	        "  ingest NAME FILE.ndjson      upsert the records of FILE (- for stdin)\n"
	        "  get NAME ID                  one record\n"
	        "  delete NAME ID               delete one record\n"
	        "  health                       is the daemon ready\n"
	        "\n"
	        "  --url URL   the daemon (env WINNOW_URL, default " WINNOW_DEFAULT_URL ")\n"
	        "  --key KEY   API key sent as a Bearer token (env WINNOW_KEY)\n"
	        "\n"
	        "Prints the JSON answer. Exit 0 on success, 1 when the daemon answers with an\n"
	        "error (its detail goes to stderr), 2 on a usage or connection error.\n");
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct answer *a = ud;
	size_t n = size * nmemb, cap;
	char *p;

	if (a->len + n + 1 > a->cap) {
		cap = a->cap ? a->cap : 4096;
		while (cap < a->len + n + 1)
			cap *= 2;
		p = realloc(a->p, cap);
		if (p == NULL)
			return 0; /* curl reports a write error */
		a->p = p;
		a->cap = cap;
	}
	memcpy(a->p + a->len, ptr, n);
	a->len += n;
	a->p[a->len] = '\0';
	return n;
}

/* RFC 3986: everything but the unreserved characters as %XX, so that ids holding '/',
 * '?', '%', spaces or any other byte reach the daemon intact. Returns a new string. */
static char *pct_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i;
	char *out = malloc(3 * n + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* "/v1/datasets/" + enc(name) [+ mid + enc(id)]. Returns a new string or NULL. */
static char *dataset_path(const char *name, const char *mid, const char *id)
{
	char *en = pct_encode(name), *ei = id ? pct_encode(id) : NULL, *out = NULL;

	if (en == NULL || (id != NULL && ei == NULL))
		goto out;
	if (asprintf(&out, "/v1/datasets/%s%s%s", en, mid ? mid : "", ei ? ei : "") < 0)
		out = NULL;
out:
	free(en);
	free(ei);
	return out;
}

/* Read a whole (small) file for "create NAME @FILE". Returns a new string, or NULL with
 * errno set. */
static char *slurp(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct answer a = {0};
	char chunk[65536];
	size_t n;
	int bad = 0;

	if (f == NULL)
		return NULL;
	while (!bad && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		bad = on_data(chunk, 1, n, &a) != n;
	if (ferror(f) || bad) {
		errno = bad ? ENOMEM : EIO;
		free(a.p);
		a.p = NULL;
	} else if (a.p == NULL) {
		a.p = strdup("");
	}
	if (f != stdin)
		fclose(f);
	return a.p;
}

/* Stream the upload; a read error aborts the request rather than ending the body early
 * (which would ingest a truncated file and report success). */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	FILE *f = ud;
	size_t n = fread(buf, size, nitems, f);

	if (n == 0 && ferror(f))
		return CURL_READFUNC_ABORT;
	return n;
}

/* Problem details on stderr: status, code and detail, then any per-line errors. */
static void report_problem(long status, const struct answer *a)
{
	json_t *j = a->p ? json_loadb(a->p, a->len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(j, "code"));
	const char *detail = json_string_value(json_object_get(j, "detail"));
	const char *title = json_string_value(json_object_get(j, "title"));
	const char *rid = json_string_value(json_object_get(j, "request_id"));
	json_t *errs = json_object_get(j, "errors"), *e;
	size_t i;

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
		const char *id = json_string_value(json_object_get(e, "id"));
		json_t *line = json_object_get(e, "line");

		if (i == 20) {
			fprintf(stderr, "  ... %zu more\n", json_array_size(errs) - i);
			break;
		}
		fprintf(stderr, "  ");
		if (json_is_integer(line))
			fprintf(stderr, "line %lld ", (long long)json_integer_value(line));
		if (id != NULL)
			fprintf(stderr, "id %s ", id);
		fprintf(stderr, "%s: %s\n",
		        json_string_value(json_object_get(e, "code")) ?
		                json_string_value(json_object_get(e, "code")) : "error",
		        json_string_value(json_object_get(e, "detail")) ?
		                json_string_value(json_object_get(e, "detail")) : "");
	}
	json_decref(j);
}

/* Perform r against base; print the answer. Returns the exit status. */
static int perform(const char *base, const char *key, const struct request *r)
{
	struct curl_slist *hdr = NULL;
	struct answer a = {0};
	char *url = NULL, *auth = NULL, *ct = NULL;
	long status = 0;
	CURL *h = NULL;
	CURLcode cc;
	int rc = EXIT_USAGE;

	if (asprintf(&url, "%s%s", base, r->path) < 0) {
		url = NULL;
		goto nomem;
	}
	h = curl_easy_init();
	if (h == NULL)
		goto nomem;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "winnow-cli/1");
	if (key != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s", key) < 0) {
			auth = NULL;
			goto nomem;
		}
		hdr = curl_slist_append(hdr, auth);
	}
	if (r->body != NULL || r->upload != NULL) {
		if (asprintf(&ct, "Content-Type: %s", r->ctype) < 0) {
			ct = NULL;
			goto nomem;
		}
		hdr = curl_slist_append(hdr, ct);
	}
	if (r->upload != NULL) {
		struct stat st;

		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r->upload);
		/* A regular file announces its length; a pipe goes chunked. */
		if (fstat(fileno(r->upload), &st) == 0 && S_ISREG(st.st_mode))
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			                 (curl_off_t)(st.st_size - ftello(r->upload)));
		else
			hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
	} else if (r->body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		fprintf(stderr, "winnow: %s %s: %s\n", r->method, url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300) {
		if (a.len > 0) {
			fwrite(a.p, 1, a.len, stdout);
			if (a.p[a.len - 1] != '\n')
				fputc('\n', stdout);
		}
		rc = fflush(stdout) == 0 ? 0 : EXIT_USAGE;
	} else {
		report_problem(status, &a);
		rc = EXIT_HTTP;
	}
	goto out;
nomem:
	fprintf(stderr, "winnow: out of memory\n");
out:
	curl_slist_free_all(hdr);
	if (h != NULL)
		curl_easy_cleanup(h);
	free(url);
	free(auth);
	free(ct);
	free(a.p);
	return rc;
}

/* Fill r from the command words; prints the problem and returns EXIT_USAGE if they are wrong. */
static int build_request(int argc, char **argv, struct request *r, char **owned)
{
	const char *cmd = argv[0];
	int want;

	memset(r, 0, sizeof *r);
	*owned = NULL;
	want = strcmp(cmd, "datasets") == 0 || strcmp(cmd, "health") == 0 ? 1 :
	       strcmp(cmd, "dataset") == 0 || strcmp(cmd, "drop") == 0 ? 2 :
	       strcmp(cmd, "create") == 0 || strcmp(cmd, "ingest") == 0 ||
	       strcmp(cmd, "get") == 0 || strcmp(cmd, "delete") == 0 ? 3 : 0;
	if (want == 0) {
		fprintf(stderr, "winnow: unknown command '%s' (winnow --help lists them)\n", cmd);
		return EXIT_USAGE;
	}
	if (argc != want) {
		fprintf(stderr, "winnow: '%s' takes %d argument%s (winnow --help)\n", cmd, want - 1,
		        want == 2 ? "" : "s");
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "datasets") == 0) {
		r->method = "GET";
		r->path = strdup("/v1/datasets");
	} else if (strcmp(cmd, "health") == 0) {
		r->method = "GET";
		r->path = strdup("/readyz");
	} else if (strcmp(cmd, "dataset") == 0 || strcmp(cmd, "drop") == 0) {
		r->method = strcmp(cmd, "drop") == 0 ? "DELETE" : "GET";
		r->path = dataset_path(argv[1], NULL, NULL);
	} else if (strcmp(cmd, "create") == 0) {
		r->method = "PUT";
		r->path = dataset_path(argv[1], NULL, NULL);
		r->ctype = "application/json";
		if (argv[2][0] == '@') {
			*owned = slurp(argv[2] + 1);
			if (*owned == NULL) {
				fprintf(stderr, "winnow: cannot read %s: %s\n", argv[2] + 1,
				        strerror(errno));
				return EXIT_USAGE;
			}
			r->body = *owned;
		} else {
			r->body = argv[2];
		}
	} else if (strcmp(cmd, "ingest") == 0) {
		r->method = "POST";
		r->path = dataset_path(argv[1], "/records", NULL);
		r->ctype = "application/x-ndjson";
		r->upload = strcmp(argv[2], "-") == 0 ? stdin : fopen(argv[2], "rb");
		if (r->upload == NULL) {
			fprintf(stderr, "winnow: cannot open %s: %s\n", argv[2], strerror(errno));
			return EXIT_USAGE;
		}
	} else {
		r->method = strcmp(cmd, "get") == 0 ? "GET" : "DELETE";
		r->path = dataset_path(argv[1], "/records/", argv[2]);
	}
	if (r->path == NULL) {
		fprintf(stderr, "winnow: out of memory\n");
		return EXIT_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = getenv("WINNOW_URL"), *key = getenv("WINNOW_KEY");
	struct request r = {0};
	char *base = NULL, *owned = NULL;
	size_t n;
	int i, rc;

	if (url == NULL || url[0] == '\0')
		url = WINNOW_DEFAULT_URL;
	if (key != NULL && key[0] == '\0')
		key = NULL;
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strncmp(a, "--url=", 6) == 0) {
			url = a + 6;
		} else if (strncmp(a, "--key=", 6) == 0) {
			key = a + 6;
		} else if ((strcmp(a, "--url") == 0 || strcmp(a, "--key") == 0) && i + 1 < argc) {
			if (a[2] == 'u')
				url = argv[++i];
			else
				key = argv[++i];
		} else {
			fprintf(stderr, "winnow: unknown or incomplete option '%s'\n", a);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr, "winnow: --url must start with http:// or https:// (got '%s')\n",
		        url);
		return EXIT_USAGE;
	}
	rc = build_request(argc - i, argv + i, &r, &owned);
	if (rc != 0)
		goto out;
	base = strdup(url);
	if (base == NULL) {
		rc = EXIT_USAGE;
		goto out;
	}
	/* "http://host:8080/" and "http://host:8080" name the same daemon. */
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "winnow: libcurl failed to start\n");
		rc = EXIT_USAGE;
		goto out;
	}
	rc = perform(base, key, &r);
	curl_global_cleanup();
out:
	if (r.upload != NULL && r.upload != stdin)
		fclose(r.upload);
	free(r.path);
	free(owned);
	free(base);
	return rc;
}

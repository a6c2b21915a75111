/* SPDX-License-Identifier: MIT */
/* ingest: end-to-end ingest benchmark (NDJSON over loopback HTTP) against a raw-LMDB loop.
 *
 * Starts its own winnowd (fork/exec, port 0, a mkdtemp data directory), learns the port
 * from the daemon's `event=listening` log line (a thread keeps draining the daemon's
 * stderr so the daemon never blocks on it), creates two datasets with two f16 spaces, and
 * ingests the same generated records twice: once with base64 f16 vectors, once with JSON
 * number arrays. Every request body is built before the clock starts; only the HTTP phase
 * is timed (N libcurl easy handles in N threads, keep-alive, batches handed out by an
 * atomic counter). The reference is a single-threaded loop in this process that puts the
 * same bytes into a fresh LMDB environment with one durable commit per batch.
 *
 * Talks to the daemon only over HTTP and uses LMDB directly; links nothing of the daemon
 * but api/b64. Exit 0 when every measurement ran and every answer was right (whether the
 * targets were met or not: PASS/MISS is printed), 1 on a failure, 2 on a usage error. */
#include "lib/b64.h"

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TARGET_B64_RPS 50000.0
#define TARGET_B64_RATIO 0.30
#define TARGET_JSON_RPS 10000.0

struct opts {
	const char *daemon;
	size_t records;
	size_t batch;
	int connections;
	size_t dim;
	int formats; /* bit 0: b64-f16, bit 1: json-array */
};

struct buf {
	char *p;
	size_t len, cap;
};

/* The generated records, shared by all three measurements. */
struct corpus {
	size_t n, dim;
	char (*ids)[33];
	char **heads;     /* record JSON without embeddings (what the store keeps) */
	size_t *head_len; /* its length without the closing brace (where embeddings go) */
	uint16_t *vecs;   /* n x 2 x dim f16: image then text */
};

/* One wire format's request bodies. */
struct bodies {
	size_t count;
	struct buf *b;
	size_t *records; /* records in each body */
	size_t bytes;
};

struct run_shared {
	const char *url;
	const struct bodies *bodies;
	atomic_size_t next;
	atomic_int failed;
};

struct daemon_proc {
	pid_t pid;
	int fd;
	pthread_t reader;
	int reader_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int port; /* 0 until the listening line, -1 when stderr ended before it */
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int buf_add(struct buf *b, const void *s, size_t n)
{
	if (buf_reserve(b, n) != 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/* splitmix64: a bijection of its input, so hex(mix(i)) ids never collide. */
static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

/* binary32 -> binary16, round to nearest even (the daemon's conversion). */
static uint16_t f16_of(float f)
{
	uint32_t x, ax, mant, h, rem;
	uint16_t sign;

	memcpy(&x, &f, 4);
	sign = (uint16_t)((x >> 16) & 0x8000);
	ax = x & 0x7fffffff;
	if (ax >= 0x7f800000)
		return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
	if (ax >= 0x477ff000) /* 65520 and up round to infinity */
		return sign | 0x7c00;
	if (ax < 0x38800000) { /* below 2^-14: a binary16 subnormal; scaling is exact */
		float a;

		memcpy(&a, &ax, 4);
		return (uint16_t)(sign | (uint16_t)lrintf(a * 16777216.0f));
	}
	mant = ax & 0x7fffff;
	h = ((ax >> 23) - 112) << 10 | (mant >> 13);
	rem = mant & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

static float f32_of(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 0x3ff, x;
	float f;

	if (e == 0) {
		f = (float)m / 16777216.0f;
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000 | (m << 13);
	else
		x = sign | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &x, 4);
	return f;
}

/* Shortest decimal that a JSON client would send and that the daemon (strtod, then float,
 * then binary16) turns back into the same f16. Only finite values are ever asked for. */
static void f16_decimal(uint16_t h, char out[24])
{
	int prec;

	for (prec = 1; prec <= 9; prec++) {
		snprintf(out, 24, "%.*g", prec, (double)f32_of(h));
		if (f16_of((float)strtod(out, NULL)) == h)
			return;
	}
}

static const char *const words[] = {
	"a",      "photo", "of",    "the",   "dog",    "on",     "beach",  "with",
	"red",    "ball",  "city",  "at",    "night",  "close",  "up",     "blue",
	"flower", "old",   "house", "mount", "river",  "in",     "spring", "cat",
	"sleeps", "under", "warm",  "lamp",  "street", "market", "view",   "sunset",
};

static int corpus_build(struct corpus *c, size_t n, size_t dim)
{
	static const char hex[] = "0123456789abcdef";
	struct buf b = {0};
	double scale = 1.7320508 / sqrt((double)dim); /* the sum of 4 uniforms has sd 1/sqrt(3) */
	size_t i, j, text_at;
	int rc = -1;

	c->n = n;
	c->dim = dim;
	c->ids = calloc(n, sizeof *c->ids);
	c->heads = calloc(n, sizeof *c->heads);
	c->head_len = calloc(n, sizeof *c->head_len);
	c->vecs = malloc(n * 2 * dim * sizeof *c->vecs);
	if (c->ids == NULL || c->heads == NULL || c->head_len == NULL || c->vecs == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		uint64_t s = mix64(i ^ 0x5eedull), hi = mix64(i), lo = mix64(i + 0x1234567ull);
		uint16_t *v = c->vecs + i * 2 * dim;
		char tmp[160];

		for (j = 0; j < 16; j++) {
			c->ids[i][j] = hex[(hi >> (60 - 4 * j)) & 15];
			c->ids[i][16 + j] = hex[(lo >> (60 - 4 * j)) & 15];
		}
		c->ids[i][32] = '\0';
		b.len = 0;
		if (buf_str(&b, "{\"id\":\"") || buf_str(&b, c->ids[i]) ||
		    buf_str(&b, "\",\"kind\":\"image-text\",\"text\":\""))
			goto out;
		/* ~60 characters of caption; every word adds at least one, so this ends. */
		text_at = b.len;
		for (j = 0; b.len - text_at < 56; j++) {
			if (j && buf_str(&b, " "))
				goto out;
			if (buf_str(&b, words[rng_next(&s) % (sizeof words / sizeof words[0])]))
				goto out;
		}
		snprintf(tmp, sizeof tmp,
		         "\",\"image\":{\"url\":\"https://img.example.org/%s.jpg\",\"width\":%u,"
		         "\"height\":%u},\"meta\":{\"source\":\"bench\",\"shard\":%zu}}",
		         c->ids[i], 256 + (unsigned)(rng_next(&s) % 1024),
		         256 + (unsigned)(rng_next(&s) % 1024), i % 64);
		if (buf_str(&b, tmp))
			goto out;
		c->heads[i] = strdup(b.p);
		if (c->heads[i] == NULL)
			goto out;
		c->head_len[i] = b.len - 1;
		/* Embedding-like values: roughly normal, unit-norm scale for this dim. Zero
		 * and subnormal results become +0 so that "-0" never appears on the wire
		 * (jansson reads it as the integer 0). */
		for (j = 0; j < 2 * dim; j++) {
			uint64_t r = rng_next(&s);
			double u = (double)(r & 0xffff) + (double)((r >> 16) & 0xffff) +
			           (double)((r >> 32) & 0xffff) + (double)(r >> 48);
			double g = (u / 65536.0 - 2.0) * scale;
			uint16_t h = f16_of((float)g);

			v[j] = (h & 0x7c00) ? h : 0;
		}
	}
	rc = 0;
out:
	free(b.p);
	return rc;
}

static void corpus_free(struct corpus *c)
{
	size_t i;

	if (c->heads != NULL)
		for (i = 0; i < c->n; i++)
			free(c->heads[i]);
	free(c->ids);
	free(c->heads);
	free(c->head_len);
	free(c->vecs);
	memset(c, 0, sizeof *c);
}

static void bodies_free(struct bodies *bs)
{
	size_t i;

	if (bs->b != NULL)
		for (i = 0; i < bs->count; i++)
			free(bs->b[i].p);
	free(bs->b);
	free(bs->records);
	memset(bs, 0, sizeof *bs);
}

/* Build one NDJSON body per batch; json_arrays selects the wire format of the vectors. */
static int bodies_build(struct bodies *bs, const struct corpus *c, size_t batch, int json_arrays)
{
	static const char *const space[2] = {"image", "text"};
	char (*dec)[24] = NULL;
	size_t i, k, j;
	int rc = -1;

	bs->count = (c->n + batch - 1) / batch;
	bs->b = calloc(bs->count ? bs->count : 1, sizeof *bs->b);
	bs->records = calloc(bs->count ? bs->count : 1, sizeof *bs->records);
	bs->bytes = 0;
	if (bs->b == NULL || bs->records == NULL)
		goto out;
	if (json_arrays) {
		dec = malloc(65536 * sizeof *dec);
		if (dec == NULL)
			goto out;
		for (i = 0; i < 65536; i++)
			if ((i & 0x7c00) != 0x7c00)
				f16_decimal((uint16_t)i, dec[i]);
	}
	for (k = 0; k < bs->count; k++) {
		struct buf *b = &bs->b[k];
		size_t first = k * batch, last = first + batch < c->n ? first + batch : c->n;

		bs->records[k] = last - first;
		for (i = first; i < last; i++) {
			if (buf_add(b, c->heads[i], c->head_len[i]) ||
			    buf_str(b, ",\"embeddings\":{"))
				goto out;
			for (j = 0; j < 2; j++) {
				const uint16_t *v = c->vecs + (i * 2 + j) * c->dim;
				size_t d;

				if (buf_str(b, j ? ",\"" : "\"") || buf_str(b, space[j]) ||
				    buf_str(b, "\":"))
					goto out;
				if (json_arrays) {
					if (buf_reserve(b, c->dim * 24 + 2))
						goto out;
					b->p[b->len++] = '[';
					for (d = 0; d < c->dim; d++) {
						size_t l = strlen(dec[v[d]]);

						if (d)
							b->p[b->len++] = ',';
						memcpy(b->p + b->len, dec[v[d]], l);
						b->len += l;
					}
					b->p[b->len++] = ']';
					b->p[b->len] = '\0';
				} else {
					size_t elen;
					char *s = b64_encode(v, c->dim * 2, &elen);

					if (s == NULL)
						goto out;
					if (buf_str(b, "{\"dtype\":\"f16\",\"b64\":\"") ||
					    buf_add(b, s, elen) || buf_str(b, "\"}")) {
						free(s);
						goto out;
					}
					free(s);
				}
			}
			if (buf_str(b, "}}\n"))
				goto out;
		}
		bs->bytes += b->len;
	}
	rc = 0;
out:
	free(dec);
	return rc;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	return buf_add(ud, ptr, size * nmemb) == 0 ? size * nmemb : 0;
}

/* One request on a fresh handle, for the untimed set-up and checks. resp is reset. */
static int http_once(const char *method, const char *url, const char *body, long *status,
                     struct buf *resp)
{
	struct curl_slist *hdr = NULL;
	CURL *h = curl_easy_init();
	CURLcode cc;

	resp->len = 0;
	if (resp->p)
		resp->p[0] = '\0';
	if (h == NULL)
		return -1;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	if (body != NULL) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return cc == CURLE_OK ? 0 : -1;
}

/* Each worker: one keep-alive connection; batches come from the shared counter. */
static void *run_worker(void *arg)
{
	struct run_shared *sh = arg;
	struct curl_slist *hdr = NULL;
	struct buf resp = {0};
	CURL *h = curl_easy_init();

	hdr = curl_slist_append(hdr, "Content-Type: application/x-ndjson");
	/* libcurl waits for "100 Continue" on big bodies: a round trip per batch for nothing. */
	hdr = curl_slist_append(hdr, "Expect:");
	if (h == NULL || hdr == NULL) {
		atomic_fetch_add(&sh->failed, 1);
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, sh->url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	for (;;) {
		size_t k = atomic_fetch_add(&sh->next, 1);
		const struct buf *body;
		json_t *j = NULL;
		long status = 0;
		CURLcode cc;

		if (k >= sh->bodies->count)
			break;
		body = &sh->bodies->b[k];
		resp.len = 0;
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->p);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
		cc = curl_easy_perform(h);
		if (cc != CURLE_OK) {
			fprintf(stderr, "ingest: batch %zu: %s\n", k, curl_easy_strerror(cc));
			atomic_fetch_add(&sh->failed, 1);
			continue;
		}
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200)
			j = json_loadb(resp.p ? resp.p : "", resp.len, 0, NULL);
		if (j == NULL ||
		    json_integer_value(json_object_get(j, "accepted")) !=
		            (json_int_t)sh->bodies->records[k] ||
		    json_integer_value(json_object_get(j, "rejected")) != 0) {
			fprintf(stderr, "ingest: batch %zu: HTTP %ld: %.300s\n", k, status,
			        resp.p ? resp.p : "");
			atomic_fetch_add(&sh->failed, 1);
		}
		json_decref(j);
	}
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	free(resp.p);
	return NULL;
}

/* Time the HTTP phase; returns seconds, or -1 when a request failed. */
static double run_http(const char *url, const struct bodies *bs, int conns)
{
	struct run_shared sh;
	pthread_t *t = calloc((size_t)conns, sizeof *t);
	double t0, t1;
	int i, started = 0;

	if (t == NULL)
		return -1;
	sh.url = url;
	sh.bodies = bs;
	atomic_init(&sh.next, 0);
	atomic_init(&sh.failed, 0);
	t0 = now_s();
	for (i = 0; i < conns; i++) {
		if (pthread_create(&t[i], NULL, run_worker, &sh) != 0) {
			atomic_fetch_add(&sh.failed, 1);
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	t1 = now_s();
	free(t);
	return atomic_load(&sh.failed) ? -1 : t1 - t0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void be64(uint8_t out[8], uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

#define LMDB_TRY(call)                                                                 \
	do {                                                                           \
		int rc_ = (call);                                                      \
		if (rc_ != 0) {                                                        \
			fprintf(stderr, "ingest: raw LMDB: %s: %s\n", #call,           \
			        mdb_strerror(rc_));                                    \
			goto out;                                                      \
		}                                                                      \
	} while (0)

/* The storage limit: id -> row, row -> record JSON, row -> each vector, one durable commit
 * per batch, in one thread (LMDB has one writer anyway). Rows arrive in order, so the
 * row-keyed puts use MDB_APPEND: full pages, the best LMDB does with these bytes (plain puts
 * split 1536-byte values into half-empty pages and write twice as much). Ids are random,
 * as a caller's are. Returns seconds or -1. */
static double run_raw_lmdb(const struct corpus *c, size_t batch, const char *dir,
                           size_t *bytes_out, double *commit_sec)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi ids, recs, vimg, vtxt;
	size_t i, bytes = 0, vbytes = c->dim * 2;
	/* Generous: half-full pages and copy-on-write. The file is sparse. */
	size_t map = c->n * (4 * vbytes + 4096) + ((size_t)256 << 20);
	double t0, t1, res = -1;

	LMDB_TRY(mdb_env_create(&env));
	LMDB_TRY(mdb_env_set_maxdbs(env, 8));
	LMDB_TRY(mdb_env_set_mapsize(env, map));
	LMDB_TRY(mdb_env_open(env, dir, 0, 0644));
	LMDB_TRY(mdb_txn_begin(env, NULL, 0, &txn));
	LMDB_TRY(mdb_dbi_open(txn, "ids", MDB_CREATE, &ids));
	LMDB_TRY(mdb_dbi_open(txn, "recs", MDB_CREATE, &recs));
	LMDB_TRY(mdb_dbi_open(txn, "vec_image", MDB_CREATE, &vimg));
	LMDB_TRY(mdb_dbi_open(txn, "vec_text", MDB_CREATE, &vtxt));
	LMDB_TRY(mdb_txn_commit(txn));
	txn = NULL;
	*commit_sec = 0;
	t0 = now_s();
	for (i = 0; i < c->n; i++) {
		uint8_t row[8];
		MDB_val k, v;

		if (txn == NULL)
			LMDB_TRY(mdb_txn_begin(env, NULL, 0, &txn));
		be64(row, i);
		k.mv_data = c->ids[i];
		k.mv_size = 32;
		v.mv_data = row;
		v.mv_size = 8;
		LMDB_TRY(mdb_put(txn, ids, &k, &v, 0));
		/* The stored body is the record as sent, minus the embeddings. */
		k.mv_data = row;
		k.mv_size = 8;
		v.mv_data = c->heads[i];
		v.mv_size = c->head_len[i] + 1;
		LMDB_TRY(mdb_put(txn, recs, &k, &v, MDB_APPEND));
		v.mv_data = c->vecs + i * 2 * c->dim;
		v.mv_size = vbytes;
		LMDB_TRY(mdb_put(txn, vimg, &k, &v, MDB_APPEND));
		v.mv_data = c->vecs + (i * 2 + 1) * c->dim;
		LMDB_TRY(mdb_put(txn, vtxt, &k, &v, MDB_APPEND));
		bytes += 32 + 8 + 8 + (c->head_len[i] + 1) + 2 * (8 + vbytes);
		if ((i + 1) % batch == 0 || i + 1 == c->n) {
			double tc = now_s();

			LMDB_TRY(mdb_txn_commit(txn));
			txn = NULL;
			*commit_sec += now_s() - tc;
		}
	}
	t1 = now_s();
	res = t1 - t0;
	*bytes_out = bytes;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	return res;
}

static void *daemon_reader(void *arg)
{
	struct daemon_proc *d = arg;
	FILE *f = fdopen(d->fd, "r");
	char line[8192];

	if (f == NULL) {
		close(d->fd);
		goto done;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		const char *a = strstr(line, "event=listening");

		if (a != NULL && (a = strstr(line, "addr=")) != NULL) {
			const char *colon = strchr(a, ' ');
			const char *p = a;
			const char *port = NULL;

			/* The port follows the last ':' of the address (IPv6 has several). */
			for (; *p && p != colon; p++)
				if (*p == ':')
					port = p + 1;
			pthread_mutex_lock(&d->mu);
			if (d->port == 0 && port != NULL)
				d->port = atoi(port);
			pthread_cond_broadcast(&d->cv);
			pthread_mutex_unlock(&d->mu);
		} else if (strstr(line, "level=warn") || strstr(line, "level=error")) {
			fprintf(stderr, "winnowd: %s", line);
		}
	}
	fclose(f);
done:
	pthread_mutex_lock(&d->mu);
	if (d->port == 0)
		d->port = -1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* fork/exec winnowd and wait (20 s at most) for its port. 0 or -1. */
static int daemon_start(struct daemon_proc *d, const char *path, const char *data_dir)
{
	struct timespec deadline;
	int p[2], port;

	d->pid = -1;
	d->port = 0;
	d->reader_started = 0;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	if (pipe(p) != 0)
		return -1;
	d->pid = fork();
	if (d->pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (d->pid == 0) {
		char *argv[] = {(char *)path, "--listen", "127.0.0.1:0", "--data-dir",
		                (char *)data_dir, "--log-level", "info", NULL};

		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execv(path, argv);
		fprintf(stderr, "level=error event=exec_failed path=%s error=\"%s\"\n", path,
		        strerror(errno));
		_exit(127);
	}
	close(p[1]);
	d->fd = p[0];
	if (pthread_create(&d->reader, NULL, daemon_reader, d) != 0) {
		close(d->fd);
		return -1;
	}
	d->reader_started = 1;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&d->mu);
	while (d->port == 0)
		if (pthread_cond_timedwait(&d->cv, &d->mu, &deadline) == ETIMEDOUT)
			break;
	port = d->port;
	pthread_mutex_unlock(&d->mu);
	if (port <= 0) {
		fprintf(stderr, "ingest: winnowd did not report a listening address\n");
		return -1;
	}
	return 0;
}

/* SIGTERM, wait (30 s at most, then SIGKILL), join the reader. Returns the exit status
 * (0 for a clean stop), or -1. */
static int daemon_stop(struct daemon_proc *d)
{
	int status = 0, i, res = -1;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		for (i = 0; i < 3000; i++) {
			pid_t r = waitpid(d->pid, &status, WNOHANG);

			if (r == d->pid)
				break;
			if (r < 0) {
				status = -1;
				break;
			}
			usleep(10000);
		}
		if (i == 3000) {
			fprintf(stderr, "ingest: winnowd ignored SIGTERM for 30 s; killing it\n");
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
		} else if (status != -1 && WIFEXITED(status)) {
			res = WEXITSTATUS(status);
		}
		d->pid = -1;
	}
	if (d->reader_started)
		pthread_join(d->reader, NULL);
	d->reader_started = 0;
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	return res;
}

static int wait_ready(const char *base)
{
	struct buf resp = {0};
	char url[256];
	int i, rc = -1;

	snprintf(url, sizeof url, "%s/readyz", base);
	for (i = 0; i < 200; i++) {
		long status = 0;

		if (http_once("GET", url, NULL, &status, &resp) == 0 && status == 200) {
			rc = 0;
			break;
		}
		usleep(50000);
	}
	free(resp.p);
	return rc;
}

static int create_dataset(const char *base, const char *name, size_t dim)
{
	struct buf resp = {0};
	char url[256], body[256];
	long status = 0;
	int rc;

	snprintf(url, sizeof url, "%s/v1/datasets/%s", base, name);
	snprintf(body, sizeof body,
	         "{\"spaces\":{\"image\":{\"dim\":%zu,\"dtype\":\"f16\"},"
	         "\"text\":{\"dim\":%zu,\"dtype\":\"f16\"}}}",
	         dim, dim);
	rc = http_once("PUT", url, body, &status, &resp);
	if (rc != 0 || (status != 200 && status != 201)) {
		fprintf(stderr, "ingest: create %s: HTTP %ld %s\n", name, status,
		        resp.p ? resp.p : "(no answer)");
		rc = -1;
	}
	free(resp.p);
	return rc;
}

/* After a run: the dataset counts every record, and a few records read back with exactly
 * the generated f16 values. 0 or -1. */
static int verify(const char *base, const char *name, const struct corpus *c)
{
	static const char *const space[2] = {"image", "text"};
	size_t probe[3] = {0, c->n / 2, c->n - 1}, p, j, d;
	struct buf resp = {0};
	json_t *js = NULL;
	char url[512];
	long status = 0;
	int rc = -1;

	snprintf(url, sizeof url, "%s/v1/datasets/%s", base, name);
	if (http_once("GET", url, NULL, &status, &resp) != 0 || status != 200 ||
	    (js = json_loads(resp.p ? resp.p : "", 0, NULL)) == NULL) {
		fprintf(stderr, "ingest: GET %s: HTTP %ld\n", name, status);
		goto out;
	}
	if (json_integer_value(json_object_get(js, "records")) != (json_int_t)c->n) {
		fprintf(stderr, "ingest: %s holds %lld records, expected %zu\n", name,
		        (long long)json_integer_value(json_object_get(js, "records")), c->n);
		goto out;
	}
	for (p = 0; p < 3; p++) {
		size_t i = probe[p];

		json_decref(js);
		js = NULL;
		snprintf(url, sizeof url, "%s/v1/datasets/%s/records/%s", base, name, c->ids[i]);
		if (http_once("GET", url, NULL, &status, &resp) != 0 || status != 200 ||
		    (js = json_loads(resp.p ? resp.p : "", 0, NULL)) == NULL) {
			fprintf(stderr, "ingest: GET record %s: HTTP %ld\n", c->ids[i], status);
			goto out;
		}
		for (j = 0; j < 2; j++) {
			json_t *arr = json_object_get(json_object_get(js, "embeddings"), space[j]);

			if (json_array_size(arr) != c->dim) {
				fprintf(stderr, "ingest: record %s: space %s has %zu values\n",
				        c->ids[i], space[j], json_array_size(arr));
				goto out;
			}
			for (d = 0; d < c->dim; d++) {
				float want = f32_of(c->vecs[(i * 2 + j) * c->dim + d]);
				double got = json_number_value(json_array_get(arr, d));

				if ((float)got != want) {
					fprintf(stderr,
					        "ingest: record %s %s[%zu] = %.9g, sent %.9g\n",
					        c->ids[i], space[j], d, got, (double)want);
					goto out;
				}
			}
		}
	}
	rc = 0;
out:
	json_decref(js);
	free(resp.p);
	return rc;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: ingest --daemon PATH_TO_WINNOWD [--records 200000] [--batch 1000]\n"
	        "              [--connections 4] [--dim 768] [--only b64-f16|json-array]\n");
}

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	int i;

	o->daemon = NULL;
	o->records = 200000;
	o->batch = 1000;
	o->connections = 4;
	o->dim = 768;
	o->formats = 3;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t n;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return -1;
		if (v == NULL)
			return -1;
		if (strcmp(a, "--daemon") == 0)
			o->daemon = v;
		else if (strcmp(a, "--records") == 0 && parse_size(v, 1, 100000000, &n) == 0)
			o->records = n;
		else if (strcmp(a, "--batch") == 0 && parse_size(v, 1, 1000000, &n) == 0)
			o->batch = n;
		else if (strcmp(a, "--connections") == 0 && parse_size(v, 1, 256, &n) == 0)
			o->connections = (int)n;
		else if (strcmp(a, "--dim") == 0 && parse_size(v, 1, 65536, &n) == 0)
			o->dim = n;
		else if (strcmp(a, "--only") == 0 && strcmp(v, "b64-f16") == 0)
			o->formats = 1;
		else if (strcmp(a, "--only") == 0 && strcmp(v, "json-array") == 0)
			o->formats = 2;
		else
			return -1;
		i++;
	}
	return o->daemon == NULL ? -1 : 0;
}

static const char *mark(int ok)
{
	return ok ? "PASS" : "MISS";
}

/* One wire format: build bodies, time the HTTP phase, check, print. 0 or -1. */
static int measure(const char *base, const char *dataset, const char *label, int json_arrays,
                   const struct corpus *c, const struct opts *o, double raw_rps)
{
	struct bodies bs = {0};
	char url[256];
	double sec, rps, ratio;
	int rc = -1;

	if (bodies_build(&bs, c, o->batch, json_arrays) != 0) {
		fprintf(stderr, "ingest: out of memory building %s bodies\n", label);
		goto out;
	}
	snprintf(url, sizeof url, "%s/v1/datasets/%s/records", base, dataset);
	sec = run_http(url, &bs, o->connections);
	if (sec < 0) {
		fprintf(stderr, "ingest: %s: some batches failed\n", label);
		goto out;
	}
	if (verify(base, dataset, c) != 0)
		goto out;
	rps = (double)c->n / sec;
	ratio = raw_rps > 0 ? rps / raw_rps : 0;
	printf("ingest %s: %zu records in %.2f s = %.0f rec/s, %.1f MB/s; raw LMDB %.0f rec/s; "
	       "ratio %.2f;",
	       label, c->n, sec, rps, (double)bs.bytes / sec / 1e6, raw_rps, ratio);
	if (json_arrays)
		printf(" %s (>= %.0f rec/s)\n", mark(rps >= TARGET_JSON_RPS), TARGET_JSON_RPS);
	else
		printf(" %s (>= %.0f rec/s), %s (ratio >= %.2f)\n", mark(rps >= TARGET_B64_RPS),
		       TARGET_B64_RPS, mark(ratio >= TARGET_B64_RATIO), TARGET_B64_RATIO);
	fflush(stdout);
	rc = 0;
out:
	bodies_free(&bs);
	return rc;
}

int main(int argc, char **argv)
{
	struct daemon_proc d = {.pid = -1};
	struct corpus c = {0};
	struct opts o;
	char raw_dir[] = "/tmp/winnow-bench-raw-XXXXXX", data_dir[] = "/tmp/winnow-bench-XXXXXX";
	char base[64];
	size_t raw_bytes = 0;
	double raw_sec, raw_rps, commit_sec = 0;
	int rc = 1, have_raw = 0, have_data = 0, started = 0, st;

	if (parse_opts(argc, argv, &o) != 0) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	printf("ingest: %zu records, 2 x %zu-d f16, batches of %zu, %d connections\n", o.records,
	       o.dim, o.batch, o.connections);
	fflush(stdout);
	if (corpus_build(&c, o.records, o.dim) != 0) {
		fprintf(stderr, "ingest: out of memory generating records\n");
		goto out;
	}

	if (mkdtemp(raw_dir) == NULL) {
		perror("ingest: mkdtemp");
		goto out;
	}
	have_raw = 1;
	raw_sec = run_raw_lmdb(&c, o.batch, raw_dir, &raw_bytes, &commit_sec);
	rm_tree(raw_dir);
	have_raw = 0;
	if (raw_sec <= 0)
		goto out;
	raw_rps = (double)c.n / raw_sec;
	printf("raw LMDB: %zu records in %.2f s = %.0f rec/s, %.1f MB/s stored "
	       "(%.2f s in commits)\n",
	       c.n, raw_sec, raw_rps, (double)raw_bytes / raw_sec / 1e6, commit_sec);
	fflush(stdout);

	if (mkdtemp(data_dir) == NULL) {
		perror("ingest: mkdtemp");
		goto out;
	}
	have_data = 1;
	started = 1;
	if (daemon_start(&d, o.daemon, data_dir) != 0)
		goto out;
	snprintf(base, sizeof base, "http://127.0.0.1:%d", d.port);
	if (wait_ready(base) != 0) {
		fprintf(stderr, "ingest: %s/readyz never answered 200\n", base);
		goto out;
	}
	if (create_dataset(base, "bench_b64", o.dim) != 0 ||
	    create_dataset(base, "bench_json", o.dim) != 0)
		goto out;
	if ((o.formats & 1) && measure(base, "bench_b64", "b64-f16", 0, &c, &o, raw_rps) != 0)
		goto out;
	if ((o.formats & 2) && measure(base, "bench_json", "json-array", 1, &c, &o, raw_rps) != 0)
		goto out;
	rc = 0;
out:
	if (started) {
		st = daemon_stop(&d);
		if (st != 0) {
			fprintf(stderr, "ingest: winnowd did not exit cleanly (status %d)\n", st);
			rc = 1;
		}
	}
	if (have_raw)
		rm_tree(raw_dir);
	if (have_data)
		rm_tree(data_dir);
	corpus_free(&c);
	curl_global_cleanup();
	return rc;
}

/* SPDX-License-Identifier: MIT */
/* jobs: the job table, its worker threads, and the job documents in LMDB.
 *
 * Owns the in-memory queue of submitted jobs and the records of running ones; the store
 * owns the truth (the documents). A worker marks a job running in the store before calling
 * its kind, and writes the final state after. One mutex guards the queue and the running
 * list; it is never held across a store call. */
#include "core/jobs.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "store/jdoc.h"
#include "store/store.h"


/* A job that was running when the process died this many times in a row fails with
 * "crash_loop" at the next start instead of running again. */
enum { CRASH_LOOP_STARTS = 2 };

struct job {
	uint64_t id;
	const struct job_kind *kind;
	uint32_t ds;
	char dataset[STORE_NAME_MAX + 1];
	char target[STORE_NAME_MAX + 1];
	json_t *args;
	json_t *checkpoint;
	json_t *warnings; /* jobs_warn: written to the document at the end; NULL = none */
	struct jobs *js;
	atomic_int cancel;
	/* progress, under js->mu */
	uint64_t processed, total, processed0;
	double t0;
	struct job *next;
};

struct jobs {
	struct core *core;
	struct jobs_config cfg; /* kinds borrowed from the caller */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail; /* queued */
	struct job *running;     /* linked through next */
	pthread_t *threads;
	unsigned nthreads;
	atomic_int quit;
	atomic_uint finished; /* finished jobs in the store, as last counted */
	_Atomic uint64_t *processed; /* per kind (the kinds table's order): units processed */
};

/* Finished jobs kept in the store (--job-history; their records answer GET /v1/jobs/{id});
 * older ones are deleted, oldest first, whenever a tenth more have finished. */
static unsigned keep_finished(const struct jobs *js)
{
	return js->cfg.history ? js->cfg.history : 1000;
}

static void prune(struct jobs *js);

static const struct job_kind *kind_find(const struct jobs *js, const char *name)
{
	for (size_t i = 0; i < js->cfg.nkinds; i++)
		if (strcmp(js->cfg.kinds[i].name, name) == 0)
			return &js->cfg.kinds[i];
	return NULL;
}

static void key_of(uint64_t id, char k[8])
{
	for (int i = 0; i < 8; i++)
		k[i] = (char)(id >> (56 - 8 * i));
}

static int64_t now_unix(void)
{
	return (int64_t)time(NULL);
}

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	json_decref(j->args);
	json_decref(j->warnings);
	json_decref(j->checkpoint);
	free(j);
}

/* Read job id's document in t as JSON (new). */
static int txn_doc(struct store_txn *t, uint64_t id, json_t **out, struct err *e)
{
	char k[8];

	key_of(id, k);
	return jdoc_txn_getb(t, 0, STORE_NS_JOB, k, sizeof k, out, e);
}

static int txn_put(struct store_txn *t, uint64_t id, const json_t *doc, struct err *e)
{
	char k[8];

	key_of(id, k);
	return jdoc_txn_putb(t, 0, STORE_NS_JOB, k, sizeof k, doc, e);
}

static const char *str_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static const char *doc_state(const json_t *doc)
{
	const char *s = json_string_value(json_object_get(doc, "state"));

	return s != NULL ? s : "";
}

static int state_open(const char *s)
{
	return strcmp(s, "queued") == 0 || strcmp(s, "running") == 0;
}

/* ---- creation ---- */

int jobs_txn_create(struct jobs *js, struct store_txn *t, const char *kind, uint32_t ds_id,
                    const char *dataset, const char *target, const json_t *args, uint64_t *id,
                    struct err *e)
{
	json_t *doc;
	uint64_t nid;
	int rc;

	if (kind_find(js, kind) == NULL)
		return err_set(e, ERR_INVALID, "unknown_job_kind", "no job kind '%s'", kind);
	if ((rc = store_txn_counter_next(t, "job", &nid, e)) != 0)
		return rc;
	doc = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "id", (json_int_t)nid,
	                "kind", kind, "dataset_id", (json_int_t)ds_id, "dataset",
	                dataset ? dataset : "", "target", target ? target : "", "state", "queued",
	                "processed", (json_int_t)0, "total", (json_int_t)0, "created",
	                (json_int_t)now_unix(), "args",
	                args != NULL ? json_deep_copy(args) : json_object());
	if (doc == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	rc = txn_put(t, nid, doc, e);
	json_decref(doc);
	if (rc == 0)
		*id = nid;
	return rc;
}

void jobs_submit(struct jobs *js, uint64_t id)
{
	struct job *j = calloc(1, sizeof *j);

	if (j == NULL)
		return; /* picked up at the next start */
	j->id = id;
	j->js = js;
	atomic_init(&j->cancel, 0);
	pthread_mutex_lock(&js->mu);
	if (js->tail != NULL)
		js->tail->next = j;
	else
		js->head = j;
	js->tail = j;
	pthread_cond_signal(&js->cv);
	pthread_mutex_unlock(&js->mu);
}

/* ---- state transitions ---- */

struct begin_ctx {
	struct job *j;
	int skip;
	json_t *doc; /* new, the document as started */
};

static int begin_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct begin_ctx *c = ctx;
	const char *kname;
	int rc;

	json_decref(c->doc);
	c->doc = NULL;
	c->skip = 0;
	if ((rc = txn_doc(t, c->j->id, &c->doc, e)) != 0)
		return rc;
	if (!state_open(doc_state(c->doc))) {
		c->skip = 1;
		return 0;
	}
	kname = json_string_value(json_object_get(c->doc, "kind"));
	if (kname == NULL || kind_find(c->j->js, kname) == NULL) {
		json_object_set_new(c->doc, "state", json_string("failed"));
		json_object_set_new(c->doc, "finished", json_integer(now_unix()));
		json_object_set_new(c->doc, "error",
		                    json_pack("{s:s, s:s}", "code", "unknown_job_kind", "detail",
		                              "this build does not know the job's kind"));
		c->skip = 1;
		return txn_put(t, c->j->id, c->doc, e);
	}
	if (strcmp(doc_state(c->doc), "running") == 0 &&
	    json_integer_value(json_object_get(c->doc, "unclean_starts")) >= CRASH_LOOP_STARTS) {
		/* it was running when the process died, twice in a row: a third run would most
		 * likely take the daemon down again (a crash inside a library, say) */
		json_object_set_new(c->doc, "state", json_string("failed"));
		json_object_set_new(c->doc, "finished", json_integer(now_unix()));
		json_object_set_new(
		        c->doc, "error",
		        json_pack("{s:s, s:s}", "code", "crash_loop", "detail",
		                  "the daemon stopped abnormally twice in a row while this job ran; it "
		                  "is not resumed again (the daemon's log tells what it was doing)"));
		c->skip = 1;
		log_msg(LOG_WARN, "job_crash_loop", "id=%llu kind=%s", (unsigned long long)c->j->id,
		        kname);
		return txn_put(t, c->j->id, c->doc, e);
	}
	/* counted up at every start, back to 0 when a shutdown interrupts it cleanly (end_fn):
	 * what stays is the number of starts in a row that ended with the process dying */
	json_object_set_new(
	        c->doc, "unclean_starts",
	        json_integer(json_integer_value(json_object_get(c->doc, "unclean_starts")) + 1));
	if (strcmp(doc_state(c->doc), "running") == 0) {
		/* an earlier process ran it and stopped: say so, and where it resumes */
		json_object_set_new(c->doc, "resumes",
		                    json_integer(json_integer_value(json_object_get(c->doc, "resumes")) +
		                                 1));
		json_object_set(c->doc, "resumed_at", json_object_get(c->doc, "processed"));
	}
	json_object_set_new(c->doc, "state", json_string("running"));
	if (json_object_get(c->doc, "started") == NULL)
		json_object_set_new(c->doc, "started", json_integer(now_unix()));
	return txn_put(t, c->j->id, c->doc, e);
}

struct end_ctx {
	struct job *j;
	const char *state; /* NULL: leave it running (shutdown) */
	const struct err *err;
};

static int end_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct end_ctx *c = ctx;
	json_t *doc = NULL;
	int rc;

	if ((rc = txn_doc(t, c->j->id, &doc, e)) != 0)
		return rc;
	if (!state_open(doc_state(doc))) {
		json_decref(doc);
		return 0;
	}
	if (c->state == NULL) { /* a clean shutdown: this start did not end in a crash */
		json_object_set_new(doc, "unclean_starts", json_integer(0));
		rc = txn_put(t, c->j->id, doc, e);
		json_decref(doc);
		return rc;
	}
	json_object_set_new(doc, "state", json_string(c->state));
	json_object_set_new(doc, "finished", json_integer(now_unix()));
	if (c->j->warnings != NULL)
		json_object_set(doc, "warnings", c->j->warnings);
	if (c->err != NULL)
		json_object_set_new(doc, "error",
		                    json_pack("{s:s, s:s}", "code",
		                              c->err->slug[0] ? c->err->slug : err_str(c->err->code),
		                              "detail", c->err->detail[0] ? c->err->detail
		                                                          : err_str(c->err->code)));
	pthread_mutex_lock(&c->j->js->mu);
	if (strcmp(c->state, "succeeded") == 0 && c->j->total > 0)
		c->j->processed = c->j->total;
	json_object_set_new(doc, "processed", json_integer((json_int_t)c->j->processed));
	json_object_set_new(doc, "total", json_integer((json_int_t)c->j->total));
	pthread_mutex_unlock(&c->j->js->mu);
	rc = txn_put(t, c->j->id, doc, e);
	json_decref(doc);
	return rc;
}

static void running_remove(struct jobs *js, struct job *j)
{
	struct job **p;

	for (p = &js->running; *p != NULL; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	j->next = NULL;
}

static void run_one(struct jobs *js, struct job *j)
{
	struct begin_ctx bc = {.j = j};
	struct end_ctx ec = {.j = j};
	struct err e = {0};
	const char *s;
	int rc;

	rc = store_write(js->core->store, begin_fn, &bc, &e);
	if (rc != 0 || bc.skip) {
		if (rc != 0 && rc != ERR_NOT_FOUND)
			log_msg(LOG_WARN, "job", "id=%llu msg=\"cannot start\" error=%s",
			        (unsigned long long)j->id, err_str(rc));
		json_decref(bc.doc);
		return;
	}
	j->kind = kind_find(js, json_string_value(json_object_get(bc.doc, "kind")));
	j->ds = (uint32_t)json_integer_value(json_object_get(bc.doc, "dataset_id"));
	s = json_string_value(json_object_get(bc.doc, "dataset"));
	snprintf(j->dataset, sizeof j->dataset, "%s", s ? s : "");
	s = json_string_value(json_object_get(bc.doc, "target"));
	snprintf(j->target, sizeof j->target, "%s", s ? s : "");
	j->args = json_incref(json_object_get(bc.doc, "args"));
	if (j->args == NULL)
		j->args = json_object();
	j->checkpoint = json_incref(json_object_get(bc.doc, "checkpoint"));
	pthread_mutex_lock(&js->mu);
	j->processed = j->processed0 =
	        (uint64_t)json_integer_value(json_object_get(bc.doc, "processed"));
	j->total = (uint64_t)json_integer_value(json_object_get(bc.doc, "total"));
	j->t0 = clock_now();
	pthread_mutex_unlock(&js->mu);
	json_decref(bc.doc);

	log_msg(LOG_INFO, "job_start", "id=%llu kind=%s dataset=%s target=%s resume=%s",
	        (unsigned long long)j->id, j->kind->name, j->dataset, j->target,
	        j->checkpoint ? "true" : "false");
	rc = j->kind->run(j, &e);
	if (rc == 0) {
		ec.state = "succeeded";
	} else if (rc == ERR_CANCELLED && !atomic_load(&j->cancel)) {
		ec.state = NULL; /* shutdown: resume at the next start */
	} else if (rc == ERR_CANCELLED) {
		ec.state = "cancelled";
	} else {
		ec.state = "failed";
		if (e.code == 0)
			err_set(&e, rc, err_str(rc), "%s", err_str(rc));
		ec.err = &e;
	}
	{
		struct err e2 = {0};
		int wrc = store_write(js->core->store, end_fn, &ec, &e2);

		if (wrc != 0 && wrc != ERR_NOT_FOUND)
			log_msg(LOG_WARN, "job", "id=%llu msg=\"cannot record the end\" error=%s",
			        (unsigned long long)j->id, err_str(wrc));
	}
	log_msg(rc == 0 || rc == ERR_CANCELLED ? LOG_INFO : LOG_WARN, "job_end",
	        "id=%llu kind=%s state=%s%s%s", (unsigned long long)j->id, j->kind->name,
	        ec.state ? ec.state : "interrupted", ec.err ? " error=" : "",
	        ec.err ? ec.err->slug : "");
}

static void *worker_main(void *arg)
{
	struct jobs *js = arg;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&js->mu);
		while (js->head == NULL && !atomic_load(&js->quit))
			pthread_cond_wait(&js->cv, &js->mu);
		if (atomic_load(&js->quit)) {
			pthread_mutex_unlock(&js->mu);
			return NULL;
		}
		j = js->head;
		js->head = j->next;
		if (js->head == NULL)
			js->tail = NULL;
		j->next = js->running;
		js->running = j;
		pthread_mutex_unlock(&js->mu);

		run_one(js, j);

		pthread_mutex_lock(&js->mu);
		running_remove(js, j);
		pthread_mutex_unlock(&js->mu);
		job_free(j);
		if (atomic_fetch_add(&js->finished, 1) + 1 >
		    keep_finished(js) + keep_finished(js) / 10)
			prune(js);
	}
}

/* ---- open / close ---- */

struct scan_ctx {
	int want_open;
	uint64_t *ids;
	size_t n, cap;
	int nomem;
	size_t others; /* documents of the other kind */
};

/* Collects the ids of open jobs (want_open = 1) or finished ones (0), ascending (= oldest
 * first), and counts the others. */
static int collect_jobs(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	struct scan_ctx *c = ctx;
	json_t *doc;
	uint64_t id = 0;

	if (key_len != 8)
		return 0;
	for (size_t i = 0; i < 8; i++)
		id = id << 8 | (unsigned char)key[i];
	doc = json_loadb(val, len, 0, NULL);
	if (doc != NULL && state_open(doc_state(doc)) == c->want_open) {
		if (c->n == c->cap) {
			size_t ncap = c->cap ? c->cap * 2 : 64;
			uint64_t *p = realloc(c->ids, ncap * sizeof *p);

			if (p == NULL) {
				c->nomem = 1;
				json_decref(doc);
				return 1;
			}
			c->ids = p;
			c->cap = ncap;
		}
		c->ids[c->n++] = id;
	} else if (doc != NULL) {
		c->others++;
	}
	json_decref(doc);
	return 0;
}

struct prune_ctx {
	const uint64_t *ids;
	size_t n;
};

static int prune_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct prune_ctx *c = ctx;

	for (size_t i = 0; i < c->n; i++) {
		char k[8];
		int rc;

		key_of(c->ids[i], k);
		rc = store_txn_doc_del(t, 0, STORE_NS_JOB, k, sizeof k, e);
		if (rc != 0 && rc != ERR_NOT_FOUND)
			return rc;
	}
	return 0;
}

/* Delete the oldest finished jobs beyond keep_finished(), 1000 per transaction. */
static void prune(struct jobs *js)
{
	struct scan_ctx c = {.want_open = 0};
	struct store_reader *r = NULL;
	size_t drop, at = 0;

	if (store_reader_open(js->core->store, &r, NULL) != 0)
		return;
	store_reader_docs(r, 0, STORE_NS_JOB, collect_jobs, &c, NULL);
	store_reader_close(r);
	drop = !c.nomem && c.n > keep_finished(js) ? c.n - keep_finished(js) : 0;
	while (at < drop) {
		struct prune_ctx pc = {c.ids + at, drop - at < 1000 ? drop - at : 1000};

		if (store_write(js->core->store, prune_fn, &pc, NULL) != 0)
			break;
		at += pc.n;
	}
	if (at > 0)
		log_msg(LOG_INFO, "jobs_pruned", "count=%zu kept=%u", at, keep_finished(js));
	atomic_store(&js->finished, (unsigned)(c.n - at));
	free(c.ids);
}

int jobs_open(struct jobs **out, struct core *core, const struct jobs_config *cfg,
              struct err *e)
{
	struct jobs *js = calloc(1, sizeof *js);
	struct store_reader *r = NULL;
	struct scan_ctx sc = {.want_open = 1};
	int rc = 0;

	if (js == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	js->core = core;
	js->cfg = *cfg;
	pthread_mutex_init(&js->mu, NULL);
	pthread_cond_init(&js->cv, NULL);
	if ((js->processed = calloc(cfg->nkinds + 1, sizeof *js->processed)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		goto out;
	rc = store_reader_docs(r, 0, STORE_NS_JOB, collect_jobs, &sc, e);
	store_reader_close(r);
	if (rc != 0)
		goto out;
	if (sc.nomem) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sc.n; i++)
		jobs_submit(js, sc.ids[i]);
	if (sc.n > 0)
		log_msg(LOG_INFO, "jobs_resume", "count=%zu", sc.n);
	atomic_store(&js->finished, (unsigned)sc.others);
	if (sc.others > keep_finished(js))
		prune(js);
	js->nthreads = cfg->threads > 0 ? cfg->threads : 1;
	js->threads = calloc(js->nthreads, sizeof *js->threads);
	if (js->threads == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < js->nthreads; i++) {
		if (pthread_create(&js->threads[i], NULL, worker_main, js) != 0) {
			js->nthreads = i;
			rc = err_set(e, ERR_IO, "thread", "cannot start a job thread");
			goto out;
		}
	}
out:
	free(sc.ids);
	if (rc != 0) {
		jobs_close(js);
		return rc;
	}
	*out = js;
	return 0;
}

void jobs_close(struct jobs *js)
{
	struct job *j;

	if (js == NULL)
		return;
	pthread_mutex_lock(&js->mu);
	atomic_store(&js->quit, 1);
	pthread_cond_broadcast(&js->cv);
	pthread_mutex_unlock(&js->mu);
	for (unsigned i = 0; i < js->nthreads; i++)
		pthread_join(js->threads[i], NULL);
	free(js->threads);
	while ((j = js->head) != NULL) {
		js->head = j->next;
		job_free(j);
	}
	pthread_mutex_destroy(&js->mu);
	pthread_cond_destroy(&js->cv);
	free(js->processed);
	free(js);
}

/* ---- cancel ---- */

struct cancel_ctx {
	uint64_t id;
	int found_running;
	int result; /* 0 cancelled now or flagged; ERR_CONFLICT finished */
};

static int cancel_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct cancel_ctx *c = ctx;
	json_t *doc = NULL;
	int rc;

	c->result = 0;
	if ((rc = txn_doc(t, c->id, &doc, e)) != 0)
		return rc;
	if (!state_open(doc_state(doc))) {
		c->result = ERR_CONFLICT;
	} else if (!c->found_running) {
		json_object_set_new(doc, "state", json_string("cancelled"));
		json_object_set_new(doc, "finished", json_integer(now_unix()));
		rc = txn_put(t, c->id, doc, e);
	}
	json_decref(doc);
	return rc;
}

int jobs_cancel(struct jobs *js, uint64_t id, struct err *e)
{
	struct cancel_ctx c = {.id = id};
	struct job *j, **p;
	int rc;

	pthread_mutex_lock(&js->mu);
	for (j = js->running; j != NULL; j = j->next) {
		if (j->id == id) {
			atomic_store(&j->cancel, 1);
			c.found_running = 1;
		}
	}
	for (p = &js->head; *p != NULL;) { /* drop it from the queue */
		if ((*p)->id == id) {
			j = *p;
			*p = j->next;
			job_free(j);
			continue;
		}
		p = &(*p)->next;
	}
	js->tail = NULL;
	for (j = js->head; j != NULL; j = j->next)
		js->tail = j;
	pthread_mutex_unlock(&js->mu);
	if ((rc = store_write(js->core->store, cancel_fn, &c, e)) != 0)
		return rc == ERR_NOT_FOUND ? err_set(e, ERR_NOT_FOUND, "job_not_found",
		                                     "no job %llu", (unsigned long long)id)
		                           : rc;
	if (c.result == ERR_CONFLICT)
		return err_set(e, ERR_CONFLICT, "job_finished", "job %llu has already finished",
		               (unsigned long long)id);
	return 0;
}

struct match_ctx {
	uint32_t ds;
	uint64_t before;
	const char *kind, *target;
	uint64_t *ids;
	size_t n, cap;
};

static int match_jobs(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	struct match_ctx *c = ctx;
	json_t *doc = json_loadb(val, len, 0, NULL);
	uint64_t id = 0;
	const char *k, *t;

	if (doc == NULL || key_len != 8)
		goto out;
	for (size_t i = 0; i < 8; i++)
		id = id << 8 | (unsigned char)key[i];
	k = json_string_value(json_object_get(doc, "kind"));
	t = json_string_value(json_object_get(doc, "target"));
	if (!state_open(doc_state(doc)) || (c->before != 0 && id >= c->before) ||
	    (uint32_t)json_integer_value(json_object_get(doc, "dataset_id")) != c->ds ||
	    (c->kind != NULL && (k == NULL || strcmp(k, c->kind) != 0)) ||
	    (c->target != NULL && (t == NULL || strcmp(t, c->target) != 0)))
		goto out;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		uint64_t *p = realloc(c->ids, ncap * sizeof *p);

		if (p == NULL)
			goto out;
		c->ids = p;
		c->cap = ncap;
	}
	c->ids[c->n++] = id;
out:
	json_decref(doc);
	return 0;
}

unsigned jobs_cancel_matching(struct jobs *js, uint32_t ds_id, const char *kind,
                              const char *target, uint64_t before_id)
{
	struct match_ctx c = {.ds = ds_id, .before = before_id, .kind = kind, .target = target};
	struct store_reader *r = NULL;
	unsigned n = 0;

	if (store_reader_open(js->core->store, &r, NULL) != 0)
		return 0;
	store_reader_docs(r, 0, STORE_NS_JOB, match_jobs, &c, NULL);
	store_reader_close(r);
	for (size_t i = 0; i < c.n; i++)
		if (jobs_cancel(js, c.ids[i], NULL) == 0)
			n++;
	free(c.ids);
	return n;
}

unsigned jobs_count_open(struct jobs *js, uint32_t ds_id, const char *kind, const char *target,
                         uint64_t before_id)
{
	struct match_ctx c = {.ds = ds_id, .before = before_id, .kind = kind, .target = target};
	struct store_reader *r = NULL;

	if (store_reader_open(js->core->store, &r, NULL) != 0)
		return 0;
	store_reader_docs(r, 0, STORE_NS_JOB, match_jobs, &c, NULL);
	store_reader_close(r);
	free(c.ids);
	return (unsigned)c.n;
}

/* ---- views ---- */

/* The API view of a stored document, with live progress overlaid for a running job. */
static json_t *view(struct jobs *js, const json_t *doc)
{
	uint64_t id = (uint64_t)json_integer_value(json_object_get(doc, "id"));
	uint64_t processed = (uint64_t)json_integer_value(json_object_get(doc, "processed"));
	uint64_t total = (uint64_t)json_integer_value(json_object_get(doc, "total"));
	const char *state = doc_state(doc);
	json_t *rate = json_null(), *eta = json_null(), *v, *err;
	struct job *j;

	pthread_mutex_lock(&js->mu);
	for (j = js->running; j != NULL; j = j->next) {
		if (j->id != id || j->kind == NULL)
			continue;
		double dt = clock_now() - j->t0;

		if (j->processed > processed)
			processed = j->processed;
		if (j->total > 0)
			total = j->total;
		if (dt > 0.2 && j->processed > j->processed0) {
			double r = (double)(j->processed - j->processed0) / dt;

			json_decref(rate);
			rate = json_real(r);
			if (total >= processed) {
				json_decref(eta);
				eta = json_real((double)(total - processed) / r);
			}
		}
	}
	pthread_mutex_unlock(&js->mu);
	err = json_object_get(doc, "error");
	v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:O}", "id",
	              "", "kind", str_or_empty(json_string_value(json_object_get(doc, "kind"))), "dataset",
	              str_or_empty(json_string_value(json_object_get(doc, "dataset"))), "target",
	              str_or_empty(json_string_value(json_object_get(doc, "target"))), "state", state,
	              "processed", (json_int_t)processed, "total", (json_int_t)total, "rate_per_s",
	              rate, "eta_s", eta, "created", jdoc_time(json_object_get(doc, "created")),
	              "started", jdoc_time(json_object_get(doc, "started")), "finished",
	              jdoc_time(json_object_get(doc, "finished")), "error",
	              err != NULL ? err : json_null());
	if (v != NULL) {
		char idbuf[24];

		json_object_set_new(v, "resumes",
		                    json_integer(json_integer_value(json_object_get(doc, "resumes"))));
		json_object_set_new(v, "warnings",
		                    json_is_array(json_object_get(doc, "warnings"))
		                            ? json_incref(json_object_get(doc, "warnings"))
		                            : json_array());
		if (json_object_get(doc, "resumed_at") != NULL)
			json_object_set(v, "resumed_at", json_object_get(doc, "resumed_at"));

		snprintf(idbuf, sizeof idbuf, "%llu", (unsigned long long)id);
		json_object_set_new(v, "id", json_string(idbuf));
	}
	return v;
}

int jobs_get_json(struct jobs *js, uint64_t id, json_t **out, struct err *e)
{
	struct store_reader *r = NULL;
	char k[8];
	json_t *doc = NULL, *v;
	int rc;

	if ((rc = store_reader_open(js->core->store, &r, e)) != 0)
		return rc;
	key_of(id, k);
	rc = jdoc_reader_getb(r, 0, STORE_NS_JOB, k, sizeof k, &doc, e);
	store_reader_close(r);
	if (rc != 0)
		return rc == ERR_NOT_FOUND ? err_set(e, ERR_NOT_FOUND, "job_not_found",
		                                     "no job %llu", (unsigned long long)id)
		                           : rc;
	v = view(js, doc);
	json_decref(doc);
	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	*out = v;
	return 0;
}

struct list_ctx {
	struct jobs *js;
	uint32_t ds;
	json_t *arr;
};

static int list_fn(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	struct list_ctx *c = ctx;
	json_t *doc = json_loadb(val, len, 0, NULL);

	(void)key;
	(void)key_len;
	if (doc != NULL &&
	    (c->ds == 0 ||
	     (uint32_t)json_integer_value(json_object_get(doc, "dataset_id")) == c->ds))
		json_array_append_new(c->arr, view(c->js, doc));
	json_decref(doc);
	return 0;
}

int jobs_list_json(struct jobs *js, uint32_t ds_id, size_t limit, json_t **out, struct err *e)
{
	struct list_ctx c = {.js = js, .ds = ds_id, .arr = json_array()};
	struct store_reader *r = NULL;
	json_t *res;
	size_t n;
	int rc;

	if (c.arr == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = store_reader_open(js->core->store, &r, e)) != 0)
		goto fail;
	rc = store_reader_docs(r, 0, STORE_NS_JOB, list_fn, &c, e);
	store_reader_close(r);
	if (rc != 0)
		goto fail;
	/* The documents come oldest first; answer newest first. */
	n = json_array_size(c.arr);
	res = json_array();
	for (size_t i = n; i > 0 && (limit == 0 || json_array_size(res) < limit); i--)
		json_array_append(res, json_array_get(c.arr, i - 1));
	json_decref(c.arr);
	*out = res;
	return 0;
fail:
	json_decref(c.arr);
	return rc;
}

static const char *const state_names[JOBS_NSTATES] = {"queued", "running", "succeeded",
                                                      "failed", "cancelled"};

const char *jobs_state_name(enum jobs_state st)
{
	return (unsigned)st < JOBS_NSTATES ? state_names[st] : "unknown";
}

struct stats_ctx {
	const struct jobs *js;
	struct jobs_stat *out;
	size_t n;
};

static int stats_fn(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	struct stats_ctx *c = ctx;
	json_t *doc = json_loadb(val, len, 0, NULL);
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	const char *state = doc_state(doc);

	(void)key;
	(void)key_len;
	for (size_t k = 0; kind != NULL && k < c->n; k++) {
		if (strcmp(c->out[k].kind, kind) != 0)
			continue;
		for (size_t st = 0; st < JOBS_NSTATES; st++)
			if (strcmp(state, state_names[st]) == 0)
				c->out[k].count[st]++;
		break;
	}
	json_decref(doc);
	return 0;
}

size_t jobs_stats(struct jobs *js, struct jobs_stat *out, size_t max)
{
	struct stats_ctx c = {js, out, js->cfg.nkinds < max ? js->cfg.nkinds : max};
	struct store_reader *r = NULL;

	for (size_t k = 0; k < c.n; k++) {
		memset(&out[k], 0, sizeof out[k]);
		out[k].kind = js->cfg.kinds[k].name;
		out[k].processed_total = atomic_load(&js->processed[k]);
	}
	if (store_reader_open(js->core->store, &r, NULL) == 0) {
		store_reader_docs(r, 0, STORE_NS_JOB, stats_fn, &c, NULL);
		store_reader_close(r);
	}
	return c.n;
}

/* ---- for run functions ---- */

uint64_t job_id(const struct job *j)
{
	return j->id;
}

struct core *job_core(const struct job *j)
{
	return j->js->core;
}

uint32_t job_ds(const struct job *j)
{
	return j->ds;
}

const char *job_dataset(const struct job *j)
{
	return j->dataset;
}

const char *job_target(const struct job *j)
{
	return j->target;
}

const json_t *job_args(const struct job *j)
{
	return j->args;
}

const json_t *job_checkpoint(const struct job *j)
{
	return j->checkpoint;
}

int jobs_should_stop(const struct job *j)
{
	return atomic_load(&j->cancel) || atomic_load(&j->js->core->stopping) || atomic_load(&j->js->quit);
}

void jobs_progress(struct job *j, uint64_t processed, uint64_t total)
{
	pthread_mutex_lock(&j->js->mu);
	if (processed > j->processed && j->kind != NULL)
		atomic_fetch_add(&j->js->processed[j->kind - j->js->cfg.kinds], processed - j->processed);
	j->processed = processed;
	j->total = total;
	pthread_mutex_unlock(&j->js->mu);
}

int jobs_txn_checkpoint(struct job *j, struct store_txn *t, const json_t *checkpoint,
                        uint64_t processed, uint64_t total, struct err *e)
{
	json_t *doc = NULL;
	int rc;

	if (atomic_load(&j->cancel))
		return ERR_CANCELLED;
	if ((rc = txn_doc(t, j->id, &doc, e)) != 0)
		return rc;
	if (strcmp(doc_state(doc), "running") != 0) {
		json_decref(doc);
		return ERR_CANCELLED;
	}
	json_object_set_new(doc, "checkpoint", json_deep_copy(checkpoint));
	json_object_set_new(doc, "processed", json_integer((json_int_t)processed));
	json_object_set_new(doc, "total", json_integer((json_int_t)total));
	rc = txn_put(t, j->id, doc, e);
	json_decref(doc);
	/* Not jobs_progress here: the transaction may still fail or be retried, and a reader of
	 * the job must never see progress that a SIGKILL could take back. The caller reports it
	 * once the commit has returned. */
	return rc;
}

void jobs_warn(struct job *j, const char *code, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	json_t *w;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	if (j->warnings == NULL)
		j->warnings = json_array();
	w = json_pack("{s:s, s:s}", "code", code, "detail", detail);
	if (j->warnings != NULL && w != NULL)
		json_array_append(j->warnings, w);
	json_decref(w);
	log_msg(LOG_WARN, "job_warning", "id=%llu code=%s", (unsigned long long)j->id, code);
}

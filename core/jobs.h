/* SPDX-License-Identifier: MIT */
/* jobs: long-running work (scoring a dataset, materialising a subset) on a bounded pool of
 * threads apart from the HTTP threads, recorded in LMDB so that it survives a restart.
 *
 * A job is a document in the store (global namespace 'j', key = big-endian u64 id) holding
 * its kind, target, arguments, state, progress and checkpoint. Its life:
 *   queued -> running -> succeeded | failed | cancelled.
 * The document is created inside the caller's write transaction (jobs_txn_create), so the
 * job exists if and only if the change that asked for it was committed; jobs_submit() then
 * hands it to the pool. A kind's run function does its work in chunks; each chunk's
 * results and the job's checkpoint are committed in one transaction (jobs_txn_checkpoint),
 * so after a crash, SIGKILL included, jobs_open() finds the job still queued or running and
 * runs it again from its last checkpoint, not from zero.
 *
 * Shutdown (jobs_close) asks running jobs to stop at their next chunk and leaves them
 * "running" in the store: they resume at the next start. DELETE /v1/jobs/{id} cancels.
 *
 * Threading: every function is thread-safe. Run functions execute on pool threads; they
 * read their job through the accessors below (stable for the run) and report progress. */
#ifndef WINNOW_JOBS_H
#define WINNOW_JOBS_H

#include <stddef.h>
#include <stdint.h>

struct core;
struct err;
struct jobs;
struct job;
struct store_txn;
typedef struct json_t json_t;

/* A kind of job. run executes (or resumes, when job_checkpoint() is not NULL) job j and
 * returns 0 when done, ERR_CANCELLED when jobs_should_stop() told it to stop, or another
 * code with e set (the job fails with that error). */
struct job_kind {
	const char *name;
	int (*run)(struct job *j, struct err *e);
};

/* How the runner is set up: the kinds it runs (the process that links the services names
 * them: winnowd's table is in cmd/winnowd.c, so this file includes no service header). */
struct jobs_config {
	const struct job_kind *kinds; /* borrowed until jobs_close */
	size_t nkinds;
	unsigned threads;             /* jobs that run at once (0: 1) */
	unsigned history;             /* finished jobs kept in the store (0: 1000) */
};

/* Open the job table over core->store and cfg->threads threads (started here). Jobs
 * left queued or running by an earlier process are queued again (they resume from their
 * checkpoints); a job of a kind not in cfg->kinds is marked failed. core and cfg->kinds
 * are borrowed until jobs_close. *out set only on success. */
int jobs_open(struct jobs **out, struct core *core, const struct jobs_config *cfg,
              struct err *e);

/* Stop: running jobs are asked to stop at their next chunk (they stay "running" in the store
 * and resume at the next start); queued ones stay queued. Waits for the threads. js may be
 * NULL. */
void jobs_close(struct jobs *js);

/* Inside the caller's write transaction t: record a new queued job of kind (a name from the
 * kinds of jobs_open) on dataset ds_id (0 = none; dataset is its name, for display) about
 * target (a filter or subset name, may be ""), with args (borrowed JSON object, may be NULL).
 * *id gets its id. After t commits, call jobs_submit(js, *id). ERR_INVALID for an unknown
 * kind. */
int jobs_txn_create(struct jobs *js, struct store_txn *t, const char *kind, uint32_t ds_id,
                    const char *dataset, const char *target, const json_t *args, uint64_t *id,
                    struct err *e);

/* Queue job id (created by jobs_txn_create and committed) for the pool. Never fails: a job
 * that cannot be queued in memory is picked up at the next start. */
void jobs_submit(struct jobs *js, uint64_t id);

/* Cancel job id: a queued job becomes cancelled at once; a running one is asked to stop
 * and becomes cancelled when it does. ERR_NOT_FOUND; ERR_CONFLICT when it already finished. */
int jobs_cancel(struct jobs *js, uint64_t id, struct err *e);

/* Cancel every unfinished job of dataset ds_id about target (NULL = all its jobs), of kind
 * (NULL = any) and with an id below before_id (0 = any), e.g. the older scoring jobs of a
 * filter that was just replaced. Returns how many. */
unsigned jobs_cancel_matching(struct jobs *js, uint32_t ds_id, const char *kind,
                              const char *target, uint64_t before_id);

/* How many unfinished jobs of dataset ds_id, kind and target (NULL = any) have an id below
 * before_id (0 = any id): a subset job waits for the scoring jobs created before it. */
unsigned jobs_count_open(struct jobs *js, uint32_t ds_id, const char *kind, const char *target,
                         uint64_t before_id);

/* The API view of job id: id, kind, dataset, target, state, processed, total, rate_per_s,
 * eta_s, created, started, finished, error, resumes, warnings (an array, empty unless the
 * run called jobs_warn). *out new (json_decref). ERR_NOT_FOUND. */
int jobs_get_json(struct jobs *js, uint64_t id, json_t **out, struct err *e);

/* All jobs, newest first, at most limit (0 = all), optionally only those of dataset ds_id
 * (0 = every dataset). *out new: a JSON array. */
int jobs_list_json(struct jobs *js, uint32_t ds_id, size_t limit, json_t **out, struct err *e);

/* The states of a job, in the order of struct jobs_stat's counts. */
enum jobs_state { JOBS_QUEUED, JOBS_RUNNING, JOBS_SUCCEEDED, JOBS_FAILED, JOBS_CANCELLED,
                  JOBS_NSTATES };

/* The jobs of one kind, for /metrics. */
struct jobs_stat {
	const char *kind;              /* borrowed from the kinds table */
	uint64_t count[JOBS_NSTATES];  /* jobs in the store in each state (finished ones as kept
	                                  by --job-history) */
	uint64_t processed_total;      /* units (rows, pairs) processed by this process */
};

/* "queued", "running", ... for a state. */
const char *jobs_state_name(enum jobs_state s);

/* One entry a kind of the kinds table (at most max, in the table's order) into out; returns
 * how many. Reads the job documents once (a scan of a few thousand at most). */
size_t jobs_stats(struct jobs *js, struct jobs_stat *out, size_t max);

/* ---- For run functions ---- */

uint64_t job_id(const struct job *j);
struct core *job_core(const struct job *j);
uint32_t job_ds(const struct job *j);
const char *job_dataset(const struct job *j);
const char *job_target(const struct job *j);
/* The job's args (borrowed for the run; an object, maybe empty). */
const json_t *job_args(const struct job *j);
/* The last committed checkpoint (borrowed for the run), or NULL on a fresh start. */
const json_t *job_checkpoint(const struct job *j);

/* 1 when the run should stop now (cancel requested or the daemon is shutting down);
 * the run then returns ERR_CANCELLED. */
int jobs_should_stop(const struct job *j);

/* Progress in memory (for rate and ETA): processed of total units so far. */
void jobs_progress(struct job *j, uint64_t processed, uint64_t total);

/* Inside a write transaction that commits a chunk of the job's results: record checkpoint
 * (borrowed JSON, copied) and progress in the job's document, in the same transaction.
 * ERR_CANCELLED when the job's document says it is no longer running (cancelled meanwhile).
 * May be called again if the transaction is retried. The in-memory progress is not touched:
 * call jobs_progress after the commit, so that what a client sees is always durable. */
int jobs_txn_checkpoint(struct job *j, struct store_txn *t, const json_t *checkpoint,
                        uint64_t processed, uint64_t total, struct err *e);

/* Record a warning about the job's result: the job succeeded (or failed) but the caller
 * should look, e.g. a subset that kept no record. code: a stable slug; detail: printf-style.
 * Warnings are kept in memory and written to the job's document when it ends, whatever its
 * state (a run resumed after a crash records its warnings again); the job view lists them
 * as "warnings": [{"code", "detail"}]. Called from the run's own thread only. Never fails
 * (a warning that cannot be allocated is dropped, and logged). */
void jobs_warn(struct job *j, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif

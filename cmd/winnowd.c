/* SPDX-License-Identifier: MIT */
/* winnowd: the daemon's main(): its job kinds, its start-up and shutdown order.
 *
 * Start-up: configuration, log level, metrics, API keys, data directory lock, storage,
 * HTTP server, ready. SIGHUP reloads the TLS certificate and key. SIGINT, SIGTERM and SIGHUP are blocked before any thread starts, so every thread
 * inherits the mask and main() alone receives them in sigwait(). Shutdown on the first
 * SIGINT/SIGTERM: not ready, stop accepting, finish in-flight requests, close storage,
 * exit 0. A second SIGINT/SIGTERM during shutdown exits at once. Foreground only. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/server.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "core/jobs.h"
#include "curate/instance.h"
#include "curate/subset.h"
#include "daemon/auth.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/dirlock.h"
#include "daemon/metrics.h"
#include "index/index.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "search/adapters.h"
#include "search/catalog.h"
#include "search/normalizers.h"
#include "store/store.h"

#define SHUTDOWN_GRACE_S 30.0

/* The kinds of background job winnowd runs, sorted by name: the job runner (core/jobs.c)
 * knows none of them; a job's document names its kind, and a kind missing here fails. */
static const struct job_kind job_kinds[] = {
	{"adapter_train", adapters_job_train},
	{"hubness", normalizers_job_run},
	{"index", catalog_job_build},
	{"score", instance_job_score},
	{"subset", subset_job_run},
};

static pthread_t main_thread;

/* Threads that libraries start before main() (OpenBLAS does, from a constructor) do not
 * inherit the blocked mask, so the kernel may deliver SIGTERM to one of them. This handler
 * runs only on such threads (main blocks the signals before installing it) and passes
 * the signal on to main, where sigwait() takes it. Async-signal-safe. */
static void forward_signal(int sig)
{
	pthread_kill(main_thread, sig);
}

/* During shutdown: a second signal ends the process at once. */
static void *second_signal(void *arg)
{
	sigset_t *set = arg;
	int sig = 0;

	if (sigwait(set, &sig) == 0) {
		log_msg(LOG_WARN, "shutdown", "signal=%d msg=\"second signal, exiting now\"", sig);
		_exit(1);
	}
	return NULL;
}

/* Storage, jobs and indexes of a data node (a router has none). */
static int open_storage(struct daemon *d, const struct config *cfg, int *lock_fd, struct err *e)
{
	struct store_config sc = {0};
	struct jobs_config jc = {job_kinds, sizeof job_kinds / sizeof job_kinds[0],
	                         cfg->job_threads, cfg->job_history};
	int rc;

	/* Before anything touches the directory: a second daemon must leave it alone. */
	if ((rc = dirlock_acquire(cfg->data_dir, lock_fd, e)) != 0) {
		log_msg(LOG_ERROR, "startup", "msg=\"%s\"", e->detail);
		return rc;
	}
	sc.dir = cfg->data_dir;
	sc.map_size = cfg->map_size;
	sc.max_readers = 126 + cfg->threads * 2;
	if ((rc = store_open(&d->core.store, &sc, e)) != 0) {
		log_msg(LOG_ERROR, "startup", "msg=\"cannot open storage in %s: %s\"", cfg->data_dir,
		        e->detail);
		return rc;
	}
	/* Jobs left unfinished by an earlier process are queued again here, before the
	 * server accepts requests that could create new ones. */
	if ((rc = catalog_open(&d->core.catalog, &d->core, e)) != 0 ||
	    (rc = jobs_open(&d->core.jobs, &d->core, &jc, e)) != 0) {
		log_msg(LOG_ERROR, "startup", "msg=\"cannot start the job runner: %s\"", e->detail);
		return rc;
	}
	/* every defined index is rebuilt from LMDB before /readyz says yes */
	if ((rc = catalog_start(d->core.catalog, e)) != 0) {
		log_msg(LOG_ERROR, "startup", "msg=\"cannot queue the index builds: %s\"", e->detail);
		return rc;
	}
	return 0;
}

static int run(const struct config *cfg, const struct shardmap *map)
{
	struct daemon d;
	struct err e = {0};
	sigset_t set;
	pthread_t waiter;
	int rc = 0, sig = 0, lock_fd = -1;

	memset(&d, 0, sizeof d);
	d.cfg = cfg;
	d.started = clock_now();
	d.core.data_dir = cfg->data_dir;
	d.core.job_chunk = cfg->job_chunk;
	d.core.job_throttle_ms = cfg->job_throttle_ms;
	d.core.search_threads = cfg->search_threads;
	d.core.index_huge_pages = cfg->index_huge_pages != 0;
	d.core.index_build_memory = cfg->index_build_memory;
	d.core.index_rebuild_dead = cfg->index_rebuild_dead;
	atomic_init(&d.ready, 0);
	atomic_init(&d.core.stopping, 0);

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	main_thread = pthread_self();
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = forward_signal;
		sigfillset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);

	if (metrics_open(&d.metrics) != 0) {
		log_msg(LOG_ERROR, "startup", "msg=\"out of memory\"");
		return 1;
	}
	if (cfg->api_keys != NULL) {
		if ((rc = auth_load(&d.auth, cfg->api_keys, &e)) != 0) {
			log_msg(LOG_ERROR, "startup", "msg=\"cannot load API keys: %s\"", e.detail);
			goto out;
		}
		log_msg(LOG_INFO, "auth", "keys=%zu file=%s", auth_count(d.auth), cfg->api_keys);
	} else if (!cfg->insecure_no_auth) {
		log_msg(LOG_INFO, "auth",
		        "msg=\"no API keys file: only loopback clients are accepted\"");
	} else {
		log_msg(LOG_WARN, "insecure_no_auth",
		        "msg=\"no API keys file and --insecure-no-auth: every client that reaches "
		        "the listening address has the admin scope\"");
	}
	if (map == NULL) { /* which FAISS the loader chose (glibc-hwcaps: the AVX2 build on an x86-64-v3 CPU) */
		const char *library, *build = index_faiss_build(&library);
		char q[512];

		log_msg(LOG_INFO, "faiss", "build=%s library=%s omp_wait_policy=%s", build,
		        log_quote(library, q, sizeof q),
		        getenv("OMP_WAIT_POLICY") != NULL ? getenv("OMP_WAIT_POLICY") : "default");
	}
	if (map != NULL) {
		if ((rc = fanout_open(&d.router, map, cfg->shard_timeout_s, &e)) != 0) {
			log_msg(LOG_ERROR, "startup", "msg=\"%s\"", e.detail);
			goto out;
		}
		log_msg(LOG_INFO, "router", "shards=%zu virtual_shards=%u cluster=%s", map->n,
		        (unsigned)map->virtual_shards, cfg->router);
	} else if ((rc = open_storage(&d, cfg, &lock_fd, &e)) != 0) {
		goto out;
	}
	if ((rc = server_start(&d.server, &d, &e)) != 0) {
		log_msg(LOG_ERROR, "startup", "msg=\"%s\"", e.detail);
		goto out;
	}
	atomic_store(&d.ready, 1);
	log_msg(LOG_INFO, "listening", "addr=%s%s%s:%u data_dir=%s threads=%u",
	        strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
	        strchr(cfg->listen_host, ':') ? "]" : "", (unsigned)server_port(d.server),
	        map != NULL ? "(router)" : cfg->data_dir, cfg->threads);

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			struct err he = {0};

			if (cfg->tls_cert == NULL)
				log_msg(LOG_INFO, "signal",
				        "signal=SIGHUP msg=\"nothing to reload: restart to change settings\"");
			else if (server_reload_tls(d.server, &he) != 0)
				log_msg(LOG_ERROR, "tls_reload",
				        "msg=\"kept the old certificate: %s\"", he.detail);
			else
				log_msg(LOG_INFO, "tls_reload", "cert=%s key=%s", cfg->tls_cert,
				        cfg->tls_key);
			continue;
		}
		break;
	}
	log_msg(LOG_INFO, "shutdown", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	atomic_store(&d.ready, 0);
	atomic_store(&d.core.stopping, 1);
	pthread_create(&waiter, NULL, second_signal, &set);
	pthread_detach(waiter);
	server_stop(d.server, SHUTDOWN_GRACE_S);
	d.server = NULL;
out:
	server_stop(d.server, 0);
	jobs_close(d.core.jobs); /* running jobs stop at their next checkpoint and resume next start */
	if (rc == 0 && d.core.catalog != NULL)
		catalog_save(d.core.catalog); /* no request runs any more: the indexes are current */
	catalog_close(d.core.catalog);
	store_close(d.core.store);
	auth_free(d.auth);
	metrics_free(d.metrics);
	fanout_close(d.router);
	dirlock_release(lock_fd); /* last: the store is closed */
	if (rc == 0)
		log_msg(LOG_INFO, "stopped", NULL);
	return rc == 0 ? 0 : 1;
}

/* OpenMP (FAISS's parallel regions) reads OMP_WAIT_POLICY once, as libgomp loads, before
 * main(). By default the threads of a team spin for a while after each region, and the daemon
 * has a team per thread that searches: a team left spinning after one search took a core from
 * the next one and from the answer's work (issue 20: 64-query HNSW batches over HTTP 8% faster
 * at efSearch 10 and 4% at 32 with "passive", docs/performance.md). Unless the environment chooses a policy, run
 * again as this same program with OMP_WAIT_POLICY=passive (same pid, arguments and
 * descriptors); if that fails, go on as we are. */
static void openmp_passive(char **argv)
{
	char self[4096];
	ssize_t n;

	if (getenv("OMP_WAIT_POLICY") != NULL ||
	    (n = readlink("/proc/self/exe", self, sizeof self - 1)) <= 0 ||
	    (size_t)n >= sizeof self - 1 || setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
		return;
	self[n] = '\0';
	execv(self, argv); /* its own path, not /proc/self/exe: ps and pkill name it winnowd */
	unsetenv("OMP_WAIT_POLICY"); /* not re-executed: this libgomp never saw it */
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct shardmap map;
	struct err e = {0};
	int rc;

	if (argc > 1 && strcmp(argv[1], "hash-key") == 0)
		return auth_hash_key_main(argc - 1, argv + 1);

	openmp_passive(argv);
	/* jansson seeds its hash tables on first use; do it before any thread exists. FAISS's
	 * process-wide settings too, so that every FAISS call sees the same ones. */
	json_object_seed(0);
	index_faiss_setup();
	memset(&cfg, 0, sizeof cfg);
	rc = config_load(&cfg, argc, argv, &e);
	if (rc > 0) { /* help printed */
		config_free(&cfg);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "winnowd: %s\n", e.detail[0] ? e.detail : err_str(rc));
		config_free(&cfg);
		return 2;
	}
	log_set_level(cfg.log_level);
	if ((cfg.tls_cert == NULL) != (cfg.tls_key == NULL)) {
		fprintf(stderr, "winnowd: --tls-cert and --tls-key go together\n");
		config_free(&cfg);
		return 2;
	}
	/* An address others can reach serves the admin API to them: keys, or an explicit yes. */
	if (cfg.api_keys == NULL && !cfg.insecure_no_auth &&
	    !server_listen_is_loopback(cfg.listen_host)) {
		fprintf(stderr,
		        "winnowd: --listen %s is not a loopback address: give --api-keys FILE, or "
		        "--insecure-no-auth to let every client that reaches it be admin\n",
		        cfg.listen_host);
		config_free(&cfg);
		return 2;
	}
	{
		enum log_format lf = LOG_LOGFMT;

		log_format_parse(cfg.log_format, &lf); /* config_load checked it */
		log_set_format(lf);
	}
	if (cfg.check_only) {
		struct auth *a = NULL;

		if (cfg.api_keys != NULL && auth_load(&a, cfg.api_keys, &e) != 0) {
			fprintf(stderr, "winnowd: %s\n", e.detail);
			config_free(&cfg);
			return 2;
		}
		auth_free(a);
	}
	/* a router's cluster file is read before anything starts: a bad one is exit 2 */
	if (cfg.router != NULL && shardmap_load(&map, cfg.router, &e) != 0) {
		fprintf(stderr, "winnowd: --router %s: %s\n", cfg.router, e.detail);
		config_free(&cfg);
		return 2;
	}
	if (cfg.check_only) {
		config_print(&cfg, stdout);
		printf("# configuration ok\n");
		rc = 0;
	} else {
		rc = run(&cfg, cfg.router != NULL ? &map : NULL);
	}
	if (cfg.router != NULL)
		shardmap_free(&map);
	config_free(&cfg);
	return rc;
}

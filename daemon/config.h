/* SPDX-License-Identifier: MIT */
/* config: the daemon's settings from defaults, a config file, WINNOW_* variables and flags.
 *
 * One option table (daemon/config.c) drives parsing from all four sources, the usage
 * text and the -n output, so a new setting is one table row plus one struct field.
 * Precedence: defaults < config file < environment < flags. Not thread-safe; call it
 * once from main() before any thread starts (it reads the environment). */
#ifndef WINNOW_CONFIG_H
#define WINNOW_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "lib/log.h"

struct err;

struct config {
	char *listen_host;        /* default "127.0.0.1"; IPv6 without brackets */
	uint16_t listen_port;     /* default 8080; 0 = any free port */
	char *data_dir;           /* default "./var" */
	char *router;             /* cluster file (shards.json): run as a router; NULL = data node */
	unsigned shard_timeout_s; /* router: longest wait for a shard's answer, default 300 */
	uint64_t map_size;        /* default 1 GiB, at least 1 MiB */
	unsigned threads;         /* default: online CPUs, at least 2; 1..1024 */
	unsigned job_threads;     /* default 1; 1..256 */
	unsigned job_chunk;       /* rows per scoring commit, default 131072 (rounded to 4096) */
	unsigned job_throttle_ms; /* pause after each job chunk, default 0 */
	unsigned job_history;     /* finished jobs kept, default 1000 */
	uint64_t index_build_memory; /* HNSW build: vectors added in one piece, default 4 GiB */
	unsigned index_rebuild_dead; /* percent of dead vectors that rebuilds HNSW/IVF, default 20 */
	unsigned search_threads;  /* threads of one search's full scan (Flat, exact); default: CPUs */
	unsigned index_huge_pages; /* 1 (default): indexes on transparent huge pages; 0: not */
	uint64_t body_limit;      /* any route's body; default 256 MiB */
	uint64_t search_body_limit;     /* search bodies (also under body_limit); default 16 MiB */
	uint64_t definition_body_limit; /* other non-bulk routes; default 1 MiB */
	uint64_t memory_limit;    /* bodies + parse estimate in flight; default RAM / 4 */
	unsigned max_connections; /* default 1024; 1..1000000 */
	unsigned max_connections_per_ip; /* default 64 */
	unsigned timeout_s;       /* default 60; 0 = connections never time out */
	unsigned request_timeout_s; /* default 30: whole request received by then; 0 = none */
	char *tls_cert;           /* PEM file; NULL = plain HTTP */
	char *tls_key;            /* PEM file; set exactly when tls_cert is */
	enum log_level log_level; /* default LOG_INFO */
	char *log_format;         /* "logfmt" (default) or "json" (log_format_parse) */
	char *api_keys;           /* NULL = no keys file */
	int insecure_no_auth;     /* default 0; --allow-remote is its old name */
	char *config_file;        /* NULL = none */
	int check_only;           /* -n */
};

/* Fill c: defaults, then the config file (--config, else WINNOW_CONFIG), then the
 * WINNOW_* environment (a variable set to "" counts as unset), then argv flags.
 * argv[0] is the program name. Flags: --name VALUE, --name=VALUE; booleans take a value
 * only as --name=VALUE (bare --name means true); -n (--check) sets check_only.
 * Config file: `key = value` lines (key = long flag name), `#` comments (whole line, or
 * after whitespace), blank lines; a value may be wrapped in double quotes; a key given
 * twice is an error. Positional arguments are errors.
 * Returns 0; 1 when -h/--help printed the usage on stdout (exit 0); ERR_INVALID with e
 * naming the option and where it came from, e.g. "WINNOW_THREADS: not a number: 'x'",
 * "winnow.conf:3: unknown key 'foo'", "--listen: expected HOST:PORT, got 'x'"
 * (slug "invalid_config"); ERR_NOMEM.
 * c must be zeroed before the call; on error it may hold partial allocations: always
 * call config_free. The strings in c are new, owned by c. argv is borrowed. */
int config_load(struct config *c, int argc, char **argv, struct err *e);

/* Free the strings in c and zero it. c may be NULL. */
void config_free(struct config *c);

/* The usage text, generated from the option table. f is borrowed. */
void config_usage(FILE *f);

/* The effective configuration as `key = value` lines that config_load can read back
 * (the -n output); unset options are printed as comments. */
void config_print(const struct config *c, FILE *f);

/* Parse "123", "64K", "1M", "2G", "1T" (powers of 1024; suffix case-insensitive,
 * optionally followed by "B" or "iB"). 0 and *out, or ERR_INVALID (empty, not a
 * number, unknown suffix, overflow); *out untouched on error. */
int config_parse_size(const char *s, uint64_t *out);

#endif

/* SPDX-License-Identifier: MIT */
/* config: the option table and the parsers for the config file, environment and argv.
 *
 * Owns nothing beyond the strings it puts in struct config. Not thread-safe (getenv);
 * main() calls it once before starting threads. Every source goes through opt_set(), so
 * a value means the same thing wherever it comes from. */
#include "daemon/config.h"

#include "lib/err.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_SLUG "invalid_config"

enum opt_type { OPT_STRING, OPT_SIZE, OPT_UINT, OPT_BOOL, OPT_LEVEL, OPT_LISTEN, OPT_HELP };

#define OPT_NO_FILE 1u  /* not allowed in a config file */
#define OPT_NO_ENV 2u   /* no WINNOW_* variable */
#define OPT_OPTIONAL 4u /* string: an empty value means unset (NULL) */
#define OPT_ALIAS 8u    /* another name for the option before it: not printed by -n */

struct opt {
	const char *name;     /* long flag, config-file key; env = WINNOW_ + upper(name, - -> _) */
	char short_name;      /* 0 = none */
	enum opt_type type;
	unsigned flags;
	size_t off;           /* field in struct config */
	const char *def;      /* parsed like any value at start; NULL = none or computed */
	const char *def_help; /* shown in the usage instead of def; NULL = def */
	uint64_t min, max;    /* OPT_UINT, OPT_SIZE */
	const char *arg;      /* metavariable in the usage; NULL for booleans */
	const char *help;
};

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)
#define TIB ((uint64_t)1 << 40)

#define OFF(field) offsetof(struct config, field)

static const struct opt opts[] = {
	{.name = "listen", .type = OPT_LISTEN, .off = OFF(listen_host), .def = "127.0.0.1:8080",
	 .arg = "HOST:PORT", .help = "address to listen on; [v6]:PORT for IPv6, port 0 = any free"},
	{.name = "data-dir", .type = OPT_STRING, .off = OFF(data_dir), .def = "./var",
	 .arg = "DIR", .help = "directory holding the LMDB environment"},
	{.name = "router", .type = OPT_STRING, .flags = OPT_OPTIONAL, .off = OFF(router),
	 .def_help = "none (a data node)", .arg = "FILE",
	 .help = "run as a router over the shards of cluster FILE (shards.json): no data dir"},
	{.name = "shard-timeout", .type = OPT_UINT, .off = OFF(shard_timeout_s), .def = "300",
	 .min = 1, .max = 86400, .arg = "SECONDS",
	 .help = "router: longest wait for a shard's answer (connect: 5 s at most)"},
	{.name = "map-size", .type = OPT_SIZE, .off = OFF(map_size), .def = "1G", .min = MIB,
	 .max = 1024 * TIB, .arg = "SIZE", .help = "initial LMDB map size (K/M/G/T); it grows"},
	{.name = "threads", .type = OPT_UINT, .off = OFF(threads),
	 .def_help = "online CPUs (at least 2)", .min = 1, .max = 1024, .arg = "N",
	 .help = "HTTP worker threads"},
	{.name = "job-threads", .type = OPT_UINT, .off = OFF(job_threads), .def = "1", .min = 1,
	 .max = 256, .arg = "N",
	 .help = "threads running jobs (scoring, subsets) at once"},
	{.name = "job-chunk", .type = OPT_UINT, .off = OFF(job_chunk), .def = "131072", .min = 64,
	 .max = 16777216, .arg = "ROWS",
	 .help = "rows a scoring job commits at a time, with its checkpoint"},
	{.name = "job-history", .type = OPT_UINT, .off = OFF(job_history), .def = "1000", .min = 1,
	 .max = 100000000, .arg = "N", .help = "finished jobs kept for GET /v1/jobs; older go"},
	{.name = "job-throttle-ms", .type = OPT_UINT, .off = OFF(job_throttle_ms), .def = "0",
	 .max = 60000, .arg = "MS", .help = "pause after each job chunk, to leave I/O to requests"},
	{.name = "index-build-memory", .type = OPT_SIZE, .off = OFF(index_build_memory),
	 .def = "4G", .min = MIB, .max = 1024 * TIB, .arg = "SIZE",
	 .help = "vectors an HNSW build adds in one piece (more pieces: lower recall)"},
	{.name = "index-rebuild-dead", .type = OPT_UINT, .off = OFF(index_rebuild_dead),
	 .def = "20", .max = 100, .arg = "PERCENT",
	 .help = "rebuild an HNSW or IVF index once this share of its vectors are dead; 0 = never"},
	{.name = "index-huge-pages", .type = OPT_UINT, .off = OFF(index_huge_pages), .def = "1",
	 .max = 1, .arg = "0|1",
	 .help = "put built and loaded indexes on transparent huge pages (random reads: fewer TLB "
	         "misses)"},
	{.name = "search-threads", .type = OPT_UINT, .off = OFF(search_threads),
	 .def_help = "online CPUs", .min = 1, .max = 1024, .arg = "N",
	 .help = "threads one search may scan every vector with (a Flat index, an exact scan)"},
	{.name = "body-limit", .type = OPT_SIZE, .off = OFF(body_limit), .def = "256M", .min = 1,
	 .max = TIB, .arg = "SIZE",
	 .help = "largest request body of any route (bulk ingest); larger ones get 413"},
	{.name = "search-body-limit", .type = OPT_SIZE, .off = OFF(search_body_limit),
	 .def = "16M", .min = 1, .max = TIB, .arg = "SIZE",
	 .help = "largest search body (1,024 raw rows of 4,096 float32 fit); more gets 413"},
	{.name = "definition-body-limit", .type = OPT_SIZE, .off = OFF(definition_body_limit),
	 .def = "1M", .min = 1, .max = TIB, .arg = "SIZE",
	 .help = "largest body of the other routes (definitions, patches); more gets 413"},
	{.name = "memory-limit", .type = OPT_SIZE, .off = OFF(memory_limit),
	 .def_help = "1/4 of physical memory", .min = MIB, .max = 1024 * TIB, .arg = "SIZE",
	 .help = "budget for request bodies and their parse; past it 503 overloaded"},
	{.name = "max-connections", .type = OPT_UINT, .off = OFF(max_connections), .def = "1024",
	 .min = 1, .max = 1000000, .arg = "N", .help = "most concurrent client connections"},
	{.name = "max-connections-per-ip", .type = OPT_UINT, .off = OFF(max_connections_per_ip),
	 .def = "64", .min = 1, .max = 1000000, .arg = "N",
	 .help = "most concurrent connections from one client address"},
	{.name = "timeout", .type = OPT_UINT, .off = OFF(timeout_s), .def = "60", .max = 86400,
	 .arg = "SECONDS", .help = "close connections idle this long; 0 = never"},
	{.name = "request-timeout", .type = OPT_UINT, .off = OFF(request_timeout_s), .def = "30",
	 .max = 86400, .arg = "SECONDS",
	 .help = "close a connection that has not sent a whole request this long; 0 = never"},
	{.name = "tls-cert", .type = OPT_STRING, .flags = OPT_OPTIONAL, .off = OFF(tls_cert),
	 .def_help = "none (plain HTTP)", .arg = "FILE",
	 .help = "PEM certificate chain: serve HTTPS (with --tls-key); SIGHUP reloads"},
	{.name = "tls-key", .type = OPT_STRING, .flags = OPT_OPTIONAL, .off = OFF(tls_key),
	 .def_help = "none", .arg = "FILE", .help = "PEM private key of --tls-cert"},
	{.name = "log-level", .type = OPT_LEVEL, .off = OFF(log_level), .def = "info",
	 .arg = "LEVEL", .help = "debug, info, warn or error"},
	{.name = "log-format", .type = OPT_STRING, .off = OFF(log_format), .def = "logfmt",
	 .arg = "FORMAT", .help = "logfmt (key=value lines) or json (one object a line)"},
	{.name = "api-keys", .type = OPT_STRING, .flags = OPT_OPTIONAL, .off = OFF(api_keys),
	 .def_help = "none", .arg = "FILE",
	 .help = "keys file of `SCOPE SHA256HEX [NAME]` lines (see hash-key)"},
	{.name = "insecure-no-auth", .type = OPT_BOOL, .off = OFF(insecure_no_auth),
	 .def = "false",
	 .help = "serve non-loopback clients without a keys file (everyone is admin)"},
	{.name = "allow-remote", .type = OPT_BOOL, .flags = OPT_ALIAS, .off = OFF(insecure_no_auth),
	 .help = "old name of --insecure-no-auth"},
	{.name = "config", .type = OPT_STRING, .flags = OPT_NO_FILE | OPT_OPTIONAL,
	 .off = OFF(config_file), .def_help = "none", .arg = "FILE",
	 .help = "read settings from FILE (`name = value` lines, # comments)"},
	{.name = "check", .short_name = 'n', .type = OPT_BOOL, .flags = OPT_NO_FILE | OPT_NO_ENV,
	 .off = OFF(check_only), .def = "false", .help = "check the configuration, print it, exit"},
	{.name = "help", .short_name = 'h', .type = OPT_HELP, .flags = OPT_NO_FILE | OPT_NO_ENV,
	 .help = "print this help and exit"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

static void env_name(const struct opt *o, char *buf, size_t size)
{
	size_t i, n = (size_t)snprintf(buf, size, "WINNOW_");

	for (i = 0; o->name[i] && n + 1 < size; i++, n++)
		buf[n] = o->name[i] == '-' ? '_' : (char)toupper((unsigned char)o->name[i]);
	buf[n] = '\0';
}

/* Long names match with '_' standing for '-', so data_dir works in a file too. */
static const struct opt *find_long(const char *name, size_t len)
{
	size_t i, j;

	for (i = 0; i < NOPTS; i++) {
		const char *n = opts[i].name;

		if (strlen(n) != len)
			continue;
		for (j = 0; j < len; j++) {
			char a = name[j] == '_' ? '-' : name[j];

			if (a != n[j])
				break;
		}
		if (j == len)
			return &opts[i];
	}
	return NULL;
}

static const struct opt *find_short(char c)
{
	size_t i;

	for (i = 0; i < NOPTS; i++) {
		if (opts[i].short_name != 0 && opts[i].short_name == c)
			return &opts[i];
	}
	return NULL;
}

int config_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (s == NULL || !isdigit((unsigned char)*p))
		return ERR_INVALID;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return ERR_INVALID;
		v = v * 10 + d;
	}
	switch (toupper((unsigned char)*p)) {
	case '\0': break;
	case 'K': mul = KIB; break;
	case 'M': mul = MIB; break;
	case 'G': mul = GIB; break;
	case 'T': mul = TIB; break;
	default: return ERR_INVALID;
	}
	if (*p != '\0') {
		p++;
		if (strcasecmp(p, "") != 0 && strcasecmp(p, "B") != 0 && strcasecmp(p, "iB") != 0)
			return ERR_INVALID;
	}
	if (v > UINT64_MAX / mul)
		return ERR_INVALID;
	*out = v * mul;
	return 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return ERR_INVALID;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return ERR_INVALID;
		v = v * 10 + d;
	}
	if (*s != '\0')
		return ERR_INVALID;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};
	size_t i;

	for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return ERR_INVALID;
}

/* HOST:PORT or [v6]:PORT; *host is new. */
static int parse_listen(const char *s, char **host, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hlen;
	uint64_t p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return ERR_INVALID;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		if (memchr(h, ':', hlen) == NULL)
			return ERR_INVALID; /* brackets are for IPv6 only */
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return ERR_INVALID; /* no port, or IPv6 without brackets */
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || parse_uint(colon + 1, &p) != 0 || p > 65535)
		return ERR_INVALID;
	*host = strndup(h, hlen);
	if (*host == NULL)
		return ERR_NOMEM;
	*port = (uint16_t)p;
	return 0;
}

static int set_string(char **field, const char *val)
{
	char *s = strdup(val);

	if (s == NULL)
		return ERR_NOMEM;
	free(*field);
	*field = s;
	return 0;
}

/* Apply one value. val NULL means a bare boolean flag. src names where it came from,
 * for the error detail. */
static int opt_set(struct config *c, const struct opt *o, const char *val, const char *src,
                   struct err *e)
{
	char *base = (char *)c + o->off, *host = NULL;
	enum log_level level;
	uint64_t v;
	uint16_t port;
	int b, rc;

	if (val == NULL && o->type != OPT_BOOL)
		return err_set(e, ERR_INVALID, CONFIG_SLUG, "%s: missing value", src);
	switch (o->type) {
	case OPT_STRING:
		if (val[0] == '\0') {
			if (!(o->flags & OPT_OPTIONAL))
				return err_set(e, ERR_INVALID, CONFIG_SLUG, "%s: empty value", src);
			free(*(char **)(void *)base);
			*(char **)(void *)base = NULL;
			return 0;
		}
		if (set_string((char **)(void *)base, val) != 0)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		return 0;
	case OPT_SIZE:
		if (config_parse_size(val, &v) != 0)
			return err_set(e, ERR_INVALID, CONFIG_SLUG,
			               "%s: not a size: '%s' (bytes, or with K, M, G, T)", src,
			               val);
		if (v < o->min || v > o->max)
			return err_set(e, ERR_INVALID, CONFIG_SLUG,
			               "%s: out of range: '%s' (%llu..%llu bytes)", src, val,
			               (unsigned long long)o->min, (unsigned long long)o->max);
		*(uint64_t *)(void *)base = v;
		return 0;
	case OPT_UINT:
		if (parse_uint(val, &v) != 0)
			return err_set(e, ERR_INVALID, CONFIG_SLUG, "%s: not a number: '%s'", src,
			               val);
		if (v < o->min || v > o->max)
			return err_set(e, ERR_INVALID, CONFIG_SLUG,
			               "%s: out of range: '%s' (%llu..%llu)", src, val,
			               (unsigned long long)o->min, (unsigned long long)o->max);
		*(unsigned *)(void *)base = (unsigned)v;
		return 0;
	case OPT_BOOL:
		if (val == NULL) {
			b = 1;
		} else if (parse_bool(val, &b) != 0) {
			return err_set(e, ERR_INVALID, CONFIG_SLUG,
			               "%s: not a boolean: '%s' (true, false, yes, no, 1, 0)", src,
			               val);
		}
		*(int *)(void *)base = b;
		return 0;
	case OPT_LEVEL:
		if (log_level_parse(val, &level) != 0)
			return err_set(e, ERR_INVALID, CONFIG_SLUG,
			               "%s: not a log level: '%s' (debug, info, warn, error)", src,
			               val);
		*(enum log_level *)(void *)base = level;
		return 0;
	case OPT_LISTEN:
		rc = parse_listen(val, &host, &port);
		if (rc == ERR_NOMEM)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		if (rc != 0)
			return err_set(e, ERR_INVALID, CONFIG_SLUG,
			               "%s: expected HOST:PORT or [IPV6]:PORT, got '%s'", src, val);
		free(c->listen_host);
		c->listen_host = host;
		c->listen_port = port;
		return 0;
	case OPT_HELP:
		break;
	}
	return err_set(e, ERR_INTERNAL, "internal", "%s: option has no value", src);
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned)n;
}

static unsigned default_threads(void)
{
	unsigned n = online_cpus();

	return n < 2 ? 2 : n;
}

/* A quarter of physical memory: bodies and their parse trees of concurrent requests share
 * it, and the rest is left to LMDB's page cache, the indexes and the jobs. */
static uint64_t default_memory_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t v;

	if (pages <= 0 || psize <= 0)
		return GIB;
	v = (uint64_t)pages * (uint64_t)psize / 4;
	return v < 64 * MIB ? 64 * MIB : v;
}

static int apply_defaults(struct config *c, struct err *e)
{
	size_t i;
	int rc;

	for (i = 0; i < NOPTS; i++) {
		if (opts[i].def == NULL)
			continue;
		rc = opt_set(c, &opts[i], opts[i].def, opts[i].name, e);
		if (rc != 0)
			return rc;
	}
	c->threads = default_threads();
	c->search_threads = online_cpus();
	c->memory_limit = default_memory_limit();
	return 0;
}

/* Pass 1 acts only on --config and --help (the file is read before the other flags so
 * that flags win over it); pass 2 acts on everything else. Both check the syntax. */
static int parse_argv(struct config *c, int argc, char **argv, int pass, struct err *e)
{
	int i, rc;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		const struct opt *o;
		char src[80];

		if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0)
			return err_set(e, ERR_INVALID, CONFIG_SLUG, "unexpected argument '%s'", a);
		if (a[1] != '-') {
			o = a[2] == '\0' ? find_short(a[1]) : NULL;
			if (o == NULL)
				return err_set(e, ERR_INVALID, CONFIG_SLUG,
				               "unknown option '%s' (see --help)", a);
			snprintf(src, sizeof src, "-%c", a[1]);
		} else {
			eq = strchr(a + 2, '=');
			o = find_long(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
			if (o == NULL) {
				return err_set(e, ERR_INVALID, CONFIG_SLUG,
				               "unknown option '%.*s' (see --help)",
				               eq ? (int)(eq - a) : (int)strlen(a), a);
			}
			snprintf(src, sizeof src, "--%s", o->name);
			if (eq != NULL) {
				val = eq + 1;
				if (o->type == OPT_HELP)
					return err_set(e, ERR_INVALID, CONFIG_SLUG,
					               "%s takes no value", src);
			} else if (o->type != OPT_BOOL && o->type != OPT_HELP) {
				if (i + 1 >= argc)
					return err_set(e, ERR_INVALID, CONFIG_SLUG,
					               "%s: missing value", src);
				val = argv[++i];
			}
		}
		if (o->type == OPT_HELP) {
			if (pass == 1) {
				config_usage(stdout);
				return 1;
			}
			continue;
		}
		if ((pass == 1) != (o->off == OFF(config_file)))
			continue;
		rc = opt_set(c, o, val, src, e);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int is_blank(int ch)
{
	return ch == ' ' || ch == '\t';
}

/* True when p is the end of a value: only blanks, then nothing or a comment. */
static int at_value_end(const char *p)
{
	while (is_blank(*p))
		p++;
	return *p == '\0' || *p == '#';
}

/* Split "key = value" in place. 0, or ERR_INVALID with *why set. */
static int split_line(char *line, char **key, char **value, const char **why)
{
	char *p = line, *v, *end;

	*key = p;
	while (*p && !is_blank(*p) && *p != '=')
		p++;
	if (p == *key) {
		*why = "expected 'name = value'";
		return ERR_INVALID;
	}
	end = p;
	while (is_blank(*p))
		p++;
	if (*p != '=') {
		*why = "expected 'name = value'";
		return ERR_INVALID;
	}
	*end = '\0';
	p++;
	while (is_blank(*p))
		p++;
	v = p;
	if (*v == '"') {
		/* The closing quote is the first one followed by nothing or a comment. */
		for (p = v + 1; *p; p++) {
			if (*p == '"' && at_value_end(p + 1))
				break;
		}
		if (*p != '"') {
			*why = "unterminated quoted value";
			return ERR_INVALID;
		}
		*p = '\0';
		*value = v + 1;
		return 0;
	}
	/* '#' starts a comment at the start of the value or after a blank. */
	for (p = v; *p; p++) {
		if (*p == '#' && (p == v || is_blank(p[-1])))
			break;
	}
	while (p > v && is_blank(p[-1]))
		p--;
	*p = '\0';
	*value = v;
	return 0;
}

static int load_file(struct config *c, const char *path, struct err *e)
{
	unsigned seen[NOPTS] = {0}, lineno = 0;
	char *line = NULL, *p, *key, *value;
	const struct opt *o;
	const char *why;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int rc = 0;

	f = fopen(path, "r");
	if (f == NULL)
		return err_set(e, ERR_INVALID, CONFIG_SLUG, "%s: cannot read config file: %s", path,
		               strerror(errno));
	while ((n = getline(&line, &cap, f)) >= 0) {
		char src[512];

		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) { /* the rest of the line would be lost */
			rc = err_set(e, ERR_INVALID, CONFIG_SLUG, "%s:%u: a NUL byte in the line",
			             path, lineno);
			goto out;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		/* Control characters (a tab is a blank) would not survive -n: "a\r " was read as
		 * "a\r", printed bare, and read back as "a" (fuzz_config). */
		for (p = line; *p != '\0' && (*p == '\t' || ((unsigned char)*p >= 0x20 && *p != 0x7f));
		     p++)
			;
		if (*p != '\0') {
			rc = err_set(e, ERR_INVALID, CONFIG_SLUG,
			             "%s:%u: a control character (0x%02x) in the line", path, lineno,
			             (unsigned char)*p);
			goto out;
		}
		for (p = line; is_blank(*p); p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		if (split_line(p, &key, &value, &why) != 0) {
			rc = err_set(e, ERR_INVALID, CONFIG_SLUG, "%s:%u: %s", path, lineno, why);
			goto out;
		}
		o = find_long(key, strlen(key));
		if (o == NULL) {
			rc = err_set(e, ERR_INVALID, CONFIG_SLUG, "%s:%u: unknown key '%s'", path,
			             lineno, key);
			goto out;
		}
		if (o->flags & OPT_NO_FILE) {
			rc = err_set(e, ERR_INVALID, CONFIG_SLUG,
			             "%s:%u: '%s' cannot be set in a config file", path, lineno,
			             o->name);
			goto out;
		}
		if (seen[o - opts] != 0) {
			rc = err_set(e, ERR_INVALID, CONFIG_SLUG,
			             "%s:%u: duplicate key '%s' (first set on line %u)", path,
			             lineno, o->name, seen[o - opts]);
			goto out;
		}
		seen[o - opts] = lineno;
		snprintf(src, sizeof src, "%s:%u: %s", path, lineno, o->name);
		rc = opt_set(c, o, value, src, e);
		if (rc != 0)
			goto out;
	}
	if (ferror(f))
		rc = err_set(e, ERR_INVALID, CONFIG_SLUG, "%s: read error", path);
out:
	free(line);
	fclose(f);
	return rc;
}

static int load_env(struct config *c, struct err *e)
{
	char name[64];
	const char *v;
	size_t i;
	int rc;

	for (i = 0; i < NOPTS; i++) {
		if ((opts[i].flags & OPT_NO_ENV) || opts[i].off == OFF(config_file))
			continue;
		env_name(&opts[i], name, sizeof name);
		v = getenv(name);
		if (v == NULL || v[0] == '\0')
			continue;
		rc = opt_set(c, &opts[i], v, name, e);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int config_load(struct config *c, int argc, char **argv, struct err *e)
{
	const char *v;
	enum log_format fmt;
	int rc;

	rc = apply_defaults(c, e);
	if (rc != 0)
		return rc;
	rc = parse_argv(c, argc, argv, 1, e);
	if (rc != 0)
		return rc;
	if (c->config_file == NULL) {
		v = getenv("WINNOW_CONFIG");
		if (v != NULL && v[0] != '\0' && set_string(&c->config_file, v) != 0)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	if (c->config_file != NULL) {
		rc = load_file(c, c->config_file, e);
		if (rc != 0)
			return rc;
	}
	rc = load_env(c, e);
	if (rc != 0)
		return rc;
	if ((rc = parse_argv(c, argc, argv, 2, e)) != 0)
		return rc;
	if (log_format_parse(c->log_format, &fmt) != 0)
		return err_set(e, ERR_INVALID, CONFIG_SLUG,
		               "--log-format: expected logfmt or json, got '%s'", c->log_format);
	return 0;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->listen_host);
	free(c->data_dir);
	free(c->router);
	free(c->api_keys);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->log_format);
	free(c->config_file);
	memset(c, 0, sizeof *c);
}

void config_usage(FILE *f)
{
	char left[64], env[64], def[128];
	size_t i;

	fprintf(f, "usage: winnowd [options]\n"
	           "       winnowd hash-key [--scope read|admin] [--name NAME] [KEY]\n\n"
	           "Every option can also be set by a WINNOW_* environment variable or, by its\n"
	           "long name, in the config file. Precedence: defaults < config file <\n"
	           "environment < flags.\n\n"
	           "options:\n");
	for (i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		const char *d = o->def_help ? o->def_help : o->def;
		size_t n = 0;

		if (o->short_name != 0)
			n = (size_t)snprintf(left, sizeof left, "-%c, ", o->short_name);
		else
			n = (size_t)snprintf(left, sizeof left, "    ");
		snprintf(left + n, sizeof left - n, "--%s%s%s", o->name, o->arg ? " " : "",
		         o->arg ? o->arg : "");
		fprintf(f, "  %-30s %s\n", left, o->help);
		def[0] = '\0';
		if (d != NULL && o->type != OPT_BOOL)
			snprintf(def, sizeof def, "default %s", d);
		if (!(o->flags & OPT_NO_ENV)) {
			env_name(o, env, sizeof env);
			fprintf(f, "  %-30s %s%senv %s\n", "", def, def[0] ? "; " : "", env);
		} else if (def[0] != '\0') {
			fprintf(f, "  %-30s %s\n", "", def);
		}
	}
}

static void format_size(uint64_t v, char *buf, size_t size)
{
	static const char suffix[] = "TGMK";
	int i;

	for (i = 0; i < 4 && v != 0; i++) {
		unsigned shift = (unsigned)(40 - 10 * i);

		if ((v & ((((uint64_t)1) << shift) - 1)) == 0) {
			snprintf(buf, size, "%llu%c", (unsigned long long)(v >> shift), suffix[i]);
			return;
		}
	}
	snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* A value that would not read back as itself unquoted gets double quotes. */
static int needs_quotes(const char *s)
{
	const char *p;

	if (s[0] == '\0' || is_blank(s[0]) || s[0] == '"' || s[0] == '#' ||
	    is_blank(s[strlen(s) - 1]))
		return 1;
	for (p = s + 1; *p; p++) {
		if (*p == '#' && is_blank(p[-1]))
			return 1;
	}
	return 0;
}

void config_print(const struct config *c, FILE *f)
{
	const char *base = (const char *)c;
	char buf[128];
	size_t i;

	fprintf(f, "# winnowd configuration; config file: %s\n",
	        c->config_file ? c->config_file : "none");
	for (i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		const void *field = base + o->off;
		const char *s;

		if (o->flags & (OPT_NO_FILE | OPT_ALIAS))
			continue;
		switch (o->type) {
		case OPT_STRING:
			s = *(char *const *)field;
			if (s == NULL)
				fprintf(f, "# %s is not set\n", o->name);
			else if (needs_quotes(s))
				fprintf(f, "%s = \"%s\"\n", o->name, s);
			else
				fprintf(f, "%s = %s\n", o->name, s);
			break;
		case OPT_SIZE:
			format_size(*(const uint64_t *)field, buf, sizeof buf);
			fprintf(f, "%s = %s\n", o->name, buf);
			break;
		case OPT_UINT:
			fprintf(f, "%s = %u\n", o->name, *(const unsigned *)field);
			break;
		case OPT_BOOL:
			fprintf(f, "%s = %s\n", o->name,
			        *(const int *)field ? "true" : "false");
			break;
		case OPT_LEVEL:
			fprintf(f, "%s = %s\n", o->name,
			        log_level_name(*(const enum log_level *)field));
			break;
		case OPT_LISTEN:
			s = c->listen_host ? c->listen_host : "";
			if (strchr(s, ':') != NULL)
				fprintf(f, "%s = [%s]:%u\n", o->name, s, (unsigned)c->listen_port);
			else
				fprintf(f, "%s = %s:%u\n", o->name, s, (unsigned)c->listen_port);
			break;
		case OPT_HELP:
			break;
		}
	}
}

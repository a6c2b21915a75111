/* SPDX-License-Identifier: MIT */
/* auth: the keys file parser, the constant-time Bearer check, and `winnowd hash-key`.
 *
 * Owns an array of (hash, scope, name). Immutable after auth_load: concurrent
 * auth_check calls need no lock. The check hashes the presented key first, so the time
 * it takes depends on the key's length and the number of stored keys, never on how
 * much of a stored hash matches. */
#include "daemon/auth.h"

#include "lib/err.h"
#include "lib/sha256.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_SLUG "invalid_keys_file"

struct auth_key {
	uint8_t hash[32];
	enum auth_scope scope;
	unsigned line;
	char *name; /* "" when the line had none */
};

struct auth {
	struct auth_key *keys;
	size_t n;
};

const char *auth_scope_name(enum auth_scope s)
{
	switch (s) {
	case AUTH_READ: return "read";
	case AUTH_ADMIN: return "admin";
	case AUTH_NONE: break;
	}
	return "none";
}

static int parse_scope(const char *s, enum auth_scope *out)
{
	if (strcasecmp(s, "read") == 0)
		*out = AUTH_READ;
	else if (strcasecmp(s, "admin") == 0)
		*out = AUTH_ADMIN;
	else
		return ERR_INVALID;
	return 0;
}

static int hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_hash(const char *s, uint8_t out[32])
{
	int i;

	if (strlen(s) != 64)
		return ERR_INVALID;
	for (i = 0; i < 32; i++) {
		int hi = hex_val((unsigned char)s[2 * i]);
		int lo = hex_val((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return ERR_INVALID;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int valid_name(const char *s)
{
	size_t n = 0;

	if (s[0] == '\0' || s[0] == '#')
		return 0;
	for (; s[n]; n++) {
		if ((unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f)
			return 0;
	}
	return n <= AUTH_NAME_MAX;
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Next blank-separated field of *p, NUL-terminated in place; NULL at the end. */
static char *next_field(char **p)
{
	char *s = *p, *start;

	while (is_blank(*s))
		s++;
	if (*s == '\0')
		return NULL;
	start = s;
	while (*s && !is_blank(*s))
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return start;
}

/* Parse one non-comment line into k (k->name new). ERR_INVALID with a reason. */
static int parse_line(char *line, struct auth_key *k, const char **why, const char **what)
{
	char *p = line, *scope, *hex, *name, *extra;

	scope = next_field(&p);
	hex = next_field(&p);
	name = next_field(&p);
	*what = "";
	if (hex == NULL || hex[0] == '#') {
		*why = "expected 'SCOPE SHA256HEX [NAME]'";
		return ERR_INVALID;
	}
	if (parse_scope(scope, &k->scope) != 0) {
		*why = "unknown scope (read or admin)";
		*what = scope;
		return ERR_INVALID;
	}
	if (parse_hash(hex, k->hash) != 0) {
		*why = "expected 64 hex digits (the SHA-256 of the key)";
		*what = hex;
		return ERR_INVALID;
	}
	if (name != NULL && name[0] == '#')
		name = NULL;
	else if (name != NULL && (extra = next_field(&p)) != NULL && extra[0] != '#') {
		*why = "unexpected text after the name (names are one token)";
		*what = extra;
		return ERR_INVALID;
	}
	if (name != NULL && !valid_name(name)) {
		*why = "bad name (printable ASCII, no blanks, at most 128 bytes)";
		*what = name;
		return ERR_INVALID;
	}
	k->name = strdup(name ? name : "");
	return k->name == NULL ? ERR_NOMEM : 0;
}

int auth_load(struct auth **out, const char *path, struct err *e)
{
	struct auth *a = NULL;
	char *line = NULL, *p;
	size_t cap = 0, alloc = 0, i;
	unsigned lineno = 0;
	FILE *f = NULL;
	ssize_t n;
	int rc = 0;

	f = fopen(path, "r");
	if (f == NULL) {
		rc = err_set(e, ERR_IO, "keys_file_unreadable", "cannot read keys file %s: %s",
		             path, strerror(errno));
		goto out;
	}
	a = calloc(1, sizeof *a);
	if (a == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		struct auth_key k = {0};
		const char *why, *what;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		for (p = line; is_blank(*p); p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		rc = parse_line(p, &k, &why, &what);
		if (rc == ERR_NOMEM) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		if (rc != 0) {
			rc = err_set(e, ERR_INVALID, AUTH_SLUG, "%s:%u: %s%s%.80s%s", path, lineno,
			             why, what[0] ? ": '" : "", what, what[0] ? "'" : "");
			goto out;
		}
		k.line = lineno;
		for (i = 0; i < a->n; i++) {
			if (memcmp(a->keys[i].hash, k.hash, sizeof k.hash) == 0) {
				free(k.name);
				rc = err_set(e, ERR_INVALID, AUTH_SLUG,
				             "%s:%u: duplicate key hash (also on line %u)", path,
				             lineno, a->keys[i].line);
				goto out;
			}
		}
		if (a->n == alloc) {
			size_t nalloc = alloc ? 2 * alloc : 8;
			struct auth_key *nk = realloc(a->keys, nalloc * sizeof *nk);

			if (nk == NULL) {
				free(k.name);
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
			a->keys = nk;
			alloc = nalloc;
		}
		a->keys[a->n++] = k;
	}
	if (ferror(f)) {
		rc = err_set(e, ERR_IO, "keys_file_unreadable", "%s: read error", path);
		goto out;
	}
	*out = a;
	a = NULL;
out:
	auth_free(a);
	free(line);
	if (f != NULL)
		fclose(f);
	return rc;
}

void auth_free(struct auth *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++)
		free(a->keys[i].name);
	free(a->keys);
	free(a);
}

size_t auth_count(const struct auth *a)
{
	return a ? a->n : 0;
}

int auth_check(const struct auth *a, const char *authorization, enum auth_scope *scope,
               const char **name)
{
	const char *p = authorization, *end;
	struct sha256_ctx ctx;
	uint8_t hash[32];
	size_t i, found = 0, idx = 0;

	if (scope != NULL)
		*scope = AUTH_NONE;
	if (name != NULL)
		*name = "";
	if (a == NULL || p == NULL)
		return ERR_UNAUTHORIZED;
	while (is_blank(*p))
		p++;
	if (strncasecmp(p, "bearer", 6) != 0 || !is_blank(p[6]))
		return ERR_UNAUTHORIZED;
	for (p += 6; is_blank(*p); p++)
		;
	end = p + strlen(p);
	while (end > p && is_blank(end[-1]))
		end--;
	if (end == p)
		return ERR_UNAUTHORIZED;
	sha256_init(&ctx);
	sha256_update(&ctx, p, (size_t)(end - p));
	sha256_final(&ctx, hash);
	/* Visit every entry and pick the match with masks, not branches. */
	for (i = 0; i < a->n; i++) {
		size_t eq = (size_t)sha256_ct_equal(hash, a->keys[i].hash, sizeof hash);
		size_t mask = (size_t)0 - eq;

		idx = (idx & ~mask) | (i & mask);
		found |= eq;
	}
	if (!found)
		return ERR_UNAUTHORIZED;
	if (scope != NULL)
		*scope = a->keys[idx].scope;
	if (name != NULL)
		*name = a->keys[idx].name;
	return 0;
}

static int hash_key_usage(FILE *f, int code)
{
	fprintf(f, "usage: winnowd hash-key [--scope read|admin] [--name NAME] [KEY]\n"
	           "Print the keys-file line `SCOPE SHA256HEX [NAME]` for KEY (default scope\n"
	           "admin). Without KEY, the key is the first line of stdin (preferred:\n"
	           "arguments are visible to other users of the machine).\n");
	return code;
}

/* Value of --opt VALUE / --opt=VALUE at argv[*i], or NULL when argv[*i] is not opt. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, int *missing)
{
	size_t n = strlen(opt);
	const char *a = argv[*i];

	if (strncmp(a, opt, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int valid_key(const char *k)
{
	if (k[0] == '\0')
		return 0;
	for (; *k; k++) {
		if ((unsigned char)*k <= ' ' || (unsigned char)*k == 0x7f)
			return 0;
	}
	return 1;
}

int auth_hash_key_main(int argc, char **argv)
{
	const char *scope = "admin", *name = NULL, *key = NULL, *v;
	enum auth_scope s;
	char *line = NULL, hex[65];
	size_t cap = 0;
	ssize_t n;
	int i, missing = 0, rest = 0, rc = 2;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!rest && strcmp(a, "--") == 0) {
			rest = 1;
		} else if (!rest && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			return hash_key_usage(stdout, 0);
		} else if (!rest && (v = opt_value(argc, argv, &i, "--scope", &missing)) != NULL) {
			scope = v;
		} else if (!rest && (v = opt_value(argc, argv, &i, "--name", &missing)) != NULL) {
			name = v;
		} else if (missing) {
			fprintf(stderr, "hash-key: %s needs a value\n", a);
			return hash_key_usage(stderr, 2);
		} else if (!rest && a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "hash-key: unknown option '%s' (use -- before a key "
			                "that starts with '-')\n", a);
			return hash_key_usage(stderr, 2);
		} else if (key != NULL) {
			fprintf(stderr, "hash-key: more than one key given\n");
			return hash_key_usage(stderr, 2);
		} else {
			key = a;
		}
	}
	if (parse_scope(scope, &s) != 0) {
		fprintf(stderr, "hash-key: unknown scope '%s' (read or admin)\n", scope);
		return 2;
	}
	if (name != NULL && !valid_name(name)) {
		fprintf(stderr, "hash-key: bad name '%s' (printable ASCII, no blanks, not starting "
		                "with '#', at most %d bytes)\n", name, AUTH_NAME_MAX);
		return 2;
	}
	if (key == NULL) {
		n = getline(&line, &cap, stdin);
		if (n < 0) {
			fprintf(stderr, "hash-key: no key given (as an argument or on stdin)\n");
			goto out;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strlen(line) != (size_t)n) {
			fprintf(stderr, "hash-key: the key contains a NUL byte\n");
			goto out;
		}
		key = line;
	}
	if (!valid_key(key)) {
		fprintf(stderr, "hash-key: the key is empty or contains blanks or control bytes\n");
		goto out;
	}
	sha256_hex(key, strlen(key), hex);
	printf("%s %s%s%s\n", auth_scope_name(s), hex, name ? " " : "", name ? name : "");
	rc = fflush(stdout) == 0 ? 0 : 2;
out:
	if (line != NULL) {
		memset(line, 0, cap);
		free(line);
	}
	return rc;
}

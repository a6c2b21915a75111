/* SPDX-License-Identifier: MIT */
/* test_auth: keys-file parsing and its errors, Bearer checks, the hash-key subcommand. */
#include "daemon/auth.h"
#include "lib/err.h"
#include "tests/harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define H_SECRET "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
#define H_K1 "2ef866d154ecc8dacc0b0cb098b691367227f22508618e451f3cad035b6fa7ee"
#define H_K2 "ae5c40cac4eb267a521c0e62d03b700fce4a3e61dc63de754e42418ead68be7e"
#define H_K2_UPPER "AE5C40CAC4EB267A521C0E62D03B700FCE4A3E61DC63DE754E42418EAD68BE7E"
#define H_DASH "b693fbbf1c05e454549b8a9b4c3df4b3bbd6f640f87bfbebc5d9fcf27905a363"

static char tmpdir[64];

static const char *path_of(const char *name)
{
	static char path[128];

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	return path;
}

static const char *write_file(const char *name, const char *text)
{
	const char *path = path_of(name);
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return NULL;
	fputs(text, f);
	fclose(f);
	return path;
}

/* Read a small file into buf; "" when it cannot be read. */
static char *read_into(const char *name, char *buf, size_t size)
{
	FILE *f = fopen(path_of(name), "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, size - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void test_load_and_check(void)
{
	const char *path = write_file("keys", "# winnow keys\n"
	                                      "\n"
	                                      "admin " H_K1 " ops-laptop\n"
	                                      "  read\t" H_K2_UPPER "   # CI, no name\r\n"
	                                      "READ " H_SECRET " bot # trailing comment\n");
	struct auth *a = NULL;
	enum auth_scope scope = AUTH_ADMIN;
	const char *name = NULL;
	struct err e = {0};

	CHECK(path != NULL);
	CHECK_INT(auth_load(&a, path, &e), 0);
	CHECK_INT(auth_count(a), 3);

	CHECK_INT(auth_check(a, "Bearer k1-admin", &scope, &name), 0);
	CHECK_INT(scope, AUTH_ADMIN);
	CHECK_STR(name, "ops-laptop");
	CHECK_INT(auth_check(a, "bearer k2-read", &scope, &name), 0);
	CHECK_INT(scope, AUTH_READ);
	CHECK_STR(name, "");
	CHECK_INT(auth_check(a, "  BEARER \t secret  ", &scope, &name), 0);
	CHECK_INT(scope, AUTH_READ);
	CHECK_STR(name, "bot");
	CHECK_INT(auth_check(a, "Bearer secret", NULL, NULL), 0);

	/* Everything else is a 401 and leaves no stale scope behind. */
	CHECK_INT(auth_check(a, "Bearer wrong", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(scope, AUTH_NONE);
	CHECK_STR(name, "");
	CHECK_INT(auth_check(a, "Bearer secret2", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "Bearer secre", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "Bearer " H_SECRET, &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "Basic secret", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "Bearersecret", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "secret", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "Bearer", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "Bearer    ", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, "", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(a, NULL, &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(auth_check(NULL, "Bearer secret", &scope, &name), ERR_UNAUTHORIZED);
	CHECK_INT(scope, AUTH_NONE);
	auth_free(a);
	auth_free(NULL);
	CHECK_INT(auth_count(NULL), 0);
}

static void test_empty_file(void)
{
	const char *path = write_file("empty", "# nobody yet\n\n");
	struct auth *a = NULL;
	struct err e = {0};

	CHECK_INT(auth_load(&a, path, &e), 0);
	CHECK_INT(auth_count(a), 0);
	CHECK_INT(auth_check(a, "Bearer secret", NULL, NULL), ERR_UNAUTHORIZED);
	auth_free(a);
}

static void test_last_key_matches(void)
{
	/* The match is found wherever it sits in the table (the scan never stops early). */
	char text[4096];
	struct auth *a = NULL;
	struct err e = {0};
	enum auth_scope scope;
	const char *name;
	int i, n = 0;

	for (i = 0; i < 20; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "read %064x k%d\n", i, i);
	snprintf(text + n, sizeof text - (size_t)n, "admin " H_SECRET " last\n");
	CHECK_INT(auth_load(&a, write_file("many", text), &e), 0);
	CHECK_INT(auth_count(a), 21);
	CHECK_INT(auth_check(a, "Bearer secret", &scope, &name), 0);
	CHECK_INT(scope, AUTH_ADMIN);
	CHECK_STR(name, "last");
	auth_free(a);
}

static int load_fails(const char *text, int code, const char *detail_after_path)
{
	const char *path = write_file("bad", text);
	struct auth *a = NULL;
	struct err e = {0};
	char want[600];
	int rc;

	snprintf(want, sizeof want, "%s:%s", path, detail_after_path);
	rc = auth_load(&a, path, &e);
	if (rc != code || a != NULL || strcmp(e.detail, want) != 0) {
		printf("  got rc=%d detail='%s'\n  want '%s'\n", rc, e.detail, want);
		auth_free(a);
		return 0;
	}
	return strcmp(e.slug, "invalid_keys_file") == 0;
}

static void test_bad_lines(void)
{
	CHECK(load_fails("admin\n", ERR_INVALID, "1: expected 'SCOPE SHA256HEX [NAME]'"));
	CHECK(load_fails("# c\nadmin # " H_K1 "\n", ERR_INVALID,
	                 "2: expected 'SCOPE SHA256HEX [NAME]'"));
	CHECK(load_fails("read " H_K2 "\nwrite " H_K1 "\n", ERR_INVALID,
	                 "2: unknown scope (read or admin): 'write'"));
	CHECK(load_fails("admin abc123\n", ERR_INVALID,
	                 "1: expected 64 hex digits (the SHA-256 of the key): 'abc123'"));
	CHECK(load_fails("admin " H_K1 "0\n", ERR_INVALID,
	                 "1: expected 64 hex digits (the SHA-256 of the key): '" H_K1 "0'"));
	CHECK(load_fails("admin g" H_K1 "\n", ERR_INVALID,
	                 "1: expected 64 hex digits (the SHA-256 of the key): 'g" H_K1 "'"));
	CHECK(load_fails("admin " H_K1 " two words\n", ERR_INVALID,
	                 "1: unexpected text after the name (names are one token): 'words'"));
	CHECK(load_fails("\n\nadmin " H_K1 " a\nread " H_K1 " b\n", ERR_INVALID,
	                 "4: duplicate key hash (also on line 3)"));
	CHECK(load_fails("read " H_K2 "\nadmin " H_K2_UPPER "\n", ERR_INVALID,
	                 "2: duplicate key hash (also on line 1)"));
	CHECK(load_fails("admin " H_K1 " caf\xc3\xa9\n", ERR_INVALID,
	                 "1: bad name (printable ASCII, no blanks, at most 128 bytes): "
	                 "'caf\xc3\xa9'"));
}

static void test_missing_file(void)
{
	struct auth *a = NULL;
	struct err e = {0};

	CHECK_INT(auth_load(&a, "/nonexistent/keys", &e), ERR_IO);
	CHECK(a == NULL);
	CHECK_STR(e.detail, "cannot read keys file /nonexistent/keys: No such file or directory");
}

static char out[1024], errs[1024];

/* Run hash-key with stdin from stdin_text (NULL: empty) and its stdout and stderr
 * captured into out and errs. */
static int hash_key(const char *stdin_text, const char *const *args)
{
	char *argv[16];
	int argc = 0, fd_out, fd_err, s_out, s_err, rc;

	argv[argc++] = (char *)"hash-key";
	for (; *args != NULL && argc < 15; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	write_file("stdin", stdin_text ? stdin_text : "");
	fflush(stdout);
	/* freopen, not dup2: it also drops what stdio buffered from the previous run. */
	if (freopen(path_of("stdin"), "r", stdin) == NULL)
		return -1;
	fd_out = open(path_of("stdout"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fd_err = open(path_of("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	s_out = dup(STDOUT_FILENO);
	s_err = dup(STDERR_FILENO);
	dup2(fd_out, STDOUT_FILENO);
	dup2(fd_err, STDERR_FILENO);
	close(fd_out);
	close(fd_err);
	rc = auth_hash_key_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(s_out, STDOUT_FILENO);
	dup2(s_err, STDERR_FILENO);
	close(s_out);
	close(s_err);
	read_into("stdout", out, sizeof out);
	read_into("stderr", errs, sizeof errs);
	return rc;
}

static void test_hash_key(void)
{
	CHECK_INT(hash_key(NULL, (const char *const[]){"--scope", "read", "--name", "ci",
	                                               "secret", NULL}),
	          0);
	CHECK_STR(out, "read " H_SECRET " ci\n");
	CHECK_STR(errs, "");

	CHECK_INT(hash_key(NULL, (const char *const[]){"k1-admin", NULL}), 0);
	CHECK_STR(out, "admin " H_K1 "\n");

	CHECK_INT(hash_key(NULL,
	                   (const char *const[]){"--name=x", "--scope=admin", "--", "-dash", NULL}),
	          0);
	CHECK_STR(out, "admin " H_DASH " x\n");

	/* The key from the first line of stdin (CRLF too); later lines are ignored. */
	CHECK_INT(hash_key("k2-read\r\nignored\n",
	                   (const char *const[]){"--scope", "read", NULL}),
	          0);
	CHECK_STR(out, "read " H_K2 "\n");
	CHECK_INT(hash_key("secret", (const char *const[]){NULL}), 0);
	CHECK_STR(out, "admin " H_SECRET "\n");

	CHECK_INT(hash_key(NULL, (const char *const[]){"--help", NULL}), 0);
	CHECK(strstr(out, "usage: winnowd hash-key [--scope read|admin] [--name NAME] "
	                  "[KEY]\n") == out);
}

static void test_hash_key_errors(void)
{
	static const struct {
		const char *stdin_text;
		const char *args[6];
		const char *err_start;
	} cases[] = {
		{NULL, {"--scope", "write", "k", NULL}, "hash-key: unknown scope 'write'"},
		{NULL, {"--bogus", "k", NULL}, "hash-key: unknown option '--bogus'"},
		{NULL, {"k1", "k2", NULL}, "hash-key: more than one key given"},
		{NULL, {"--name", NULL}, "hash-key: --name needs a value"},
		{NULL, {"--name", "two words", "k", NULL}, "hash-key: bad name 'two words'"},
		{NULL, {"--name", "#x", "k", NULL}, "hash-key: bad name '#x'"},
		{NULL, {NULL}, "hash-key: no key given"},
		{"\n", {NULL}, "hash-key: the key is empty"},
		{"a b\n", {NULL}, "hash-key: the key is empty or contains blanks"},
		{NULL, {"", NULL}, "hash-key: the key is empty"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = hash_key(cases[i].stdin_text, cases[i].args);
		int ok = rc == 2 && out[0] == '\0' &&
		         strncmp(errs, cases[i].err_start, strlen(cases[i].err_start)) == 0;

		if (!ok)
			printf("  case %zu: rc=%d out='%s' err='%s'\n", i, rc, out, errs);
		CHECK(ok);
	}
}

static void test_hash_key_round_trip(void)
{
	struct auth *a = NULL;
	struct err e = {0};
	enum auth_scope scope;
	const char *name;

	CHECK_INT(hash_key("tok_9f8e7d\n",
	                   (const char *const[]){"--scope=read", "--name=grafana", NULL}),
	          0);
	CHECK(write_file("rt", out) != NULL);
	CHECK_INT(auth_load(&a, path_of("rt"), &e), 0);
	CHECK_INT(auth_check(a, "Bearer tok_9f8e7d", &scope, &name), 0);
	CHECK_INT(scope, AUTH_READ);
	CHECK_STR(name, "grafana");
	CHECK_STR(auth_scope_name(scope), "read");
	CHECK_STR(auth_scope_name(AUTH_ADMIN), "admin");
	CHECK_STR(auth_scope_name(AUTH_NONE), "none");
	auth_free(a);
}

int main(void)
{
	static const char *const files[] = {"keys", "empty", "many", "bad", "stdin",
	                                    "stdout", "stderr", "rt"};
	size_t i;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/winnow-test-auth-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	HARNESS_RUN(test_load_and_check);
	HARNESS_RUN(test_empty_file);
	HARNESS_RUN(test_last_key_matches);
	HARNESS_RUN(test_bad_lines);
	HARNESS_RUN(test_missing_file);
	HARNESS_RUN(test_hash_key);
	HARNESS_RUN(test_hash_key_errors);
	HARNESS_RUN(test_hash_key_round_trip);
	for (i = 0; i < sizeof files / sizeof files[0]; i++)
		unlink(path_of(files[i]));
	rmdir(tmpdir);
	return harness_done();
}

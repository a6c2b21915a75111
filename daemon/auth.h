/* SPDX-License-Identifier: MIT */
/* auth: API keys stored as SHA-256 hashes with a scope, checked in constant time.
 *
 * Owns the table loaded from the keys file (lines `SCOPE SHA256HEX [NAME]`). Read-only
 * after auth_load, so auth_check is thread-safe without locks. Keys themselves are
 * never stored; only their hashes. Also holds the `winnowd hash-key` subcommand that
 * writes keys-file lines. */
#ifndef WINNOW_AUTH_H
#define WINNOW_AUTH_H

#include <stddef.h>

struct err;

enum auth_scope { AUTH_NONE = 0, AUTH_READ = 1, AUTH_ADMIN = 2 };

struct auth;

/* Longest key NAME accepted in a keys file (bytes). */
#define AUTH_NAME_MAX 128

/* Load the keys file path (borrowed): lines `SCOPE SHA256_HEX [NAME]`, fields separated by
 * blanks, scope read|admin, 64 hex digits of any case, NAME one token of printable
 * non-blank ASCII (at most AUTH_NAME_MAX bytes, not starting with '#'); `#` comments
 * (a whole line, or after the fields), blank lines. An empty file is valid (nobody gets
 * in). The same hash on two lines is an error.
 * Returns 0 and *out (new, auth_free it); ERR_INVALID with e "FILE:LINE: ..." for a bad
 * line (slug "invalid_keys_file"); ERR_IO when the file cannot be read; ERR_NOMEM. */
int auth_load(struct auth **out, const char *path, struct err *e);

/* Free a. a may be NULL. */
void auth_free(struct auth *a);

/* Number of keys loaded; 0 for NULL. */
size_t auth_count(const struct auth *a);

/* authorization = the Authorization header value (borrowed) or NULL. Accepts
 * "Bearer KEY" (scheme case-insensitive, blanks around KEY ignored). Hashes KEY with
 * SHA-256 and compares it against every stored hash in constant time (no early exit).
 * Returns 0 with *scope and *name (borrowed from a, valid until auth_free; "" when the
 * line had no name) on a match; ERR_UNAUTHORIZED otherwise (a NULL, no header, other
 * scheme, empty key, unknown key), with *scope = AUTH_NONE and *name = "".
 * scope and name may be NULL. */
int auth_check(const struct auth *a, const char *authorization, enum auth_scope *scope,
               const char **name);

/* "read", "admin", or "none". Static string. */
const char *auth_scope_name(enum auth_scope s);

/* The `winnowd hash-key [--scope read|admin] [--name NAME] [KEY]` subcommand; argv[0] is
 * "hash-key". KEY from argv (after "--" it may start with '-'), else the first line of
 * stdin. Prints `SCOPE HEX [NAME]\n` on stdout; default scope admin. -h/--help prints
 * the usage on stdout. Returns the process exit code: 0, or 2 with a message on stderr
 * (bad option, bad scope or name, empty key or one with blanks or control bytes). */
int auth_hash_key_main(int argc, char **argv);

#endif

/* SPDX-License-Identifier: MIT */
/* codec: JSON <-> store structs for datasets and records. See codec.h. */
#include "api/codec.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/b64.h"
#include "lib/err.h"
#include "lib/vec.h"

static const struct {
	unsigned bit;
	const char *name;
} kinds[] = {
	{STORE_KIND_IMAGE_TEXT, "image-text"},
	{STORE_KIND_TEXT, "text"},
};

const char *codec_kind_name(unsigned kind)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kinds[i].bit == kind)
			return kinds[i].name;
	return NULL;
}

static unsigned kind_parse(const char *s)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i].name, s) == 0)
			return kinds[i].bit;
	return 0;
}

/* Reject keys of obj that are not in the NULL-terminated list allowed. */
static int only_keys(const json_t *obj, const char *const *allowed, const char *where,
                     const char *slug, struct err *e)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		size_t i;

		(void)v;
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(allowed[i], key) == 0)
				break;
		if (allowed[i] == NULL)
			return err_set(e, ERR_INVALID, slug, "unknown field '%s' in %s", key, where);
	}
	return 0;
}

int codec_parse_schema(const json_t *obj, struct store_schema *out, struct err *e)
{
	static const char *const top_keys[] = {"spaces", "kinds", NULL};
	static const char *const space_keys[] = {"dim", "dtype", NULL};
	const json_t *spaces, *kl;
	const char *name;
	json_t *sp;
	int rc;

	memset(out, 0, sizeof *out);
	if (!json_is_object(obj))
		return err_set(e, ERR_INVALID, "invalid_schema", "the dataset definition must be a JSON object");
	if ((rc = only_keys(obj, top_keys, "the dataset definition", "invalid_schema", e)) != 0)
		return rc;
	spaces = json_object_get(obj, "spaces");
	if (spaces != NULL && !json_is_object(spaces))
		return err_set(e, ERR_INVALID, "invalid_schema", "'spaces' must be an object of name -> {dim, dtype}");
	if (spaces != NULL && json_object_size(spaces) > STORE_MAX_SPACES)
		return err_set(e, ERR_INVALID, "too_many_spaces", "at most %d spaces, got %zu",
		               STORE_MAX_SPACES, json_object_size(spaces));
	if (spaces != NULL) {
		json_object_foreach((json_t *)spaces, name, sp) {
			struct store_space *s = &out->spaces[out->nspaces];
			const json_t *dim, *dtype;

			if (!store_name_valid(name))
				return err_set(e, ERR_INVALID, "invalid_space_name",
				               "space name '%.80s' must match [A-Za-z0-9._-]{1,64}", name);
			if (!json_is_object(sp))
				return err_set(e, ERR_INVALID, "invalid_schema", "space '%s' must be an object {\"dim\": N, \"dtype\": \"f32\"|\"f16\"}", name);
			if ((rc = only_keys(sp, space_keys, "a space", "invalid_schema", e)) != 0)
				return rc;
			dim = json_object_get(sp, "dim");
			if (!json_is_integer(dim) || json_integer_value(dim) < 1 ||
			    json_integer_value(dim) > STORE_DIM_MAX)
				return err_set(e, ERR_INVALID, "invalid_dim",
				               "space '%s': dim must be an integer from 1 to %d", name, STORE_DIM_MAX);
			dtype = json_object_get(sp, "dtype");
			if (dtype == NULL || (json_is_string(dtype) && strcmp(json_string_value(dtype), "f32") == 0))
				s->dtype = STORE_F32;
			else if (json_is_string(dtype) && strcmp(json_string_value(dtype), "f16") == 0)
				s->dtype = STORE_F16;
			else
				return err_set(e, ERR_INVALID, "invalid_dtype",
				               "space '%s': dtype must be \"f32\" or \"f16\"", name);
			snprintf(s->name, sizeof s->name, "%s", name);
			s->dim = (uint32_t)json_integer_value(dim);
			out->nspaces++;
		}
	}
	kl = json_object_get(obj, "kinds");
	if (kl == NULL) {
		out->kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT;
	} else {
		size_t i;
		json_t *k;

		if (!json_is_array(kl) || json_array_size(kl) == 0)
			return err_set(e, ERR_INVALID, "invalid_kinds", "'kinds' must be a non-empty array of \"image-text\" and \"text\"");
		json_array_foreach((json_t *)kl, i, k) {
			unsigned bit = json_is_string(k) ? kind_parse(json_string_value(k)) : 0;

			if (bit == 0)
				return err_set(e, ERR_INVALID, "invalid_kinds", "kinds[%zu] is not \"image-text\" or \"text\"", i);
			out->kinds |= bit;
		}
	}
	return 0;
}

json_t *codec_dataset_json(const struct store_dataset_info *ds)
{
	json_t *spaces = json_object(), *kl = json_array();
	char created[32];
	struct tm tm;
	time_t t = (time_t)ds->created_unix;

	for (unsigned i = 0; i < ds->schema.nspaces; i++) {
		const struct store_space *s = &ds->schema.spaces[i];

		json_object_set_new(spaces, s->name,
		                    json_pack("{s:i, s:s}", "dim", (json_int_t)s->dim, "dtype",
		                              s->dtype == STORE_F16 ? "f16" : "f32"));
	}
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (ds->schema.kinds & kinds[i].bit)
			json_array_append_new(kl, json_string(kinds[i].name));
	gmtime_r(&t, &tm);
	strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s, s:o, s:o, s:I, s:I, s:s}", "name", ds->name, "spaces", spaces,
	                 "kinds", kl, "records", (json_int_t)ds->records, "rows",
	                 (json_int_t)ds->next_row, "created_at", created);
}

/* ---- records ------------------------------------------------------------------- */

static int is_hex64(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return i == 64;
}

static int check_image(const json_t *img, struct err *e)
{
	static const char *const keys[] = {"url", "sha256", "width", "height", NULL};
	const json_t *v;
	int rc;

	if (!json_is_object(img))
		return err_set(e, ERR_INVALID, "invalid_field", "'image' must be an object");
	if ((rc = only_keys(img, keys, "'image'", "invalid_field", e)) != 0)
		return rc;
	if ((v = json_object_get(img, "url")) != NULL && !json_is_string(v))
		return err_set(e, ERR_INVALID, "invalid_field", "image.url must be a string");
	if ((v = json_object_get(img, "sha256")) != NULL &&
	    !(json_is_string(v) && is_hex64(json_string_value(v))))
		return err_set(e, ERR_INVALID, "invalid_field", "image.sha256 must be 64 hex digits");
	for (int i = 0; i < 2; i++) {
		const char *k = i == 0 ? "width" : "height";

		if ((v = json_object_get(img, k)) != NULL &&
		    !(json_is_integer(v) && json_integer_value(v) > 0 &&
		      json_integer_value(v) <= INT32_MAX))
			return err_set(e, ERR_INVALID, "invalid_field", "image.%s must be a positive integer", k);
	}
	return 0;
}

int codec_check_signals(const json_t *sig, struct err *e)
{
	const char *k, *k2;
	json_t *v, *v2;

	if (!json_is_object(sig))
		return err_set(e, ERR_INVALID, "invalid_field", "'signals' must be an object");
	json_object_foreach((json_t *)sig, k, v) {
		if (json_is_number(v))
			continue;
		if (!json_is_object(v))
			return err_set(e, ERR_INVALID, "invalid_field",
			               "signals.%.64s must be a number or an object of numbers", k);
		json_object_foreach(v, k2, v2) {
			if (!json_is_number(v2))
				return err_set(e, ERR_INVALID, "invalid_field",
				               "signals.%.64s.%.64s must be a number", k, k2);
		}
	}
	return 0;
}

/* Store dim f32 values from scratch into dst in the space's dtype, checking that every
 * value is finite in that dtype. */
static int store_f32(const struct store_space *sp, void *dst, const float *scratch, struct err *e)
{
	size_t dim = sp->dim, bad = 0;

	if (!vec_f32_finite(scratch, dim, &bad))
		return err_set(e, ERR_INVALID, "non_finite",
		               "space '%s': element %zu is not finite as float32", sp->name, bad);
	if (sp->dtype == STORE_F32) {
		memcpy(dst, scratch, dim * sizeof(float));
		return 0;
	}
	vec_f32_to_f16(scratch, dst, dim);
	if (!vec_f16_finite(dst, dim, &bad))
		return err_set(e, ERR_INVALID, "non_finite",
		               "space '%s' (f16): element %zu overflows float16", sp->name, bad);
	return 0;
}

/* Decode base64 s[0..n) of wire dtype f16 or f32 into dst in the space's dtype. */
static int store_b64(const struct store_space *sp, void *dst, const char *s, size_t n,
                     int wire_f16, float *scratch, struct err *e)
{
	size_t dim = sp->dim, elt = wire_f16 ? 2 : 4, got = 0, bad = 0;

	if (b64_decoded_max(n) > dim * 4 + 3)
		return err_set(e, ERR_INVALID, "dimension_mismatch",
		               "space '%s' has dim %zu; the base64 holds more than %zu bytes", sp->name,
		               dim, dim * elt);
	if (b64_decode(s, n, (uint8_t *)scratch, &got) != 0)
		return err_set(e, ERR_INVALID, "invalid_embedding", "space '%s': bad base64", sp->name);
	if (got != dim * elt)
		return err_set(e, ERR_INVALID, got % elt ? "invalid_embedding" : "dimension_mismatch",
		               "space '%s' has dim %zu (%zu bytes as %s), got %zu bytes", sp->name, dim,
		               dim * elt, wire_f16 ? "f16" : "f32", got);
	if (!wire_f16)
		return store_f32(sp, dst, scratch, e);
	if (!vec_f16_finite((const uint16_t *)scratch, dim, &bad))
		return err_set(e, ERR_INVALID, "non_finite", "space '%s': element %zu is not finite",
		               sp->name, bad);
	if (sp->dtype == STORE_F16)
		memcpy(dst, scratch, dim * 2);
	else
		vec_f16_to_f32((const uint16_t *)scratch, dst, dim);
	return 0;
}

/* Decode one embedding value (jansson form) into dst, in the space's dtype. scratch has
 * room for dim f32 values (the widest wire form). */
static int parse_vector(const json_t *v, const struct store_space *sp, void *dst, float *scratch,
                        struct err *e)
{
	size_t dim = sp->dim;

	if (json_is_array(v)) {
		if (json_array_size(v) != dim)
			return err_set(e, ERR_INVALID, "dimension_mismatch",
			               "space '%s' has dim %zu, the vector has %zu values", sp->name, dim,
			               json_array_size(v));
		for (size_t i = 0; i < dim; i++) {
			const json_t *x = json_array_get(v, i);

			if (!json_is_number(x))
				return err_set(e, ERR_INVALID, "invalid_embedding",
				               "space '%s': element %zu is not a number", sp->name, i);
			scratch[i] = (float)json_number_value(x);
		}
		return store_f32(sp, dst, scratch, e);
	}
	if (json_is_object(v)) {
		const json_t *dt = json_object_get(v, "dtype"), *b = json_object_get(v, "b64");
		int wire_f16;

		if (json_object_size(v) != 2 || !json_is_string(dt) || !json_is_string(b))
			return err_set(e, ERR_INVALID, "invalid_embedding",
			               "space '%s': an encoded vector is {\"dtype\": \"f32\"|\"f16\", \"b64\": \"...\"}", sp->name);
		if (strcmp(json_string_value(dt), "f16") == 0)
			wire_f16 = 1;
		else if (strcmp(json_string_value(dt), "f32") == 0)
			wire_f16 = 0;
		else
			return err_set(e, ERR_INVALID, "invalid_embedding",
			               "space '%s': dtype must be \"f32\" or \"f16\"", sp->name);
		return store_b64(sp, dst, json_string_value(b), json_string_length(b), wire_f16,
		                 scratch, e);
	}
	return err_set(e, ERR_INVALID, "invalid_embedding",
	               "space '%s': an embedding is an array of numbers or {\"dtype\", \"b64\"}", sp->name);
}

/* ---- the ingest fast path -----------------------------------------------------------
 * jansson builds a heap object per number and copies base64 strings byte by byte, which
 * made the embeddings most of ingest's cost. The fast path scans an NDJSON line itself,
 * takes the top-level "embeddings" value apart when it has the common shape (names of
 * valid spaces mapped to arrays of JSON numbers or {"dtype", "b64"} with plain base64),
 * and lets jansson parse the rest of the line with "embeddings" replaced by {}. Anything
 * else (escapes, duplicate names, odd values, syntax errors) answers "not handled" and the
 * caller parses the line with jansson alone, so errors are reported exactly as before. */

struct fast_vec {
	int space;         /* schema index, or -1 for a name the schema does not have */
	char name[STORE_NAME_MAX + 1];
	int is_b64, wire_f16;
	const char *p;     /* base64 text, or the array's first byte after '[' */
	size_t len;        /* base64 length, or the number of array elements */
};

struct codec_fast {
	unsigned n;
	struct fast_vec v[STORE_MAX_SPACES];
};

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past a JSON string starting at '"'; NULL when unterminated. *esc set when it has '\'. */
static const char *skip_string(const char *p, const char *end, int *esc)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			*esc = 1;
			p++;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

/* Past any JSON value at p (structure only; jansson validates the contents later). */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0, esc = 0;

	do {
		if (p >= end)
			return NULL;
		if (*p == '"') {
			if ((p = skip_string(p, end, &esc)) == NULL)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		else if (depth == 0) {
			while (p < end && !strchr(",}] \t\r\n", *p))
				p++;
			return p;
		}
		p++;
	} while (depth > 0);
	return depth == 0 ? p : NULL;
}

/* A JSON number per the grammar; returns its end, or NULL when it is not one or when
 * jansson might refuse it: an integer literal of more than 18 digits (beyond int64) or a
 * magnitude that may overflow a double (integer digits + exponent > 300). The fast path
 * must answer as jansson does, and leaving a line to jansson is always correct. */
static const char *scan_number(const char *p, const char *end)
{
	const char *digits;
	size_t intlen;

	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	digits = p;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	intlen = (size_t)(p - digits);
	if (intlen > 18 && (p >= end || (*p != '.' && *p != 'e' && *p != 'E')))
		return NULL;
	if (p < end && *p == '.') {
		if (++p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		long ex = 0;
		int neg = 0;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			neg = *p++ == '-';
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9') {
			if (ex < 100000)
				ex = ex * 10 + (*p - '0');
			p++;
		}
		if (!neg && (long)intlen + ex > 300)
			return NULL;
	}
	return p;
}

/* Parse the "embeddings" object [p, end). 0 when handled, 1 when not. */
static int fast_embeddings(const char *p, const char *end, const struct store_schema *schema,
                           struct codec_fast *f)
{
	f->n = 0;
	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return 1;
	p = skip_ws(p, end);
	if (p < end && *p == '}')
		return skip_ws(p + 1, end) == end ? 0 : 1;
	for (;;) {
		struct fast_vec *v;
		const char *k;
		size_t klen;

		if (f->n == STORE_MAX_SPACES || p >= end || *p != '"')
			return 1;
		/* Only name characters: anything else (escapes, control bytes) is for jansson. */
		k = ++p;
		while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		                   (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			p++;
		if (p >= end || *p != '"')
			return 1;
		klen = (size_t)(p - k);
		v = &f->v[f->n];
		if (klen == 0 || klen > STORE_NAME_MAX)
			return 1;
		memcpy(v->name, k, klen);
		v->name[klen] = '\0';
		if (!store_name_valid(v->name))
			return 1;
		for (unsigned i = 0; i < f->n; i++)
			if (strcmp(f->v[i].name, v->name) == 0)
				return 1; /* duplicate: jansson's last-wins rule applies */
		v->space = store_schema_find(schema, v->name);
		p = skip_ws(p + 1, end);
		if (p >= end || *p++ != ':')
			return 1;
		p = skip_ws(p, end);
		if (p < end && *p == '[') {
			v->is_b64 = 0;
			v->p = ++p;
			v->len = 0;
			p = skip_ws(p, end);
			if (p < end && *p == ']') {
				p++;
			} else {
				for (;;) {
					if ((p = scan_number(p, end)) == NULL)
						return 1;
					v->len++;
					p = skip_ws(p, end);
					if (p < end && *p == ',') {
						p = skip_ws(p + 1, end);
						continue;
					}
					if (p < end && *p == ']') {
						p++;
						break;
					}
					return 1;
				}
			}
		} else if (p < end && *p == '{') {
			int have_dt = 0, have_b = 0;

			v->is_b64 = 1;
			p = skip_ws(p + 1, end);
			for (int i = 0; i < 2; i++) {
				const char *val;

				if (i == 1) {
					if (p >= end || *p++ != ',')
						return 1;
					p = skip_ws(p, end);
				}
				if ((size_t)(end - p) >= 7 && memcmp(p, "\"dtype\"", 7) == 0 && !have_dt) {
					p = skip_ws(p + 7, end);
					if (p >= end || *p++ != ':')
						return 1;
					p = skip_ws(p, end);
					if ((size_t)(end - p) >= 5 && memcmp(p, "\"f16\"", 5) == 0)
						v->wire_f16 = 1;
					else if ((size_t)(end - p) >= 5 && memcmp(p, "\"f32\"", 5) == 0)
						v->wire_f16 = 0;
					else
						return 1;
					p = skip_ws(p + 5, end);
					have_dt = 1;
				} else if ((size_t)(end - p) >= 5 && memcmp(p, "\"b64\"", 5) == 0 && !have_b) {
					p = skip_ws(p + 5, end);
					if (p >= end || *p++ != ':')
						return 1;
					p = skip_ws(p, end);
					if (p >= end || *p++ != '"')
						return 1;
					val = p;
					while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
					                   (*p >= '0' && *p <= '9') || *p == '+' || *p == '/' ||
					                   *p == '='))
						p++;
					if (p >= end || *p != '"')
						return 1;
					v->p = val;
					v->len = (size_t)(p - val);
					p = skip_ws(p + 1, end);
					have_b = 1;
				} else {
					return 1;
				}
			}
			if (p >= end || *p++ != '}')
				return 1;
		} else {
			return 1;
		}
		f->n++;
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			return skip_ws(p + 1, end) == end ? 0 : 1;
		return 1;
	}
}

/* Decode the fast-path vector v into dst. */
static int fast_vector(const struct fast_vec *v, const struct store_space *sp, void *dst,
                       float *scratch, struct err *e)
{
	const char *p = v->p;

	if (v->is_b64)
		return store_b64(sp, dst, v->p, v->len, v->wire_f16, scratch, e);
	if (v->len != sp->dim)
		return err_set(e, ERR_INVALID, "dimension_mismatch",
		               "space '%s' has dim %u, the vector has %zu values", sp->name, sp->dim,
		               v->len);
	for (size_t i = 0; i < v->len; i++) {
		char *q;

		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ',')
			p++;
		/* The grammar was checked, so strtod reads exactly the number (C locale). */
		double x = strtod(p, &q);

		/* jansson reads an integer literal as an integer: "-0" is +0, not -0. */
		if (x == 0.0 && memchr(p, '.', (size_t)(q - p)) == NULL &&
		    memchr(p, 'e', (size_t)(q - p)) == NULL && memchr(p, 'E', (size_t)(q - p)) == NULL)
			x = 0.0;
		scratch[i] = (float)x;
		p = q;
	}
	return store_f32(sp, dst, scratch, e);
}

/* The record's "id": 1..STORE_ID_MAX bytes without NUL. *id_out (may be NULL) is set once the
 * id is usable (borrowed from obj). */
static int record_id(const json_t *obj, const char **id, size_t *id_len, const char **id_out,
                     struct err *e)
{
	const json_t *jid = json_object_get(obj, "id");

	if (jid == NULL)
		return err_set(e, ERR_INVALID, "missing_id", "the record has no \"id\"");
	if (!json_is_string(jid))
		return err_set(e, ERR_INVALID, "invalid_id", "\"id\" must be a string");
	*id = json_string_value(jid);
	*id_len = json_string_length(jid);
	if (*id_len == 0 || *id_len > STORE_ID_MAX || memchr(*id, '\0', *id_len) != NULL)
		return err_set(e, ERR_INVALID, "invalid_id",
		               "\"id\" must be 1 to %d bytes without NUL, got %zu bytes", STORE_ID_MAX,
		               *id_len);
	if (id_out != NULL)
		*id_out = *id;
	return 0;
}

/* Check the record's other fields and its kind against schema; *kind, and *body_s (new: free())
 * the stored body, the compact JSON of text, image, meta and signals. */
static int record_body(const json_t *obj, const struct store_schema *schema, unsigned *kind,
                       char **body_s, struct err *e)
{
	const json_t *text = json_object_get(obj, "text"), *image = json_object_get(obj, "image");
	const json_t *meta = json_object_get(obj, "meta"), *sig = json_object_get(obj, "signals");
	const json_t *embs = json_object_get(obj, "embeddings"), *jkind;
	json_t *body;
	int rc;

	if (text != NULL && !json_is_string(text) && !json_is_null(text))
		return err_set(e, ERR_INVALID, "invalid_field", "\"text\" must be a string");
	if (image != NULL && (rc = check_image(image, e)) != 0)
		return rc;
	if (meta != NULL && !json_is_object(meta))
		return err_set(e, ERR_INVALID, "invalid_field", "\"meta\" must be an object");
	if (sig != NULL && (rc = codec_check_signals(sig, e)) != 0)
		return rc;
	jkind = json_object_get(obj, "kind");
	if (jkind == NULL)
		*kind = image != NULL ? STORE_KIND_IMAGE_TEXT : STORE_KIND_TEXT;
	else if (!json_is_string(jkind) || (*kind = kind_parse(json_string_value(jkind))) == 0)
		return err_set(e, ERR_INVALID, "invalid_kind", "\"kind\" must be \"image-text\" or \"text\"");
	if (!(schema->kinds & *kind))
		return err_set(e, ERR_INVALID, "invalid_kind", "this dataset does not accept kind \"%s\"",
		               codec_kind_name(*kind));
	if (embs != NULL && !json_is_object(embs))
		return err_set(e, ERR_INVALID, "invalid_field", "\"embeddings\" must be an object");
	body = json_object();
	if (body == NULL)
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	if (text != NULL && !json_is_null(text))
		json_object_set(body, "text", (json_t *)text);
	if (image != NULL)
		json_object_set(body, "image", (json_t *)image);
	if (meta != NULL)
		json_object_set(body, "meta", (json_t *)meta);
	if (sig != NULL)
		json_object_set(body, "signals", (json_t *)sig);
	*body_s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	return *body_s != NULL ? 0 : err_set(e, ERR_NOMEM, NULL, "out of memory");
}

/* Where the record's vectors go in its one allocation, which begins with off bytes of id and
 * body: vec_off[space] = offset + 1 (0: absent), fast_of[space] = its index in fast (when fast
 * is not NULL). *off grows to the allocation's size, *maxdim gets the widest vector's dim.
 * ERR_INVALID (unknown_space) for a space the schema lacks. */
static int record_layout(const json_t *embs, const struct codec_fast *fast,
                         const struct store_schema *schema, size_t *vec_off, int *fast_of,
                         size_t *off, size_t *maxdim, struct err *e)
{
	unsigned n = fast != NULL ? fast->n : (unsigned)json_object_size(embs);
	void *it = fast != NULL ? NULL : json_object_iter((json_t *)embs);

	for (unsigned k = 0; k < n; k++) {
		const char *sname = fast != NULL ? fast->v[k].name : json_object_iter_key(it);
		int si = fast != NULL ? fast->v[k].space : store_schema_find(schema, sname);

		if (fast == NULL)
			it = json_object_iter_next((json_t *)embs, it);
		if (si < 0)
			return err_set(e, ERR_INVALID, "unknown_space", "the dataset has no space '%.64s'",
			               sname);
		if (fast != NULL)
			fast_of[si] = (int)k;
		vec_off[si] = *off + 1; /* +1: 0 means absent */
		*off += (store_space_bytes(&schema->spaces[si]) + 7) & ~(size_t)7;
		if (schema->spaces[si].dim > *maxdim)
			*maxdim = schema->spaces[si].dim;
	}
	return 0;
}

/* codec_parse_record with, when fast is not NULL, the vectors taken from fast instead of
 * obj's "embeddings" (which the fast path replaced by {}). */
static int parse_record(const json_t *obj, const struct codec_fast *fast,
                        const struct store_schema *schema, struct codec_record *out,
                        const char **id_out, struct err *e)
{
	int fast_of[STORE_MAX_SPACES];
	static const char *const keys[] = {"id", "kind", "text", "image", "meta",
	                                   "embeddings", "signals", NULL};
	const json_t *embs;
	char *body_s = NULL;
	float *scratch = NULL;
	const char *id = NULL;
	size_t id_len = 0, body_len, off, maxdim = 0;
	size_t vec_off[STORE_MAX_SPACES] = {0};
	unsigned kind = 0;
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (id_out != NULL)
		*id_out = NULL;
	if (!json_is_object(obj))
		return err_set(e, ERR_INVALID, "invalid_field", "a record must be a JSON object");
	if ((rc = record_id(obj, &id, &id_len, id_out, e)) != 0 ||
	    (rc = only_keys(obj, keys, "the record", "invalid_field", e)) != 0 ||
	    (rc = record_body(obj, schema, &kind, &body_s, e)) != 0)
		return rc;
	embs = json_object_get(obj, "embeddings");
	/* One allocation: id, body, then each vector (8-byte aligned). */
	body_len = strlen(body_s);
	off = (id_len + 1 + body_len + 1 + 7) & ~(size_t)7;
	for (unsigned i = 0; i < STORE_MAX_SPACES; i++)
		fast_of[i] = -1;
	if (fast != NULL || embs != NULL) {
		if ((rc = record_layout(embs, fast, schema, vec_off, fast_of, &off, &maxdim, e)) != 0)
			goto out;
		scratch = malloc(maxdim * sizeof(float) + 4);
		if (scratch == NULL && maxdim > 0) {
			rc = err_set(e, ERR_NOMEM, NULL, "out of memory");
			goto out;
		}
	}
	out->mem = malloc(off);
	if (out->mem == NULL) {
		rc = err_set(e, ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	memcpy(out->mem, id, id_len);
	((char *)out->mem)[id_len] = '\0';
	memcpy((char *)out->mem + id_len + 1, body_s, body_len + 1);
	out->rec.id = out->mem;
	out->rec.id_len = id_len;
	out->rec.kind = kind;
	out->rec.body = (char *)out->mem + id_len + 1;
	out->rec.body_len = body_len;
	for (unsigned i = 0; i < schema->nspaces; i++) {
		if (vec_off[i] == 0)
			continue;
		void *dst = (char *)out->mem + vec_off[i] - 1;

		if (fast != NULL)
			rc = fast_vector(&fast->v[fast_of[i]], &schema->spaces[i], dst, scratch, e);
		else
			rc = parse_vector(json_object_get(embs, schema->spaces[i].name),
			                  &schema->spaces[i], dst, scratch, e);
		if (rc != 0)
			goto out;
		out->rec.vec[i] = dst;
	}
out:
	if (rc != 0) {
		free(out->mem);
		memset(out, 0, sizeof *out);
	}
	free(scratch);
	free(body_s);
	return rc;
}

int codec_parse_record(const json_t *obj, const struct store_schema *schema,
                       struct codec_record *out, const char **id_out, struct err *e)
{
	return parse_record(obj, NULL, schema, out, id_out, e);
}

int codec_parse_line(const char *line, size_t len, const struct store_schema *schema,
                     struct codec_record *out, json_t **obj_out, const char **id_out,
                     struct err *e)
{
	const char *p = line, *end = line + len, *vs = NULL, *ve = NULL;
	struct codec_fast fast;
	json_error_t jerr;
	json_t *obj;
	char *buf;
	size_t n;
	int rc;

	*obj_out = NULL;
	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return 1;
	p = skip_ws(p, end);
	while (p < end && *p != '}') {
		const char *k = p, *v;
		int esc = 0, is_embs;

		if (*p != '"' || (p = skip_string(p, end, &esc)) == NULL || esc)
			return 1;
		is_embs = p - k == 12 && memcmp(k, "\"embeddings\"", 12) == 0;
		p = skip_ws(p, end);
		if (p >= end || *p++ != ':')
			return 1;
		v = skip_ws(p, end);
		if ((p = skip_value(v, end)) == NULL)
			return 1;
		if (is_embs) {
			if (vs != NULL)
				return 1;
			vs = v;
			ve = p;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
		else if (p >= end || *p != '}')
			return 1;
	}
	if (p >= end || skip_ws(p + 1, end) != end || vs == NULL)
		return 1;
	if (fast_embeddings(vs, ve, schema, &fast) != 0)
		return 1;
	n = (size_t)(vs - line);
	buf = malloc(len - (size_t)(ve - vs) + 3);
	if (buf == NULL)
		return ERR_NOMEM;
	memcpy(buf, line, n);
	memcpy(buf + n, "{}", 2);
	memcpy(buf + n + 2, ve, (size_t)(end - ve));
	obj = json_loadb(buf, len - (size_t)(ve - vs) + 2, 0, &jerr);
	free(buf);
	if (obj == NULL)
		return 1;
	rc = parse_record(obj, &fast, schema, out, id_out, e);
	*obj_out = obj;
	return rc;
}

void codec_record_free(struct codec_record *r)
{
	if (r == NULL)
		return;
	free(r->mem);
	memset(r, 0, sizeof *r);
}

json_t *codec_record_json(const struct store_schema *schema, const char *id, size_t id_len,
                          const struct store_record_out *r, int with_vectors, struct err *e)
{
	json_error_t jerr;
	json_t *obj, *embs;
	const char *kn = codec_kind_name(r->kind);

	obj = json_loadb(r->body, r->body_len, 0, &jerr);
	if (!json_is_object(obj)) {
		json_decref(obj);
		err_set(e, ERR_INTERNAL, "corrupt_record", "the stored record does not parse: %s",
		        jerr.text);
		return NULL;
	}
	json_object_set_new(obj, "id", json_stringn(id, id_len));
	json_object_set_new(obj, "kind", json_string(kn != NULL ? kn : "text"));
	json_object_set_new(obj, "row", json_integer((json_int_t)r->row));
	if (!with_vectors)
		return obj;
	embs = json_object();
	for (unsigned i = 0; i < schema->nspaces; i++) {
		const struct store_space *sp = &schema->spaces[i];
		json_t *arr;

		if (r->vec[i] == NULL)
			continue;
		arr = json_array();
		for (uint32_t j = 0; j < sp->dim; j++) {
			float f;

			if (sp->dtype == STORE_F16) {
				uint16_t h;

				memcpy(&h, (const char *)r->vec[i] + 2 * (size_t)j, 2);
				f = vec_f16_to_f32_one(h);
			} else {
				memcpy(&f, (const char *)r->vec[i] + 4 * (size_t)j, 4);
			}
			/* A float widened to double prints with %.17g and reads back exactly. */
			json_array_append_new(arr, json_real((double)f));
		}
		json_object_set_new(embs, sp->name, arr);
	}
	json_object_set_new(obj, "embeddings", embs);
	return obj;
}

/* SPDX-License-Identifier: MIT */
/* import: bulk import of an NDJSON metadata part plus one `.npy` part per space (import.h).
 *
 * The whole request is checked before any record is parsed: the parts, every array's header,
 * dims and row counts; a request that is wrong as a whole is one problem naming the part and
 * changes nothing. Then each metadata line is parsed as ingest parses a line (codec.c), its
 * vectors are pointed at the array rows, and a bad line or a non-finite row rejects that one
 * record only. The accepted records are written through ingest_commit() in bounded batches,
 * so the hooks see them as they see any ingest. */
#include "api/import.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/codec.h"
#include "api/http.h"
#include "daemon/daemon.h"
#include "daemon/metrics.h"
#include "ingest/ingest.h"
#include "lib/err.h"
#include "lib/vec.h"
#include "store/store.h"

/* At most this many rejections are listed, as for ingest; the counts are always complete. */
#define MAX_LISTED_ERRORS 1000
/* Records per ingest_commit: one write transaction and one round of hooks each, so a large
 * import neither holds the writer for long nor builds one huge hook batch. */
#define COMMIT_BATCH 8192
/* RFC 2046: a boundary is 1 to 70 characters. */
#define BOUNDARY_MAX 70

/* ---- multipart/form-data ------------------------------------------------------------- */

static const char *skip_sp(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* The value of parameter name in a header value's "; k=v" list (v a token or a quoted
 * string without escapes): *v and *vlen, 1 when found. */
static int header_param(const char *p, const char *end, const char *name, const char **v,
                        size_t *vlen)
{
	size_t nl = strlen(name);

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *q, *stop = semi != NULL ? semi : end;

		p = skip_sp(p, stop);
		if ((size_t)(stop - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == '=') {
			q = p + nl + 1;
			if (q < end && *q == '"') {
				const char *close = memchr(q + 1, '"', (size_t)(end - q - 1));

				if (close == NULL)
					return 0;
				*v = q + 1;
				*vlen = (size_t)(close - q - 1);
				return 1;
			}
			while (stop > q && (stop[-1] == ' ' || stop[-1] == '\t'))
				stop--;
			*v = q;
			*vlen = (size_t)(stop - q);
			return 1;
		}
		p = semi != NULL ? semi + 1 : end;
	}
	return 0;
}

/* The name of a part from its header block [p, end): the Content-Disposition's name. */
static int part_name(const char *p, const char *end, const char **name, size_t *len)
{
	static const char cd[] = "content-disposition:";

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *le = eol != NULL ? eol : end;

		if ((size_t)(le - p) > sizeof cd - 1 && strncasecmp(p, cd, sizeof cd - 1) == 0) {
			const char *v = skip_sp(p + sizeof cd - 1, le);
			const char *semi = memchr(v, ';', (size_t)(le - v));

			if (semi == NULL || (size_t)(semi - v) != 9 || strncasecmp(v, "form-data", 9) != 0)
				return 0;
			return header_param(semi + 1, le, "name", name, len) && *len > 0;
		}
		p = eol != NULL ? eol + 2 : end;
	}
	return 0;
}

int import_multipart_parse(const char *ctype, const char *body, size_t len,
                           struct import_part *parts, size_t max, size_t *n, struct err *e)
{
	char delim[BOUNDARY_MAX + 4]; /* "\r\n--" boundary */
	const char *b, *p, *end = body + len, *ct_end;
	size_t blen, dlen;

	*n = 0;
	if (ctype == NULL)
		ctype = "";
	ct_end = ctype + strlen(ctype);
	p = skip_sp(ctype, ct_end);
	if ((size_t)(ct_end - p) < 19 || strncasecmp(p, "multipart/form-data", 19) != 0 ||
	    (p[19] != '\0' && p[19] != ';' && p[19] != ' ' && p[19] != '\t'))
		return err_set(e, ERR_MEDIA_TYPE, "unsupported_media_type",
		               "send an import as multipart/form-data, not '%.100s'",
		               ctype[0] ? ctype : "(none)");
	if (!header_param(p + 19, ct_end, "boundary", &b, &blen) || blen == 0 ||
	    blen > BOUNDARY_MAX)
		return err_set(e, ERR_MEDIA_TYPE, "unsupported_media_type",
		               "the multipart/form-data Content-Type needs a boundary of 1 to %d "
		               "characters", BOUNDARY_MAX);
	memcpy(delim, "\r\n--", 4);
	memcpy(delim + 4, b, blen);
	dlen = blen + 4;
	/* The first delimiter may open the body (no CRLF before it) or follow a preamble. */
	if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
		p = body;
	} else {
		p = memmem(body, len, delim, dlen);
		if (p == NULL)
			return err_set(e, ERR_MALFORMED, "malformed_multipart",
			               "the body holds no boundary line '--%.*s'", (int)blen, b);
		p += 2;
	}
	for (;;) {
		const char *hdr, *hdr_end, *content, *close;

		p += dlen - 2; /* past "--" boundary */
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return 0; /* the close delimiter: whatever follows is the epilogue */
		p = skip_sp(p, end);
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			return err_set(e, ERR_MALFORMED, "malformed_multipart",
			               "part %zu: the boundary line does not end with CRLF", *n + 1);
		hdr = p + 2;
		if (end - hdr >= 2 && hdr[0] == '\r' && hdr[1] == '\n') {
			hdr_end = hdr;
			content = hdr + 2;
		} else {
			hdr_end = memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4);
			if (hdr_end == NULL)
				return err_set(e, ERR_MALFORMED, "malformed_multipart",
				               "part %zu: its headers do not end with an empty line", *n + 1);
			content = hdr_end + 4;
		}
		close = memmem(content, (size_t)(end - content), delim, dlen);
		if (close == NULL)
			return err_set(e, ERR_MALFORMED, "malformed_multipart",
			               "part %zu is not closed by a boundary line (a truncated body?)",
			               *n + 1);
		if (*n == max)
			return err_set(e, ERR_INVALID, "too_many_parts",
			               "at most %zu parts: metadata and one space.<name> per space", max);
		if (!part_name(hdr, hdr_end, &parts[*n].name, &parts[*n].name_len))
			return err_set(e, ERR_MALFORMED, "malformed_multipart",
			               "part %zu has no Content-Disposition: form-data; name=\"...\"",
			               *n + 1);
		parts[*n].data = content;
		parts[*n].len = (size_t)(close - content);
		(*n)++;
		p = close + 2;
	}
}

/* ---- .npy ------------------------------------------------------------------------------ */

struct cur {
	const char *p, *end;
};

static void cur_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int cur_eat(struct cur *c, char ch)
{
	cur_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

/* A Python string literal without escapes: *s and *len. */
static int cur_str(struct cur *c, const char **s, size_t *len)
{
	char q;
	const char *close;

	cur_ws(c);
	if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
		return 0;
	q = *c->p++;
	close = memchr(c->p, q, (size_t)(c->end - c->p));
	if (close == NULL || memchr(c->p, '\\', (size_t)(close - c->p)) != NULL)
		return 0;
	*s = c->p;
	*len = (size_t)(close - c->p);
	c->p = close + 1;
	return 1;
}

static int cur_word(struct cur *c, const char *w)
{
	size_t n = strlen(w);

	cur_ws(c);
	if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
		c->p += n;
		return 1;
	}
	return 0;
}

static int cur_uint(struct cur *c, uint64_t *v)
{
	cur_ws(c);
	if (c->p >= c->end || *c->p < '0' || *c->p > '9')
		return 0;
	*v = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p++ - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return 0;
		*v = *v * 10 + d;
	}
	return 1;
}

static int npy_bad(struct err *e, const char *what)
{
	return err_set(e, ERR_INVALID, "invalid_npy", "%s", what);
}

int import_npy_parse(const void *buf, size_t len, struct import_npy *out, struct err *e)
{
	const unsigned char *u = buf;
	size_t hlen, start;
	struct cur c;
	int have_descr = 0, have_fo = 0, have_shape = 0;
	uint64_t dims[2] = {0, 0};
	unsigned ndims = 0;

	memset(out, 0, sizeof *out);
	if (len < 10 || memcmp(u, "\x93NUMPY", 6) != 0)
		return npy_bad(e, "not an .npy file (no \\x93NUMPY magic)");
	if (u[6] < 1 || u[6] > 3 || u[7] != 0)
		return err_set(e, ERR_INVALID, "invalid_npy",
		               ".npy format version %u.%u is not 1.0, 2.0 or 3.0", u[6], u[7]);
	if (u[6] == 1) {
		hlen = (size_t)u[8] | (size_t)u[9] << 8;
		start = 10;
	} else {
		if (len < 12)
			return npy_bad(e, "the .npy preamble is truncated");
		hlen = (size_t)vec_le32_get(u + 8);
		start = 12;
	}
	if (hlen > len - start)
		return npy_bad(e, "the .npy header is truncated");
	c.p = (const char *)u + start;
	c.end = c.p + hlen;
	if (!cur_eat(&c, '{'))
		return npy_bad(e, "the .npy header is not a dict");
	for (;;) {
		const char *k, *v;
		size_t kl, vl;

		if (cur_eat(&c, '}'))
			break;
		if (!cur_str(&c, &k, &kl) || !cur_eat(&c, ':'))
			return npy_bad(e, "the .npy header dict does not parse");
		if (kl == 5 && memcmp(k, "descr", 5) == 0 && !have_descr) {
			if (!cur_str(&c, &v, &vl))
				return npy_bad(e, "the .npy 'descr' is not a simple dtype string");
			if (vl == 3 && memcmp(v, "<f2", 3) == 0)
				out->elt = 2;
			else if (vl == 3 && memcmp(v, "<f4", 3) == 0)
				out->elt = 4;
			else
				return err_set(e, ERR_INVALID, "invalid_npy",
				               "dtype '%.*s' is not '<f2' (float16) or '<f4' (float32)",
				               (int)(vl > 40 ? 40 : vl), v);
			have_descr = 1;
		} else if (kl == 13 && memcmp(k, "fortran_order", 13) == 0 && !have_fo) {
			if (cur_word(&c, "True"))
				return npy_bad(e, "fortran_order is True: save a C-order array "
				                  "(np.ascontiguousarray)");
			if (!cur_word(&c, "False"))
				return npy_bad(e, "the .npy 'fortran_order' is not True or False");
			have_fo = 1;
		} else if (kl == 5 && memcmp(k, "shape", 5) == 0 && !have_shape) {
			if (!cur_eat(&c, '('))
				return npy_bad(e, "the .npy 'shape' is not a tuple");
			while (!cur_eat(&c, ')')) {
				uint64_t d;

				if (!cur_uint(&c, &d))
					return npy_bad(e, "the .npy 'shape' is not a tuple of integers");
				if (ndims < 2)
					dims[ndims] = d;
				ndims++;
				if (!cur_eat(&c, ',')) {
					if (!cur_eat(&c, ')'))
						return npy_bad(e, "the .npy 'shape' is not a tuple of integers");
					break;
				}
			}
			have_shape = 1;
		} else {
			return err_set(e, ERR_INVALID, "invalid_npy",
			               "the .npy header has an unexpected key '%.*s'",
			               (int)(kl > 40 ? 40 : kl), k);
		}
		if (!cur_eat(&c, ',')) {
			if (!cur_eat(&c, '}'))
				return npy_bad(e, "the .npy header dict does not parse");
			break;
		}
	}
	cur_ws(&c);
	if (c.p != c.end)
		return npy_bad(e, "the .npy header has bytes after its dict");
	if (!have_descr || !have_fo || !have_shape)
		return npy_bad(e, "the .npy header lacks 'descr', 'fortran_order' or 'shape'");
	if (ndims != 2)
		return err_set(e, ERR_INVALID, "invalid_npy",
		               "the array has %u dimensions; it must be (records, dim)", ndims);
	out->rows = dims[0];
	out->cols = dims[1];
	if (out->cols != 0 && out->rows > (SIZE_MAX / out->elt) / out->cols)
		return npy_bad(e, "the .npy shape is too large");
	if (len - start - hlen != out->rows * out->cols * out->elt)
		return err_set(e, ERR_INVALID, "invalid_npy",
		               "shape (%llu, %llu) needs %llu data bytes, the file has %zu",
		               (unsigned long long)out->rows, (unsigned long long)out->cols,
		               (unsigned long long)(out->rows * out->cols * out->elt),
		               len - start - hlen);
	out->data = u + start + hlen;
	return 0;
}

/* ---- the handler ------------------------------------------------------------------------ */

/* One space given as an array: its rows in the space's dtype (src_f32 too when the array is
 * f32 and the space f16, to check the values before rounding). */
struct arr {
	int space;
	const struct import_part *part;
	struct import_npy npy;
	const void *rows;    /* rows in the space's dtype, aligned */
	const float *src32;  /* f32 source rows when converted to f16, else NULL */
	void *own, *own_src; /* allocations behind rows and src32, or NULL */
};

struct job {
	const struct store_schema *schema;
	struct arr arr[STORE_MAX_SPACES];
	unsigned narr;
	size_t rejected;
	json_t *errors;
};

static void reject(struct job *j, size_t line, const char *id, const struct err *e)
{
	json_t *o;

	j->rejected++;
	if (json_array_size(j->errors) >= MAX_LISTED_ERRORS)
		return;
	o = json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line, "code", e->slug, "detail",
	              e->detail);
	if (o != NULL && id != NULL)
		json_object_set_new(o, "id", json_string(id));
	json_array_append_new(j->errors, o);
}

/* Rows of a in the space's dtype, aligned for the hooks that read them as floats: the body
 * itself when it can be, else a copy or a conversion. */
static int arr_prepare(struct arr *a, const struct store_space *sp, struct err *e)
{
	size_t n = (size_t)(a->npy.rows * a->npy.cols), bytes = n * a->npy.elt;
	unsigned want = sp->dtype == STORE_F16 ? 2 : 4;
	const void *src = a->npy.data;

	if (((uintptr_t)src % a->npy.elt) != 0) {
		if ((a->own_src = malloc(bytes ? bytes : 1)) == NULL)
			return err_set(e, ERR_NOMEM, NULL, "out of memory");
		memcpy(a->own_src, src, bytes);
		src = a->own_src;
	}
	if (a->npy.elt == want) {
		a->rows = src;
		return 0;
	}
	if ((a->own = malloc(n * want + 1)) == NULL)
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	if (want == 4) {
		vec_f16_to_f32(src, a->own, n);
	} else {
		vec_f32_to_f16(src, a->own, n);
		a->src32 = src;
	}
	a->rows = a->own;
	return 0;
}

/* Point rec's vectors at row i of every array, checking the values as the codec does.
 * 0, or ERR_INVALID (non_finite or invalid_field) for this record. */
static int attach_rows(struct job *j, struct store_record *rec, size_t i, struct err *e)
{
	for (unsigned k = 0; k < j->narr; k++) {
		const struct arr *a = &j->arr[k];
		const struct store_space *sp = &j->schema->spaces[a->space];
		size_t dim = sp->dim, bad = 0;
		const void *row;

		if (rec->vec[a->space] != NULL)
			return err_set(e, ERR_INVALID, "invalid_field",
			               "embeddings.%s is also given as part 'space.%s'", sp->name, sp->name);
		if (a->src32 != NULL && !vec_f32_finite(a->src32 + i * dim, dim, &bad))
			return err_set(e, ERR_INVALID, "non_finite",
			               "part 'space.%s' row %zu: element %zu is not finite", sp->name, i,
			               bad);
		if (sp->dtype == STORE_F16) {
			row = (const uint16_t *)a->rows + i * dim;
			if (!vec_f16_finite(row, dim, &bad))
				return err_set(e, ERR_INVALID, "non_finite",
				               a->src32 != NULL
				                   ? "part 'space.%s' row %zu: element %zu overflows float16"
				                   : "part 'space.%s' row %zu: element %zu is not finite",
				               sp->name, i, bad);
		} else {
			row = (const float *)a->rows + i * dim;
			if (!vec_f32_finite(row, dim, &bad))
				return err_set(e, ERR_INVALID, "non_finite",
				               "part 'space.%s' row %zu: element %zu is not finite", sp->name,
				               i, bad);
		}
		rec->vec[a->space] = row;
	}
	return 0;
}

/* Parse metadata line i (1-based number i + 1) into out, as ingest parses a line. 0 when
 * kept, 1 when rejected, ERR_NOMEM. */
static int parse_meta(struct job *j, const char *p, size_t len, size_t i,
                      struct codec_record *out)
{
	struct err e = {0};
	json_t *obj = NULL;
	const char *id = NULL;
	json_error_t jerr;
	int rc;

	rc = codec_parse_line(p, len, j->schema, out, &obj, &id, &e);
	if (rc == 1) { /* not the fast path's shape: jansson reports any error exactly */
		obj = json_loadb(p, len, 0, &jerr);
		if (obj == NULL) {
			if (strstr(jerr.text, "overflow") != NULL)
				err_set(&e, ERR_INVALID, "non_finite", "a number is out of range: %s",
				        jerr.text);
			else
				err_set(&e, ERR_MALFORMED, "malformed_json", "not JSON: %s (column %d)",
				        jerr.text, jerr.column);
			reject(j, i + 1, NULL, &e);
			return 1;
		}
		rc = codec_parse_record(obj, j->schema, out, &id, &e);
	}
	if (rc == 0 && (rc = attach_rows(j, &out->rec, i, &e)) != 0)
		codec_record_free(out);
	if (rc != 0 && rc != ERR_NOMEM)
		reject(j, i + 1, id, &e);
	json_decref(obj);
	return rc == ERR_NOMEM ? ERR_NOMEM : rc != 0;
}

/* The non-blank lines of the metadata part: (*lines)[2k] its start, [2k+1] its end. */
static int split_lines(const struct import_part *m, const char ***lines, size_t *n)
{
	const char *p = m->data, *end = m->data + m->len;
	size_t cap = 0;

	*lines = NULL;
	*n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end, *q = p;

		while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < le) {
			if (*n == cap) {
				size_t nc = cap ? cap * 2 : 1024;
				const char **nlines = realloc(*lines, nc * 2 * sizeof **lines);

				if (nlines == NULL)
					return ERR_NOMEM;
				*lines = nlines;
				cap = nc;
			}
			(*lines)[2 * *n] = p;
			(*lines)[2 * *n + 1] = le;
			(*n)++;
		}
		p = le + 1;
	}
	return 0;
}

/* Sort the parts out: the metadata and one array per space. 0 or a problem's code. */
static int classify(struct job *j, const struct import_part *parts, size_t nparts,
                    const struct import_part **meta, struct err *e)
{
	*meta = NULL;
	for (size_t i = 0; i < nparts; i++) {
		const struct import_part *pt = &parts[i];
		char sname[STORE_NAME_MAX + 1];
		int si;

		if (pt->name_len == 8 && memcmp(pt->name, "metadata", 8) == 0) {
			if (*meta != NULL)
				return err_set(e, ERR_INVALID, "duplicate_part", "part 'metadata' is given twice");
			*meta = pt;
			continue;
		}
		if (pt->name_len <= 6 || memcmp(pt->name, "space.", 6) != 0)
			return err_set(e, ERR_INVALID, "unknown_part",
			               "part '%.*s' is not 'metadata' or 'space.<name>'",
			               (int)(pt->name_len > 80 ? 80 : pt->name_len), pt->name);
		if (pt->name_len - 6 > STORE_NAME_MAX)
			return err_set(e, ERR_INVALID, "unknown_space",
			               "part '%.80s...': the dataset has no such space", pt->name);
		memcpy(sname, pt->name + 6, pt->name_len - 6);
		sname[pt->name_len - 6] = '\0';
		if (strlen(sname) != pt->name_len - 6 || (si = store_schema_find(j->schema, sname)) < 0)
			return err_set(e, ERR_INVALID, "unknown_space",
			               "part 'space.%s': the dataset has no space '%s'", sname, sname);
		for (unsigned k = 0; k < j->narr; k++)
			if (j->arr[k].space == si)
				return err_set(e, ERR_INVALID, "duplicate_part", "part 'space.%s' is given twice",
				               sname);
		j->arr[j->narr].space = si;
		j->arr[j->narr].part = pt;
		j->narr++;
	}
	if (*meta == NULL)
		return err_set(e, ERR_INVALID, "missing_metadata",
		               "the import has no 'metadata' part (NDJSON, one record a line)");
	return 0;
}

/* Check every array against its space and the record count. */
static int check_arrays(struct job *j, size_t nrec, struct err *e)
{
	for (unsigned k = 0; k < j->narr; k++) {
		struct arr *a = &j->arr[k];
		const struct store_space *sp = &j->schema->spaces[a->space];
		struct err e2 = {0};
		int rc;

		if ((rc = import_npy_parse(a->part->data, a->part->len, &a->npy, &e2)) != 0)
			return err_set(e, rc, e2.slug, "part 'space.%s': %s", sp->name, e2.detail);
		if (a->npy.cols != sp->dim)
			return err_set(e, ERR_INVALID, "dimension_mismatch",
			               "part 'space.%s' has %llu columns; space '%s' has dim %u", sp->name,
			               (unsigned long long)a->npy.cols, sp->name, sp->dim);
		if (a->npy.rows != nrec)
			return err_set(e, ERR_INVALID, "row_count_mismatch",
			               "part 'space.%s' has %llu rows; part 'metadata' has %zu records",
			               sp->name, (unsigned long long)a->npy.rows, nrec);
	}
	return 0;
}

int import_post(struct http_req *r, struct http_res *res)
{
	struct import_part parts[IMPORT_MAX_PARTS];
	const struct import_part *meta = NULL;
	struct store_dataset_info ds;
	struct job j = {0};
	struct err e = {0};
	struct codec_record *crecs = NULL;
	struct store_record *recs = NULL;
	const char **lines = NULL;
	size_t nparts = 0, nrec = 0, nacc = 0;
	int rc;

	rc = import_multipart_parse(http_header(r, "Content-Type"), r->body, r->body_len, parts,
	                            IMPORT_MAX_PARTS, &nparts, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if ((rc = store_dataset_get(r->core->store, r->params[0], &ds, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	j.schema = &ds.schema;
	j.errors = json_array();
	if ((rc = classify(&j, parts, nparts, &meta, &e)) != 0)
		goto fail;
	if ((rc = split_lines(meta, &lines, &nrec)) != 0) {
		err_set(&e, rc, NULL, "out of memory");
		goto fail;
	}
	if ((rc = check_arrays(&j, nrec, &e)) != 0)
		goto fail;
	if (nrec == 0) {
		rc = err_set(&e, ERR_MALFORMED, "empty_body", "part 'metadata' holds no records");
		goto fail;
	}
	for (unsigned k = 0; k < j.narr; k++)
		if ((rc = arr_prepare(&j.arr[k], &ds.schema.spaces[j.arr[k].space], &e)) != 0)
			goto fail;
	crecs = calloc(nrec, sizeof *crecs);
	recs = malloc(nrec * sizeof *recs);
	if (crecs == NULL || recs == NULL) {
		rc = err_set(&e, ERR_NOMEM, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nrec; i++) {
		rc = parse_meta(&j, lines[2 * i], (size_t)(lines[2 * i + 1] - lines[2 * i]), i,
		                &crecs[nacc]);
		if (rc == ERR_NOMEM) {
			err_set(&e, ERR_NOMEM, NULL, "out of memory");
			goto fail;
		}
		if (rc == 0) {
			recs[nacc] = crecs[nacc].rec;
			nacc++;
		}
	}
	rc = 0;
	if (nacc == 0) {
		metrics_add(r->d->metrics, METRICS_RECORDS_REJECTED, j.rejected);
		err_set(&e, ERR_INVALID, "no_records_accepted",
		        "none of the %zu records was accepted; see errors", j.rejected);
		http_problem(res, r, ERR_INVALID, &e,
		             json_pack("{s:i, s:I, s:O}", "accepted", 0, "rejected",
		                       (json_int_t)j.rejected, "errors", j.errors));
		goto out;
	}
	/* each batch is committed when ingest_commit returns 0; a failure leaves the batches
	 * before it stored, which a retry of the same request overwrites with the same values */
	for (size_t off = 0; off < nacc; off += COMMIT_BATCH) {
		size_t n = nacc - off < COMMIT_BATCH ? nacc - off : COMMIT_BATCH;

		if ((rc = ingest_commit(r->core, &ds, recs + off, n, NULL, &e)) != 0) {
			metrics_add(r->d->metrics, METRICS_RECORDS_INGESTED, off);
			goto fail;
		}
	}
	metrics_add(r->d->metrics, METRICS_RECORDS_INGESTED, nacc);
	metrics_add(r->d->metrics, METRICS_RECORDS_REJECTED, j.rejected);
	http_json(res, 200, json_pack("{s:I, s:I, s:O}", "accepted", (json_int_t)nacc, "rejected",
	                              (json_int_t)j.rejected, "errors", j.errors));
	goto out;
fail:
	http_problem(res, r, rc, &e, NULL);
out:
	if (crecs != NULL)
		for (size_t i = 0; i < nacc; i++)
			codec_record_free(&crecs[i]);
	free(crecs);
	free(recs);
	free(lines);
	for (unsigned k = 0; k < j.narr; k++) {
		free(j.arr[k].own);
		free(j.arr[k].own_src);
	}
	json_decref(j.errors);
	return 0;
}

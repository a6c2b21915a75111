/* SPDX-License-Identifier: MIT */
/* vec: f32 <-> IEEE binary16 conversion, finiteness checks and norms on embedding vectors.
 *
 * Owns nothing; pure functions, thread-safe. The conversions work on bit patterns with
 * integer operations plus one float add whose rounding is the point (see f32_to_f16), so
 * results do not depend on F16C or _Float16 support. Both directions are branch-free so
 * that the array loops, which score millions of vectors, stay vectorisable.
 * Caveat: f32_to_f16 assumes the default floating-point rounding mode (to nearest). */
#include "lib/vec.h"

#include <math.h>
#include <string.h>

static inline uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

static inline float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/* All candidate results are computed and the right one picked with masks rather than
 * branches or ?: so that the compiler need not fear a speculated float op and keeps the
 * loops straight-line (vectorisable). */
static inline uint32_t pick(uint32_t cond, uint32_t a, uint32_t b)
{
	uint32_t m = 0u - cond; /* cond is 0 or 1 */

	return (a & m) | (b & ~m);
}

static inline float f16_to_f32(uint16_t h)
{
	uint32_t em = (uint32_t)(h & 0x7fffu) << 13; /* exponent and mantissa, f32 position */
	uint32_t exp = em & 0x0f800000u;
	uint32_t normal = em + ((127u - 15u) << 23);
	/* Inf/NaN: exponent all ones; mantissa (the NaN payload) kept as is. */
	uint32_t special = em | 0x7f800000u;
	/* Subnormal: 1.mant * 2^-14 minus 2^-14 is exactly mant * 2^-24. */
	uint32_t sub = f32_bits(bits_f32(normal + (1u << 23)) - 0x1p-14f);
	uint32_t u = pick(exp == 0x0f800000u, special, pick(exp == 0, sub, normal));

	return bits_f32(u | (uint32_t)(h & 0x8000u) << 16);
}

static inline uint16_t f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000u;
	uint32_t a = x & 0x7fffffffu;
	uint32_t payload = (a >> 13) & 0x3ffu;
	/* A NaN keeps its top payload bits; one whose payload lives only in the low bits
	 * gets the quiet bit so that it does not turn into infinity. */
	uint32_t nan = 0x7c00u | payload | pick(payload == 0, 0x200u, 0);
	/* Normal: rebias, then add half an ulp minus one, plus the kept lsb, so that the
	 * truncating shift rounds to nearest, ties to even. A carry into the exponent is
	 * the correct result. */
	uint32_t normal = (a - ((127u - 15u) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
	/* Subnormal (|f| < 2^-14): adding 0.5 puts the value's 2^-24 units in the low
	 * mantissa bits of a float with ulp 2^-24, and the FPU's own round-to-nearest-even
	 * does the rounding. 0x400 (rounded up to the smallest normal) is the right code. */
	uint32_t sub = f32_bits(bits_f32(a) + 0.5f) - 0x3f000000u;
	/* >= 65520 rounds past 65504, the largest finite half: infinity. */
	uint32_t h = pick(a > 0x7f800000u, nan,
	                  pick(a >= 0x477ff000u, 0x7c00u, pick(a >= 0x38800000u, normal, sub)));

	return (uint16_t)(h | sign);
}

float vec_f16_to_f32_one(uint16_t h)
{
	return f16_to_f32(h);
}

uint16_t vec_f32_to_f16_one(float f)
{
	return f32_to_f16(f);
}

/* The loops run in fixed groups of VEC_GROUP so that GCC vectorises them even at -O2,
 * whose cost model only takes loops with a known trip count; the tail goes one by one. */
#define VEC_GROUP 16

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>

/* F16C, read once with CPUID (clang 14's __builtin_cpu_supports does not know "f16c", and
 * the fuzz targets build with clang). */
static int cpu_f16c(void)
{
	static atomic_int known = -1;
	int v = atomic_load_explicit(&known, memory_order_relaxed);

	if (v < 0) {
		unsigned a, b, c = 0, d;

		v = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? 1 : 0;
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v;
}

/* F16C converts 8 halves per instruction, exactly (every binary16 is a binary32), except that
 * it quiets a signalling NaN where f16_to_f32 keeps the payload as is. A group of 8 that holds
 * any inf or NaN (one integer compare; stored vectors are finite, so in practice never) goes
 * through f16_to_f32 instead, which makes the two paths bit-identical for all 65536 halves. */
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *in, float *out,
                                                                size_t n)
{
	const __m128i exp = _mm_set1_epi16(0x7c00);
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(in + i));

		if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, exp), exp)) == 0) {
			_mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
		} else {
			for (size_t j = 0; j < 8; j++)
				out[i + j] = f16_to_f32(in[i + j]);
		}
	}
	for (; i < n; i++)
		out[i] = f16_to_f32(in[i]);
}
#endif

void vec_f16_to_f32(const uint16_t *in, float *out, size_t n)
{
	size_t i = 0;

#if defined(__x86_64__) && defined(__GNUC__)
	if (cpu_f16c() && __builtin_cpu_supports("avx")) {
		f16_to_f32_f16c(in, out, n);
		return;
	}
#endif

	for (; i + VEC_GROUP <= n; i += VEC_GROUP)
		for (size_t j = 0; j < VEC_GROUP; j++)
			out[i + j] = f16_to_f32(in[i + j]);
	for (; i < n; i++)
		out[i] = f16_to_f32(in[i]);
}

void vec_f32_to_f16(const float *in, uint16_t *out, size_t n)
{
	size_t i = 0;

	for (; i + VEC_GROUP <= n; i += VEC_GROUP)
		for (size_t j = 0; j < VEC_GROUP; j++)
			out[i + j] = f32_to_f16(in[i + j]);
	for (; i < n; i++)
		out[i] = f32_to_f16(in[i]);
}

/* The common case (all finite) runs one pass without early exit; only a bad vector
 * pays for the second pass that finds the index. */
int vec_f32_finite(const float *v, size_t n, size_t *bad)
{
	uint32_t any = 0;
	size_t i = 0;

	for (; i + VEC_GROUP <= n; i += VEC_GROUP)
		for (size_t j = 0; j < VEC_GROUP; j++)
			any |= (f32_bits(v[i + j]) & 0x7f800000u) == 0x7f800000u;
	for (; i < n; i++)
		any |= (f32_bits(v[i]) & 0x7f800000u) == 0x7f800000u;
	if (!any)
		return 1;
	for (i = 0; i < n; i++) {
		if ((f32_bits(v[i]) & 0x7f800000u) == 0x7f800000u) {
			if (bad != NULL)
				*bad = i;
			break;
		}
	}
	return 0;
}

int vec_f16_finite(const uint16_t *v, size_t n, size_t *bad)
{
	unsigned any = 0;
	size_t i = 0;

	for (; i + VEC_GROUP <= n; i += VEC_GROUP)
		for (size_t j = 0; j < VEC_GROUP; j++)
			any |= (v[i + j] & 0x7c00u) == 0x7c00u;
	for (; i < n; i++)
		any |= (v[i] & 0x7c00u) == 0x7c00u;
	if (!any)
		return 1;
	for (i = 0; i < n; i++) {
		if ((v[i] & 0x7c00u) == 0x7c00u) {
			if (bad != NULL)
				*bad = i;
			break;
		}
	}
	return 0;
}

double vec_f32_sq_norm(const float *v, size_t n)
{
	double sum = 0.0;

	for (size_t i = 0; i < n; i++)
		sum += (double)v[i] * (double)v[i];
	return sum;
}

double vec_f32_norm(const float *v, size_t n)
{
	return sqrt(vec_f32_sq_norm(v, n));
}

/* ---- dot products ---- */


static void dot3_lanes(const float *a, const float *b, size_t n, double *ab, double *aa,
                       double *bb)
{
	float sab[VEC_GROUP] = {0}, saa[VEC_GROUP] = {0}, sbb[VEC_GROUP] = {0};
	double dab = 0, daa = 0, dbb = 0;
	size_t i = 0;

	/* independent lanes: vectorised without reassociating any one sum */
	for (; i + VEC_GROUP <= n; i += VEC_GROUP) {
		for (size_t j = 0; j < VEC_GROUP; j++) {
			sab[j] += a[i + j] * b[i + j];
			saa[j] += a[i + j] * a[i + j];
			sbb[j] += b[i + j] * b[i + j];
		}
	}
	for (; i < n; i++) {
		dab += (double)a[i] * b[i];
		daa += (double)a[i] * a[i];
		dbb += (double)b[i] * b[i];
	}
	for (size_t j = 0; j < VEC_GROUP; j++) {
		dab += sab[j];
		daa += saa[j];
		dbb += sbb[j];
	}
	*ab = dab;
	*aa = daa;
	*bb = dbb;
}

void vec_le32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

void vec_le64_put(unsigned char *p, uint64_t v)
{
	vec_le32_put(p, (uint32_t)v);
	vec_le32_put(p + 4, (uint32_t)(v >> 32));
}

uint32_t vec_le32_get(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t vec_le64_get(const unsigned char *p)
{
	return (uint64_t)vec_le32_get(p) | (uint64_t)vec_le32_get(p + 4) << 32;
}

static double dot_lanes(const float *a, const float *b, size_t n)
{
	float s[VEC_GROUP] = {0};
	double d = 0;
	size_t i = 0;

	for (; i + VEC_GROUP <= n; i += VEC_GROUP)
		for (size_t j = 0; j < VEC_GROUP; j++)
			s[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		d += (double)a[i] * b[i];
	for (size_t j = 0; j < VEC_GROUP; j++)
		d += s[j];
	return d;
}

static double l2sq_lanes(const float *a, const float *b, size_t n)
{
	float s[VEC_GROUP] = {0};
	double d = 0;
	size_t i = 0;

	for (; i + VEC_GROUP <= n; i += VEC_GROUP)
		for (size_t j = 0; j < VEC_GROUP; j++)
			s[j] += (a[i + j] - b[i + j]) * (a[i + j] - b[i + j]);
	for (; i < n; i++)
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	for (size_t j = 0; j < VEC_GROUP; j++)
		d += s[j];
	return d;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static double hsum8(__m256 v)
{
	float t[8];
	double s = 0;

	_mm256_storeu_ps(t, v);
	for (int i = 0; i < 8; i++)
		s += t[i];
	return s;
}

__attribute__((target("avx2,fma"))) static void dot3_avx2(const float *a, const float *b,
                                                          size_t n, double *ab, double *aa,
                                                          double *bb)
{
	__m256 ab0 = _mm256_setzero_ps(), ab1 = _mm256_setzero_ps();
	__m256 aa0 = _mm256_setzero_ps(), aa1 = _mm256_setzero_ps();
	__m256 bb0 = _mm256_setzero_ps(), bb1 = _mm256_setzero_ps();
	double dab, daa, dbb;
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m256 x0 = _mm256_loadu_ps(a + i), x1 = _mm256_loadu_ps(a + i + 8);
		__m256 y0 = _mm256_loadu_ps(b + i), y1 = _mm256_loadu_ps(b + i + 8);

		ab0 = _mm256_fmadd_ps(x0, y0, ab0);
		ab1 = _mm256_fmadd_ps(x1, y1, ab1);
		aa0 = _mm256_fmadd_ps(x0, x0, aa0);
		aa1 = _mm256_fmadd_ps(x1, x1, aa1);
		bb0 = _mm256_fmadd_ps(y0, y0, bb0);
		bb1 = _mm256_fmadd_ps(y1, y1, bb1);
	}
	dab = hsum8(ab0) + hsum8(ab1);
	daa = hsum8(aa0) + hsum8(aa1);
	dbb = hsum8(bb0) + hsum8(bb1);
	for (; i < n; i++) {
		dab += (double)a[i] * b[i];
		daa += (double)a[i] * a[i];
		dbb += (double)b[i] * b[i];
	}
	*ab = dab;
	*aa = daa;
	*bb = dbb;
}

/* Four independent accumulators, so that each FMA need not wait for the previous one's
 * result (dot3 gets the same from its three sums). */
__attribute__((target("avx2,fma"))) static double dot_avx2(const float *a, const float *b,
                                                           size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	double d;
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	d = hsum8(s0) + hsum8(s1) + hsum8(s2) + hsum8(s3);
	for (; i < n; i++)
		d += (double)a[i] * b[i];
	return d;
}

__attribute__((target("avx2,fma"))) static double l2sq_avx2(const float *a, const float *b,
                                                            size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	double d;
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		__m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		__m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
		__m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
		s2 = _mm256_fmadd_ps(d2, d2, s2);
		s3 = _mm256_fmadd_ps(d3, d3, s3);
	}
	for (; i + 8 <= n; i += 8) {
		__m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
	}
	d = hsum8(s0) + hsum8(s1) + hsum8(s2) + hsum8(s3);
	for (; i < n; i++)
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return d;
}

__attribute__((target("avx2,fma,f16c"))) static void dot3_f16_avx2(const uint16_t *a,
                                                                    const uint16_t *b, size_t n,
                                                                    double *ab, double *aa,
                                                                    double *bb)
{
	__m256 ab0 = _mm256_setzero_ps(), ab1 = _mm256_setzero_ps();
	__m256 aa0 = _mm256_setzero_ps(), aa1 = _mm256_setzero_ps();
	__m256 bb0 = _mm256_setzero_ps(), bb1 = _mm256_setzero_ps();
	double dab, daa, dbb;
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
		__m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
		__m256 y0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
		__m256 y1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8)));

		ab0 = _mm256_fmadd_ps(x0, y0, ab0);
		ab1 = _mm256_fmadd_ps(x1, y1, ab1);
		aa0 = _mm256_fmadd_ps(x0, x0, aa0);
		aa1 = _mm256_fmadd_ps(x1, x1, aa1);
		bb0 = _mm256_fmadd_ps(y0, y0, bb0);
		bb1 = _mm256_fmadd_ps(y1, y1, bb1);
	}
	dab = hsum8(ab0) + hsum8(ab1);
	daa = hsum8(aa0) + hsum8(aa1);
	dbb = hsum8(bb0) + hsum8(bb1);
	for (; i < n; i++) {
		double x = f16_to_f32(a[i]), y = f16_to_f32(b[i]);

		dab += x * y;
		daa += x * x;
		dbb += y * y;
	}
	*ab = dab;
	*aa = daa;
	*bb = dbb;
}
#endif

void vec_f16_dot3(const uint16_t *a, const uint16_t *b, size_t n, double *ab, double *aa,
                  double *bb)
{
	float x[VEC_GROUP * 4], y[VEC_GROUP * 4];
	double sab = 0, saa = 0, sbb = 0;

#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_f16c()) {
		dot3_f16_avx2(a, b, n, ab, aa, bb);
		return;
	}
#endif
	/* convert a piece at a time into the stack and reuse the f32 kernel */
	for (size_t i = 0; i < n; i += sizeof x / sizeof x[0]) {
		size_t m = n - i < sizeof x / sizeof x[0] ? n - i : sizeof x / sizeof x[0];
		double pab, paa, pbb;

		vec_f16_to_f32(a + i, x, m);
		vec_f16_to_f32(b + i, y, m);
		vec_f32_dot3(x, y, m, &pab, &paa, &pbb);
		sab += pab;
		saa += paa;
		sbb += pbb;
	}
	*ab = sab;
	*aa = saa;
	*bb = sbb;
}

double vec_f32_dot(const float *a, const float *b, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return dot_avx2(a, b, n);
#endif
	return dot_lanes(a, b, n);
}

double vec_f32_l2sq(const float *a, const float *b, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return l2sq_avx2(a, b, n);
#endif
	return l2sq_lanes(a, b, n);
}

void vec_f32_dot3(const float *a, const float *b, size_t n, double *ab, double *aa, double *bb)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		dot3_avx2(a, b, n, ab, aa, bb);
		return;
	}
#endif
	dot3_lanes(a, b, n, ab, aa, bb);
}

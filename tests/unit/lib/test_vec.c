/* SPDX-License-Identifier: MIT */
/* test_vec: binary16 conversions (exhaustive round trip, known values, ties to even,
 * a sampled comparison with a double-precision reference), finiteness checks, norm. */
#include "lib/vec.h"
#include "tests/harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint32_t bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

static float from_bits(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/* The value of a half from its definition, in double. */
static double half_value(uint16_t h)
{
	int exp = (h >> 10) & 0x1f;
	double mant = h & 0x3ff;
	double v = exp == 0 ? ldexp(mant, -24) : ldexp(1024.0 + mant, exp - 25);

	return (h & 0x8000) ? -v : v;
}

/* Round-to-nearest-even reference for finite f, computed in double (exact here). */
static uint16_t ref_f32_to_f16(float f)
{
	double x = fabs((double)f), r;
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	int e;

	if (x >= 65520.0)
		return sign | 0x7c00;
	if (x < ldexp(1.0, -14))
		return sign | (uint16_t)nearbyint(ldexp(x, 24)); /* 0x400 is right on carry */
	frexp(x, &e); /* x = m * 2^e, m in [0.5, 1) */
	e -= 1;       /* x = 1.f * 2^e */
	r = nearbyint(ldexp(x, 10 - e)); /* 1024 .. 2048 */
	return sign | (uint16_t)(((e + 15) << 10) + (int)r - 1024);
}

static void test_roundtrip_all(void)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = vec_f16_to_f32_one((uint16_t)h);
		int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;

		CHECK(!is_nan || isnan(f));
		CHECK_INT(vec_f32_to_f16_one(f), h); /* NaN payloads survive too */
		if (!is_nan && (h & 0x7fff) != 0x7c00)
			CHECK(half_value((uint16_t)h) == (double)f);
	}
	CHECK(isinf(vec_f16_to_f32_one(0x7c00)) && vec_f16_to_f32_one(0x7c00) > 0);
	CHECK(isinf(vec_f16_to_f32_one(0xfc00)) && vec_f16_to_f32_one(0xfc00) < 0);
	CHECK_INT(bits(vec_f16_to_f32_one(0x8000)), 0x80000000u); /* -0 keeps its sign */
}

static void test_known_values(void)
{
	CHECK_INT(vec_f32_to_f16_one(1.0f), 0x3c00);
	CHECK_INT(vec_f32_to_f16_one(-2.0f), 0xc000);
	CHECK_INT(vec_f32_to_f16_one(65504.0f), 0x7bff);
	CHECK_INT(vec_f32_to_f16_one(0x1p-24f), 0x0001);
	CHECK_INT(vec_f32_to_f16_one(0x1p-14f), 0x0400);
	CHECK_INT(vec_f32_to_f16_one(65520.0f), 0x7c00);
	CHECK_INT(vec_f32_to_f16_one(65519.99f), 0x7bff);
	CHECK_INT(vec_f32_to_f16_one(-65520.0f), 0xfc00);
	CHECK_INT(vec_f32_to_f16_one(1e10f), 0x7c00);
	CHECK_INT(vec_f32_to_f16_one(INFINITY), 0x7c00);
	CHECK_INT(vec_f32_to_f16_one(-INFINITY), 0xfc00);
	CHECK_INT(vec_f32_to_f16_one(0.1f), 0x2e66);
	CHECK_INT(vec_f32_to_f16_one(1.0f / 3.0f), 0x3555);
	CHECK_INT(vec_f32_to_f16_one(0.0f), 0x0000);
	CHECK_INT(vec_f32_to_f16_one(-0.0f), 0x8000);
	CHECK_INT(vec_f32_to_f16_one(1e-30f), 0x0000);
	CHECK(vec_f16_to_f32_one(0x3c00) == 1.0f);
	CHECK(vec_f16_to_f32_one(0x7bff) == 65504.0f);
	CHECK(vec_f16_to_f32_one(0x0001) == 0x1p-24f);
	CHECK(vec_f16_to_f32_one(0x03ff) == 1023 * 0x1p-24f);
	CHECK(vec_f16_to_f32_one(0x3555) == 0.333251953125f);
	/* NaN in, NaN out, and a NaN whose payload is only in low bits stays NaN. */
	CHECK_INT(vec_f32_to_f16_one(NAN) & 0x7c00, 0x7c00);
	CHECK(vec_f32_to_f16_one(NAN) & 0x3ff);
	CHECK_INT(vec_f32_to_f16_one(from_bits(0x7f800001u)), 0x7e00);
	CHECK_INT(vec_f32_to_f16_one(from_bits(0xff800001u)), 0xfe00);
	CHECK(isnan(vec_f16_to_f32_one(0x7e00)));
	CHECK_INT(bits(vec_f16_to_f32_one(0x7d01)), 0x7fa02000u); /* signalling payload kept */
}

static void test_ties_to_even(void)
{
	CHECK_INT(vec_f32_to_f16_one(2049.0f), 0x6800);  /* tie: down to 2048 (even) */
	CHECK_INT(vec_f32_to_f16_one(2051.0f), 0x6802);  /* tie: up to 2052 (even) */
	CHECK_INT(vec_f32_to_f16_one(-2049.0f), 0xe800);
	CHECK_INT(vec_f32_to_f16_one(0x1p-25f), 0x0000); /* tie between 0 and 2^-24 */
	CHECK_INT(vec_f32_to_f16_one(3 * 0x1p-25f), 0x0002);
	CHECK_INT(vec_f32_to_f16_one(0x1p-14f - 0x1p-25f), 0x0400); /* carry into normal */
	CHECK_INT(vec_f32_to_f16_one(nextafterf(0x1p-25f, 1.0f)), 0x0001);
	/* Every midpoint between neighbouring finite halves goes to the even one; one f32
	 * ulp either side goes to the nearer one. */
	for (uint32_t h = 0; h < 0x7bff; h++) {
		float lo = vec_f16_to_f32_one((uint16_t)h), hi = vec_f16_to_f32_one((uint16_t)(h + 1));
		float mid = (float)(((double)lo + (double)hi) / 2); /* exact: 12 significant bits */
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;

		CHECK_INT(vec_f32_to_f16_one(mid), even);
		CHECK_INT(vec_f32_to_f16_one(-mid), even | 0x8000);
		CHECK_INT(vec_f32_to_f16_one(nextafterf(mid, 0.0f)), h);
		CHECK_INT(vec_f32_to_f16_one(nextafterf(mid, INFINITY)), h + 1);
	}
}

static void test_sampled_reference(void)
{
	/* ~530k f32 bit patterns spread over all finite positives, both signs. */
	for (uint32_t u = 0; u < 0x7f800000u; u += 4099) {
		float f = from_bits(u);

		CHECK_INT(vec_f32_to_f16_one(f), ref_f32_to_f16(f));
		CHECK_INT(vec_f32_to_f16_one(-f), ref_f32_to_f16(-f));
	}
}

static void test_arrays(void)
{
	float in[37], back[37];
	uint16_t h[37];

	/* 37 = two groups of 16 plus a tail of 5: both paths of the loops. */
	for (int i = 0; i < 37; i++)
		in[i] = (float)(i - 18) * 0.3f + 0x1p-20f * (float)i;
	vec_f32_to_f16(in, h, 37);
	for (int i = 0; i < 37; i++)
		CHECK_INT(h[i], vec_f32_to_f16_one(in[i]));
	vec_f16_to_f32(h, back, 37);
	for (int i = 0; i < 37; i++)
		CHECK_INT(bits(back[i]), bits(vec_f16_to_f32_one(h[i])));
	vec_f16_to_f32(h, back, 0); /* n = 0 touches nothing */
	CHECK_INT(bits(back[0]), bits(vec_f16_to_f32_one(h[0])));
}

static void test_finite(void)
{
	float v[40];
	uint16_t hv[40];
	size_t bad = 999;

	for (int i = 0; i < 40; i++) {
		v[i] = (float)i;
		hv[i] = vec_f32_to_f16_one((float)i);
	}
	CHECK_INT(vec_f32_finite(v, 40, &bad), 1);
	CHECK_INT(bad, 999);
	CHECK_INT(vec_f32_finite(v, 0, NULL), 1);
	v[33] = NAN;
	v[37] = INFINITY;
	CHECK_INT(vec_f32_finite(v, 40, &bad), 0);
	CHECK_INT(bad, 33);
	CHECK_INT(vec_f32_finite(v, 35, NULL), 0);
	v[5] = -INFINITY;
	CHECK_INT(vec_f32_finite(v, 40, &bad), 0);
	CHECK_INT(bad, 5);
	CHECK_INT(vec_f32_finite(v, 5, &bad), 1);
	v[2] = 3.4e38f; /* large but finite */
	CHECK_INT(vec_f32_finite(v, 5, NULL), 1);

	CHECK_INT(vec_f16_finite(hv, 40, &bad), 1);
	hv[39] = 0x7c00;
	CHECK_INT(vec_f16_finite(hv, 40, &bad), 0);
	CHECK_INT(bad, 39);
	hv[17] = 0xfe00;
	CHECK_INT(vec_f16_finite(hv, 40, &bad), 0);
	CHECK_INT(bad, 17);
	hv[17] = 0x7bff;
	hv[39] = 0xfbff;
	CHECK_INT(vec_f16_finite(hv, 40, NULL), 1);
}

static void test_norm(void)
{
	float a[2] = { 3.0f, 4.0f };
	float b[768];

	for (int i = 0; i < 768; i++)
		b[i] = (i & 1) ? -0.5f : 0.5f;
	CHECK(vec_f32_norm(a, 2) == 5.0);
	CHECK(vec_f32_norm(b, 768) == sqrt(192.0));
	CHECK(vec_f32_norm(b, 0) == 0.0);
	CHECK(vec_f32_sq_norm(a, 2) == 25.0);
	CHECK(vec_f32_sq_norm(b, 768) == 192.0);
	CHECK(vec_f32_sq_norm(b, 0) == 0.0);
}

/* The array conversion (F16C when the CPU has it) is bit-identical to the scalar one for
 * every half, NaN payloads included; in both group positions (start of an 8-group, tail). */
static void test_array_all_halves(void)
{
	static uint16_t in[65536 + 3];
	static float out[65536 + 3];
	size_t bad = 0;

	for (uint32_t h = 0; h < 65536; h++)
		in[h + 3] = (uint16_t)h;
	vec_f16_to_f32(in + 3, out + 3, 65536); /* an odd start: unaligned loads */
	for (uint32_t h = 0; h < 65536; h++) {
		float want = vec_f16_to_f32_one((uint16_t)h);

		if (memcmp(&want, &out[h + 3], sizeof want) != 0)
			bad++;
	}
	CHECK_INT((long long)bad, 0);
	/* a signalling NaN (0x7d01) inside a finite group keeps its payload */
	for (int i = 0; i < 8; i++)
		in[i] = (uint16_t)(0x3c00 + i);
	in[5] = 0x7d01;
	vec_f16_to_f32(in, out, 8);
	CHECK_INT(bits(out[5]), 0x7fa02000u);
	CHECK(out[4] == vec_f16_to_f32_one(0x3c04));
}

/* dot3 against a double-precision reference, on lengths around the kernel's block. */
static void test_dot3(void)
{
	static const size_t lens[] = {0, 1, 7, 15, 16, 17, 31, 768, 1000};
	float a[1000], b[1000];
	uint32_t x = 12345;

	for (size_t i = 0; i < 1000; i++) {
		x = x * 1664525u + 1013904223u;
		a[i] = (float)((int)(x >> 8) % 2001 - 1000) / 1000.0f;
		x = x * 1664525u + 1013904223u;
		b[i] = (float)((int)(x >> 8) % 2001 - 1000) / 1000.0f;
	}
	for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
		double ab, aa, bb, rab = 0, raa = 0, rbb = 0, rl2 = 0;

		for (size_t i = 0; i < lens[k]; i++) {
			rab += (double)a[i] * b[i];
			raa += (double)a[i] * a[i];
			rbb += (double)b[i] * b[i];
			rl2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		}
		CHECK_NEAR(vec_f32_l2sq(a, b, lens[k]), rl2, 1e-5 * rl2 + 1e-12);
		CHECK(vec_f32_l2sq(a, a, lens[k]) == 0); /* no cancellation: exactly 0 */
		vec_f32_dot3(a, b, lens[k], &ab, &aa, &bb);
		/* relative to |a||b| >= sum |a_i b_i|, the scale of the rounding errors */
		CHECK_NEAR(ab, rab, 1e-5 * sqrt(raa * rbb) + 1e-12);
		CHECK_NEAR(vec_f32_dot(a, b, lens[k]), rab, 1e-5 * sqrt(raa * rbb) + 1e-12);
		CHECK_NEAR(vec_f32_dot(a, a, lens[k]), raa, 1e-5 * raa + 1e-6);
		CHECK_NEAR(aa, raa, 1e-5 * raa + 1e-6);
		CHECK_NEAR(bb, rbb, 1e-5 * rbb + 1e-6);
	}
	/* the f16 kernel over the halves of the same values (exactly representable: k/1000
	 * is not, so compare with the reference of the rounded halves) */
	for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
		uint16_t ha[1000], hb[1000];
		double ab, aa, bb, rab = 0, raa = 0, rbb = 0;

		vec_f32_to_f16(a, ha, lens[k]);
		vec_f32_to_f16(b, hb, lens[k]);
		for (size_t i = 0; i < lens[k]; i++) {
			double hx = vec_f16_to_f32_one(ha[i]), hy = vec_f16_to_f32_one(hb[i]);

			rab += hx * hy;
			raa += hx * hx;
			rbb += hy * hy;
		}
		vec_f16_dot3(ha, hb, lens[k], &ab, &aa, &bb);
		CHECK_NEAR(ab, rab, 1e-5 * (1 + fabs(rab)) + 1e-4);
		CHECK_NEAR(aa, raa, 1e-5 * raa + 1e-6);
		CHECK_NEAR(bb, rbb, 1e-5 * rbb + 1e-6);
	}
}

int main(void)
{
	HARNESS_RUN(test_roundtrip_all);
	HARNESS_RUN(test_known_values);
	HARNESS_RUN(test_ties_to_even);
	HARNESS_RUN(test_sampled_reference);
	HARNESS_RUN(test_arrays);
	HARNESS_RUN(test_finite);
	HARNESS_RUN(test_norm);
	HARNESS_RUN(test_array_all_halves);
	HARNESS_RUN(test_dot3);
	return harness_done();
}

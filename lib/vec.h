/* SPDX-License-Identifier: MIT */
/* vec: element conversions and checks on embedding vectors (f32 and IEEE binary16).
 * Pure functions, no state, thread-safe. */
#ifndef WINNOW_VEC_H
#define WINNOW_VEC_H

#include <stddef.h>
#include <stdint.h>

/* binary16 -> binary32, exact (every f16 is representable, NaN payloads kept). */
float vec_f16_to_f32_one(uint16_t h);

/* binary32 -> binary16 with round-to-nearest-even; overflow goes to +-inf. */
uint16_t vec_f32_to_f16_one(float f);

/* Array forms. in and out must not overlap. vec_f16_to_f32 uses F16C when the CPU has it
 * (chosen at run time); its results are bit-identical to vec_f16_to_f32_one for all 65536
 * halves (NaN payloads included). */
void vec_f16_to_f32(const uint16_t *in, float *out, size_t n);
void vec_f32_to_f16(const float *in, uint16_t *out, size_t n);

/* 1 when every element is finite, else 0. *bad (may be NULL) gets the first bad index. */
int vec_f32_finite(const float *v, size_t n, size_t *bad);
int vec_f16_finite(const uint16_t *v, size_t n, size_t *bad);

/* Little-endian integers in byte buffers: the storage keys and the saved filter models. */
void vec_le32_put(unsigned char *p, uint32_t v);
void vec_le64_put(unsigned char *p, uint64_t v);
uint32_t vec_le32_get(const unsigned char *p);
uint64_t vec_le64_get(const unsigned char *p);

/* Euclidean norm, accumulated in double, and its square (the sum itself, in index order:
 * the exact scores of search use it as |q|^2). */
double vec_f32_norm(const float *v, size_t n);
double vec_f32_sq_norm(const float *v, size_t n);

/* a.b over n floats: partial sums in 32 float lanes (AVX2+FMA when the CPU has them, chosen
 * at run time, else 16 portable lanes) added in double at the end, so the result may differ
 * from a sequential double sum in the last bits, as vec_f32_dot3's. */
double vec_f32_dot(const float *a, const float *b, size_t n);

/* ||a - b||^2 over n floats, the differences squared directly (no cancellation for near
 * neighbours), summed the same way as vec_f32_dot. */
double vec_f32_l2sq(const float *a, const float *b, size_t n);

/* One pass over a and b (n floats each): *ab = a.b, *aa = a.a, *bb = b.b. Partial sums are
 * kept in 16 float lanes (AVX2+FMA when the CPU has them, chosen at run time) and added in
 * double at the end, so results may differ from a sequential double sum in the last bits
 * (relative error about n * 2^-24 at worst, 1e-6 typical for 768-d embeddings). */
void vec_f32_dot3(const float *a, const float *b, size_t n, double *ab, double *aa, double *bb);

/* The same over binary16 inputs, converted on the fly (F16C+FMA when available): no f32
 * copy is written, which halves the memory traffic of a scan over f16 embeddings. */
void vec_f16_dot3(const uint16_t *a, const uint16_t *b, size_t n, double *ab, double *aa,
                  double *bb);

#endif

// Private to model/: the inline building blocks shared by the row kernels
// of the forward (layers.c) and the backward (layers_backward.c), so both
// use the very same sums and exp. always_inline matters: a helper that is
// not inlined is compiled for baseline x86-64, not for the clone calling it.
#ifndef NS_LAYERS_INLINE_H
#define NS_LAYERS_INLINE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(NS_NO_CLONES)
#define NS_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define NS_CLONES
#endif

#define LANES 16

static inline __attribute__((always_inline, unused)) float reduce_lanes_sum(float acc[LANES]) {
    for (int w = LANES / 2; w >= 1; w >>= 1)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static inline __attribute__((always_inline, unused)) float sum_inline(const float *x, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    return reduce_lanes_sum(acc);
}

// Fixed-order dot product (same lane scheme as sum_inline).
static inline __attribute__((always_inline, unused)) float dot_inline(const float *a, const float *b, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += a[i] * b[i];
    return reduce_lanes_sum(acc);
}

// 16 floats as one value (GNU vector extension): AVX-512 registers in the
// avx512f clone, pairs of AVX2 registers in the haswell clone; lane-wise IEEE
// arithmetic either way, so every clone gives the same bits.
typedef float v16 __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi16 __attribute__((vector_size(LANES * sizeof(int32_t))));  // lane masks of v16 compares

static inline __attribute__((always_inline, unused)) v16 v16_load(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

// exp by Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, and a degree-6
// Taylor polynomial (error < 2e-7 relative), then scaling by 2^k through the
// exponent bits. Rounding k uses the 1.5*2^23 trick (exact without -ffast-math).
// Explicit fmaf: one rounding per step, the same bits in every clone (the
// baseline clone calls libm's exact fmaf), and half the instructions.
static inline __attribute__((always_inline, unused)) float exp_core_inline(float x) {  // x in [-87.3, 88.37]
    float kf = fmaf(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
    float r = fmaf(kf, -0.693145751953125f, x);
    r = fmaf(kf, -1.42860682030941723212e-6f, r);
    float p = 1.0f / 720.0f;
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// x limited to [lo, hi], NaN to lo: two compares and blends (the NaN-
// preserving form compiles to a chain of mask operations twice as long).
static inline __attribute__((always_inline, unused)) float clamp_inline(float x, float lo, float hi) {
    x = x > lo ? x : lo;
    return x < hi ? x : hi;
}

// A NaN argument gives NaN (a diverged model must show it, not ~0).
static inline __attribute__((always_inline, unused)) float exp_inline(float x) {
    float e = exp_core_inline(clamp_inline(x, -87.3f, 88.37f));
    return x == x ? e : x;
}

// 1 / d for d in [1, 2^126] without a divide (a vector divide costs several
// times an exp): a bit-trick first guess (relative error < 12.5%) and
// three Newton steps r <- r (2 - d r), each squaring the error, to ~1 ulp.
static inline __attribute__((always_inline, unused)) float recip_inline(float d) {
    int32_t bits;
    memcpy(&bits, &d, sizeof bits);
    bits = 0x7EF311C3 - bits;
    float r;
    memcpy(&r, &bits, sizeof r);
    for (int it = 0; it < 3; it++) r = r * fmaf(-d, r, 2.0f);
    return r;
}

// sigmoid(x) = 1 / (1 + exp(-x)); exp's argument is capped at 80 so that
// 1 + exp stays inside recip_inline's range (sigmoid(-80) ~ 1.8e-35).
static inline __attribute__((always_inline, unused)) float sigmoid_inline(float x) {
    float s = recip_inline(1.0f + exp_core_inline(clamp_inline(-x, -87.3f, 80.0f)));
    return x == x ? s : x;
}

// LayerNorm without affine, then adaLN modulation; mean and rstd returned.
static inline __attribute__((always_inline, unused)) void norm_modulate_inline(float *out, float *mean_out,
                                                                             float *rstd_out, const float *x,
                                                                             const float *shift, const float *scale,
                                                                             int D, float eps) {
    float mean = sum_inline(x, D) / (float)D;
    for (int i = 0; i < D; i++) out[i] = x[i] - mean;  // centred, reused below
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += out[i + l] * out[i + l];
    for (int l = 0; i < D; i++, l++) acc[l] += out[i] * out[i];
    float rstd = 1.0f / sqrtf(reduce_lanes_sum(acc) / (float)D + eps);
    for (int j = 0; j < D; j++) out[j] = out[j] * rstd * (1.0f + scale[j]) + shift[j];
    *mean_out = mean;
    *rstd_out = rstd;
}

#endif

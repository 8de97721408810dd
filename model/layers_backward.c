// Training-side row kernels (see layers_backward.h). Written like layers.c:
// plain loops gcc vectorises, cloned for AVX-512, AVX2 and baseline x86-64,
// no FMA contraction, fixed-order reductions.
//
// The lane sum and the exp polynomial below are copies of layers.c's static
// helpers, kept bit-identical on purpose: the forward LayerNorm must give the
// bits of layer_norm_modulate_row (tests/test_dit_grad.c checks it), and the
// GELU/SiLU derivatives must use the exp the forward used.
#include "layers_backward.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(NS_NO_CLONES)
#define NS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NS_CLONES
#endif

#define LANES 16

static inline float reduce_lanes_sum(float acc[LANES]) {
    for (int w = LANES / 2; w >= 1; w >>= 1)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static inline float sum_inline(const float *x, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    return reduce_lanes_sum(acc);
}

// Fixed-order dot product (same lane scheme as sum_inline).
static inline float dot_inline(const float *a, const float *b, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += a[i] * b[i];
    return reduce_lanes_sum(acc);
}

// Same as layers.c's exp_inline (Cody-Waite reduction, degree-6 polynomial).
static inline float exp_inline(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.37f ? 88.37f : x;
    float kf = x * 1.44269504088896341f + 12582912.0f;
    kf = kf - 12582912.0f;
    float r = x - kf * 0.693145751953125f;
    r = r - kf * 1.42860682030941723212e-6f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

NS_CLONES void layer_norm_modulate_forward_row(float *out, float *mean_out, float *rstd_out, const float *x,
                                               const float *shift, const float *scale, int D, float eps) {
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

// With g = dout * (1 + scale) = dL/dxhat:
//   dL/dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
// Ref: llm.c layernorm_backward. Two passes over the row: the means, then
// the update, so the row's xhat is recomputed rather than stored.
NS_CLONES void layer_norm_modulate_backward_row(float *dx, float *dshift, float *dscale, const float *dout,
                                                const float *x, float mean, float rstd, const float *scale, int D) {
    float acc_g[LANES] = {0}, acc_gx[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float xhat = (x[i + l] - mean) * rstd;
            float g = dout[i + l] * (1.0f + scale[i + l]);
            acc_g[l] += g;
            acc_gx[l] += g * xhat;
        }
    for (int l = 0; i < D; i++, l++) {
        float xhat = (x[i] - mean) * rstd;
        float g = dout[i] * (1.0f + scale[i]);
        acc_g[l] += g;
        acc_gx[l] += g * xhat;
    }
    float mean_g = reduce_lanes_sum(acc_g) / (float)D;
    float mean_gx = reduce_lanes_sum(acc_gx) / (float)D;
    for (int j = 0; j < D; j++) {
        float xhat = (x[j] - mean) * rstd;
        float g = dout[j] * (1.0f + scale[j]);
        dx[j] += rstd * (g - mean_g - xhat * mean_gx);
        dshift[j] += dout[j];
        dscale[j] += dout[j] * xhat;
    }
}

// gelu(v) = v s, s = sigmoid(2u), u = k0 (v + k1 v^3) (the forward's form);
// gelu'(v) = s + v s (1 - s) 2 k0 (1 + 3 k1 v^2).
NS_CLONES void layer_bias_gelu_backward_row(float *dx, const float *dout, const float *x, const float *bias, int n) {
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    for (int i = 0; i < n; i++) {
        float v = x[i] + bias[i];
        float u = k0 * (v + k1 * v * v * v);
        float s = 1.0f / (1.0f + exp_inline(-2.0f * u));
        float du = 2.0f * k0 * (1.0f + 3.0f * k1 * v * v);
        dx[i] = dout[i] * (s + v * s * (1.0f - s) * du);
    }
}

// silu(v) = v s, s = sigmoid(v); silu'(v) = s (1 + v (1 - s)).
NS_CLONES void layer_bias_silu_backward_row(float *dx, const float *dout, const float *x, const float *bias, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i] + bias[i];
        float s = 1.0f / (1.0f + exp_inline(-v));
        dx[i] = dout[i] * (s * (1.0f + v * (1.0f - s)));
    }
}

NS_CLONES void layer_silu_backward_row(float *dx, const float *dout, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i];
        float s = 1.0f / (1.0f + exp_inline(-v));
        dx[i] = dout[i] * (s * (1.0f + v * (1.0f - s)));
    }
}

NS_CLONES void layer_softmax_backward_row(float *d, const float *p, float scale, int n) {
    float pd = dot_inline(p, d, n);
    for (int j = 0; j < n; j++) d[j] = scale * p[j] * (d[j] - pd);
}

NS_CLONES void layer_gated_residual_backward_row(float *dy, float *dgate, const float *dx, const float *gate,
                                                 const float *y, const float *bias, int n) {
    for (int i = 0; i < n; i++) {
        dgate[i] += dx[i] * (y[i] + bias[i]);
        dy[i] = dx[i] * gate[i];
    }
}

// Training-side row kernels (see layers_backward.h). Written like layers.c:
// plain loops gcc vectorises, cloned for AVX-512, AVX2 and baseline x86-64,
// no FMA contraction, fixed-order reductions.
//
// The lane sums and exp come from layers_inline.h, shared with layers.c, so
// the GELU/SiLU derivatives use the exp the forward used.
#include "layers_backward.h"

#include "layers_inline.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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
        float s = sigmoid_inline(2.0f * u);
        float du = 2.0f * k0 * (1.0f + 3.0f * k1 * v * v);
        dx[i] = dout[i] * (s + v * s * (1.0f - s) * du);
    }
}

// silu(v) = v s, s = sigmoid(v); silu'(v) = s (1 + v (1 - s)).
NS_CLONES void layer_bias_silu_backward_row(float *dx, const float *dout, const float *x, const float *bias, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i] + bias[i];
        float s = sigmoid_inline(v);
        dx[i] = dout[i] * (s * (1.0f + v * (1.0f - s)));
    }
}

NS_CLONES void layer_silu_backward_row(float *dx, const float *dout, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i];
        float s = sigmoid_inline(v);
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

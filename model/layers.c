// Row kernels (see layers.h). Plain C loops written so gcc vectorises them;
// each exported kernel is cloned for AVX-512, AVX2+FMA (haswell) and
// baseline x86-64 and picked at load time. Without FMA contraction, and
// with every fused multiply-add an explicit fmaf, every clone gives the same
// bits, so the choice changes speed only.
#include "layers.h"

#include "layers_inline.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

NS_CLONES float layer_sum(const float *x, int n) { return sum_inline(x, n); }

float layer_exp(float x) { return exp_inline(x); }

NS_CLONES void layer_norm_modulate_row(float *out, const float *x, const float *shift, const float *scale, int D,
                                       float eps) {
    float mean, rstd;
    norm_modulate_inline(out, &mean, &rstd, x, shift, scale, D, eps);
}

NS_CLONES void layer_norm_modulate_forward_row(float *out, float *mean, float *rstd, const float *x,
                                               const float *shift, const float *scale, int D, float eps) {
    norm_modulate_inline(out, mean, rstd, x, shift, scale, D, eps);
}

// gelu_tanh(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3);
// 0.5 (1 + tanh(u)) = sigmoid(2u), which has no cancellation near 0.
NS_CLONES void layer_bias_gelu_row(float *out, const float *x, const float *bias, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i] + bias[i];
        float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
        out[i] = v * sigmoid_inline(2.0f * u);
    }
}

NS_CLONES void layer_gated_residual_row(float *x, const float *gate, const float *y, const float *bias, int n) {
    for (int i = 0; i < n; i++) x[i] += gate[i] * (y[i] + bias[i]);
}

NS_CLONES void layer_silu_row(float *out, const float *x, int n) {
    for (int i = 0; i < n; i++) out[i] = x[i] * sigmoid_inline(x[i]);
}

NS_CLONES void layer_bias_silu_row(float *out, const float *x, const float *bias, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i] + bias[i];
        out[i] = v * sigmoid_inline(v);
    }
}

// Three passes: the max, then exp and its sum together, then the scaling.
// The sum adds in sum_inline's lane order, so the result is bitwise that of
// exp, sum_inline and scale as separate passes.
NS_CLONES void layer_softmax_row(float *x, float scale, int n) {
    // The max by whole vectors (written as a loop over lanes, gcc made it 16
    // scalar maxss a block): select with the compare's lane masks.
    v16 vmx = {0};
    vmx -= INFINITY;
    int i = 0;
    for (; i + LANES <= n; i += LANES) {
        v16 v = v16_load(x + i);
        vi16 gt = v > vmx;
        vmx = (v16)(((vi16)v & gt) | ((vi16)vmx & ~gt));
    }
    float mx[LANES];
    memcpy(mx, &vmx, sizeof mx);
    for (int l = 0; i < n; i++, l++) mx[l] = x[i] > mx[l] ? x[i] : mx[l];
    float m = mx[0];
    for (int l = 1; l < LANES; l++) m = mx[l] > m ? mx[l] : m;
    float acc[LANES] = {0};
    i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = exp_inline((x[i + l] - m) * scale);
            x[i + l] = e;
            acc[l] += e;
        }
    for (int l = 0; i < n; i++, l++) {
        float e = exp_inline((x[i] - m) * scale);
        x[i] = e;
        acc[l] += e;
    }
    float inv = 1.0f / reduce_lanes_sum(acc);
    for (int j = 0; j < n; j++) x[j] *= inv;
}

static inline int round_up_lanes(int n) { return (n + LANES - 1) / LANES * LANES; }

#define ATT_ROWS 8  // query rows per pass: 8 accumulator chains hide the add latency

size_t layer_attention_scratch(int T, int dh) {
    int Tp = round_up_lanes(T);
    return (size_t)dh * Tp + (size_t)ATT_ROWS * Tp;
}

// Rows i0 .. i0+R-1 (R a compile-time constant after inlining). Scores are
// axpys over the keys of a transposed, zero-padded K (kt: (dh, Tp)), one
// 16-lane block at a time with R accumulators kept in registers across the
// dh loop; the weighted sum of values likewise over 16-column blocks of V.
// Every element is summed in index order, so the result does not depend on
// R or on which pass computed a row.
static inline __attribute__((always_inline)) void attention_rows(float *o, long ldo, const float *q, const float *v,
                                                                 long ld, int T, int Tp, int dh, float scale,
                                                                 const float *kt, float *s, int i0, const int R) {
    for (int jb = 0; jb < Tp; jb += LANES) {
        v16 a[ATT_ROWS] = {0};
        for (int d = 0; d < dh; d++) {
            v16 kv = v16_load(kt + (size_t)d * Tp + jb);
            for (int r = 0; r < R; r++) a[r] += q[(size_t)(i0 + r) * ld + d] * kv;
        }
        for (int r = 0; r < R; r++) memcpy(s + (size_t)r * Tp + jb, &a[r], sizeof a[r]);
    }
    for (int r = 0; r < R; r++) layer_softmax_row(s + (size_t)r * Tp, scale, T);
    for (int db = 0; db < dh; db += LANES) {
        int w = dh - db < LANES ? dh - db : LANES;
        v16 a[ATT_ROWS] = {0};
        if (w == LANES) {
            for (int j = 0; j < T; j++) {
                v16 vj = v16_load(v + (size_t)j * ld + db);
                for (int r = 0; r < R; r++) a[r] += s[(size_t)r * Tp + j] * vj;
            }
        } else {  // last, partial block of columns (dh not a multiple of 16)
            for (int j = 0; j < T; j++) {
                v16 vj = {0};
                for (int l = 0; l < w; l++) vj[l] = v[(size_t)j * ld + db + l];
                for (int r = 0; r < R; r++) a[r] += s[(size_t)r * Tp + j] * vj;
            }
        }
        for (int r = 0; r < R; r++) memcpy(o + (size_t)(i0 + r) * ldo + db, &a[r], sizeof(float) * w);
    }
}

NS_CLONES void layer_attention_head(float *o, long ldo, const float *q, const float *k, const float *v, long ld, int T,
                                    int dh, float scale, float *scratch) {
    int Tp = round_up_lanes(T);
    float *kt = scratch, *s = scratch + (size_t)dh * Tp;
    for (int d = 0; d < dh; d++) {
        float *row = kt + (size_t)d * Tp;
        for (int j = 0; j < T; j++) row[j] = k[(size_t)j * ld + d];
        for (int j = T; j < Tp; j++) row[j] = 0.0f;
    }
    int i = 0;
    for (; i + ATT_ROWS <= T; i += ATT_ROWS) attention_rows(o, ldo, q, v, ld, T, Tp, dh, scale, kt, s, i, ATT_ROWS);
    for (; i < T; i++) attention_rows(o, ldo, q, v, ld, T, Tp, dh, scale, kt, s, i, 1);
}

// Ref: DiT models.py TimestepEmbedder.timestep_embedding (freqs in float32,
// args = t * freq in float32, cos/sin). cos/sin are taken in double and
// rounded, so the float result does not depend on libm's CPU-specific paths.
void layer_timestep_embedding(float *out, float t, int dim) {
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        float freq = (float)exp(-log(10000.0) * (double)i / (double)half);
        float arg = t * freq;
        out[i] = (float)cos((double)arg);
        out[half + i] = (float)sin((double)arg);
    }
}

// Ref: DiT/MAE get_2d_sincos_pos_embed: emb = [emb(col), emb(row)], each
// emb(pos) over D/2 channels = [sin(pos*w_i), cos(pos*w_i)], w_i = 1/10000^(i/(D/4)).
void layer_pos_embed_2d(float *out, int grid, int D) {
    int quarter = D / 4;
    for (int row = 0; row < grid; row++)
        for (int col = 0; col < grid; col++) {
            float *o = out + (size_t)(row * grid + col) * D;
            for (int i = 0; i < quarter; i++) {
                double w = 1.0 / pow(10000.0, (double)i / (double)quarter);
                o[i] = (float)sin(col * w);
                o[quarter + i] = (float)cos(col * w);
                o[2 * quarter + i] = (float)sin(row * w);
                o[3 * quarter + i] = (float)cos(row * w);
            }
        }
}

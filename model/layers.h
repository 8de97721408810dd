// Row kernels of the DiT/SiT transformer (llm.c style: outputs first, then
// inputs, then sizes; one function per layer and direction).
//
// Every kernel works on whole rows and reduces in a fixed order (16 partial
// sums combined by a fixed tree), so a row's result never depends on which
// batch or thread computed it, and our code is compiled without FMA
// contraction so the bits are the same on every x86-64 CPU. exp() is our own
// polynomial (glibc picks FMA or non-FMA code paths by CPU).
#ifndef NS_LAYERS_H
#define NS_LAYERS_H

#include <stddef.h>

// out = LN(x) * (1 + scale) + shift, LayerNorm without affine.  x, out: (D,)
void layer_norm_modulate_row(float *out, const float *x, const float *shift, const float *scale, int D, float eps);

// The same, also returning the row's mean and 1/sqrt(var + eps) (for the
// backward); out has the same bits.
void layer_norm_modulate_forward_row(float *out, float *mean, float *rstd, const float *x, const float *shift,
                                     const float *scale, int D, float eps);

// out[i] = gelu_tanh(x[i] + bias[i]).  n elements.
void layer_bias_gelu_row(float *out, const float *x, const float *bias, int n);

// x[i] += gate[i] * (y[i] + bias[i]).  n elements (the adaLN-Zero residual).
void layer_gated_residual_row(float *x, const float *gate, const float *y, const float *bias, int n);

// out[i] = silu(x[i]) = x / (1 + exp(-x)).
void layer_silu_row(float *out, const float *x, int n);

// out[i] = silu(x[i] + bias[i]).
void layer_bias_silu_row(float *out, const float *x, const float *bias, int n);

// x = softmax(x * scale) in place.  x: (n,)
void layer_softmax_row(float *x, float scale, int n);

// One (sample, head) of softmax attention: o = softmax(q k^T * scale) v.
// q, k, v: (T, dh), row i at q + i*ld (columns of a fused qkv buffer);
// o: (T, dh), row i at o + i*ldo. scratch: layer_attention_scratch(T, dh)
// floats. Each output element sums in a fixed order (no BLIS call: at these
// sizes, e.g. 49x49x64, BLIS's per-call overhead dominated; docs/model.md).
void layer_attention_head(float *o, long ldo, const float *q, const float *k, const float *v, long ld, int T, int dh,
                          float scale, float *scratch);
size_t layer_attention_scratch(int T, int dh);

// Fixed-order sum of n floats (16 lanes, fixed combining tree).
float layer_sum(const float *x, int n);

// exp(x) for float, ~2 ulp, same bits on every CPU; inputs clamped to
// [-87.3, 88.37] (results below FLT_MIN are not needed here).
float layer_exp(float x);

// DiT timestep embedding: out = [cos(t*f_i), sin(t*f_i)], f_i = exp(-ln(1e4) i/half),
// i < half = dim/2 (dim even).  out: (dim,)
void layer_timestep_embedding(float *out, float t, int dim);

// 2-D sin-cos position embedding of DiT (first half of channels: column index,
// second half: row index; per axis [sin, cos]).  out: (grid*grid, D), D % 4 == 0.
void layer_pos_embed_2d(float *out, int grid, int D);

#endif

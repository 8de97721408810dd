// Training-side row kernels of the DiT/SiT transformer (llm.c style: outputs
// first, then inputs, then sizes): forward variants that also save what the
// backward needs, and the backward of each layers.h kernel the model uses.
//
// Like layers.h, every kernel reduces in a fixed order (16 lanes, fixed
// combining tree) and is built without FMA contraction, so results do not
// depend on the batch, the thread or the CPU.
//
// Accumulate or write: gradients of quantities shared across rows (shift,
// scale, gate: one vector per sample, used by every token) and the residual
// gradient dx are ACCUMULATED (+=); a row's gradient that has exactly one
// consumer is WRITTEN (=) so the caller needs no zeroing, and such kernels
// may work in place where the comment says so.
#ifndef NS_LAYERS_BACKWARD_H
#define NS_LAYERS_BACKWARD_H

#include "layers.h"

// Backward of layer_norm_modulate_forward_row, given dout = dL/dout:
//   dx += dL/dx, dshift += dout, dscale += dout * xhat  (all accumulated),
// with xhat = (x - mean) * rstd recomputed from the saved statistics.
// x, dx, dout, dshift, dscale, scale: (D,)
void layer_norm_modulate_backward_row(float *dx, float *dshift, float *dscale, const float *dout, const float *x,
                                      float mean, float rstd, const float *scale, int D);

// dx = dout * gelu_tanh'(x + bias), written; dx may be dout.  n elements.
void layer_bias_gelu_backward_row(float *dx, const float *dout, const float *x, const float *bias, int n);

// dx = dout * silu'(x + bias), written; dx may be dout.
void layer_bias_silu_backward_row(float *dx, const float *dout, const float *x, const float *bias, int n);

// dx = dout * silu'(x), written; dx may be dout.
void layer_silu_backward_row(float *dx, const float *dout, const float *x, int n);

// Backward of p = softmax(x * scale) in place: on entry d = dL/dp, on exit
// d = dL/dx = scale * p * (dL/dp - sum_j p_j dL/dp_j).  d, p: (n,)
void layer_softmax_backward_row(float *d, const float *p, float scale, int n);

// Backward of x += gate * (y + bias) (layer_gated_residual_row) given
// dx = dL/dx: dgate += dx * (y + bias) (accumulated), dy = dx * gate
// (written; it is also dL/dbias).  n elements.
void layer_gated_residual_backward_row(float *dy, float *dgate, const float *dx, const float *gate, const float *y,
                                       const float *bias, int n);

#endif

// Samplers on SiT's linear path (search-reference §1, §2): t runs from 0
// (noise) to 1 (data), x_t = t x1 + (1 - t) x0, and the model predicts the
// velocity v(x_t, t, y) ~ x1 - x0. A run integrates B states in place over a
// uniform grid of [t_a, t_b]; search algorithms chain runs over sub-intervals
// and re-noise between them (§3). Cost is counted in NFEs per sample: forward
// passes of the denoiser, a guided evaluation on the doubled batch counting 2.
//
// Every result here is a function of the inputs alone: the model is called on
// whole samples, elementwise arithmetic is plain float (build with
// -ffp-contract=off), and SDE/re-noising noise comes from noise_fill() keyed
// per sample, so a sample's trajectory does not depend on its batch, on how
// batches are split for the model, or on the thread count.
#ifndef NS_SAMPLER_H
#define NS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "noise.h"

// The model as a sampler sees it: a batched velocity function. It must be
// batch-invariant (row b of v depends only on row b of x, t, y) and return
// NS_OK, or an error code after ns_error_set().
typedef struct {
    void *ctx;
    // v, x: (B, dim); t: (B,); y: (B,) class labels (null_class: unconditional).
    ns_status (*velocity)(void *ctx, float *v, const float *x, const float *t,
                          const int *y, int B);
    int dim;         // floats per sample, C*H*W
    int channels;    // C: a sample is C planes of dim/C floats (NCHW)
    int null_class;  // label of the null class used for guidance
    int max_batch;   // largest B velocity accepts; larger batches are split
} sampler_model;

typedef enum { SAMPLER_EULER, SAMPLER_HEUN, SAMPLER_EULER_MARUYAMA } sampler_kind;

// "euler", "heun", "euler_maruyama" (NULL for a value outside the enum).
const char *sampler_kind_name(sampler_kind k);
// 0 and *out set, or -1 for an unknown name.
int sampler_kind_from_name(const char *name, sampler_kind *out);

typedef struct {
    sampler_kind kind;
    int steps;          // uniform grid over [t_a, t_b], >= 1
    float t_a, t_b;     // 0 <= t_a < t_b <= 1
    float cfg_scale;    // 1: no guidance and no doubled batch
    int cfg_channels;   // guide the first k channels; <= 0: all (§2)
} sampler_params;

// Scratch for runs of up to max_batch samples of dim floats; sized once, so
// the sampling loop allocates nothing. Caller-owned: zero the struct, call
// sampler_workspace_init(), later sampler_workspace_free() (which accepts a
// half-built or zeroed struct and leaves it zeroed). Not shared between
// threads running samplers at the same time.
typedef struct {
    int dim;
    int max_batch;
    float *t;    // (max_batch,) per-sample time handed to the model
    float *v;    // (max_batch, dim) velocity at the current state
    float *v2;   // (max_batch, dim) Heun: velocity at the predictor
    float *x2;   // (max_batch, dim) Heun: predictor state
    float *z;    // (max_batch, dim) SDE / re-noising noise
    float *gx;   // (2*max_batch, dim) guided input [x; x]
    float *gv;   // (2*max_batch, dim) guided output [cond; uncond]
    float *gt;   // (2*max_batch,) guided times [t; t]
    int *gy;     // (2*max_batch,) guided labels [y; null_class]
} sampler_workspace;

// NS_ERR_ARG if dim < 1 or max_batch < 1. Allocation failure is fatal.
ns_status sampler_workspace_init(sampler_workspace *ws, int dim, int max_batch);
void sampler_workspace_free(sampler_workspace *ws);

// Forward passes per sample that a run with p costs:
// steps * (2 for Heun, else 1) * (2 if cfg_scale != 1, else 1).
int sampler_nfe(const sampler_params *p);

// Guided velocity (§2). cfg_scale == 1: v = velocity(x, t, y). Otherwise one
// evaluation of the doubled batch [x; x] with labels [y; null_class] giving
// c (conditional) and u (unconditional), and per sample
//   v = u + cfg_scale * (c - u)   on the first cfg_channels channels,
//   v = c                         on the rest (cfg_channels <= 0: all guided).
// Batches larger than m->max_batch go to the model in several calls; the
// result is the same bits. v, x: (B, dim), v must not overlap x; t, y: (B,);
// y may be NULL only without guidance (it is then passed on as NULL).
// *nfe (if not NULL) = forward passes per sample: 1, or 2 with guidance.
ns_status sampler_velocity_cfg(const sampler_model *m, sampler_workspace *ws,
                               float *v, const float *x, const float *t,
                               const int *y, int B, float cfg_scale,
                               int cfg_channels, int *nfe);

// Called after step `step` (0-based) of a run with the time reached, t_{step+1},
// and the states x: (B, dim). A status other than NS_OK stops the run and is
// returned by it.
typedef ns_status (*sampler_step_fn)(void *user, int step, float t,
                                     const float *x, int B);

// Integrate x: (B, dim) in place from p->t_a to p->t_b with y: (B,) labels.
// Grid t_k = t_a + (t_b - t_a) k / steps (in double, rounded to float;
// t_steps = t_b), step dt_k = t_{k+1} - t_k. Runs over [t_a, t_b] then
// [t_b, t_c] give the same bits as one run over [t_a, t_c] when their float
// grid points coincide (ODE kinds; an SDE run ends with a drift-only step).
//   Euler:  x += dt v(x, t_k)                                       1 NFE/step
//   Heun:   x' = x + dt v1, v1 = v(x, t_k); x += dt/2 (v1 + v(x', t_{k+1}))
//           (corrector on the last step too)                       2 NFE/step
//   Euler-Maruyama (SiT's SDE, §2): score s = (t v - x)/(1 - t), w = 1 - t,
//           x += (v + w s) dt + sqrt(2 w dt) z, where w s = t v - x (no
//           division as t -> 1); the last step is drift-only.       1 NFE/step
// SDE noise z for sample b at step k is noise_fill(keys[b]) at indices
// counter_base + k*dim ... + dim - 1: a run uses [counter_base,
// counter_base + (steps-1)*dim) of each sample's stream. keys: (B,), needed
// only by Euler-Maruyama with steps > 1 (else may be NULL).
// x must not be one of ws's buffers. on_step may be NULL. *nfe (if not NULL)
// = NFEs per sample spent, also when an error stops the run early; x then
// holds the states after the last completed step.
ns_status sampler_run(const sampler_model *m, const sampler_params *p,
                      sampler_workspace *ws, float *x, const int *y, int B,
                      const noise_key *keys, uint64_t counter_base,
                      sampler_step_fn on_step, void *user, int *nfe);

// Clean-sample prediction (§1): x1[i] = x[i] + (1 - t) v[i], i < n.
// x1 may be the same buffer as x or v.
void sampler_x1_hat(float *x1, const float *x, const float *v, float t, size_t n);

// Evaluate the (guided) model at (x, t) and return x1_hat. x1, x: (B, dim),
// x1 may be x; y: (B,). *nfe (if not NULL) = 1, or 2 with guidance.
ns_status sampler_x1_hat_eval(const sampler_model *m, sampler_workspace *ws,
                              float *x1, const float *x, float t, const int *y,
                              int B, float cfg_scale, int cfg_channels, int *nfe);

// Re-noise states x: (B, dim) in place from t back to t_new < t (§1):
//   x_t' = (t'/t) x_t + sqrt((1-t')^2 - (t'/t)^2 (1-t)^2) e,
// which keeps the marginal of the linear path. e for sample b is
// noise_fill(keys[b]) at indices counter .. counter + dim - 1. Needs
// 0 <= t_new < t <= 1 (so t > 0); uses ws->z.
ns_status sampler_renoise(sampler_workspace *ws, float *x, int B, float t,
                          float t_new, const noise_key *keys, uint64_t counter);

#endif

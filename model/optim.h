// Optimizer for training the denoiser: AdamW with decoupled weight decay and
// bias correction (Loshchilov & Hutter 2019; the update of PyTorch's
// torch.optim.AdamW), a learning-rate schedule, global-norm gradient
// clipping and an exponential moving average of the weights.
//
// Everything works on the model's tensor table, with gradients and state in
// allocations laid out like the parameters (dit_params_bind layout), so each
// tensor is found at the same offset in weights, gradients, m and v.
//
// Parameter groups (optim_tensor_group), the same rule the PyTorch fixture
// (tests/reference/make_grad_fixture.py) uses:
//   OPTIM_FROZEN    pos_embed (a fixed sin-cos buffer with no gradient):
//                   never updated, decayed, clipped or averaged.
//   OPTIM_NO_DECAY  biases (every 1-D tensor) and the label embedding table
//                   y_embedder.embedding_table.weight: AdamW without decay.
//   OPTIM_DECAY     weight matrices (every other tensor of 2 or more dims:
//                   Linear weights, the patch-embedding conv weight): AdamW
//                   with weight decay.
//
// Ownership: optim_adamw_init fills an optim_adamw owning m and v;
// optim_adamw_free releases them (and accepts a half-built one). No
// allocation after init; no MPI, no file I/O.
#ifndef NS_OPTIM_H
#define NS_OPTIM_H

#include <stddef.h>

#include "dit.h"

typedef enum { OPTIM_FROZEN, OPTIM_NO_DECAY, OPTIM_DECAY } optim_group;

optim_group optim_tensor_group(const dit_tensor *t);
const char *optim_group_name(optim_group g);  // "frozen", "no_decay", "decay"

// ---------------------------------------------------------------------------
// Learning-rate schedule. Steps count from 0 (the first update is step 0).
//   warm-up (both kinds): lr(s) = lr * (s + 1) / warmup_steps for s < warmup_steps;
//   OPTIM_LR_CONSTANT:    lr afterwards;
//   OPTIM_LR_COSINE:      lr_min + (lr - lr_min) (1 + cos(pi q)) / 2 with
//                         q = (s - warmup_steps) / (total_steps - warmup_steps),
//                         clamped to 1, so lr_min from total_steps on.
//   OPTIM_LR_WSD:         warm-up, stable, decay: lr until decay_start, then
//                         the same cosine with q = (s - decay_start) /
//                         (total_steps - decay_start): a constant-rate run
//                         that is cooled down at its end.
typedef enum { OPTIM_LR_CONSTANT, OPTIM_LR_COSINE, OPTIM_LR_WSD } optim_lr_kind;

const char *optim_lr_kind_name(optim_lr_kind k);  // "constant", "cosine", "wsd"
// NS_ERR_ARG naming the accepted values when name is neither.
ns_status optim_lr_kind_from_name(const char *name, optim_lr_kind *out);

typedef struct {
    optim_lr_kind kind;
    float lr;            // peak learning rate
    float lr_min;        // floor of the cosine (ignored by constant)
    long warmup_steps;   // 0: no warm-up
    long total_steps;    // cosine, wsd: step at which lr_min is reached (> warmup_steps, > decay_start)
    long decay_start;    // wsd: first step of the decay (>= warmup_steps)
} optim_schedule;

// NS_ERR_ARG with a message naming the field.
ns_status optim_schedule_check(const optim_schedule *s);
float optim_lr_at(const optim_schedule *s, long step);

// ---------------------------------------------------------------------------
// AdamW. Per step, for every element of a non-frozen tensor (PyTorch's order):
//   w *= 1 - lr * weight_decay          (OPTIM_DECAY tensors only)
//   m  = beta1 m + (1 - beta1) g
//   v  = beta2 v + (1 - beta2) g^2
//   w -= lr / (1 - beta1^k) * m / (sqrt(v) / sqrt(1 - beta2^k) + eps),  k = step count
typedef struct {
    float beta1, beta2;  // e.g. 0.9, 0.999
    float eps;           // e.g. 1e-8
    float weight_decay;  // decoupled, e.g. 0 (DiT) or 0.01
} optim_adamw_config;

typedef struct {
    optim_adamw_config cfg;
    size_t num_params;  // = model->num_params
    float *m;           // first moments, parameter layout
    float *v;           // second moments, parameter layout
    long step;          // updates taken so far
} optim_adamw;

// Zeroed state for model's layout. NS_ERR_ARG for betas outside [0, 1),
// eps <= 0 or a negative weight decay.
ns_status optim_adamw_init(optim_adamw *o, const dit_model *model, const optim_adamw_config *cfg);
void optim_adamw_free(optim_adamw *o);

// One update of model's parameters from grad (model->num_params floats,
// parameter layout) at learning rate lr. threads <= 0: gemm_threads().
// The result does not depend on the thread count.
void optim_adamw_step(optim_adamw *o, dit_model *model, const float *grad, float lr, int threads);

// ---------------------------------------------------------------------------
// Global-norm clipping over every non-frozen tensor (torch.nn.utils.
// clip_grad_norm_): returns the L2 norm of the gradient before clipping
// (summed in double, in a fixed order); when max_norm > 0 and the norm
// exceeds it, scales grad by max_norm / (norm + 1e-6) as PyTorch does.
double optim_clip_grad_norm(const dit_model *model, float *grad, double max_norm, int threads);

// ---------------------------------------------------------------------------
// EMA of the weights, kept as a second model so it saves with dit_save.
// optim_ema_init: ema = a copy of model (same config, same values).
ns_status optim_ema_init(dit_model *ema, const dit_model *model);
// ema = decay * ema + (1 - decay) * w for every non-frozen tensor (frozen
// ones stay the copies made at init). Configs must match.
void optim_ema_update(dit_model *ema, const dit_model *model, float decay, int threads);

#endif

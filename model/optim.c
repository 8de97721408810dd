// AdamW, learning-rate schedule, gradient clipping and weight EMA over the
// model's tensor table (see optim.h). Elementwise loops are parallel over
// elements of a tensor, so results do not depend on the thread count.
// Ref: PyTorch 1.13 torch/optim/adamw.py (_single_tensor_adamw),
// torch/nn/utils/clip_grad.py.
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

#define CLIP_EPS 1e-6  // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6)
#define NORM_LANES 16

optim_group optim_tensor_group(const dit_tensor *t) {
    if (strcmp(t->name, "pos_embed") == 0) return OPTIM_FROZEN;
    if (t->ndim == 1 || strcmp(t->name, "y_embedder.embedding_table.weight") == 0) return OPTIM_NO_DECAY;
    return OPTIM_DECAY;
}

const char *optim_group_name(optim_group g) {
    switch (g) {
    case OPTIM_FROZEN: return "frozen";
    case OPTIM_NO_DECAY: return "no_decay";
    case OPTIM_DECAY: return "decay";
    }
    return "?";
}

// ---------------------------------------------------------------------------
// Schedule

const char *optim_lr_kind_name(optim_lr_kind k) {
    return k == OPTIM_LR_COSINE ? "cosine" : k == OPTIM_LR_WSD ? "wsd" : "constant";
}

ns_status optim_lr_kind_from_name(const char *name, optim_lr_kind *out) {
    if (strcmp(name, "constant") == 0) *out = OPTIM_LR_CONSTANT;
    else if (strcmp(name, "cosine") == 0) *out = OPTIM_LR_COSINE;
    else if (strcmp(name, "wsd") == 0) *out = OPTIM_LR_WSD;
    else return ns_error_set(NS_ERR_ARG, "unknown learning-rate schedule '%s' (expected constant, cosine or wsd)", name);
    return NS_OK;
}

ns_status optim_schedule_check(const optim_schedule *s) {
    if (!(s->lr > 0.0f)) return ns_error_set(NS_ERR_ARG, "lr must be positive, got %g", (double)s->lr);
    if (s->warmup_steps < 0)
        return ns_error_set(NS_ERR_ARG, "warmup_steps must not be negative, got %ld", s->warmup_steps);
    if (s->kind == OPTIM_LR_WSD && !(s->decay_start >= s->warmup_steps && s->decay_start < s->total_steps))
        return ns_error_set(NS_ERR_ARG, "decay_start (%ld) must be in [warmup_steps, total_steps) = [%ld, %ld)",
                            s->decay_start, s->warmup_steps, s->total_steps);
    if (s->kind != OPTIM_LR_CONSTANT) {
        if (!(s->lr_min >= 0.0f && s->lr_min <= s->lr))
            return ns_error_set(NS_ERR_ARG, "lr_min must be in [0, lr] = [0, %g], got %g", (double)s->lr,
                                (double)s->lr_min);
        if (s->total_steps <= s->warmup_steps)
            return ns_error_set(NS_ERR_ARG, "total_steps (%ld) must be greater than warmup_steps (%ld)",
                                s->total_steps, s->warmup_steps);
    }
    return NS_OK;
}

float optim_lr_at(const optim_schedule *s, long step) {
    if (step < s->warmup_steps) return (float)((double)s->lr * (double)(step + 1) / (double)s->warmup_steps);
    if (s->kind == OPTIM_LR_CONSTANT || (s->kind == OPTIM_LR_WSD && step < s->decay_start)) return s->lr;
    long from = s->kind == OPTIM_LR_WSD ? s->decay_start : s->warmup_steps;
    double q = (double)(step - from) / (double)(s->total_steps - from);
    if (q > 1.0) q = 1.0;
    return (float)(s->lr_min + 0.5 * ((double)s->lr - s->lr_min) * (1.0 + cos(M_PI * q)));
}

// ---------------------------------------------------------------------------
// AdamW

ns_status optim_adamw_init(optim_adamw *o, const dit_model *model, const optim_adamw_config *cfg) {
    memset(o, 0, sizeof *o);
    if (!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) || !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
        return ns_error_set(NS_ERR_ARG, "AdamW betas must be in [0, 1), got (%g, %g)", (double)cfg->beta1,
                            (double)cfg->beta2);
    if (!(cfg->eps > 0.0f)) return ns_error_set(NS_ERR_ARG, "AdamW eps must be positive, got %g", (double)cfg->eps);
    if (!(cfg->weight_decay >= 0.0f))
        return ns_error_set(NS_ERR_ARG, "weight_decay must not be negative, got %g", (double)cfg->weight_decay);
    o->cfg = *cfg;
    o->num_params = model->num_params;
    o->m = ns_aligned_alloc(model->num_params * sizeof(float), "AdamW first moments");
    o->v = ns_aligned_alloc(model->num_params * sizeof(float), "AdamW second moments");
    return NS_OK;
}

void optim_adamw_free(optim_adamw *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void optim_adamw_step(optim_adamw *o, dit_model *model, const float *grad, float lr, int threads) {
    NS_CHECK(o->num_params == model->num_params);
    int nt = threads > 0 ? threads : gemm_threads();
    o->step++;
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    // Bias corrections in double, as PyTorch computes them in Python floats.
    double bc1 = 1.0 - pow((double)b1, (double)o->step);
    double bc2 = 1.0 - pow((double)b2, (double)o->step);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    for (int i = 0; i < model->num_tensors; i++) {
        const dit_tensor *t = &model->tensors[i];
        optim_group g = optim_tensor_group(t);
        if (g == OPTIM_FROZEN) continue;
        const float decay = g == OPTIM_DECAY ? 1.0f - lr * o->cfg.weight_decay : 1.0f;
        float *w = model->memory + t->offset, *m = o->m + t->offset, *v = o->v + t->offset;
        const float *gr = grad + t->offset;
        long n = (long)t->numel;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > 4096)
        for (long k = 0; k < n; k++) {
            float gk = gr[k];
            float wk = w[k] * decay;
            m[k] = m[k] * b1 + (1.0f - b1) * gk;
            v[k] = v[k] * b2 + (1.0f - b2) * gk * gk;
            w[k] = wk - step_size * (m[k] / (sqrtf(v[k]) / bc2_sqrt + eps));
        }
    }
}

// ---------------------------------------------------------------------------
// Clipping

// Sum of squares in double, 16 lanes combined in a fixed tree.
static double sum_squares(const float *x, size_t n) {
    double acc[NORM_LANES] = {0};
    size_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (int l = 0; l < NORM_LANES; l++) acc[l] += (double)x[i + l] * x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += (double)x[i] * x[i];
    for (int w = NORM_LANES / 2; w >= 1; w >>= 1)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

double optim_clip_grad_norm(const dit_model *model, float *grad, double max_norm, int threads) {
    int nt = threads > 0 ? threads : gemm_threads();
    double sq = 0.0;
    for (int i = 0; i < model->num_tensors; i++) {
        const dit_tensor *t = &model->tensors[i];
        if (optim_tensor_group(t) != OPTIM_FROZEN) sq += sum_squares(grad + t->offset, t->numel);
    }
    double norm = sqrt(sq);
    double coef = max_norm / (norm + CLIP_EPS);
    if (max_norm > 0.0 && coef < 1.0) {
        const float c = (float)coef;
        for (int i = 0; i < model->num_tensors; i++) {
            const dit_tensor *t = &model->tensors[i];
            if (optim_tensor_group(t) == OPTIM_FROZEN) continue;
            float *g = grad + t->offset;
            long n = (long)t->numel;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > 4096)
            for (long k = 0; k < n; k++) g[k] *= c;
        }
    }
    return norm;
}

// ---------------------------------------------------------------------------
// EMA

ns_status optim_ema_init(dit_model *ema, const dit_model *model) {
    ns_status st = dit_model_init(ema, &model->cfg);
    if (st) return st;
    memcpy(ema->memory, model->memory, model->num_params * sizeof(float));
    return NS_OK;
}

void optim_ema_update(dit_model *ema, const dit_model *model, float decay, int threads) {
    NS_CHECK(memcmp(&ema->cfg, &model->cfg, sizeof ema->cfg) == 0);
    int nt = threads > 0 ? threads : gemm_threads();
    const float keep = decay, take = 1.0f - decay;
    for (int i = 0; i < model->num_tensors; i++) {
        const dit_tensor *t = &model->tensors[i];
        if (optim_tensor_group(t) == OPTIM_FROZEN) continue;
        float *e = ema->memory + t->offset;
        const float *w = model->memory + t->offset;
        long n = (long)t->numel;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > 4096)
        for (long k = 0; k < n; k++) e[k] = keep * e[k] + take * w[k];
    }
}

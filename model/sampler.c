// Euler, Heun and Euler-Maruyama samplers on SiT's linear path, classifier-
// free guidance, clean-sample prediction and re-noising (search-reference §1,
// §2; see sampler.h). The model is the only expensive part: the loops here are
// plain elementwise float arithmetic over (B, dim) buffers from the workspace,
// so nothing is allocated while sampling and no result depends on batching or
// threads. No MPI, no config parsing: callers pass numbers.
// The elementwise loops carry `omp simd` because gcc -O2 does not vectorise
// loops of unknown length by itself; lanes are independent, so the bits are
// those of the scalar loop. Build with -fopenmp (or -fopenmp-simd).
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
    [SAMPLER_EULER] = "euler",
    [SAMPLER_HEUN] = "heun",
    [SAMPLER_EULER_MARUYAMA] = "euler_maruyama",
};
#define N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

const char *sampler_kind_name(sampler_kind k) {
    return (int)k >= 0 && (int)k < N_KINDS ? kind_names[k] : NULL;
}

int sampler_kind_from_name(const char *name, sampler_kind *out) {
    for (int k = 0; k < N_KINDS; k++) {
        if (name && strcmp(name, kind_names[k]) == 0) {
            *out = (sampler_kind)k;
            return 0;
        }
    }
    return -1;
}

ns_status sampler_workspace_init(sampler_workspace *ws, int dim, int max_batch) {
    if (dim < 1 || max_batch < 1)
        return ns_error_set(NS_ERR_ARG, "sampler workspace: dim (%d) and max_batch (%d) must be >= 1",
                            dim, max_batch);
    size_t n = (size_t)max_batch * (size_t)dim;
    ws->dim = dim;
    ws->max_batch = max_batch;
    ws->t = ns_aligned_alloc((size_t)max_batch * sizeof(float), "sampler t");
    ws->v = ns_aligned_alloc(n * sizeof(float), "sampler v");
    ws->v2 = ns_aligned_alloc(n * sizeof(float), "sampler v2");
    ws->x2 = ns_aligned_alloc(n * sizeof(float), "sampler x2");
    ws->z = ns_aligned_alloc(n * sizeof(float), "sampler noise");
    ws->gx = ns_aligned_alloc(2 * n * sizeof(float), "sampler guided x");
    ws->gv = ns_aligned_alloc(2 * n * sizeof(float), "sampler guided v");
    ws->gt = ns_aligned_alloc(2 * (size_t)max_batch * sizeof(float), "sampler guided t");
    ws->gy = ns_aligned_alloc(2 * (size_t)max_batch * sizeof(int), "sampler guided y");
    return NS_OK;
}

void sampler_workspace_free(sampler_workspace *ws) {
    free(ws->t);
    free(ws->v);
    free(ws->v2);
    free(ws->x2);
    free(ws->z);
    free(ws->gx);
    free(ws->gv);
    free(ws->gt);
    free(ws->gy);
    memset(ws, 0, sizeof *ws);
}

int sampler_nfe(const sampler_params *p) {
    int per_step = p->kind == SAMPLER_HEUN ? 2 : 1;
    return p->steps * per_step * (p->cfg_scale != 1.0f ? 2 : 1);
}

// Checks shared by every entry point that calls the model.
static ns_status check_call(const sampler_model *m, const sampler_workspace *ws, int B,
                            const int *y, float cfg_scale, int cfg_channels) {
    if (!m || !m->velocity)
        return ns_error_set(NS_ERR_ARG, "sampler: model has no velocity function");
    if (m->channels < 1 || m->dim % m->channels != 0)
        return ns_error_set(NS_ERR_ARG, "sampler: model dim %d is not a whole number of %d channels",
                            m->dim, m->channels);
    if (m->max_batch < 1)
        return ns_error_set(NS_ERR_ARG, "sampler: model max_batch must be >= 1 (got %d)", m->max_batch);
    if (m->dim != ws->dim)
        return ns_error_set(NS_ERR_ARG, "sampler: model dim %d does not match the workspace's %d",
                            m->dim, ws->dim);
    if (B < 1 || B > ws->max_batch)
        return ns_error_set(NS_ERR_ARG, "sampler: batch %d outside [1, %d] (workspace max_batch)",
                            B, ws->max_batch);
    if (!isfinite(cfg_scale))
        return ns_error_set(NS_ERR_ARG, "sampler: cfg_scale must be finite (got %g)", (double)cfg_scale);
    if (cfg_channels > m->channels)
        return ns_error_set(NS_ERR_ARG, "sampler: cfg_channels %d exceeds the model's %d channels",
                            cfg_channels, m->channels);
    if (cfg_scale != 1.0f && !y)
        return ns_error_set(NS_ERR_ARG, "sampler: guidance (cfg_scale %g) needs class labels",
                            (double)cfg_scale);
    return NS_OK;
}

// rows samples through the model in calls of at most m->max_batch; the model
// is batch-invariant, so the split does not change any bit. v, x: (rows, dim).
static ns_status velocity_split(const sampler_model *m, float *v, const float *x,
                                const float *t, const int *y, int rows) {
    for (int r0 = 0; r0 < rows; r0 += m->max_batch) {
        int nb = rows - r0 < m->max_batch ? rows - r0 : m->max_batch;
        size_t off = (size_t)r0 * (size_t)m->dim;
        ns_status st = m->velocity(m->ctx, v + off, x + off, t + r0, y ? y + r0 : NULL, nb);
        if (st != NS_OK) return st;
    }
    return NS_OK;
}

// sampler_velocity_cfg() after its checks.
static ns_status velocity_guided(const sampler_model *m, sampler_workspace *ws, float *v,
                                 const float *x, const float *t, const int *y, int B,
                                 float cfg_scale, int cfg_channels) {
    if (cfg_scale == 1.0f) return velocity_split(m, v, x, t, y, B);
    size_t dim = (size_t)m->dim, n = (size_t)B * dim;
    // Ref: DiT/SiT forward_with_cfg: one batch [x; x], labels [y; null].
    memcpy(ws->gx, x, n * sizeof(float));
    memcpy(ws->gx + n, x, n * sizeof(float));
    for (int b = 0; b < B; b++) {
        ws->gt[b] = ws->gt[B + b] = t[b];
        ws->gy[b] = y[b];
        ws->gy[B + b] = m->null_class;
    }
    ns_status st = velocity_split(m, ws->gv, ws->gx, ws->gt, ws->gy, 2 * B);
    if (st != NS_OK) return st;
    int k = cfg_channels <= 0 ? m->channels : cfg_channels;
    size_t guided = (size_t)k * (dim / (size_t)m->channels);  // floats per sample
    for (int b = 0; b < B; b++) {
        const float *c = ws->gv + (size_t)b * dim;
        const float *u = ws->gv + n + (size_t)b * dim;
        float *vb = v + (size_t)b * dim;
#pragma omp simd
        for (size_t i = 0; i < guided; i++) vb[i] = u[i] + cfg_scale * (c[i] - u[i]);
        memcpy(vb + guided, c + guided, (dim - guided) * sizeof(float));
    }
    return NS_OK;
}

ns_status sampler_velocity_cfg(const sampler_model *m, sampler_workspace *ws, float *v,
                               const float *x, const float *t, const int *y, int B,
                               float cfg_scale, int cfg_channels, int *nfe) {
    if (nfe) *nfe = 0;
    ns_status st = check_call(m, ws, B, y, cfg_scale, cfg_channels);
    if (st != NS_OK) return st;
    for (int b = 0; b < B; b++)
        if (!(t[b] >= 0.0f && t[b] <= 1.0f))
            return ns_error_set(NS_ERR_ARG, "sampler: t[%d] = %g outside [0, 1]", b, (double)t[b]);
    st = velocity_guided(m, ws, v, x, t, y, B, cfg_scale, cfg_channels);
    if (st == NS_OK && nfe) *nfe = cfg_scale != 1.0f ? 2 : 1;
    return st;
}

// Grid point k of the uniform grid over [t_a, t_b] (see sampler.h): computed
// from k alone, never accumulated, so split runs meet at the same floats.
static float grid_t(const sampler_params *p, int k) {
    if (k == p->steps) return p->t_b;
    return (float)((double)p->t_a + ((double)p->t_b - (double)p->t_a) * k / p->steps);
}

// Noise for all B samples: z_b = noise_fill(keys[b]) at index0. z: (B, dim).
// Per-sample streams, so threads only change who computes a sample.
static void fill_noise(float *z, int B, int dim, const noise_key *keys, uint64_t index0) {
#pragma omp parallel for schedule(static) if ((size_t)B * (size_t)dim >= 65536)
    for (int b = 0; b < B; b++) noise_fill(z + (size_t)b * dim, (size_t)dim, keys[b], index0);
}

ns_status sampler_run(const sampler_model *m, const sampler_params *p, sampler_workspace *ws,
                      float *x, const int *y, int B, const noise_key *keys,
                      uint64_t counter_base, sampler_step_fn on_step, void *user, int *nfe) {
    if (nfe) *nfe = 0;
    ns_status st = check_call(m, ws, B, y, p->cfg_scale, p->cfg_channels);
    if (st != NS_OK) return st;
    if (!sampler_kind_name(p->kind))
        return ns_error_set(NS_ERR_ARG, "sampler: unknown sampler kind %d", (int)p->kind);
    if (p->steps < 1)
        return ns_error_set(NS_ERR_ARG, "sampler: steps must be >= 1 (got %d)", p->steps);
    if (!(p->t_a >= 0.0f && p->t_a < p->t_b && p->t_b <= 1.0f))
        return ns_error_set(NS_ERR_ARG, "sampler: need 0 <= t_a < t_b <= 1 (got t_a %g, t_b %g)",
                            (double)p->t_a, (double)p->t_b);
    if (p->kind == SAMPLER_EULER_MARUYAMA && p->steps > 1 && !keys)
        return ns_error_set(NS_ERR_ARG, "sampler: euler_maruyama needs one noise key per sample");

    const size_t n = (size_t)B * (size_t)m->dim;
    const int nfe_eval = p->cfg_scale != 1.0f ? 2 : 1;
    float *v = ws->v, *v2 = ws->v2, *x2 = ws->x2, *z = ws->z, *tb = ws->t;
    for (int k = 0; k < p->steps; k++) {
        const float t0 = grid_t(p, k), t1 = grid_t(p, k + 1), dt = t1 - t0;
        for (int b = 0; b < B; b++) tb[b] = t0;
        st = velocity_guided(m, ws, v, x, tb, y, B, p->cfg_scale, p->cfg_channels);
        if (st != NS_OK) return st;
        if (nfe) *nfe += nfe_eval;
        switch (p->kind) {
        case SAMPLER_EULER:
#pragma omp simd
            for (size_t i = 0; i < n; i++) x[i] += dt * v[i];
            break;
        case SAMPLER_HEUN: {
            // Euler predictor, trapezoid corrector (§2).
#pragma omp simd
            for (size_t i = 0; i < n; i++) x2[i] = x[i] + dt * v[i];
            for (int b = 0; b < B; b++) tb[b] = t1;
            st = velocity_guided(m, ws, v2, x2, tb, y, B, p->cfg_scale, p->cfg_channels);
            if (st != NS_OK) return st;
            if (nfe) *nfe += nfe_eval;
            const float hdt = 0.5f * dt;
#pragma omp simd
            for (size_t i = 0; i < n; i++) x[i] += hdt * (v[i] + v2[i]);
            break;
        }
        case SAMPLER_EULER_MARUYAMA:
            // drift = v + w s with w s = (1-t) (t v - x)/(1-t) = t v - x (§2).
            if (k == p->steps - 1) {
#pragma omp simd
                for (size_t i = 0; i < n; i++) x[i] += (v[i] + (t0 * v[i] - x[i])) * dt;
            } else {
                fill_noise(z, B, m->dim, keys, counter_base + (uint64_t)k * (uint64_t)m->dim);
                const float sigma = sqrtf(2.0f * (1.0f - t0) * dt);  // sqrt(2 w dt)
#pragma omp simd
                for (size_t i = 0; i < n; i++)
                    x[i] += (v[i] + (t0 * v[i] - x[i])) * dt + sigma * z[i];
            }
            break;
        }
        if (on_step) {
            st = on_step(user, k, t1, x, B);
            if (st != NS_OK) return st;
        }
    }
    return NS_OK;
}

void sampler_x1_hat(float *x1, const float *x, const float *v, float t, size_t n) {
    const float s = 1.0f - t;
#pragma omp simd
    for (size_t i = 0; i < n; i++) x1[i] = x[i] + s * v[i];
}

ns_status sampler_x1_hat_eval(const sampler_model *m, sampler_workspace *ws, float *x1,
                              const float *x, float t, const int *y, int B,
                              float cfg_scale, int cfg_channels, int *nfe) {
    if (nfe) *nfe = 0;
    if (!(t >= 0.0f && t <= 1.0f))
        return ns_error_set(NS_ERR_ARG, "sampler: t = %g outside [0, 1]", (double)t);
    ns_status st = check_call(m, ws, B, y, cfg_scale, cfg_channels);
    if (st != NS_OK) return st;
    for (int b = 0; b < B; b++) ws->t[b] = t;
    st = velocity_guided(m, ws, ws->v, x, ws->t, y, B, cfg_scale, cfg_channels);
    if (st != NS_OK) return st;
    if (nfe) *nfe = cfg_scale != 1.0f ? 2 : 1;
    sampler_x1_hat(x1, x, ws->v, t, (size_t)B * (size_t)m->dim);
    return NS_OK;
}

ns_status sampler_renoise(sampler_workspace *ws, float *x, int B, float t, float t_new,
                          const noise_key *keys, uint64_t counter) {
    if (!(t > 0.0f && t <= 1.0f && t_new >= 0.0f && t_new < t))
        return ns_error_set(NS_ERR_ARG, "sampler: re-noising needs 0 <= t' < t <= 1, t > 0 (got t %g, t' %g)",
                            (double)t, (double)t_new);
    if (B < 1 || B > ws->max_batch)
        return ns_error_set(NS_ERR_ARG, "sampler: batch %d outside [1, %d] (workspace max_batch)",
                            B, ws->max_batch);
    if (!keys) return ns_error_set(NS_ERR_ARG, "sampler: re-noising needs one noise key per sample");
    // §1: a x_t + c e has mean t' x1 and noise std sqrt(a^2 (1-t)^2 + c^2)
    // = 1 - t' with a = t'/t. Coefficients in double, then one rounding.
    const double a = (double)t_new / (double)t;
    const double one_t = 1.0 - (double)t, one_tn = 1.0 - (double)t_new;
    const float fa = (float)a;
    const float fc = (float)sqrt(one_tn * one_tn - a * a * one_t * one_t);
    fill_noise(ws->z, B, ws->dim, keys, counter);
    const size_t n = (size_t)B * (size_t)ws->dim;
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = fa * x[i] + fc * ws->z[i];
    return NS_OK;
}

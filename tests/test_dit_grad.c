// Gradient checks of the training half of the denoiser (model/dit_train.c,
// model/layers_backward.c), independent of PyTorch:
//   1. every backward row kernel against central differences of a
//      double-precision reference forward (tight tolerances);
//   2. dit_train_forward's output against dit_forward's (float rounding);
//   3. the whole model: the loss L = sum(w * v) with fixed random w,
//      analytic gradients of every tensor against float central differences
//      on a random subset of its elements (learn_sigma 0 and 1);
//   4. the gradients bitwise equal with 1 and 2 threads;
//   5. the flow-matching loss helper against a direct computation;
//   6. the optimizer pieces (model/optim.h) against hand-computed values:
//      schedule, parameter groups, clipping, one AdamW step, EMA.
// Prints every measured error; exits non-zero on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/dit.h"
#include "model/dit_train.h"
#include "model/gemm.h"
#include "model/layers.h"
#include "model/layers_backward.h"
#include "model/optim.h"

// Kernel checks: the analytic gradient is float, the finite difference is
// double (step 1e-6, truncation ~1e-12, rounding ~1e-10), so the error is the
// float kernel's own rounding, a few ulp of the terms it combines.
#define KERNEL_TOL 1e-5
#define KERNEL_FD_STEP 1e-6

// Model check: the loss is a double sum of float outputs of a float forward,
// and each evaluation carries rounding noise: measured through the key bias
// of attention, whose true gradient is exactly 0 (softmax ignores a shift
// shared by all keys), the difference quotient below reads ~1e-4 where the
// analytic value is ~1e-7, against gradients of 1-10 per tensor. A
// five-point stencil (truncation O(h^4)) lets the step be large enough to
// divide that noise down: h = 2^-5 (a power of two, so orig + k h rounds at
// most in its last bit) was the best of the steps tried, 1e-2 .. 2^-4.
// An element's error is |fd - an| / max(|fd|, |an|, floor) with
// floor = 2e-2 * (largest |an| in the tensor), so gradients below the
// quotient's noise are judged in absolute terms against the tensor's scale;
// a wrong term shows as an O(1) error. Pass: worst error per tensor <= 1e-2
// (measured worst ~4e-3).
#define MODEL_FD_STEP 0.03125f
#define FORWARD_TOL 1e-5  // relative, dit_train_forward vs dit_forward
#define MODEL_TOL 1e-2
#define MODEL_FLOOR 2e-2
#define SAMPLES_PER_TENSOR 24
#define BATCH 3

#define TEST_RNG_SEED 0x243F6A8885A308D3ull
#include "test_rng.h"

static float normal(float stddev) {
    double u1 = uniform01(), u2 = uniform01();
    return (float)(stddev * sqrt(-2.0 * log(u1 + 1e-300)) * cos(2.0 * M_PI * u2));
}

static void fill_normal(float *x, int n, float mean, float stddev) {
    for (int i = 0; i < n; i++) x[i] = mean + normal(stddev);
}

// max |an - fd| / max |fd| over n elements.
static double rel_err(const float *an, const double *fd, int n) {
    double diff = 0.0, scale = 0.0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)an[i] - fd[i]);
        if (!(d <= diff)) diff = d;  // NaN propagates
        if (fabs(fd[i]) > scale) scale = fabs(fd[i]);
    }
    return diff / (scale > 0.0 ? scale : 1.0);
}

static int report(const char *what, double err, double tol) {
    printf("  %-44s rel err %.3e  (tol %.0e)  %s\n", what, err, tol, err <= tol ? "ok" : "FAIL");
    return !(err <= tol);
}

// ---------------------------------------------------------------------------
// 1. Row kernels against double-precision references

#define KN 37  // not a multiple of 16: exercises the lane tails

static double ln_mod_loss(const double *x, const double *shift, const double *scale, const float *w, int D) {
    double mean = 0.0, var = 0.0, L = 0.0;
    for (int i = 0; i < D; i++) mean += x[i];
    mean /= D;
    for (int i = 0; i < D; i++) var += (x[i] - mean) * (x[i] - mean);
    double rstd = 1.0 / sqrt(var / D + 1e-6);
    for (int i = 0; i < D; i++) L += w[i] * ((x[i] - mean) * rstd * (1.0 + scale[i]) + shift[i]);
    return L;
}

// Central differences of f over each element of the double copy of v.
typedef double (*loss_fn)(const double *args[3], const float *w, int n);

static void central_diff(double *fd, double *v, const double *args[3], loss_fn f, const float *w, int n) {
    for (int i = 0; i < n; i++) {
        double orig = v[i];
        v[i] = orig + KERNEL_FD_STEP;
        double lp = f(args, w, n);
        v[i] = orig - KERNEL_FD_STEP;
        double lm = f(args, w, n);
        v[i] = orig;
        fd[i] = (lp - lm) / (2.0 * KERNEL_FD_STEP);
    }
}

static double ln_mod_fn(const double *a[3], const float *w, int n) { return ln_mod_loss(a[0], a[1], a[2], w, n); }

static double gelu_ref(double v) { return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))); }
static double silu_ref(double v) { return v / (1.0 + exp(-v)); }

static double gelu_fn(const double *a[3], const float *w, int n) {
    double L = 0.0;
    for (int i = 0; i < n; i++) L += w[i] * gelu_ref(a[0][i] + a[1][i]);
    return L;
}

static double silu_fn(const double *a[3], const float *w, int n) {
    double L = 0.0;
    for (int i = 0; i < n; i++) L += w[i] * silu_ref(a[0][i] + a[1][i]);
    return L;
}

static double softmax_scale;
static double softmax_fn(const double *a[3], const float *w, int n) {
    double mx = -INFINITY, s = 0.0, L = 0.0;
    for (int i = 0; i < n; i++) mx = a[0][i] > mx ? a[0][i] : mx;
    for (int i = 0; i < n; i++) s += exp((a[0][i] - mx) * softmax_scale);
    for (int i = 0; i < n; i++) L += w[i] * exp((a[0][i] - mx) * softmax_scale) / s;
    return L;
}

static double gated_fn(const double *a[3], const float *w, int n) {  // a: gate, y, bias
    double L = 0.0;
    for (int i = 0; i < n; i++) L += w[i] * a[0][i] * (a[1][i] + a[2][i]);
    return L;
}

static void to_double(double *d, const float *f, int n) {
    for (int i = 0; i < n; i++) d[i] = f[i];
}

// The forward row kernels against double precision on a grid that spans
// their clamps (exp: [-87.3, 88.37]; sigmoid: exp argument <= 80), and NaN
// propagation: a NaN in must give NaN out, never a plausible number.
static int check_forward_kernels(void) {
    int fails = 0;
    double worst_exp = 0, worst_gelu = 0, worst_silu = 0;
    for (int i = -4000; i <= 4000; i++) {
        float x = (float)i * 0.02f;  // [-80, 80]
        // gelu as v sigmoid(2u): 1 + tanh(u) cancels to 0 in double below x ~ -7.5
        double u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * (double)x * x);
        double e = exp((double)x), g = x / (1.0 + exp(-2.0 * u)), sl = silu_ref((double)x);
        float zero = 0.0f, out;
        worst_exp = fmax(worst_exp, fabs(layer_exp(x) - e) / e);
        layer_bias_gelu_row(&out, &x, &zero, 1);
        // relative above 1e-20; below, the sigmoid's cap (exp <= e^80) leaves
        // |out| < 2e-33 where the exact value is smaller still
        worst_gelu = fmax(worst_gelu, fabs(out - g) / fmax(fabs(g), 1e-20));
        layer_bias_silu_row(&out, &x, &zero, 1);
        worst_silu = fmax(worst_silu, fabs(out - sl) / fmax(fabs(sl), 1e-20));
    }
    fails += report("layer_exp on [-80, 80]", worst_exp, 1e-6);
    // exp(-2u) turns the float rounding of u (6e-8 relative) into |2u| times
    // that: up to ~5e-6 where the result is still above 1e-20
    fails += report("layer_bias_gelu_row on [-80, 80]", worst_gelu, 1e-5);
    fails += report("layer_bias_silu_row on [-80, 80]", worst_silu, 1e-6);
    float big = layer_exp(1000.0f), tiny = layer_exp(-1000.0f);
    int clamps = isfinite(big) && big > 1e38f && tiny >= 0.0f && tiny < 1e-37f;
    printf("  %-44s %s\n", "layer_exp(+-1000) finite, clamped", clamps ? "ok" : "FAIL");
    fails += !clamps;

    float nan = NAN, zero = 0.0f, g, row[21];
    layer_bias_gelu_row(&g, &nan, &zero, 1);
    for (int j = 0; j < 21; j++) row[j] = (float)j;
    row[17] = NAN;
    layer_softmax_row(row, 1.0f, 21);
    int all_nan = 1;
    for (int j = 0; j < 21; j++) all_nan &= isnan(row[j]);
    int nan_ok = isnan(layer_exp(nan)) && isnan(g) && all_nan;
    printf("  %-44s %s\n", "NaN in exp, GELU, softmax gives NaN", nan_ok ? "ok" : "FAIL");
    fails += !nan_ok;
    return fails;
}

static int check_kernels(void) {
    int fails = 0;
    float x[256], shift[256], scale[256], w[256], out[256], ref[256], dx[KN], dsh[KN], dsc[KN], bias[KN];
    double xd[KN], shd[KN], scd[KN], bd[KN], fd[KN];
    printf("row kernels (float analytic vs double central differences, n = %d):\n", KN);

    // LayerNorm + modulate: forward bits, then the three gradients.
    int bitwise = 1;
    for (int D = 16; D <= 256; D += 40) {
        fill_normal(x, D, 0.7f, 1.3f), fill_normal(shift, D, 0, 0.3f), fill_normal(scale, D, 0, 0.3f);
        float mean, rstd;
        layer_norm_modulate_forward_row(out, &mean, &rstd, x, shift, scale, D, 1e-6f);
        layer_norm_modulate_row(ref, x, shift, scale, D, 1e-6f);
        bitwise &= memcmp(out, ref, (size_t)D * sizeof(float)) == 0;
    }
    printf("  %-44s %s\n", "layer_norm_modulate_forward_row == layer_norm_modulate_row",
           bitwise ? "bitwise ok" : "FAIL (bits differ)");
    fails += !bitwise;
    fill_normal(x, KN, 0.7f, 1.3f), fill_normal(shift, KN, 0, 0.3f), fill_normal(scale, KN, 0, 0.3f);
    fill_normal(w, KN, 0, 1.0f);
    float mean, rstd;
    layer_norm_modulate_forward_row(out, &mean, &rstd, x, shift, scale, KN, 1e-6f);
    memset(dx, 0, sizeof dx), memset(dsh, 0, sizeof dsh), memset(dsc, 0, sizeof dsc);
    layer_norm_modulate_backward_row(dx, dsh, dsc, w, x, mean, rstd, scale, KN);
    to_double(xd, x, KN), to_double(shd, shift, KN), to_double(scd, scale, KN);
    const double *ln_args[3] = {xd, shd, scd};
    central_diff(fd, xd, ln_args, ln_mod_fn, w, KN);
    fails += report("layer_norm_modulate_backward_row dx", rel_err(dx, fd, KN), KERNEL_TOL);
    central_diff(fd, shd, ln_args, ln_mod_fn, w, KN);
    fails += report("layer_norm_modulate_backward_row dshift", rel_err(dsh, fd, KN), KERNEL_TOL);
    central_diff(fd, scd, ln_args, ln_mod_fn, w, KN);
    fails += report("layer_norm_modulate_backward_row dscale", rel_err(dsc, fd, KN), KERNEL_TOL);

    // GELU (tanh) and SiLU with bias over a wide input range (|v| up to ~8).
    fill_normal(x, KN, 0, 3.0f), fill_normal(bias, KN, 0, 0.5f), fill_normal(w, KN, 0, 1.0f);
    to_double(xd, x, KN), to_double(bd, bias, KN);
    const double *act_args[3] = {xd, bd, NULL};
    layer_bias_gelu_backward_row(dx, w, x, bias, KN);
    central_diff(fd, xd, act_args, gelu_fn, w, KN);
    fails += report("layer_bias_gelu_backward_row", rel_err(dx, fd, KN), KERNEL_TOL);
    layer_bias_silu_backward_row(dx, w, x, bias, KN);
    central_diff(fd, xd, act_args, silu_fn, w, KN);
    fails += report("layer_bias_silu_backward_row", rel_err(dx, fd, KN), KERNEL_TOL);
    double zd[KN] = {0};
    const double *silu_args[3] = {xd, zd, NULL};
    layer_silu_backward_row(dx, w, x, KN);
    central_diff(fd, xd, silu_args, silu_fn, w, KN);
    fails += report("layer_silu_backward_row", rel_err(dx, fd, KN), KERNEL_TOL);

    // Softmax with the attention scale, in place.
    softmax_scale = 0.37;
    fill_normal(x, KN, 0, 2.0f), fill_normal(w, KN, 0, 1.0f);
    memcpy(out, x, sizeof(float) * KN);
    layer_softmax_row(out, (float)softmax_scale, KN);
    memcpy(dx, w, sizeof(float) * KN);
    layer_softmax_backward_row(dx, out, (float)softmax_scale, KN);
    to_double(xd, x, KN);
    const double *sm_args[3] = {xd, NULL, NULL};
    central_diff(fd, xd, sm_args, softmax_fn, w, KN);
    fails += report("layer_softmax_backward_row", rel_err(dx, fd, KN), KERNEL_TOL);

    // Gated residual: dgate accumulated, dy written.
    fill_normal(scale, KN, 0, 0.5f), fill_normal(x, KN, 0, 1.0f), fill_normal(bias, KN, 0, 0.3f);
    fill_normal(w, KN, 0, 1.0f);
    memset(dsc, 0, sizeof dsc);
    layer_gated_residual_backward_row(dx, dsc, w, scale, x, bias, KN);
    to_double(scd, scale, KN), to_double(xd, x, KN), to_double(bd, bias, KN);
    const double *g_args[3] = {scd, xd, bd};
    central_diff(fd, scd, g_args, gated_fn, w, KN);
    fails += report("layer_gated_residual_backward_row dgate", rel_err(dsc, fd, KN), KERNEL_TOL);
    central_diff(fd, bd, g_args, gated_fn, w, KN);
    fails += report("layer_gated_residual_backward_row dy", rel_err(dx, fd, KN), KERNEL_TOL);
    return fails;
}

// ---------------------------------------------------------------------------
// 2-4. The whole model

typedef struct {
    dit_model m;
    dit_workspace ws;
    float *x, *t, *w, *v;
    int *y;
} model_case;

// Five-point central difference, (8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / 12h.
static const float fd_offsets[4] = {-2.0f, -1.0f, 1.0f, 2.0f};

static double weighted_loss(model_case *mc) {
    dit_forward(&mc->m, &mc->ws, mc->v, mc->x, mc->t, mc->y, BATCH);
    int n = BATCH * dit_sample_dim(&mc->m.cfg);
    double L = 0.0;
    for (int i = 0; i < n; i++) L += (double)mc->w[i] * mc->v[i];
    return L;
}

// Analytic gradient of L = sum(w * v) with `threads` threads into grad (zeroed here).
static void analytic_grad(model_case *mc, float *grad, float *v, int threads) {
    dit_train_acts a;
    NS_CHECK(dit_train_acts_init(&a, &mc->m.cfg, BATCH, threads) == NS_OK);
    dit_params gp;
    memset(grad, 0, mc->m.num_params * sizeof(float));
    dit_params_bind(&gp, &mc->m.cfg, grad);
    dit_train_forward(&mc->m, &a, v, mc->x, mc->t, mc->y, BATCH);
    dit_backward(&mc->m, &a, &gp, mc->w, BATCH);
    dit_train_acts_free(&a);
}

static int check_model(int learn_sigma) {
    dit_config cfg = {.input_size = 8, .in_channels = 2, .patch_size = 2, .depth = 2, .hidden_size = 16,
                      .num_heads = 2, .num_classes = 3, .learn_sigma = learn_sigma, .mlp_ratio = 4.0f};
    model_case mc;
    NS_CHECK(dit_model_init(&mc.m, &cfg) == NS_OK);
    dit_model_randomize(&mc.m, 11 + learn_sigma, 0.25f);
    NS_CHECK(dit_workspace_init(&mc.ws, &cfg, BATCH, 1) == NS_OK);
    int n = BATCH * dit_sample_dim(&cfg);
    mc.x = ns_malloc(sizeof(float) * n, "x"), mc.w = ns_malloc(sizeof(float) * n, "w");
    mc.v = ns_malloc(sizeof(float) * n, "v");
    float *v_train = ns_malloc(sizeof(float) * n, "v_train");
    float t[BATCH] = {0.0f, 0.43f, 1.0f};
    int y[BATCH] = {2, 3, 0};  // 3 = null class; row 1 unused, so its gradient must stay 0
    mc.t = t, mc.y = y;
    fill_normal(mc.x, n, 0, 1.0f), fill_normal(mc.w, n, 0, 1.0f);
    printf("model %dx%dx%d patch %d depth %d width %d heads %d classes %d learn_sigma %d, B=%d, %zu params:\n",
           cfg.input_size, cfg.input_size, cfg.in_channels, cfg.patch_size, cfg.depth, cfg.hidden_size,
           cfg.num_heads, cfg.num_classes, cfg.learn_sigma, BATCH, mc.m.num_params);

    int fails = 0;
    float *grad = ns_aligned_alloc(mc.m.num_params * sizeof(float), "grad");
    float *grad1 = ns_aligned_alloc(mc.m.num_params * sizeof(float), "grad 1 thread");
    analytic_grad(&mc, grad, v_train, 2);
    weighted_loss(&mc);
    // Same math; the attention kernels differ (layer_attention_head in dit.c,
    // BLIS GEMMs here), so the outputs agree to rounding, not bitwise.
    double v_diff = 0.0, v_max = 0.0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)v_train[i] - mc.v[i]);
        if (!(d <= v_diff)) v_diff = d;
        v_max = fmax(v_max, fabs(mc.v[i]));
    }
    int bitwise = memcmp(v_train, mc.v, sizeof(float) * n) == 0;
    fails += report(bitwise ? "dit_train_forward vs dit_forward (bitwise)" : "dit_train_forward vs dit_forward",
                    v_diff / v_max, FORWARD_TOL);
    analytic_grad(&mc, grad1, v_train, 1);
    int same_g = memcmp(grad, grad1, mc.m.num_params * sizeof(float)) == 0;
    printf("  %-44s %s\n", "gradients, 1 thread == 2 threads", same_g ? "bitwise ok" : "FAIL (bits differ)");
    fails += !same_g;

    double worst_all = 0.0;
    for (int ti = 0; ti < mc.m.num_tensors; ti++) {
        const dit_tensor *tn = &mc.m.tensors[ti];
        const float *g = grad + tn->offset;
        if (strcmp(tn->name, "pos_embed") == 0) {  // fixed buffer: gradient never written
            int zero = 1;
            for (size_t i = 0; i < tn->numel; i++) zero &= g[i] == 0.0f;
            printf("  %-44s %s\n", "pos_embed gradient", zero ? "all zero ok" : "FAIL (written)");
            fails += !zero;
            continue;
        }
        double gmax = 0.0;
        for (size_t i = 0; i < tn->numel; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
        double floor = MODEL_FLOOR * gmax, worst = 0.0;
        int count = tn->numel <= SAMPLES_PER_TENSOR ? (int)tn->numel : SAMPLES_PER_TENSOR;
        for (int s = 0; s < count; s++) {
            size_t i = count == (int)tn->numel ? (size_t)s : (size_t)(uniform01() * (double)tn->numel);
            float *p = mc.m.memory + tn->offset + i, orig = *p;
            double lv[4];
            for (int k = 0; k < 4; k++) {
                *p = orig + fd_offsets[k] * MODEL_FD_STEP;
                lv[k] = weighted_loss(&mc);
            }
            *p = orig;
            double fd = (8.0 * (lv[2] - lv[1]) - (lv[3] - lv[0])) / (12.0 * (double)MODEL_FD_STEP), an = g[i];
            double den = fmax(fmax(fabs(fd), fabs(an)), floor);
            double err = den > 0.0 ? fabs(fd - an) / den : 0.0;  // both exactly 0: unused row or dropped channel
            if (!(err <= worst)) worst = err;
        }
        char what[96];
        snprintf(what, sizeof what, "%s (%d of %zu, max|g| %.1e)", tn->name, count, tn->numel, gmax);
        printf("  %-62s worst %.3e  %s\n", what, worst, worst <= MODEL_TOL ? "ok" : "FAIL");
        fails += !(worst <= MODEL_TOL);
        if (!(worst <= worst_all)) worst_all = worst;
        // The key bias has exactly zero gradient (softmax is shift-invariant):
        // a sharp check of the attention backward, far below the FD noise.
        if (strstr(tn->name, "attn.qkv.bias")) {
            double kmax = 0.0;
            for (int j = cfg.hidden_size; j < 2 * cfg.hidden_size; j++) kmax = fmax(kmax, fabs(g[j]));
            char kwhat[96];
            snprintf(kwhat, sizeof kwhat, "%.8s key bias max|g| / max|g|", tn->name);
            fails += report(kwhat, kmax / gmax, 1e-5);
        }
        // The unused label row (class 1) gets exactly 0.
        if (strcmp(tn->name, "y_embedder.embedding_table.weight") == 0) {
            int zero = 1;
            for (int j = 0; j < cfg.hidden_size; j++) zero &= g[cfg.hidden_size + j] == 0.0f;
            printf("  %-44s %s\n", "unused label row gradient", zero ? "all zero ok" : "FAIL");
            fails += !zero;
        }
    }
    printf("  worst relative error over all tensors: %.3e (tol %.0e, step %.0e)\n", worst_all, MODEL_TOL,
           (double)MODEL_FD_STEP);

    free(grad), free(grad1), free(mc.x), free(mc.w), free(mc.v), free(v_train);
    dit_workspace_free(&mc.ws);
    dit_model_free(&mc.m);
    return fails;
}

// ---------------------------------------------------------------------------
// 5. Flow-matching loss helper

static int check_flow_loss(void) {
    dit_config cfg = {.input_size = 8, .in_channels = 1, .patch_size = 4, .depth = 1, .hidden_size = 16,
                      .num_heads = 2, .num_classes = 3, .learn_sigma = 0, .mlp_ratio = 4.0f};
    dit_model m;
    NS_CHECK(dit_model_init(&m, &cfg) == NS_OK);
    dit_model_randomize(&m, 5, 0.25f);
    int B = 4, dim = dit_sample_dim(&cfg), n = B * dim;
    float *x1 = ns_malloc(sizeof(float) * n, "x1"), *x0 = ns_malloc(sizeof(float) * n, "x0");
    float *xt = ns_malloc(sizeof(float) * n, "xt"), *v = ns_malloc(sizeof(float) * n, "v");
    float *dv = ns_malloc(sizeof(float) * n, "dv");
    float t[4] = {0.0f, 0.2f, 0.9f, 1.0f};
    int y[4] = {0, 3, 1, 2};
    for (int i = 0; i < n; i++) x1[i] = (float)(2.0 * uniform01() - 1.0), x0[i] = normal(1.0f);
    dit_train_acts a;
    NS_CHECK(dit_train_acts_init(&a, &cfg, B, 0) == NS_OK);
    double L = dit_train_flow_loss(&m, &a, dv, x1, x0, t, y, B);

    for (int b = 0; b < B; b++)
        for (int i = 0; i < dim; i++) {
            int k = b * dim + i;
            xt[k] = t[b] * x1[k] + (1.0f - t[b]) * x0[k];
        }
    dit_workspace ws;
    NS_CHECK(dit_workspace_init(&ws, &cfg, B, 0) == NS_OK);
    dit_forward(&m, &ws, v, xt, t, y, B);
    double ref = 0.0, dv_err = 0.0, dv_max = 0.0;
    for (int k = 0; k < n; k++) {
        double e = (double)v[k] - ((double)x1[k] - (double)x0[k]);
        ref += e * e;
        dv_err = fmax(dv_err, fabs(dv[k] - 2.0 * e / n));
        dv_max = fmax(dv_max, fabs(2.0 * e / n));
    }
    ref /= n;
    printf("flow-matching loss helper (B=%d):\n", B);
    int fails = report("loss vs direct double computation", fabs(L - ref) / ref, 1e-6);
    fails += report("dL/dv vs 2 (v - (x1 - x0)) / N", dv_err / dv_max, 1e-6);
    dit_workspace_free(&ws);
    dit_train_acts_free(&a);
    dit_model_free(&m);
    free(x1), free(x0), free(xt), free(v), free(dv);
    return fails;
}

// ---------------------------------------------------------------------------
// 6. Optimizer pieces

static int check_close(const char *what, double got, double want) {
    double err = fabs(got - want) / fmax(fabs(want), 1e-12);
    return report(what, err, 1e-6);
}

static int check_optim(void) {
    printf("optimizer (model/optim.h):\n");
    int fails = 0;
    optim_schedule cos = {.kind = OPTIM_LR_COSINE, .lr = 1.0f, .lr_min = 0.1f, .warmup_steps = 4, .total_steps = 12};
    NS_CHECK(optim_schedule_check(&cos) == NS_OK);
    fails += check_close("cosine: warm-up step 0 = lr/4", optim_lr_at(&cos, 0), 0.25);
    fails += check_close("cosine: last warm-up step 3 = lr", optim_lr_at(&cos, 3), 1.0);
    fails += check_close("cosine: step 8 = halfway", optim_lr_at(&cos, 8), 0.55);
    fails += check_close("cosine: step 12 and after = lr_min", optim_lr_at(&cos, 12) + optim_lr_at(&cos, 99), 0.2);
    optim_schedule cst = {.kind = OPTIM_LR_CONSTANT, .lr = 0.5f};
    fails += check_close("constant, no warm-up", optim_lr_at(&cst, 0) + optim_lr_at(&cst, 1000), 1.0);
    optim_schedule wsd = {.kind = OPTIM_LR_WSD, .lr = 1.0f, .lr_min = 0.1f, .warmup_steps = 4, .total_steps = 20,
                          .decay_start = 12};
    NS_CHECK(optim_schedule_check(&wsd) == NS_OK);
    fails += check_close("wsd: warm-up step 0 = lr/4", optim_lr_at(&wsd, 0), 0.25);
    fails += check_close("wsd: stable until decay_start", optim_lr_at(&wsd, 4) + optim_lr_at(&wsd, 11), 2.0);
    fails += check_close("wsd: decay_start = lr, step 16 = halfway", optim_lr_at(&wsd, 12) + optim_lr_at(&wsd, 16), 1.55);
    fails += check_close("wsd: step 20 and after = lr_min", optim_lr_at(&wsd, 20) + optim_lr_at(&wsd, 99), 0.2);
    optim_schedule early = wsd, late = wsd;
    early.decay_start = 3, late.decay_start = 20;
    int wsd_rejects = optim_schedule_check(&early) == NS_ERR_ARG && optim_schedule_check(&late) == NS_ERR_ARG;
    printf("  %-44s %s\n", "wsd: decay_start outside [warm-up, total) rejected", wsd_rejects ? "ok" : "FAIL");
    fails += !wsd_rejects;
    optim_lr_kind kind;
    optim_schedule bad = cos;
    bad.total_steps = 4;
    int rejects = optim_lr_kind_from_name("linear", &kind) == NS_ERR_ARG && optim_schedule_check(&bad) == NS_ERR_ARG &&
                  optim_lr_kind_from_name("cosine", &kind) == NS_OK && kind == OPTIM_LR_COSINE;
    printf("  %-44s %s\n", "bad schedule name / total_steps rejected", rejects ? "ok" : "FAIL");
    fails += !rejects;

    dit_config cfg = {.input_size = 8, .in_channels = 1, .patch_size = 4, .depth = 1, .hidden_size = 16,
                      .num_heads = 2, .num_classes = 3, .learn_sigma = 0, .mlp_ratio = 4.0f};
    dit_model m, ema;
    NS_CHECK(dit_model_init(&m, &cfg) == NS_OK);
    dit_model_randomize(&m, 3, 0.25f);
    NS_CHECK(optim_ema_init(&ema, &m) == NS_OK);
    const dit_tensor *pos = NULL, *decay = NULL, *table = NULL, *bias = NULL;
    for (int i = 0; i < m.num_tensors; i++) {
        const dit_tensor *t = &m.tensors[i];
        if (!strcmp(t->name, "pos_embed")) pos = t;
        if (!strcmp(t->name, "blocks.0.attn.qkv.weight")) decay = t;
        if (!strcmp(t->name, "y_embedder.embedding_table.weight")) table = t;
        if (!strcmp(t->name, "blocks.0.attn.qkv.bias")) bias = t;
    }
    NS_CHECK(pos && decay && table && bias);
    int groups = optim_tensor_group(pos) == OPTIM_FROZEN && optim_tensor_group(decay) == OPTIM_DECAY &&
                 optim_tensor_group(table) == OPTIM_NO_DECAY && optim_tensor_group(bias) == OPTIM_NO_DECAY;
    printf("  %-44s %s\n", "groups: pos_embed frozen, table/bias no decay", groups ? "ok" : "FAIL");
    fails += !groups;

    // Clipping: every gradient 1 except pos_embed (5, must be ignored).
    float *grad = ns_aligned_alloc(m.num_params * sizeof(float), "grad");
    for (size_t i = 0; i < m.num_params; i++) grad[i] = 1.0f;
    for (size_t i = 0; i < pos->numel; i++) grad[pos->offset + i] = 5.0f;
    double want = sqrt((double)(m.num_params - pos->numel));
    fails += check_close("clip: norm (pos_embed excluded)", optim_clip_grad_norm(&m, grad, 0.0, 0), want);
    fails += check_close("clip: max_norm 0 leaves gradients", grad[decay->offset], 1.0);
    optim_clip_grad_norm(&m, grad, want / 2, 0);
    fails += check_close("clip: scaled to max_norm/(norm+1e-6)", grad[decay->offset], (want / 2) / (want + 1e-6));
    fails += check_close("clip: pos_embed gradient untouched", grad[pos->offset], 5.0);

    // One AdamW step: m = (1-b1) g, v = (1-b2) g^2, so the step is lr g / (|g| + eps).
    optim_adamw_config acfg = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-3f, .weight_decay = 0.1f};
    optim_adamw opt;
    NS_CHECK(optim_adamw_init(&opt, &m, &acfg) == NS_OK);
    for (size_t i = 0; i < m.num_params; i++) grad[i] = (float)(0.01 * ((long)(i % 7) - 3));
    float lr = 0.01f, w_dec = m.memory[decay->offset + 1], w_tab = m.memory[table->offset + 2];
    float w_pos = m.memory[pos->offset + 3];
    double g_dec = grad[decay->offset + 1], g_tab = grad[table->offset + 2];
    optim_adamw_step(&opt, &m, grad, lr, 0);
    fails += check_close("AdamW step, decayed weight", m.memory[decay->offset + 1],
                         w_dec * (1.0 - lr * 0.1) - lr * g_dec / (fabs(g_dec) + 1e-3));
    fails += check_close("AdamW step, label table (no decay)", m.memory[table->offset + 2],
                         w_tab - lr * g_tab / (fabs(g_tab) + 1e-3));
    int frozen = m.memory[pos->offset + 3] == w_pos && opt.step == 1;
    printf("  %-44s %s\n", "AdamW leaves pos_embed unchanged", frozen ? "ok" : "FAIL");
    fails += !frozen;

    // EMA after that step: ema = 0.9 ema + 0.1 w, pos_embed still the copy.
    float e_before = ema.memory[decay->offset + 1];
    optim_ema_update(&ema, &m, 0.9f, 0);
    fails += check_close("EMA update", ema.memory[decay->offset + 1],
                         0.9 * e_before + 0.1 * m.memory[decay->offset + 1]);
    int same_pos = memcmp(ema.memory + pos->offset, m.memory + pos->offset, pos->numel * sizeof(float)) == 0;
    printf("  %-44s %s\n", "EMA pos_embed equals the model's", same_pos ? "ok" : "FAIL");
    fails += !same_pos;

    optim_adamw_free(&opt);
    free(grad);
    dit_model_free(&ema);
    dit_model_free(&m);
    return fails;
}

int main(void) {
    if (gemm_setup(0) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    printf("%s\n", gemm_describe());
    int fails = check_forward_kernels();
    fails += check_kernels();
    fails += check_model(0);
    fails += check_model(1);
    fails += check_flow_loss();
    fails += check_optim();
    printf("%s: %d check%s failed\n", fails ? "FAILED" : "PASSED", fails, fails == 1 ? "" : "s");
    return fails ? 1 : 0;
}

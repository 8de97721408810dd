// Tests for model/sampler.c on an analytic velocity field (Gaussian data, for
// which the linear-path velocity and the ODE solution are closed-form):
// convergence orders of Euler and Heun, chaining runs over sub-intervals,
// re-noising keeps the path's marginal, the SDE ends at the data
// distribution, guidance arithmetic, NFE counts, batch splitting and batch
// independence, and error returns. Prints measured errors; exits non-zero
// on failure.
//
// The field. Data x1 ~ N(mu_y, s^2) per coordinate, noise x0 ~ N(0, 1),
// x_t = t x1 + (1 - t) x0 (§1). (x1 - x0, x_t) is jointly Gaussian with
//   E[x_t] = t mu_y,  Var[x_t] = sigma_t^2 = t^2 s^2 + (1 - t)^2,
//   E[x1 - x0] = mu_y, Cov(x1 - x0, x_t) = t s^2 - (1 - t),
// so the velocity the network would learn, E[x1 - x0 | x_t = x], is
//   v(x, t) = mu_y + k(t) (x - t mu_y),  k(t) = (t s^2 - (1 - t)) / sigma_t^2.
// Since sigma_t' = (t s^2 - (1 - t)) / sigma_t, k = sigma_t' / sigma_t and
// x(t) = t mu_y + sigma_t xi solves dx/dt = v for constant xi:
// d/dt x = mu_y + sigma_t' xi = mu_y + k (x - t mu_y). Hence the exact flow
//   x(t_b) = t_b mu_y + sigma_{t_b} (x(t_a) - t_a mu_y) / sigma_{t_a},
// and from t_a = 0 (sigma_0 = 1): x(1) = mu_y + s x0. Likewise
// E[x1 | x_t = x] = mu_y + (t s^2 / sigma_t^2)(x - t mu_y) = x + (1 - t) v.
// Class-conditional data: mu_y = mu + shift * y, so guidance changes v.
#include "model/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"

typedef struct {
    double mu, s, shift;  // data N(mu + shift * y, s^2) per coordinate
    int dim;
    long calls, rows;     // model calls and samples evaluated
    int fail_at_call;     // > 0: that call returns NS_ERR_IO
} gauss_ctx;

static double gauss_mu(const gauss_ctx *g, const int *y, int b) {
    return g->mu + g->shift * (y ? y[b] : 0);
}

// v, x: (B, dim); t, y: (B,). Exact velocity of the Gaussian data (above),
// in double, rounded once.
static ns_status gauss_velocity(void *ctx, float *v, const float *x, const float *t,
                                const int *y, int B) {
    gauss_ctx *g = ctx;
    g->calls++;
    g->rows += B;
    if (g->fail_at_call > 0 && g->calls == g->fail_at_call)
        return ns_error_set(NS_ERR_IO, "gauss model: injected failure at call %ld", g->calls);
    for (int b = 0; b < B; b++) {
        double tt = t[b], mu = gauss_mu(g, y, b);
        double var = tt * tt * g->s * g->s + (1 - tt) * (1 - tt);
        double k = (tt * g->s * g->s - (1 - tt)) / var;
        for (int i = 0; i < g->dim; i++) {
            size_t j = (size_t)b * g->dim + i;
            v[j] = (float)(mu + k * (x[j] - tt * mu));
        }
    }
    return NS_OK;
}

static sampler_model gauss_model(gauss_ctx *g, int channels, int max_batch) {
    sampler_model m = {.ctx = g, .velocity = gauss_velocity, .dim = g->dim,
                       .channels = channels, .null_class = 3, .max_batch = max_batch};
    return m;
}

static noise_key key_of(int b) { return (noise_key){.seed = 777, .stream = (uint64_t)b}; }

// x: (B, dim) initial noise, sample b from stream key_of(b).
static void init_noise(float *x, int B, int dim) {
    for (int b = 0; b < B; b++) noise_fill(x + (size_t)b * dim, (size_t)dim, key_of(b), 1u << 30);
}

// Global error at t = 1 for steps 4..64 and the orders of convergence:
// least-squares slope over all five, and the last pair (32 -> 64).
static void convergence_orders(double mu, double s, sampler_kind kind, double *fitted, double *last) {
    enum { B = 4, DIM = 16, NS = 5 };
    gauss_ctx g = {.mu = mu, .s = s, .dim = DIM};
    sampler_model m = gauss_model(&g, 1, 64);
    sampler_workspace ws = {0};
    NS_CHECK(sampler_workspace_init(&ws, DIM, B) == NS_OK);
    float x0[B * DIM], x[B * DIM];
    init_noise(x0, B, DIM);
    const int steps[NS] = {4, 8, 16, 32, 64};
    double err[NS];
    for (int si = 0; si < NS; si++) {
        sampler_params p = {.kind = kind, .steps = steps[si], .t_a = 0, .t_b = 1, .cfg_scale = 1};
        memcpy(x, x0, sizeof x);
        ns_status st = sampler_run(&m, &p, &ws, x, NULL, B, NULL, 0, NULL, NULL, NULL);
        EXPECT(st == NS_OK, "run: %s", ns_error_message());
        err[si] = 0;
        for (int i = 0; i < B * DIM; i++) {
            double exact = g.mu + g.s * x0[i];  // x(1) = mu + s x0
            if (fabs(x[i] - exact) > err[si]) err[si] = fabs(x[i] - exact);
        }
    }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int si = 0; si < NS; si++) {
        double lx = -log((double)steps[si]), ly = log(err[si]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
    }
    *fitted = (NS * sxy - sx * sy) / (NS * sxx - sx * sx);
    *last = log2(err[NS - 2] / err[NS - 1]);
    printf("%-5s s=%.1f max error at t=1:", sampler_kind_name(kind), s);
    for (int si = 0; si < NS; si++) printf(" %d:%.3e", steps[si], err[si]);
    printf("  pairwise orders:");
    for (int si = 0; si + 1 < NS; si++) printf(" %.3f", log2(err[si] / err[si + 1]));
    printf("  fitted %.3f\n", *fitted);
    sampler_workspace_free(&ws);
}

// Data wider than the noise (s = 2) is in the asymptotic range from 4 steps
// on; narrow data (s = 0.5) is not at 4 steps for Heun (pairwise orders
// measured 0.99, 1.68, 1.86, 1.94), so there only the last pair is checked.
// (s = 1 would show order 3 for Heun: k(t) is then symmetric about t = 1/2
// and the leading error term cancels.)
static void test_convergence(void) {
    double fitted, last;
    convergence_orders(1.5, 2.0, SAMPLER_EULER, &fitted, &last);
    EXPECT(fitted > 0.8 && fitted < 1.2, "euler order %.3f outside [0.8, 1.2]", fitted);
    convergence_orders(1.5, 2.0, SAMPLER_HEUN, &fitted, &last);
    EXPECT(fitted > 1.8 && fitted < 2.3, "heun order %.3f outside [1.8, 2.3]", fitted);
    convergence_orders(1.5, 0.5, SAMPLER_EULER, &fitted, &last);
    EXPECT(fitted > 0.8 && fitted < 1.2, "euler order %.3f outside [0.8, 1.2]", fitted);
    convergence_orders(1.5, 0.5, SAMPLER_HEUN, &fitted, &last);
    EXPECT(last > 1.8 && last < 2.3, "heun order (32 -> 64 steps) %.3f outside [1.8, 2.3]", last);
}

// [t_a, t_b] then [t_b, t_c] equals one run over [t_a, t_c] on the same grid.
static void test_subintervals(void) {
    enum { B = 3, DIM = 32 };
    gauss_ctx g = {.mu = 0.7, .s = 0.3, .shift = 0.4, .dim = DIM};
    sampler_model m = gauss_model(&g, 2, 64);
    sampler_workspace ws = {0};
    NS_CHECK(sampler_workspace_init(&ws, DIM, B) == NS_OK);
    float x0[B * DIM], whole[B * DIM], split[B * DIM];
    const int y[B] = {0, 1, 2};
    init_noise(x0, B, DIM);
    const sampler_kind kinds[2] = {SAMPLER_EULER, SAMPLER_HEUN};
    for (int kk = 0; kk < 2; kk++) {
        // Grid 0.25 + 0.125 k: [0.25, 1] in 6 steps = [0.25, 0.5] in 2 + [0.5, 1] in 4.
        sampler_params p = {.kind = kinds[kk], .steps = 6, .t_a = 0.25f, .t_b = 1,
                            .cfg_scale = 1.5f, .cfg_channels = 1};
        memcpy(whole, x0, sizeof whole);
        memcpy(split, x0, sizeof split);
        int nfe_whole, nfe1, nfe2;
        ns_status st = sampler_run(&m, &p, &ws, whole, y, B, NULL, 0, NULL, NULL, &nfe_whole);
        p.steps = 2, p.t_b = 0.5f;
        st |= sampler_run(&m, &p, &ws, split, y, B, NULL, 0, NULL, NULL, &nfe1);
        p.steps = 4, p.t_a = 0.5f, p.t_b = 1;
        st |= sampler_run(&m, &p, &ws, split, y, B, NULL, 0, NULL, NULL, &nfe2);
        EXPECT(st == NS_OK, "runs: %s", ns_error_message());
        EXPECT(memcmp(whole, split, sizeof whole) == 0, "%s: split run differs from whole run",
               sampler_kind_name(kinds[kk]));
        EXPECT(nfe_whole == nfe1 + nfe2, "nfe %d != %d + %d", nfe_whole, nfe1, nfe2);
    }
    printf("sub-intervals: euler and heun over [0.25,0.5]+[0.5,1] equal [0.25,1] bitwise\n");
    sampler_workspace_free(&ws);
}

// Mean, variance and covariance with x1 of (x, x1) pairs, over n values.
static void moments(const float *x, const float *x1, size_t n, double *mean, double *var, double *cov) {
    double sx = 0, s1 = 0;
    for (size_t i = 0; i < n; i++) {
        sx += x[i];
        s1 += x1[i];
    }
    double mx = sx / n, m1 = s1 / n, vxx = 0, vx1 = 0;
    for (size_t i = 0; i < n; i++) {
        vxx += (x[i] - mx) * (x[i] - mx);
        vx1 += (x[i] - mx) * (x1[i] - m1);
    }
    *mean = mx;
    *var = vxx / n;
    *cov = vx1 / n;
}

// Re-noising x_t (built from known x1, x0) to t' gives the path's marginal
// at t': mean t' mu, variance t'^2 s^2 + (1-t')^2, and Cov(x_t', x1) = t' s^2.
static void test_renoise(void) {
    enum { B = 100, DIM = 2000 };
    const size_t N = (size_t)B * DIM;
    const double mu = 0.8, s = 0.6, t = 0.7, tn = 0.3;
    float *x1 = ns_malloc(N * sizeof(float), "x1"), *x = ns_malloc(N * sizeof(float), "x");
    noise_fill(x1, N, (noise_key){1, 1}, 0);
    noise_fill(x, N, (noise_key){1, 2}, 0);
    for (size_t i = 0; i < N; i++) {
        x1[i] = (float)(mu + s * x1[i]);
        x[i] = (float)(t * x1[i] + (1 - t) * x[i]);
    }
    sampler_workspace ws = {0};
    NS_CHECK(sampler_workspace_init(&ws, DIM, B) == NS_OK);
    noise_key keys[B];
    for (int b = 0; b < B; b++) keys[b] = key_of(b);
    ns_status st = sampler_renoise(&ws, x, B, (float)t, (float)tn, keys, 5);
    EXPECT(st == NS_OK, "renoise: %s", ns_error_message());
    double mean, var, cov;
    moments(x, x1, N, &mean, &var, &cov);
    double e_mean = tn * mu, e_var = tn * tn * s * s + (1 - tn) * (1 - tn), e_cov = tn * s * s;
    // Standard errors of the sample mean, variance and covariance (Gaussian).
    double se_mean = sqrt(e_var / N), se_var = e_var * sqrt(2.0 / N);
    double se_cov = sqrt((e_var * s * s + e_cov * e_cov) / N);
    printf("renoise t=%.1f -> %.1f, N=%zu: mean %.5f (exact %.5f)  var %.5f (%.5f)  cov(x,x1) %.5f (%.5f)\n",
           t, tn, N, mean, e_mean, var, e_var, cov, e_cov);
    EXPECT(fabs(mean - e_mean) < 5 * se_mean, "renoise mean %g vs %g", mean, e_mean);
    EXPECT(fabs(var - e_var) < 5 * se_var, "renoise var %g vs %g", var, e_var);
    EXPECT(fabs(cov - e_cov) < 5 * se_cov, "renoise cov %g vs %g", cov, e_cov);

    // A sample's noise does not depend on its batch: sample 37 re-noised alone.
    float alone[DIM];
    for (int i = 0; i < DIM; i++) alone[i] = (float)(t * x1[37 * DIM + i]);
    float in_batch[DIM];
    memcpy(in_batch, alone, sizeof alone);
    st = sampler_renoise(&ws, alone, 1, (float)t, (float)tn, &keys[37], 5);
    float *xb = ns_malloc(N * sizeof(float), "xb");
    memset(xb, 0, N * sizeof(float));
    memcpy(xb + 37 * DIM, in_batch, sizeof in_batch);
    st |= sampler_renoise(&ws, xb, B, (float)t, (float)tn, keys, 5);
    EXPECT(st == NS_OK && memcmp(alone, xb + 37 * DIM, sizeof alone) == 0,
           "renoise of a sample depends on its batch");
    free(xb);
    free(x1);
    free(x);
    sampler_workspace_free(&ws);
}

// Euler-Maruyama with the exact velocity ends near N(mu, s^2); a sample's
// trajectory is the same alone or in a (split) batch.
static void test_sde(void) {
    enum { B = 64, DIM = 1024, STEPS = 500 };
    const size_t N = (size_t)B * DIM;
    gauss_ctx g = {.mu = 1.5, .s = 0.5, .dim = DIM};
    sampler_model m = gauss_model(&g, 1, 64);
    sampler_workspace ws = {0};
    NS_CHECK(sampler_workspace_init(&ws, DIM, B) == NS_OK);
    float *x = ns_malloc(N * sizeof(float), "x"), *x0 = ns_malloc(N * sizeof(float), "x0");
    init_noise(x0, B, DIM);
    memcpy(x, x0, N * sizeof(float));
    noise_key keys[B];
    for (int b = 0; b < B; b++) keys[b] = key_of(b);
    sampler_params p = {.kind = SAMPLER_EULER_MARUYAMA, .steps = STEPS, .t_a = 0, .t_b = 1, .cfg_scale = 1};
    int nfe;
    ns_status st = sampler_run(&m, &p, &ws, x, NULL, B, keys, 0, NULL, NULL, &nfe);
    EXPECT(st == NS_OK, "sde run: %s", ns_error_message());
    double mean, var, unused;
    moments(x, x, N, &mean, &var, &unused);
    printf("euler_maruyama %d steps, N=%zu: mean %.5f (data %.2f)  var %.5f (data %.4f)  nfe %d\n",
           STEPS, N, mean, g.mu, var, g.s * g.s, nfe);
    EXPECT(fabs(mean - g.mu) < 0.01, "sde mean %g", mean);
    EXPECT(fabs(var / (g.s * g.s) - 1) < 0.05, "sde variance %g", var);
    EXPECT(nfe == STEPS, "sde nfe %d", nfe);

    // Sample 5 alone (keys[5]) vs in the full batch (noise drawn by several
    // threads: B * dim reaches the threshold) with a model taking 3 at a time.
    float alone[DIM];
    memcpy(alone, x0 + 5 * DIM, sizeof alone);
    p.steps = 20;
    sampler_model m3 = gauss_model(&g, 1, 3);
    memcpy(x, x0, N * sizeof(float));
    st = sampler_run(&m, &p, &ws, alone, NULL, 1, &keys[5], 99, NULL, NULL, NULL);
    st |= sampler_run(&m3, &p, &ws, x, NULL, B, keys, 99, NULL, NULL, NULL);
    EXPECT(st == NS_OK && memcmp(alone, x + 5 * DIM, sizeof alone) == 0,
           "sde trajectory of a sample depends on its batch");
    free(x);
    free(x0);
    sampler_workspace_free(&ws);
}

// Guidance arithmetic against a hand computation, NFE counts, and splitting
// of the doubled batch when it exceeds the model's max_batch.
static void test_cfg(void) {
    enum { B = 5, C = 4, PLANE = 16, DIM = C * PLANE };
    gauss_ctx g = {.mu = 0.2, .s = 0.8, .shift = 0.5, .dim = DIM};
    sampler_model m = gauss_model(&g, C, 64);
    sampler_workspace ws = {0};
    NS_CHECK(sampler_workspace_init(&ws, DIM, B) == NS_OK);
    float x[B * DIM], c[B * DIM], u[B * DIM], v[B * DIM], want[B * DIM];
    const float t[B] = {0.1f, 0.35f, 0.5f, 0.8f, 1.0f};
    const int y[B] = {0, 2, 1, 0, 2}, ynull[B] = {3, 3, 3, 3, 3};
    const float scale = 4.0f;
    init_noise(x, B, DIM);
    NS_CHECK(gauss_velocity(&g, c, x, t, y, B) == NS_OK);
    NS_CHECK(gauss_velocity(&g, u, x, t, ynull, B) == NS_OK);

    const int ks[2] = {3, 0};  // 3 of 4 channels (DiT/SiT); <= 0: all
    for (int ki = 0; ki < 2; ki++) {
        int guided = (ks[ki] <= 0 ? C : ks[ki]) * PLANE;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < DIM; i++) {
                int j = b * DIM + i;
                want[j] = i < guided ? u[j] + scale * (c[j] - u[j]) : c[j];
            }
        g.calls = g.rows = 0;
        int nfe;
        ns_status st = sampler_velocity_cfg(&m, &ws, v, x, t, y, B, scale, ks[ki], &nfe);
        EXPECT(st == NS_OK && memcmp(v, want, sizeof v) == 0, "guided velocity (k=%d) differs", ks[ki]);
        EXPECT(nfe == 2 && g.calls == 1 && g.rows == 2 * B, "guided: nfe %d, %ld calls, %ld rows",
               nfe, g.calls, g.rows);
        // The doubled batch (10 rows) through a model taking 3: 4 calls, same bits.
        sampler_model m3 = gauss_model(&g, C, 3);
        g.calls = 0;
        st = sampler_velocity_cfg(&m3, &ws, v, x, t, y, B, scale, ks[ki], NULL);
        EXPECT(st == NS_OK && memcmp(v, want, sizeof v) == 0, "split guided velocity differs");
        EXPECT(g.calls == 4, "split guided: %ld calls", g.calls);
    }
    g.calls = g.rows = 0;
    int nfe;
    ns_status st = sampler_velocity_cfg(&m, &ws, v, x, t, y, B, 1.0f, 3, &nfe);
    EXPECT(st == NS_OK && memcmp(v, c, sizeof v) == 0 && nfe == 1 && g.rows == B,
           "unguided: nfe %d, %ld rows", nfe, g.rows);

    // NFEs per sample for each kind, with and without guidance, against
    // sampler_nfe() and the rows the model saw; a split model changes nothing.
    const sampler_kind kinds[3] = {SAMPLER_EULER, SAMPLER_HEUN, SAMPLER_EULER_MARUYAMA};
    const int per_step[3] = {1, 2, 1};
    noise_key keys[B];
    for (int b = 0; b < B; b++) keys[b] = key_of(b);
    printf("nfe per sample (7 steps):");
    for (int kk = 0; kk < 3; kk++) {
        for (int guided = 0; guided < 2; guided++) {
            sampler_params p = {.kind = kinds[kk], .steps = 7, .t_a = 0.0f, .t_b = 1.0f,
                                .cfg_scale = guided ? 2.5f : 1.0f, .cfg_channels = 3};
            float xa[B * DIM], xb[B * DIM];
            memcpy(xa, x, sizeof x);
            memcpy(xb, x, sizeof x);
            g.rows = 0;
            st = sampler_run(&m, &p, &ws, xa, y, B, keys, 0, NULL, NULL, &nfe);
            int want_nfe = 7 * per_step[kk] * (guided ? 2 : 1);
            EXPECT(st == NS_OK && nfe == want_nfe && sampler_nfe(&p) == want_nfe && g.rows == (long)want_nfe * B,
                   "%s guided=%d: nfe %d, sampler_nfe %d, rows %ld, want %d", sampler_kind_name(kinds[kk]),
                   guided, nfe, sampler_nfe(&p), g.rows, want_nfe);
            printf(" %s%s %d", sampler_kind_name(kinds[kk]), guided ? "+cfg" : "", nfe);
            sampler_model m3 = gauss_model(&g, C, 3);
            st = sampler_run(&m3, &p, &ws, xb, y, B, keys, 0, NULL, NULL, NULL);
            EXPECT(st == NS_OK && memcmp(xa, xb, sizeof xa) == 0, "%s guided=%d: split batch differs",
                   sampler_kind_name(kinds[kk]), guided);
        }
    }
    printf("\n");

    // x1_hat: the eval variant equals the elementwise formula on the model's
    // v, and matches E[x1 | x_t] of the Gaussian data.
    float x1[B * DIM], x1_ref[B * DIM], tt[B];
    const float te = 0.6f;
    for (int b = 0; b < B; b++) tt[b] = te;
    for (int guided = 0; guided < 2; guided++) {
        float s = guided ? 2.0f : 1.0f;
        st = sampler_x1_hat_eval(&m, &ws, x1, x, te, y, B, s, 0, &nfe);
        st |= sampler_velocity_cfg(&m, &ws, v, x, tt, y, B, s, 0, NULL);
        sampler_x1_hat(x1_ref, x, v, te, B * DIM);
        EXPECT(st == NS_OK && memcmp(x1, x1_ref, sizeof x1) == 0 && nfe == 1 + guided,
               "x1_hat_eval (guided=%d): nfe %d", guided, nfe);
    }
    double worst = 0;
    st = sampler_x1_hat_eval(&m, &ws, x1, x, te, y, B, 1.0f, 0, NULL);
    for (int b = 0; b < B; b++) {
        double mu = g.mu + g.shift * y[b], var = te * te * g.s * g.s + (1 - te) * (1 - te);
        for (int i = 0; i < DIM; i++) {
            double e = mu + te * g.s * g.s / var * (x[b * DIM + i] - te * mu);
            if (fabs(x1[b * DIM + i] - e) > worst) worst = fabs(x1[b * DIM + i] - e);
        }
    }
    printf("guidance: hand-computed bits match (k=3 of 4, all); x1_hat vs E[x1|x_t]: max error %.2e\n", worst);
    EXPECT(worst < 1e-5, "x1_hat error %g", worst);
    sampler_workspace_free(&ws);
}

typedef struct {
    int calls;
    float last_t;
    int fail_at;
} step_log;

static ns_status on_step(void *user, int step, float t, const float *x, int B) {
    step_log *l = user;
    (void)x, (void)B;
    if (step != l->calls) return ns_error_set(NS_ERR_ARG, "step %d out of order", step);
    l->calls++;
    l->last_t = t;
    if (l->fail_at >= 0 && step == l->fail_at) return ns_error_set(NS_ERR_IO, "log full");
    return NS_OK;
}

static void expect_arg_error(ns_status st, const char *what) {
    EXPECT(st == NS_ERR_ARG && ns_error_message()[0], "%s: status %d", what, (int)st);
    if (st == NS_ERR_ARG) printf("  %-28s -> %s\n", what, ns_error_message());
}

static void test_errors_and_callbacks(void) {
    enum { B = 2, DIM = 8 };
    gauss_ctx g = {.mu = 1, .s = 1, .dim = DIM};
    sampler_model m = gauss_model(&g, 2, 64);
    sampler_workspace ws = {0};
    sampler_workspace_free(&ws);  // a zeroed struct is fine
    expect_arg_error(sampler_workspace_init(&ws, 0, 4), "workspace dim 0");
    NS_CHECK(sampler_workspace_init(&ws, DIM, B) == NS_OK);
    float x[B * DIM] = {0};
    const int y[B] = {0, 1};
    noise_key keys[B] = {key_of(0), key_of(1)};
    const sampler_params good = {.kind = SAMPLER_HEUN, .steps = 4, .t_a = 0, .t_b = 1, .cfg_scale = 1};
    sampler_params p;

    // Callback: once per step, t after the step, its error stops the run.
    step_log l = {.fail_at = -1};
    int nfe;
    ns_status st = sampler_run(&m, &good, &ws, x, y, B, NULL, 0, on_step, &l, &nfe);
    EXPECT(st == NS_OK && l.calls == 4 && l.last_t == 1.0f && nfe == 8, "callback: %d calls, last t %g",
           l.calls, (double)l.last_t);
    l = (step_log){.fail_at = 1};
    st = sampler_run(&m, &good, &ws, x, y, B, NULL, 0, on_step, &l, &nfe);
    EXPECT(st == NS_ERR_IO && l.calls == 2 && nfe == 4, "callback error: status %d, %d calls, nfe %d",
           (int)st, l.calls, nfe);

    printf("error returns:\n");
    p = good, p.steps = 0;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "steps 0");
    p = good, p.t_a = 0.5f, p.t_b = 0.5f;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "t_a == t_b");
    p = good, p.t_b = 1.5f;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "t_b > 1");
    p = good, p.t_a = -0.1f;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "t_a < 0");
    p = good, p.t_a = NAN;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "t_a NaN");
    p = good, p.cfg_scale = 2, p.cfg_channels = 3;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "cfg_channels > channels");
    p = good, p.cfg_scale = 2;
    expect_arg_error(sampler_run(&m, &p, &ws, x, NULL, B, NULL, 0, NULL, NULL, NULL), "guidance without labels");
    p = good, p.kind = (sampler_kind)7;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "unknown kind");
    p = good, p.kind = SAMPLER_EULER_MARUYAMA;
    expect_arg_error(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "euler_maruyama no keys");
    expect_arg_error(sampler_run(&m, &good, &ws, x, y, B + 1, NULL, 0, NULL, NULL, NULL), "B > workspace max_batch");
    expect_arg_error(sampler_run(&m, &good, &ws, x, y, 0, NULL, 0, NULL, NULL, NULL), "B = 0");
    sampler_model bad = m;
    bad.dim = 2 * DIM;
    expect_arg_error(sampler_run(&bad, &good, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "model dim != workspace");
    bad = m, bad.channels = 3;
    expect_arg_error(sampler_run(&bad, &good, &ws, x, y, B, NULL, 0, NULL, NULL, NULL), "dim not C planes");
    float v[B * DIM], tbad[B] = {0.5f, 1.25f};
    expect_arg_error(sampler_velocity_cfg(&m, &ws, v, x, tbad, y, B, 1, 0, NULL), "velocity_cfg t > 1");
    expect_arg_error(sampler_x1_hat_eval(&m, &ws, v, x, -0.5f, y, B, 1, 0, NULL), "x1_hat_eval t < 0");
    expect_arg_error(sampler_renoise(&ws, x, B, 0.5f, 0.5f, keys, 0), "renoise t' == t");
    expect_arg_error(sampler_renoise(&ws, x, B, 0.0f, 0.0f, keys, 0), "renoise t = 0");
    expect_arg_error(sampler_renoise(&ws, x, B, 1.5f, 0.2f, keys, 0), "renoise t > 1");
    expect_arg_error(sampler_renoise(&ws, x, B, 0.5f, -0.2f, keys, 0), "renoise t' < 0");
    expect_arg_error(sampler_renoise(&ws, x, B, 0.5f, 0.2f, NULL, 0), "renoise without keys");

    // A failing model call propagates its status and message; NFEs so far.
    g.calls = 0, g.fail_at_call = 3;
    st = sampler_run(&m, &good, &ws, x, y, B, NULL, 0, NULL, NULL, &nfe);
    EXPECT(st == NS_ERR_IO && strstr(ns_error_message(), "injected") && nfe == 2,
           "model error: status %d, nfe %d, message '%s'", (int)st, nfe, ns_error_message());
    g.fail_at_call = 0;

    // Euler-Maruyama with one step is drift-only and needs no keys.
    p = good, p.kind = SAMPLER_EULER_MARUYAMA, p.steps = 1;
    EXPECT(sampler_run(&m, &p, &ws, x, y, B, NULL, 0, NULL, NULL, NULL) == NS_OK, "one-step SDE");

    sampler_kind k;
    const sampler_kind kinds[3] = {SAMPLER_EULER, SAMPLER_HEUN, SAMPLER_EULER_MARUYAMA};
    for (int i = 0; i < 3; i++)
        EXPECT(sampler_kind_from_name(sampler_kind_name(kinds[i]), &k) == 0 && k == kinds[i],
               "kind name round trip %d", i);
    EXPECT(sampler_kind_from_name("rk4", &k) == -1, "unknown kind name accepted");
    EXPECT(strcmp(sampler_kind_name(SAMPLER_EULER_MARUYAMA), "euler_maruyama") == 0, "kind name");
    sampler_workspace_free(&ws);
    sampler_workspace_free(&ws);  // freeing twice is harmless: free leaves it zeroed
}

int main(void) {
    test_convergence();
    test_subintervals();
    test_renoise();
    test_sde();
    test_cfg();
    test_errors_and_callbacks();
    if (failures) {
        printf("test_sampler: %d FAILED\n", failures);
        return 1;
    }
    printf("test_sampler: all passed\n");
    return 0;
}

// Set-level evaluation metrics (see metrics.h): Gaussian statistics, FID and
// its greedy incremental form, KID, Inception Score, precision/recall and
// class accuracy. Statistics, traces and kernel sums are accumulated in
// double; large products of float features (distances, KID kernels) go
// through gemm_nt; eigensolves through LAPACKE_dsyevd. Every OpenMP loop
// gives each output element to one thread with a fixed summation order, so
// results do not depend on the thread count. No MPI, no YAML.
#include "metrics.h"

#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/h5util.h"
#include "../model/gemm.h"
#include "../model/noise.h"

// Rows of centred features per pass in metrics_gaussian_add: (ADD_BLOCK,d)
// doubles stay in L2 while each row of the scatter is updated from them.
#define ADD_BLOCK 64
// Largest distance block, in floats (16 MB).
#define DIST_BLOCK_FLOATS (4L << 20)

static int doubles_finite(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

static long floats_first_nonfinite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long)i;
    return -1;
}

static double mean_of(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s / n;
}

// Population standard deviation (ddof 0) about mean.
static double std_of(const double *v, int n, double mean) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - mean) * (v[i] - mean);
    return sqrt(s / n);
}

// ---------------------------------------------------------------------------
// Symmetric PSD linear algebra for the Fréchet trace term.

// A PSD matrix as W W^T: cov = U L U^T (LAPACKE_dsyevd), W = U L^{1/2},
// eigenvalues clamped at 0. W: (d,d) out; ev: (d,) scratch; cov: (d,d).
static ns_status psd_factor(double *W, double *ev, const double *cov, int d) {
    size_t dd = (size_t)d * d;
    if (!doubles_finite(cov, dd)) return ns_error_set(NS_ERR_ARG, "covariance has a non-finite entry");
    memcpy(W, cov, dd * sizeof *W);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, W, d, ev);
    if (info == LAPACK_WORK_MEMORY_ERROR) return ns_error_set(NS_ERR_NOMEM, "eigendecomposition (d = %d): out of memory", d);
    NS_CHECK(info >= 0);
    if (info > 0) return ns_error_set(NS_ERR_ARG, "eigendecomposition of a %d x %d covariance did not converge", d, d);
    for (int k = 0; k < d; k++) ev[k] = ev[k] > 0 ? sqrt(ev[k]) : 0.0;
    for (int i = 0; i < d; i++)
        for (int k = 0; k < d; k++) W[(size_t)i * d + k] *= ev[k];
    return NS_OK;
}

// Upper triangle (l >= k) of M = W^T S W. M, W, S, T: (d,d); S symmetric,
// all of it read; T scratch (holds S W).
static void congruence(double *M, const double *W, const double *S, double *T, int d) {
#pragma omp parallel for schedule(static) if (d >= 64)
    for (int i = 0; i < d; i++) {
        double *t = T + (size_t)i * d;
        for (int k = 0; k < d; k++) t[k] = 0;
        for (int j = 0; j < d; j++) {
            double s = S[(size_t)i * d + j];
            const double *w = W + (size_t)j * d;
            for (int k = 0; k < d; k++) t[k] += s * w[k];
        }
    }
#pragma omp parallel for schedule(dynamic, 8) if (d >= 64)
    for (int k = 0; k < d; k++) {
        double *m = M + (size_t)k * d;
        for (int l = k; l < d; l++) m[l] = 0;
        for (int i = 0; i < d; i++) {
            double a = W[(size_t)i * d + k];
            const double *t = T + (size_t)i * d;
            for (int l = k; l < d; l++) m[l] += a * t[l];
        }
    }
}

// sum_i sqrt(max(eig_i(M), 0)) for symmetric M given by its upper triangle
// (destroyed). ev: (d,) scratch.
static ns_status trace_sqrt_psd(double *out, double *M, double *ev, int d) {
    for (int k = 0; k < d; k++)
        if (!doubles_finite(M + (size_t)k * d + k, (size_t)(d - k)))
            return ns_error_set(NS_ERR_ARG, "Fréchet trace term: non-finite value (features too large?)");
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', d, M, d, ev);
    if (info == LAPACK_WORK_MEMORY_ERROR) return ns_error_set(NS_ERR_NOMEM, "eigenvalues (d = %d): out of memory", d);
    NS_CHECK(info >= 0);
    if (info > 0) return ns_error_set(NS_ERR_ARG, "eigenvalues of a %d x %d matrix did not converge", d, d);
    double s = 0;
    for (int k = 0; k < d; k++) s += ev[k] > 0 ? sqrt(ev[k]) : 0.0;
    *out = s;
    return NS_OK;
}

// ---------------------------------------------------------------------------
// Gaussian statistics.

ns_status metrics_gaussian_init(metrics_gaussian *g, int dim) {
    memset(g, 0, sizeof *g);
    g->cov_count = -1;
    if (dim < 1) return ns_error_set(NS_ERR_ARG, "Gaussian statistics: dimension must be >= 1 (got %d)", dim);
    size_t dd = (size_t)dim * dim;
    g->dim = dim;
    g->mean = ns_calloc((size_t)dim, sizeof(double), "gaussian mean");
    g->cov = ns_calloc(dd, sizeof(double), "gaussian cov");
    g->scatter = ns_calloc(dd, sizeof(double), "gaussian scatter");
    return NS_OK;
}

void metrics_gaussian_free(metrics_gaussian *g) {
    free(g->mean);
    free(g->cov);
    free(g->scatter);
    memset(g, 0, sizeof *g);
    g->cov_count = -1;
}

ns_status metrics_gaussian_add(metrics_gaussian *g, const float *x, long n) {
    NS_CHECK(g->mean && g->scatter && g->dim >= 1);
    if (n < 0) return ns_error_set(NS_ERR_ARG, "Gaussian statistics: negative sample count %ld", n);
    if (n == 0) return NS_OK;
    NS_CHECK(x != NULL);
    const int d = g->dim;
    long bad = floats_first_nonfinite(x, (size_t)n * d);
    if (bad >= 0)
        return ns_error_set(NS_ERR_ARG, "Gaussian statistics: feature (%ld, %ld) is not finite", bad / d, bad % d);

    double *buf = ns_malloc((size_t)(2 + ADD_BLOCK) * d * sizeof(double), "gaussian chunk");
    double *cm = buf, *delta = buf + d, *c = buf + 2 * (size_t)d;  // (d,), (d,), (ADD_BLOCK,d)
    for (int j = 0; j < d; j++) cm[j] = 0;
    for (long r = 0; r < n; r++)
        for (int j = 0; j < d; j++) cm[j] += x[(size_t)r * d + j];
    for (int j = 0; j < d; j++) cm[j] /= (double)n;

    // Scatter of the chunk about its own mean, added into the upper triangle.
    for (long r0 = 0; r0 < n; r0 += ADD_BLOCK) {
        int rows = n - r0 < ADD_BLOCK ? (int)(n - r0) : ADD_BLOCK;
        for (int rr = 0; rr < rows; rr++)
            for (int j = 0; j < d; j++) c[(size_t)rr * d + j] = (double)x[(size_t)(r0 + rr) * d + j] - cm[j];
#pragma omp parallel for schedule(dynamic, 16) if (d >= 64)
        for (int i = 0; i < d; i++) {
            double *srow = g->scatter + (size_t)i * d;
            for (int rr = 0; rr < rows; rr++) {
                const double *crow = c + (size_t)rr * d;
                double a = crow[i];
                for (int j = i; j < d; j++) srow[j] += a * crow[j];
            }
        }
    }

    // Chan et al. merge of (count, mean, scatter) with the chunk (n, cm, .):
    // scatter += nA n / N delta delta^T, mean += n / N delta.
    long total = g->count + n;
    double f = (double)g->count * (double)n / (double)total;
    for (int i = 0; i < d; i++) delta[i] = cm[i] - g->mean[i];
    for (int i = 0; i < d; i++) {
        double *srow = g->scatter + (size_t)i * d;
        double a = f * delta[i];
        for (int j = i; j < d; j++) srow[j] += a * delta[j];
    }
    for (int i = 0; i < d; i++) g->mean[i] += delta[i] * ((double)n / (double)total);
    g->count = total;
    free(buf);
    return NS_OK;
}

ns_status metrics_gaussian_finish(metrics_gaussian *g) {
    NS_CHECK(g->cov && g->scatter && g->dim >= 1);
    if (g->count < 2)
        return ns_error_set(NS_ERR_ARG, "Gaussian statistics need at least 2 samples for a covariance (have %ld)",
                            g->count);
    const int d = g->dim;
    double inv = 1.0 / (double)(g->count - 1);
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            double v = g->scatter[(size_t)i * d + j] * inv;
            g->cov[(size_t)i * d + j] = v;
            g->cov[(size_t)j * d + i] = v;
        }
    g->cov_count = g->count;
    return NS_OK;
}

static int gaussian_finished(const metrics_gaussian *g) {
    return g->cov && g->count >= 2 && g->cov_count == g->count;
}

ns_status metrics_gaussian_write(hid_t loc, const char *path, const char *group, const metrics_gaussian *g) {
    if (!gaussian_finished(g))
        return ns_error_set(NS_ERR_ARG, "%s: statistics for group '%s' are not finished (count %ld, covariance of %ld)",
                            path, group, g->count, g->cov_count);
    char where[4400];
    snprintf(where, sizeof where, "%s:/%s", path, group);
    hid_t lcpl = H5I_INVALID_HID, grp = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        lcpl = H5Pcreate(H5P_LINK_CREATE);
        if (lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0)
            grp = H5Gcreate2(loc, group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (lcpl >= 0) H5Pclose(lcpl);
    }
    H5E_END_TRY;
    if (grp < 0) return ns_error_set(NS_ERR_IO, "%s: cannot create group '%s' (exists already?)", path, group);
    hsize_t dims[2] = {(hsize_t)g->dim, (hsize_t)g->dim};
    ns_status st = h5u_write_doubles(grp, where, "mean", 1, dims, g->mean);
    if (!st) st = h5u_write_doubles(grp, where, "cov", 2, dims, g->cov);
    if (!st) st = h5u_attr_write_int(grp, where, "count", g->count);
    H5E_BEGIN_TRY { H5Gclose(grp); }
    H5E_END_TRY;
    return st;
}

ns_status metrics_gaussian_read(metrics_gaussian *g, hid_t loc, const char *path, const char *group) {
    memset(g, 0, sizeof *g);
    g->cov_count = -1;
    char where[4400];
    snprintf(where, sizeof where, "%s:/%s", path, group);
    hid_t grp;
    H5E_BEGIN_TRY { grp = H5Gopen2(loc, group, H5P_DEFAULT); }
    H5E_END_TRY;
    if (grp < 0) return ns_error_set(NS_ERR_FORMAT, "%s: missing group '%s' (not a statistics file?)", path, group);
    double *mean = NULL, *cov = NULL;
    hsize_t dm[1] = {0}, dc[2] = {0, 0};
    int count = 0;
    ns_status st = h5u_read_doubles(grp, where, "mean", 1, dm, &mean);
    if (!st) st = h5u_read_doubles(grp, where, "cov", 2, dc, &cov);
    if (!st) st = h5u_attr_read_int(grp, where, "count", &count);
    if (!st && (dm[0] < 1 || dm[0] > INT_MAX))
        st = ns_error_set(NS_ERR_FORMAT, "%s: dataset 'mean' has length %llu", where, (unsigned long long)dm[0]);
    if (!st && (dc[0] != dm[0] || dc[1] != dm[0]))
        st = ns_error_set(NS_ERR_FORMAT, "%s: dataset 'cov' has shape [%llu,%llu], expected [%llu,%llu] to match 'mean'",
                          where, (unsigned long long)dc[0], (unsigned long long)dc[1], (unsigned long long)dm[0],
                          (unsigned long long)dm[0]);
    if (!st && count < 2)
        st = ns_error_set(NS_ERR_FORMAT, "%s: attribute 'count' is %d, a covariance needs at least 2", where, count);
    if (!st && (!doubles_finite(mean, dm[0]) || !doubles_finite(cov, dm[0] * dm[0])))
        st = ns_error_set(NS_ERR_FORMAT, "%s: 'mean' or 'cov' has a non-finite entry", where);
    if (!st) {
        int d = (int)dm[0];
        double scale = 0;
        for (int i = 0; i < d; i++) scale = fmax(scale, fabs(cov[(size_t)i * d + i]));
        for (int i = 0; i < d && !st; i++)
            for (int j = i + 1; j < d && !st; j++)
                if (fabs(cov[(size_t)i * d + j] - cov[(size_t)j * d + i]) > 1e-6 * scale)
                    st = ns_error_set(NS_ERR_FORMAT, "%s: dataset 'cov' is not symmetric (entry [%d,%d])", where, i, j);
    }
    if (!st) st = metrics_gaussian_init(g, (int)dm[0]);
    if (!st) {
        size_t dd = (size_t)g->dim * g->dim;
        memcpy(g->mean, mean, (size_t)g->dim * sizeof(double));
        memcpy(g->cov, cov, dd * sizeof(double));
        for (size_t i = 0; i < dd; i++) g->scatter[i] = cov[i] * (double)(count - 1);
        g->count = count;
        g->cov_count = count;
    }
    H5E_BEGIN_TRY { H5Gclose(grp); }
    H5E_END_TRY;
    free(mean);
    free(cov);
    return st;
}

ns_status metrics_gaussian_save(const metrics_gaussian *g, const char *path, const char *group) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, path);
    if (st) return st;
    st = metrics_gaussian_write(out.file, path, group, g);
    return h5u_atomic_finish(&out, st);
}

ns_status metrics_gaussian_load(metrics_gaussian *g, const char *path, const char *group) {
    memset(g, 0, sizeof *g);
    g->cov_count = -1;
    hid_t file;
    ns_status st = h5u_open_read(&file, path);
    if (st) return st;
    st = metrics_gaussian_read(g, file, path, group);
    h5u_close_file(file);
    return st;
}

// ---------------------------------------------------------------------------
// Fréchet distance.

ns_status metrics_frechet_distance(double *out, int d, const double *mu1, const double *cov1, const double *mu2,
                                   const double *cov2) {
    if (d < 1) return ns_error_set(NS_ERR_ARG, "Fréchet distance: dimension must be >= 1 (got %d)", d);
    size_t dd = (size_t)d * d;
    if (!doubles_finite(mu1, (size_t)d) || !doubles_finite(mu2, (size_t)d) || !doubles_finite(cov2, dd))
        return ns_error_set(NS_ERR_ARG, "Fréchet distance: a mean or covariance has a non-finite entry");
    double *buf = ns_malloc((3 * dd + (size_t)d) * sizeof(double), "frechet");
    double *W = buf, *T = buf + dd, *M = buf + 2 * dd, *ev = buf + 3 * dd;  // (d,d) x3, (d,)
    double trsqrt = 0;
    ns_status st = psd_factor(W, ev, cov1, d);
    if (!st) {
        congruence(M, W, cov2, T, d);
        st = trace_sqrt_psd(&trsqrt, M, ev, d);
    }
    if (!st) {
        double diff = 0, tr1 = 0, tr2 = 0;
        for (int i = 0; i < d; i++) {
            diff += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
            tr1 += cov1[(size_t)i * d + i];
            tr2 += cov2[(size_t)i * d + i];
        }
        *out = diff + tr1 + tr2 - 2.0 * trsqrt;
    }
    free(buf);
    return st;
}

ns_status metrics_fid(double *out, const metrics_gaussian *a, const metrics_gaussian *b) {
    if (!gaussian_finished(a) || !gaussian_finished(b))
        return ns_error_set(NS_ERR_ARG,
                            "FID: statistics not finished (counts %ld and %ld, covariances of %ld and %ld samples)",
                            a->count, b->count, a->cov_count, b->cov_count);
    if (a->dim != b->dim) return ns_error_set(NS_ERR_ARG, "FID: feature dimensions differ (%d and %d)", a->dim, b->dim);
    return metrics_frechet_distance(out, a->dim, a->mean, a->cov, b->mean, b->cov);
}

// ---------------------------------------------------------------------------
// Greedy incremental FID.

void metrics_fid_greedy_free(metrics_fid_greedy *s) {
    free(s->ref_mean);
    free(s->ref_factor);
    free(s->mean);
    free(s->proj_scatter);
    free(s->work);
    memset(s, 0, sizeof *s);
}

ns_status metrics_fid_greedy_init(metrics_fid_greedy *s, const metrics_gaussian *ref,
                                  const metrics_gaussian *selected) {
    memset(s, 0, sizeof *s);
    if (!gaussian_finished(ref))
        return ns_error_set(NS_ERR_ARG, "greedy FID: reference statistics not finished (count %ld)", ref->count);
    if (selected && selected->dim != ref->dim)
        return ns_error_set(NS_ERR_ARG, "greedy FID: selected set has dimension %d, reference %d", selected->dim,
                            ref->dim);
    const int d = ref->dim;
    size_t dd = (size_t)d * d;
    s->dim = d;
    s->ref_mean = ns_malloc((size_t)d * sizeof(double), "greedy ref mean");
    s->ref_factor = ns_malloc(dd * sizeof(double), "greedy ref factor");
    s->mean = ns_calloc((size_t)d, sizeof(double), "greedy mean");
    s->proj_scatter = ns_calloc(dd, sizeof(double), "greedy projected scatter");
    s->work = ns_malloc((dd + 3 * (size_t)d) * sizeof(double), "greedy work");
    memcpy(s->ref_mean, ref->mean, (size_t)d * sizeof(double));
    for (int i = 0; i < d; i++) s->ref_trace += ref->cov[(size_t)i * d + i];
    ns_status st = psd_factor(s->ref_factor, s->work, ref->cov, d);
    if (!st && selected && selected->count > 0) {
        double *S = ns_malloc(2 * dd * sizeof(double), "greedy selected scatter");  // (d,d) full S, then T
        for (int i = 0; i < d; i++)
            for (int j = i; j < d; j++)
                S[(size_t)i * d + j] = S[(size_t)j * d + i] = selected->scatter[(size_t)i * d + j];
        congruence(s->proj_scatter, s->ref_factor, S, S + dd, d);
        for (int i = 0; i < d; i++) s->scatter_trace += S[(size_t)i * d + i];
        memcpy(s->mean, selected->mean, (size_t)d * sizeof(double));
        s->count = selected->count;
        free(S);
    }
    if (st) metrics_fid_greedy_free(s);
    return st;
}

// delta = x - mean, w = W^T delta; returns |delta|^2. delta, w: (d,).
static double greedy_project(const metrics_fid_greedy *s, double *delta, double *w, const float *x) {
    const int d = s->dim;
    double n2 = 0;
    for (int i = 0; i < d; i++) {
        delta[i] = (double)x[i] - s->mean[i];
        n2 += delta[i] * delta[i];
    }
    for (int k = 0; k < d; k++) w[k] = 0;
    for (int i = 0; i < d; i++) {
        const double *wrow = s->ref_factor + (size_t)i * d;
        double a = delta[i];
        for (int k = 0; k < d; k++) w[k] += a * wrow[k];
    }
    return n2;
}

ns_status metrics_fid_greedy_score(metrics_fid_greedy *s, double *fid, const float *cand, int n) {
    NS_CHECK(s->work && s->dim >= 1);
    if (n < 1) return ns_error_set(NS_ERR_ARG, "greedy FID: need at least one candidate (got %d)", n);
    const int d = s->dim;
    size_t dd = (size_t)d * d;
    double *M = s->work, *delta = M + dd, *w = delta + d, *ev = w + d;  // (d,d), (d,) x3
    const double cnt = (double)s->count;
    const double coef = cnt / (cnt + 1.0);  // S' = S + coef delta delta^T
    const double div = s->count > 0 ? cnt : 1.0;  // C' = S' / max(n, 1)
    for (int c = 0; c < n; c++) {
        const float *x = cand + (size_t)c * d;
        long bad = floats_first_nonfinite(x, (size_t)d);
        if (bad >= 0) return ns_error_set(NS_ERR_ARG, "greedy FID: candidate %d feature %ld is not finite", c, bad);
        double n2 = greedy_project(s, delta, w, x);
        for (int k = 0; k < d; k++) {
            const double *p = s->proj_scatter + (size_t)k * d;
            double *m = M + (size_t)k * d;
            double a = coef * w[k];
            for (int l = k; l < d; l++) m[l] = (p[l] + a * w[l]) / div;
        }
        double trsqrt;
        ns_status st = trace_sqrt_psd(&trsqrt, M, ev, d);
        if (st) return st;
        double diff = 0;
        for (int i = 0; i < d; i++) {
            double mi = s->mean[i] + delta[i] / (cnt + 1.0);
            diff += (s->ref_mean[i] - mi) * (s->ref_mean[i] - mi);
        }
        double trc = (s->scatter_trace + coef * n2) / div;
        fid[c] = diff + s->ref_trace + trc - 2.0 * trsqrt;
    }
    return NS_OK;
}

ns_status metrics_fid_greedy_add(metrics_fid_greedy *s, const float *x) {
    NS_CHECK(s->work && s->dim >= 1);
    const int d = s->dim;
    long bad = floats_first_nonfinite(x, (size_t)d);
    if (bad >= 0) return ns_error_set(NS_ERR_ARG, "greedy FID: feature %ld of the added sample is not finite", bad);
    double *delta = s->work + (size_t)d * d, *w = delta + d;
    const double cnt = (double)s->count, coef = cnt / (cnt + 1.0);
    double n2 = greedy_project(s, delta, w, x);
    for (int k = 0; k < d; k++) {
        double *p = s->proj_scatter + (size_t)k * d;
        double a = coef * w[k];
        for (int l = k; l < d; l++) p[l] += a * w[l];
    }
    s->scatter_trace += coef * n2;
    for (int i = 0; i < d; i++) s->mean[i] += delta[i] / (cnt + 1.0);
    s->count++;
    return NS_OK;
}

// ---------------------------------------------------------------------------
// KID.

// idx: (m,) m distinct rows of [0, n): the first m of a Fisher-Yates shuffle
// driven by noise_uniform(key, first + i). perm: (n,) scratch.
static void draw_subset(int *idx, int *perm, int n, int m, noise_key key, uint64_t first) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = 0; i < m; i++) {
        int j = i + (int)(noise_uniform(key, first + (uint64_t)i) * (double)(n - i));
        NS_CHECK(j >= i && j < n);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        idx[i] = perm[i];
    }
}

// sum over entries of (G_ij / d + 1)^3, the diagonal skipped if off_diagonal.
// G: (m,m).
static double poly_kernel_sum(const float *G, int m, int d, int off_diagonal) {
    double s = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            if (off_diagonal && i == j) continue;
            double t = (double)G[(size_t)i * m + j] / d + 1.0;
            s += t * t * t;
        }
    return s;
}

ns_status metrics_kid_subsets(double *mmd2, const float *x, int nx, const float *y, int ny, int d,
                              const int *idx_x, const int *idx_y, int subsets, int m) {
    if (d < 1 || subsets < 1 || m < 2)
        return ns_error_set(NS_ERR_ARG, "KID: need d >= 1, subsets >= 1, subset size >= 2 (got %d, %d, %d)", d,
                            subsets, m);
    if (m > nx || m > ny)
        return ns_error_set(NS_ERR_ARG, "KID: subset size %d exceeds a set (sizes %d and %d)", m, nx, ny);
    if (floats_first_nonfinite(x, (size_t)nx * d) >= 0 || floats_first_nonfinite(y, (size_t)ny * d) >= 0)
        return ns_error_set(NS_ERR_ARG, "KID: a feature is not finite");
    for (size_t i = 0; i < (size_t)subsets * m; i++) {
        if (idx_x[i] < 0 || idx_x[i] >= nx || idx_y[i] < 0 || idx_y[i] >= ny)
            return ns_error_set(NS_ERR_ARG, "KID: subset %zu index (%d, %d) outside the sets (sizes %d and %d)",
                                i / (size_t)m, idx_x[i], idx_y[i], nx, ny);
    }
    float *X = ns_malloc((size_t)m * d * sizeof(float), "kid subset x");  // (m,d)
    float *Y = ns_malloc((size_t)m * d * sizeof(float), "kid subset y");  // (m,d)
    float *G = ns_malloc((size_t)m * m * sizeof(float), "kid gram");      // (m,m)
    for (int s = 0; s < subsets; s++) {
        const int *ix = idx_x + (size_t)s * m, *iy = idx_y + (size_t)s * m;
        for (int i = 0; i < m; i++) {
            memcpy(X + (size_t)i * d, x + (size_t)ix[i] * d, (size_t)d * sizeof(float));
            memcpy(Y + (size_t)i * d, y + (size_t)iy[i] * d, (size_t)d * sizeof(float));
        }
        gemm_nt(G, m, X, d, X, m, m, d, 0.0f, 0);
        double sxx = poly_kernel_sum(G, m, d, 1);
        gemm_nt(G, m, Y, d, Y, m, m, d, 0.0f, 0);
        double syy = poly_kernel_sum(G, m, d, 1);
        gemm_nt(G, m, X, d, Y, m, m, d, 0.0f, 0);
        double sxy = poly_kernel_sum(G, m, d, 0);
        mmd2[s] = (sxx + syy) / ((double)m * (m - 1)) - 2.0 * sxy / ((double)m * m);
    }
    free(X);
    free(Y);
    free(G);
    return NS_OK;
}

ns_status metrics_kid(double *mean, double *std, const float *x, int nx, const float *y, int ny, int d,
                      int subsets, int subset_size, uint64_t seed) {
    if (subsets < 1 || subset_size < 2)
        return ns_error_set(NS_ERR_ARG, "KID: need subsets >= 1 and subset size >= 2 (got %d, %d)", subsets,
                            subset_size);
    int m = subset_size;
    if (m > nx) m = nx;
    if (m > ny) m = ny;
    if (m < 2) return ns_error_set(NS_ERR_ARG, "KID: each set needs at least 2 samples (sizes %d and %d)", nx, ny);
    int *idx_x = ns_malloc((size_t)subsets * m * sizeof(int), "kid idx x");  // (subsets,m)
    int *idx_y = ns_malloc((size_t)subsets * m * sizeof(int), "kid idx y");  // (subsets,m)
    int *perm = ns_malloc((size_t)(nx > ny ? nx : ny) * sizeof(int), "kid perm");
    double *mmd2 = ns_malloc((size_t)subsets * sizeof(double), "kid mmd");
    for (int s = 0; s < subsets; s++) {
        draw_subset(idx_x + (size_t)s * m, perm, nx, m, (noise_key){seed, 0}, (uint64_t)s * m);
        draw_subset(idx_y + (size_t)s * m, perm, ny, m, (noise_key){seed, 1}, (uint64_t)s * m);
    }
    ns_status st = metrics_kid_subsets(mmd2, x, nx, y, ny, d, idx_x, idx_y, subsets, m);
    if (!st) {
        *mean = mean_of(mmd2, subsets);
        *std = std_of(mmd2, subsets, *mean);
    }
    free(idx_x);
    free(idx_y);
    free(perm);
    free(mmd2);
    return st;
}

// ---------------------------------------------------------------------------
// Inception Score.

ns_status metrics_inception_score(double *mean, double *std, const float *probs, int n, int K, int splits) {
    if (K < 1 || splits < 1 || n < splits)
        return ns_error_set(NS_ERR_ARG, "Inception Score: need K >= 1 and n >= splits >= 1 (got K %d, n %d, splits %d)",
                            K, n, splits);
    for (int r = 0; r < n; r++) {
        const float *p = probs + (size_t)r * K;
        double sum = 0;
        for (int j = 0; j < K; j++) {
            if (!(p[j] >= 0.0f) || !isfinite(p[j]))
                return ns_error_set(NS_ERR_ARG, "Inception Score: probability (%d, %d) = %g is not in [0, 1]", r, j,
                                    (double)p[j]);
            sum += p[j];
        }
        if (fabs(sum - 1.0) > 1e-3)
            return ns_error_set(NS_ERR_ARG, "Inception Score: row %d sums to %.6f, not 1 (logits instead of probabilities?)",
                                r, sum);
    }
    const int q = n / splits;
    uint32_t *perm = ns_malloc((size_t)n * sizeof(uint32_t), "is order");
    noise_permutation(perm, n, (noise_key){METRICS_IS_SHUFFLE_SEED, 0});
    double *lpy = ns_malloc((size_t)K * sizeof(double), "is marginal");  // (K,) log p(y) of the split
    double *scores = ns_malloc((size_t)splits * sizeof(double), "is splits");
    for (int s = 0; s < splits; s++) {
        const uint32_t *rows = perm + (size_t)s * q;  // (q,) the split's rows
        for (int j = 0; j < K; j++) lpy[j] = 0;
        for (int r = 0; r < q; r++)
            for (int j = 0; j < K; j++) lpy[j] += probs[(size_t)rows[r] * K + j];
        for (int j = 0; j < K; j++) lpy[j] = log(lpy[j] / q);
        double kl = 0;  // sum over rows of KL(p(y|x) || p(y)), with 0 log 0 = 0
        for (int r = 0; r < q; r++)
            for (int j = 0; j < K; j++) {
                double p = probs[(size_t)rows[r] * K + j];
                if (p > 0) kl += p * (log(p) - lpy[j]);
            }
        scores[s] = exp(kl / q);
    }
    *mean = mean_of(scores, splits);
    *std = std_of(scores, splits, *mean);
    free(perm);
    free(lpy);
    free(scores);
    return NS_OK;
}

// ---------------------------------------------------------------------------
// Precision and recall.

static void row_norms(double *out, const float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)x[(size_t)i * d + k] * x[(size_t)i * d + k];
        out[i] = s;
    }
}

// out: (m,n) squared distances of rows a (m,d) to rows b (n,d), given their
// squared norms na (m,), nb (n,).
static void sq_distances_block(float *out, const float *a, const double *na, int m, const float *b,
                               const double *nb, int n, int d) {
    gemm_nt(out, n, a, d, b, m, n, d, 0.0f, 0);
#pragma omp parallel for schedule(static) if ((long)m * n >= 65536)
    for (int i = 0; i < m; i++) {
        float *row = out + (size_t)i * n;
        for (int j = 0; j < n; j++) {
            double v = na[i] + nb[j] - 2.0 * (double)row[j];
            row[j] = v > 0 ? (float)v : 0.0f;
        }
    }
}

static int pick_block_rows(int block_rows, int rows, int cols) {
    if (block_rows <= 0) {
        long b = DIST_BLOCK_FLOATS / cols;
        block_rows = b < 1 ? 1 : b > INT_MAX ? INT_MAX : (int)b;
    }
    return block_rows < rows ? block_rows : rows;
}

void metrics_sq_distances(float *out, const float *a, int m, const float *b, int n, int d) {
    NS_CHECK(m >= 1 && n >= 1 && d >= 1);
    double *na = ns_malloc((size_t)(m + n) * sizeof(double), "distance norms"), *nb = na + m;
    row_norms(na, a, m, d);
    row_norms(nb, b, n, d);
    sq_distances_block(out, a, na, m, b, nb, n, d);
    free(na);
}

// The k-th smallest of row (n,) leaving out index skip, by insertion into the
// sorted best (k,).
static float kth_smallest(const float *row, int n, int skip, int k, float *best) {
    int filled = 0;
    for (int j = 0; j < n; j++) {
        if (j == skip) continue;
        float v = row[j];
        if (filled == k && !(v < best[k - 1])) continue;
        int pos = filled < k ? filled++ : k - 1;
        while (pos > 0 && best[pos - 1] > v) {
            best[pos] = best[pos - 1];
            pos--;
        }
        best[pos] = v;
    }
    return best[k - 1];
}

ns_status metrics_knn_radii(float *radii2, const float *x, int n, int d, int k, int block_rows) {
    if (d < 1 || k < 1 || n <= k)
        return ns_error_set(NS_ERR_ARG, "k-NN radii: need d >= 1, k >= 1 and more than k points (d %d, k %d, n %d)", d,
                            k, n);
    int rows = pick_block_rows(block_rows, n, n);
    double *norms = ns_malloc((size_t)n * sizeof(double), "knn norms");
    float *D = ns_malloc((size_t)rows * n * sizeof(float), "knn distances");  // (rows,n)
    float *best = ns_malloc((size_t)rows * k * sizeof(float), "knn best");   // (rows,k)
    row_norms(norms, x, n, d);
    for (int r0 = 0; r0 < n; r0 += rows) {
        int nb = n - r0 < rows ? n - r0 : rows;
        sq_distances_block(D, x + (size_t)r0 * d, norms + r0, nb, x, norms, n, d);
#pragma omp parallel for schedule(static) if ((long)nb * n >= 65536)
        for (int i = 0; i < nb; i++)
            radii2[r0 + i] = kth_smallest(D + (size_t)i * n, n, r0 + i, k, best + (size_t)i * k);
    }
    free(norms);
    free(D);
    free(best);
    return NS_OK;
}

ns_status metrics_manifold_fraction(double *fraction, const float *query, int nq, const float *points,
                                    const float *radii2, int np, int d, int block_rows) {
    if (d < 1 || nq < 1 || np < 1)
        return ns_error_set(NS_ERR_ARG, "manifold fraction: need d, query and point counts >= 1 (got %d, %d, %d)", d,
                            nq, np);
    int rows = pick_block_rows(block_rows, nq, np);
    double *nqn = ns_malloc((size_t)(nq + np) * sizeof(double), "manifold norms"), *npn = nqn + nq;
    float *D = ns_malloc((size_t)rows * np * sizeof(float), "manifold distances");  // (rows,np)
    row_norms(nqn, query, nq, d);
    row_norms(npn, points, np, d);
    long inside = 0;
    for (int r0 = 0; r0 < nq; r0 += rows) {
        int nb = nq - r0 < rows ? nq - r0 : rows;
        sq_distances_block(D, query + (size_t)r0 * d, nqn + r0, nb, points, npn, np, d);
#pragma omp parallel for schedule(static) reduction(+ : inside) if ((long)nb * np >= 65536)
        for (int i = 0; i < nb; i++) {
            const float *row = D + (size_t)i * np;
            for (int j = 0; j < np; j++)
                if (row[j] <= radii2[j]) {
                    inside++;
                    break;
                }
        }
    }
    *fraction = (double)inside / nq;
    free(nqn);
    free(D);
    return NS_OK;
}

ns_status metrics_precision_recall(double *precision, double *recall, const float *real, int n_real,
                                   const float *fake, int n_fake, int d, int k) {
    if (d < 1 || k < 1 || n_real <= k || n_fake <= k)
        return ns_error_set(NS_ERR_ARG,
                            "precision/recall with k = %d needs d >= 1 and more than k samples in each set "
                            "(d %d, real %d, fake %d)",
                            k, d, n_real, n_fake);
    if (floats_first_nonfinite(real, (size_t)n_real * d) >= 0 || floats_first_nonfinite(fake, (size_t)n_fake * d) >= 0)
        return ns_error_set(NS_ERR_ARG, "precision/recall: a feature is not finite");
    float *r_real = ns_malloc((size_t)n_real * sizeof(float), "real radii");
    float *r_fake = ns_malloc((size_t)n_fake * sizeof(float), "fake radii");
    ns_status st = metrics_knn_radii(r_real, real, n_real, d, k, 0);
    if (!st) st = metrics_knn_radii(r_fake, fake, n_fake, d, k, 0);
    if (!st) st = metrics_manifold_fraction(precision, fake, n_fake, real, r_real, n_real, d, 0);
    if (!st) st = metrics_manifold_fraction(recall, real, n_real, fake, r_fake, n_fake, d, 0);
    free(r_real);
    free(r_fake);
    return st;
}

// ---------------------------------------------------------------------------

ns_status metrics_class_accuracy(double *accuracy, int *confusion, const float *scores, const int *labels, int n,
                                 int K) {
    if (n < 1 || K < 1) return ns_error_set(NS_ERR_ARG, "class accuracy: need n >= 1 and K >= 1 (got %d, %d)", n, K);
    if (confusion) memset(confusion, 0, (size_t)K * K * sizeof *confusion);
    long hits = 0;
    for (int r = 0; r < n; r++) {
        if (labels[r] < 0 || labels[r] >= K)
            return ns_error_set(NS_ERR_ARG, "class accuracy: label %d of row %d is outside [0, %d)", labels[r], r, K);
        const float *s = scores + (size_t)r * K;
        int best = 0;
        for (int j = 1; j < K; j++)
            if (s[j] > s[best]) best = j;
        hits += best == labels[r];
        if (confusion) confusion[(size_t)labels[r] * K + best]++;
    }
    *accuracy = (double)hits / n;
    return NS_OK;
}

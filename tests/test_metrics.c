// Tests for verifiers/metrics.c: the Fréchet distance against closed forms
// (1-D, diagonal, commuting with zero eigenvalues, non-commuting 2-D), FID of
// a set to itself, chunked = all-at-once = two-pass statistics, the greedy
// incremental FID against full recomputation, KID near 0 for one distribution
// and clearly positive for shifted ones, Inception Score on hand-made
// probabilities, precision/recall on constructed point sets, block-wise
// distances and k-NN radii against naive ones, class accuracy, the HDF5
// round trip and its errors, and argument errors. Given FIXTURE, the numpy
// values of tests/reference/metrics_reference.py as an independent reference.
// Prints measured errors; exits non-zero on failure.
//
// Usage: test_metrics SCRATCH_DIR [FIXTURE_DIR]
#include "verifiers/metrics.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/h5util.h"
#include "model/gemm.h"
#include "model/noise.h"

#include "expect.h"

// x: (n,d) = z A^T * scale + shift, z standard normal from stream `stream`,
// A (d,d) a fixed mixing matrix (stream 999) so sets share a covariance shape.
static float *make_features(int n, int d, uint64_t stream, float scale, float shift) {
    float *a = ns_malloc((size_t)d * d * sizeof(float), "mix");
    float *z = ns_malloc((size_t)n * d * sizeof(float), "z");
    float *x = ns_malloc((size_t)n * d * sizeof(float), "x");
    noise_fill(a, (size_t)d * d, (noise_key){7, 999}, 0);
    noise_fill(z, (size_t)n * d, (noise_key){7, stream}, 0);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (int j = 0; j < d; j++) s += (double)z[(size_t)r * d + j] * a[(size_t)i * d + j];
            x[(size_t)r * d + i] = (float)(s / sqrt((double)d)) * scale + shift;
        }
    free(a);
    free(z);
    return x;
}

static void gaussian_of(metrics_gaussian *g, const float *x, int n, int d) {
    NS_CHECK(metrics_gaussian_init(g, d) == NS_OK);
    NS_CHECK(metrics_gaussian_add(g, x, n) == NS_OK);
    NS_CHECK(metrics_gaussian_finish(g) == NS_OK);
}

static double max_abs_diff(const double *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static double max_abs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double rel(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-300); }

static void expect_error(const char *what, ns_status st, const char *needle) {
    const char *msg = ns_error_message();
    int ok = st != NS_OK && strstr(msg, needle) != NULL && strchr(msg, '\n') == NULL;
    printf("  %-34s %s: %s\n", what, ok ? "ok  " : "FAIL", st ? msg : "(no error)");
    failures += !ok;
}

// ---------------------------------------------------------------------------

// Q: (d,d) orthogonal, by modified Gram-Schmidt of a Gaussian matrix.
static void random_orthogonal(double *Q, int d, uint64_t stream) {
    float *z = ns_malloc((size_t)d * d * sizeof(float), "z");
    noise_fill(z, (size_t)d * d, (noise_key){11, stream}, 0);
    for (size_t i = 0; i < (size_t)d * d; i++) Q[i] = z[i];
    for (int c = 0; c < d; c++) {  // columns of Q
        for (int p = 0; p < c; p++) {
            double dot = 0;
            for (int i = 0; i < d; i++) dot += Q[(size_t)i * d + c] * Q[(size_t)i * d + p];
            for (int i = 0; i < d; i++) Q[(size_t)i * d + c] -= dot * Q[(size_t)i * d + p];
        }
        double nrm = 0;
        for (int i = 0; i < d; i++) nrm += Q[(size_t)i * d + c] * Q[(size_t)i * d + c];
        nrm = sqrt(nrm);
        for (int i = 0; i < d; i++) Q[(size_t)i * d + c] /= nrm;
    }
    free(z);
}

// S = Q diag(l) Q^T.
static void rotate_diag(double *S, const double *Q, const double *l, int d) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += Q[(size_t)i * d + k] * l[k] * Q[(size_t)j * d + k];
            S[(size_t)i * d + j] = s;
        }
}

static void test_frechet_closed_forms(void) {
    printf("Fréchet distance vs closed forms\n");
    double out;
    // 1-D: (m1 - m2)^2 + (s1 - s2)^2.
    double m1 = 0.3, m2 = -1.2, v1 = 2.25, v2 = 0.49;
    NS_CHECK(metrics_frechet_distance(&out, 1, &m1, &v1, &m2, &v2) == NS_OK);
    double want = (m1 - m2) * (m1 - m2) + (1.5 - 0.7) * (1.5 - 0.7);
    printf("  1-D                       rel err %.2e\n", rel(out, want));
    EXPECT(rel(out, want) < 1e-14, "1-D %.17g vs %.17g", out, want);

    // Diagonal and commuting (S_i = Q diag(l_i) Q^T), some eigenvalues 0:
    // |dmu|^2 + sum (sqrt l1 - sqrt l2)^2.
    enum { D = 48 };
    double *Q = ns_malloc(D * D * sizeof(double), "Q"), *S1 = ns_malloc(D * D * sizeof(double), "S1"),
           *S2 = ns_malloc(D * D * sizeof(double), "S2"), l1[D], l2[D], mu1[D], mu2[D];
    want = 0;
    for (int i = 0; i < D; i++) {
        l1[i] = i % 7 == 0 ? 0.0 : 0.1 + 0.05 * i;
        l2[i] = i % 5 == 0 ? 0.0 : 3.0 / (1 + i);
        mu1[i] = 0.01 * i;
        mu2[i] = 0.5 - 0.02 * i;
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(l1[i]) - sqrt(l2[i])) * (sqrt(l1[i]) - sqrt(l2[i]));
    }
    for (int i = 0; i < D * D; i++) Q[i] = (i / D == i % D);
    rotate_diag(S1, Q, l1, D);
    rotate_diag(S2, Q, l2, D);
    NS_CHECK(metrics_frechet_distance(&out, D, mu1, S1, mu2, S2) == NS_OK);
    printf("  diagonal, d=%d             rel err %.2e\n", D, rel(out, want));
    EXPECT(rel(out, want) < 1e-12, "diagonal %.17g vs %.17g", out, want);
    random_orthogonal(Q, D, 1);
    rotate_diag(S1, Q, l1, D);
    rotate_diag(S2, Q, l2, D);
    NS_CHECK(metrics_frechet_distance(&out, D, mu1, S1, mu2, S2) == NS_OK);
    // sqrt of a rounding-level eigenvalue (~1e-16 * |S|) adds up to ~1e-8 per zero.
    printf("  commuting, rank-deficient rel err %.2e\n", rel(out, want));
    EXPECT(rel(out, want) < 1e-7, "commuting %.17g vs %.17g", out, want);

    // Non-commuting 2-D: for 2x2 M with non-negative eigenvalues,
    // tr M^{1/2} = sqrt(tr M + 2 sqrt(det M)), M = S1 S2.
    double A[4] = {2.0, 0.7, 0.7, 1.0}, B[4] = {0.5, -0.3, -0.3, 1.5}, z2[2] = {0, 0};
    double trM = A[0] * B[0] + A[1] * B[2] + A[2] * B[1] + A[3] * B[3];
    double det = (A[0] * A[3] - A[1] * A[2]) * (B[0] * B[3] - B[1] * B[2]);
    want = A[0] + A[3] + B[0] + B[3] - 2 * sqrt(trM + 2 * sqrt(det));
    NS_CHECK(metrics_frechet_distance(&out, 2, z2, A, z2, B) == NS_OK);
    printf("  non-commuting 2-D         rel err %.2e\n", rel(out, want));
    EXPECT(rel(out, want) < 1e-13, "2-D %.17g vs %.17g", out, want);
    free(Q);
    free(S1);
    free(S2);
}

// Chunked adds == one add == two-pass double statistics; FID of a set to itself.
static void test_gaussian_statistics(void) {
    printf("Gaussian statistics\n");
    const int n = 700, d = 72;  // d >= 64: the threaded loops run
    float *x = make_features(n, d, 1, 2.0f, 100.0f);  // mean 100: the one-pass formula would cancel
    double *mean = calloc(d, sizeof(double)), *cov = calloc((size_t)d * d, sizeof(double));
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) mean[i] += x[(size_t)r * d + i];
    for (int i = 0; i < d; i++) mean[i] /= n;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                cov[(size_t)i * d + j] += (x[(size_t)r * d + i] - mean[i]) * (x[(size_t)r * d + j] - mean[j]);
    for (int i = 0; i < d * d; i++) cov[i] /= n - 1;

    metrics_gaussian all, chunks;
    gaussian_of(&all, x, n, d);
    NS_CHECK(metrics_gaussian_init(&chunks, d) == NS_OK);
    const int sizes[] = {1, 7, 0, 300, 64, 1};
    long at = 0;
    for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++) {
        NS_CHECK(metrics_gaussian_add(&chunks, x + at * d, sizes[c]) == NS_OK);
        at += sizes[c];
    }
    NS_CHECK(metrics_gaussian_add(&chunks, x + at * d, n - at) == NS_OK);
    NS_CHECK(metrics_gaussian_finish(&chunks) == NS_OK);
    double scale = max_abs(cov, (size_t)d * d);
    double e_mean = max_abs_diff(all.mean, mean, d) / 100.0, e_cov = max_abs_diff(all.cov, cov, (size_t)d * d) / scale;
    double c_mean = max_abs_diff(chunks.mean, all.mean, d) / 100.0,
           c_cov = max_abs_diff(chunks.cov, all.cov, (size_t)d * d) / scale;
    printf("  all-at-once vs two-pass   mean %.2e cov %.2e (relative to max)\n", e_mean, e_cov);
    printf("  chunked vs all-at-once    mean %.2e cov %.2e\n", c_mean, c_cov);
    EXPECT(all.count == n && chunks.count == n, "counts %ld %ld", all.count, chunks.count);
    EXPECT(e_mean < 1e-14 && e_cov < 1e-12, "statistics vs two-pass");
    EXPECT(c_mean < 1e-14 && c_cov < 1e-12, "chunked vs all at once");

    double fid, tr = 0;
    for (int i = 0; i < d; i++) tr += all.cov[(size_t)i * d + i];
    NS_CHECK(metrics_fid(&fid, &all, &chunks) == NS_OK);
    printf("  FID(set, same set)        %.2e relative to tr(S), full rank d=%d n=%d\n", fabs(fid) / tr, d, n);
    EXPECT(fabs(fid) / tr < 1e-6, "FID of a set to itself %.3e", fid);
    metrics_gaussian few;
    gaussian_of(&few, x, 25, d);  // 25 < d: singular covariance
    tr = 0;
    for (int i = 0; i < d; i++) tr += few.cov[(size_t)i * d + i];
    NS_CHECK(metrics_fid(&fid, &few, &few) == NS_OK);
    printf("  FID(set, same set)        %.2e relative to tr(S), rank 24 of %d\n", fabs(fid) / tr, d);
    float nan_row[72];
    for (int i = 0; i < d; i++) nan_row[i] = i == 5 ? NAN : 0.0f;
    expect_error("non-finite feature", metrics_gaussian_add(&few, nan_row, 1), "(0, 5) is not finite");
    EXPECT(fabs(fid) / tr < 1e-6, "FID of a rank-deficient set to itself %.3e", fid);

    // A stale covariance is refused.
    NS_CHECK(metrics_gaussian_add(&few, x, 1) == NS_OK);
    expect_error("FID with stale covariance", metrics_fid(&fid, &few, &all), "not finished");
    metrics_gaussian_free(&few);
    metrics_gaussian_free(&all);
    metrics_gaussian_free(&chunks);
    free(mean);
    free(cov);
    free(x);
}

// FID(ref, selected + x) by recomputing the selected set's statistics.
static double full_fid(const metrics_gaussian *ref, const float *sel, int nsel, const float *x, int d) {
    metrics_gaussian g;
    NS_CHECK(metrics_gaussian_init(&g, d) == NS_OK);
    NS_CHECK(metrics_gaussian_add(&g, sel, nsel) == NS_OK);
    NS_CHECK(metrics_gaussian_add(&g, x, 1) == NS_OK);
    NS_CHECK(metrics_gaussian_finish(&g) == NS_OK);
    double fid;
    NS_CHECK(metrics_fid(&fid, ref, &g) == NS_OK);
    metrics_gaussian_free(&g);
    return fid;
}

static void test_greedy(void) {
    printf("Greedy incremental FID\n");
    const int d = 16, nref = 400, nsel = 30, nc = 6, steps = 24;
    float *ref_x = make_features(nref, d, 2, 1.0f, 0.0f);
    float *sel_x = make_features(nsel, d, 3, 1.3f, 0.2f);
    float *cand = make_features(nc * steps, d, 4, 1.2f, 0.1f);
    metrics_gaussian ref, sel;
    gaussian_of(&ref, ref_x, nref, d);
    NS_CHECK(metrics_gaussian_init(&sel, d) == NS_OK);
    NS_CHECK(metrics_gaussian_add(&sel, sel_x, 11) == NS_OK);  // running sums, built in chunks, not finished
    NS_CHECK(metrics_gaussian_add(&sel, sel_x + 11 * d, nsel - 11) == NS_OK);

    // Scores from a non-empty set vs recomputation.
    metrics_fid_greedy s;
    NS_CHECK(metrics_fid_greedy_init(&s, &ref, &sel) == NS_OK);
    double fid[6], worst = 0;
    NS_CHECK(metrics_fid_greedy_score(&s, fid, cand, nc) == NS_OK);
    for (int c = 0; c < nc; c++) worst = fmax(worst, rel(fid[c], full_fid(&ref, sel_x, nsel, cand + c * d, d)));
    printf("  from %d selected          max rel err %.2e over %d candidates\n", nsel, worst, nc);
    EXPECT(worst < 1e-10, "greedy score vs recomputation %.3e", worst);
    metrics_fid_greedy_free(&s);

    // A greedy run from an empty set: score, keep the best, compare. While the
    // set has at most d samples its covariance is singular, and the square
    // roots of its rounding-level eigenvalues (~1e-16 |M|) put ~1e-8 relative
    // noise into both computations; the full-rank steps are held to 1e-10.
    float *chosen = ns_malloc((size_t)steps * d * sizeof(float), "chosen");
    NS_CHECK(metrics_fid_greedy_init(&s, &ref, NULL) == NS_OK);
    double worst_singular = 0;
    worst = 0;
    for (int t = 0; t < steps; t++) {
        const float *batch = cand + (size_t)t * nc * d;
        NS_CHECK(metrics_fid_greedy_score(&s, fid, batch, nc) == NS_OK);
        int best = 0;
        for (int c = 1; c < nc; c++)
            if (fid[c] < fid[best]) best = c;
        if (t == 0) {  // one sample: covariance 0, FID = |mu_ref - x|^2 + tr(S_ref)
            for (int c = 0; c < nc; c++) {
                double want = 0;
                for (int i = 0; i < d; i++) {
                    double diff = ref.mean[i] - batch[c * d + i];
                    want += diff * diff + ref.cov[i * d + i];
                }
                worst = fmax(worst, rel(fid[c], want));
            }
        } else {
            for (int c = 0; c < nc; c++) {
                double e = rel(fid[c], full_fid(&ref, chosen, t, batch + c * d, d));
                if (t + 1 > d) worst = fmax(worst, e);
                else worst_singular = fmax(worst_singular, e);
            }
        }
        memcpy(chosen + (size_t)t * d, batch + (size_t)best * d, (size_t)d * sizeof(float));
        NS_CHECK(metrics_fid_greedy_add(&s, batch + (size_t)best * d) == NS_OK);
    }
    printf("  %d greedy steps from empty max rel err %.2e with > d samples, %.2e with <= d (final FID %.4f)\n", steps,
           worst, worst_singular, fid[0]);
    EXPECT(worst < 1e-10, "greedy run vs recomputation %.3e", worst);
    EXPECT(worst_singular < 1e-6, "greedy run vs recomputation, singular covariances %.3e", worst_singular);
    metrics_fid_greedy_free(&s);

    metrics_gaussian stale = {0};
    NS_CHECK(metrics_gaussian_init(&stale, d) == NS_OK);
    NS_CHECK(metrics_gaussian_add(&stale, ref_x, 5) == NS_OK);
    expect_error("greedy with unfinished reference", metrics_fid_greedy_init(&s, &stale, NULL), "not finished");
    metrics_gaussian_free(&stale);
    metrics_gaussian_free(&ref);
    metrics_gaussian_free(&sel);
    free(ref_x);
    free(sel_x);
    free(cand);
    free(chosen);
}

static void test_kid(void) {
    printf("KID\n");
    const int n = 600, d = 16;
    float *x = make_features(n, d, 5, 1.0f, 0.0f), *y = make_features(n, d, 6, 1.0f, 0.0f),
          *z = make_features(n, d, 7, 1.0f, 0.5f);
    double same_m, same_s, shift_m, shift_s, again_m, again_s, full_m, full_s;
    NS_CHECK(metrics_kid(&same_m, &same_s, x, n, y, n, d, 50, 100, 1) == NS_OK);
    NS_CHECK(metrics_kid(&again_m, &again_s, x, n, y, n, d, 50, 100, 1) == NS_OK);
    NS_CHECK(metrics_kid(&shift_m, &shift_s, x, n, z, n, d, 50, 100, 1) == NS_OK);
    NS_CHECK(metrics_kid(&full_m, &full_s, x, n - 100, y, n - 100, d, 3, 1000, 2) == NS_OK);  // capped: whole sets
    printf("  same distribution         %.3e +- %.3e\n", same_m, same_s);
    printf("  shifted by 0.5            %.3e +- %.3e\n", shift_m, shift_s);
    printf("  subsets = whole sets      %.3e +- %.1e (std only rounding)\n", full_m, full_s);
    EXPECT(fabs(same_m) < 2 * same_s, "same distribution: KID %.3e not within 2 std %.3e", same_m, same_s);
    EXPECT(shift_m > 5 * shift_s && shift_m > 20 * fabs(same_m), "shifted KID %.3e +- %.3e", shift_m, shift_s);
    EXPECT(same_m == again_m && same_s == again_s, "KID not deterministic for a seed");
    EXPECT(full_s < 1e-6 * fmax(fabs(full_m), 1e-3), "KID over identical subsets has std %.3e", full_s);
    double m, sd;
    expect_error("KID with one sample", metrics_kid(&m, &sd, x, 1, y, n, d, 5, 100, 1), "at least 2");
    free(x);
    free(y);
    free(z);
}

// probs laid out so that metrics_inception_score's documented shuffle puts
// row r of probs at position r: the splits are then contiguous in probs,
// the convention of the numpy reference. (n,K), caller frees.
static float *undo_is_shuffle(const float *probs, int n, int K) {
    uint32_t *perm = ns_malloc((size_t)n * sizeof(uint32_t), "perm");
    noise_permutation(perm, n, (noise_key){METRICS_IS_SHUFFLE_SEED, 0});
    float *out = ns_malloc((size_t)n * K * sizeof(float), "unshuffled");
    for (int r = 0; r < n; r++) memcpy(out + (size_t)perm[r] * K, probs + (size_t)r * K, (size_t)K * sizeof(float));
    free(perm);
    return out;
}

static void test_inception_score(void) {
    printf("Inception Score\n");
    const int n = 40, K = 8;
    float *p = ns_malloc((size_t)n * K * sizeof(float), "probs");
    double m, s;
    for (int i = 0; i < n * K; i++) p[i] = 1.0f / K;
    NS_CHECK(metrics_inception_score(&m, &s, p, n, K, 1) == NS_OK);
    printf("  uniform                   %.15f (want 1)\n", m);
    EXPECT(fabs(m - 1) < 1e-12, "uniform IS %.17g", m);
    for (int i = 0; i < n * K; i++) p[i] = (i % K) == (i / K) % K;  // row r one-hot at r % K
    NS_CHECK(metrics_inception_score(&m, &s, p, n, K, 1) == NS_OK);
    printf("  one-hot, balanced         %.15f (want %d, 1 split)\n", m, K);
    EXPECT(fabs(m - K) < 1e-12, "one-hot IS %.17g", m);
    for (int i = 0; i < n * K; i++) p[i] = (i % K) == 3;  // every row the same class
    NS_CHECK(metrics_inception_score(&m, &s, p, n, K, 2) == NS_OK);
    EXPECT(fabs(m - 1) < 1e-12, "one-class IS %.17g", m);
    p[0] = 0.5f;
    expect_error("IS row not summing to 1", metrics_inception_score(&m, &s, p, n, K, 1), "sums to");
    expect_error("IS more splits than rows", metrics_inception_score(&m, &s, p, n, K, n + 1), "splits");
    free(p);

    // A class-ordered set (as sample files store them): 100 one-hot rows per
    // class, 10 classes, 10 splits. Contiguous splits would each hold one
    // class (IS exactly 1); shuffled splits hold ~10 per class, so each
    // split's score is exp(H(class histogram)), close to 10.
    const int per = 100, K2 = 10, n2 = per * K2;
    float *q = ns_calloc((size_t)n2 * K2, sizeof(float), "ordered probs");
    for (int r = 0; r < n2; r++) q[(size_t)r * K2 + r / per] = 1.0f;
    NS_CHECK(metrics_inception_score(&m, &s, q, n2, K2, 10) == NS_OK);
    printf("  class-ordered one-hot     %.4f +- %.4f (10 splits; contiguous splits would give 1)\n", m, s);
    EXPECT(m > 9.0 && m <= 10.0 && s < 0.5, "class-ordered IS %.6f +- %.6f", m, s);
    // The order is the documented one: laid out so that the shuffle puts q's
    // rows back in class order, every split holds one class again.
    float *u = undo_is_shuffle(q, n2, K2);
    NS_CHECK(metrics_inception_score(&m, &s, u, n2, K2, 10) == NS_OK);  // splits now contiguous in q
    printf("  pre-permuted by the seed  %.15f +- %.1e (want 1 +- 0)\n", m, s);
    EXPECT(fabs(m - 1) < 1e-12 && s < 1e-12, "documented shuffle: IS %.17g +- %.3g", m, s);
    free(q);
    free(u);
}

static void test_distances(void) {
    printf("Distances and k-NN radii\n");
    const int m = 37, n = 53, d = 20, k = 3;
    float *a = make_features(m, d, 8, 1.0f, 0.3f), *b = make_features(n, d, 9, 1.0f, 0.0f);
    float *D = ns_malloc((size_t)m * n * sizeof(float), "D");
    metrics_sq_distances(D, a, m, b, n, d);
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0, na = 0, nb = 0;
            for (int t = 0; t < d; t++) {
                double u = a[i * d + t], v = b[j * d + t];
                s += (u - v) * (u - v);
                na += u * u;
                nb += v * v;
            }
            worst = fmax(worst, fabs(D[i * n + j] - s) / (na + nb));
        }
    printf("  blocked gemm vs naive     max err %.2e relative to |a|^2+|b|^2\n", worst);
    EXPECT(worst < 1e-6, "distances %.3e", worst);

    float *r0 = ns_malloc(n * sizeof(float), "r0"), *r7 = ns_malloc(n * sizeof(float), "r7");
    NS_CHECK(metrics_knn_radii(r0, b, n, d, k, 0) == NS_OK);
    NS_CHECK(metrics_knn_radii(r7, b, n, d, k, 7) == NS_OK);
    worst = 0;
    for (int i = 0; i < n; i++) {
        double dist[53];
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < d; t++) s += ((double)b[i * d + t] - b[j * d + t]) * ((double)b[i * d + t] - b[j * d + t]);
            dist[j] = j == i ? INFINITY : s;
        }
        for (int p = 0; p < k; p++) {  // k-th smallest by repeated minimum
            int arg = 0;
            for (int j = 1; j < n; j++)
                if (dist[j] < dist[arg]) arg = j;
            if (p == k - 1) worst = fmax(worst, rel(r0[i], dist[arg]));
            dist[arg] = INFINITY;
        }
    }
    printf("  k-NN radii vs naive       max rel err %.2e; blocks of 7 rows %s\n", worst,
           memcmp(r0, r7, n * sizeof(float)) ? "DIFFER" : "bitwise equal");
    EXPECT(worst < 1e-5, "radii %.3e", worst);
    EXPECT(memcmp(r0, r7, n * sizeof(float)) == 0, "radii depend on the block size");
    double f0, f5;
    NS_CHECK(metrics_manifold_fraction(&f0, a, m, b, r0, n, d, 0) == NS_OK);
    NS_CHECK(metrics_manifold_fraction(&f5, a, m, b, r0, n, d, 5) == NS_OK);
    EXPECT(f0 == f5, "manifold fraction depends on the block size (%g vs %g)", f0, f5);
    expect_error("k-NN with n <= k", metrics_knn_radii(r0, b, 3, d, 3, 0), "more than k");
    free(a);
    free(b);
    free(D);
    free(r0);
    free(r7);
}

static void test_precision_recall(void) {
    printf("Precision and recall (k = 3)\n");
    const int n = 200, d = 8, k = 3;
    float *real = make_features(n, d, 10, 1.0f, 0.0f), *far = make_features(n, d, 11, 1.0f, 100.0f);
    double p, r;
    NS_CHECK(metrics_precision_recall(&p, &r, real, n, real, n, d, k) == NS_OK);
    printf("  identical sets            precision %.3f recall %.3f (want 1, 1)\n", p, r);
    EXPECT(p == 1 && r == 1, "identical sets");
    NS_CHECK(metrics_precision_recall(&p, &r, real, n, far, n, d, k) == NS_OK);
    printf("  far-apart sets            precision %.3f recall %.3f (want 0, 0)\n", p, r);
    EXPECT(p == 0 && r == 0, "far-apart sets");
    // Four clusters of 50 real points; the fake set is the points of two of them.
    for (int i = 0; i < n; i++) real[(size_t)i * d + (i / 50) % d] += 30.0f * (1 + i / 50);
    NS_CHECK(metrics_precision_recall(&p, &r, real, n, real, n / 2, d, k) == NS_OK);
    printf("  fake covers 2 of 4 clusters precision %.3f recall %.3f (want 1, 0.5)\n", p, r);
    EXPECT(p == 1 && r == 0.5, "half coverage");
    expect_error("precision/recall, 3 fakes", metrics_precision_recall(&p, &r, real, n, real, 3, d, k), "k = 3");
    free(real);
    free(far);
}

static void test_accuracy(void) {
    printf("Class accuracy\n");
    const float scores[4 * 3] = {0.1f, 2.0f, -1.0f, 5.0f, 5.0f, 0.0f, -3.0f, -2.0f, -1.0f, 0.2f, 0.3f, 0.1f};
    const int labels[4] = {1, 0, 2, 0}, bad[4] = {1, 0, 3, 0};
    // Rows' argmax: 1, 0 (tie with 1: first), 2, 1.
    const int want[3 * 3] = {1, 1, 0, 0, 1, 0, 0, 0, 1};
    int confusion[3 * 3];
    double acc;
    NS_CHECK(metrics_class_accuracy(&acc, confusion, scores, labels, 4, 3) == NS_OK);
    printf("  hand-made                 %.3f (want 0.75; tie -> first)\n", acc);
    EXPECT(acc == 0.75, "accuracy %g", acc);
    EXPECT(memcmp(confusion, want, sizeof want) == 0, "confusion matrix [label][argmax] differs from the hand count");
    NS_CHECK(metrics_class_accuracy(&acc, NULL, scores, labels, 4, 3) == NS_OK);
    EXPECT(acc == 0.75, "accuracy without a confusion matrix %g", acc);
    expect_error("label out of range", metrics_class_accuracy(&acc, confusion, scores, bad, 4, 3), "outside");
}

static void test_io(const char *dir) {
    printf("HDF5 statistics files\n");
    const int n = 50, d = 12;
    char path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/metrics_stats.h5", dir);
    snprintf(bad, sizeof bad, "%s/metrics_bad.h5", dir);
    float *x = make_features(n, d, 12, 1.0f, 1.0f);
    metrics_gaussian g, back, more, unfinished;
    gaussian_of(&g, x, n - 10, d);
    NS_CHECK(metrics_gaussian_save(&g, path, "ref/fashion") == NS_OK);
    ns_status st = metrics_gaussian_load(&back, path, "ref/fashion");
    int same = st == NS_OK && back.dim == d && back.count == g.count && back.cov_count == back.count &&
               memcmp(back.mean, g.mean, d * sizeof(double)) == 0 &&
               memcmp(back.cov, g.cov, (size_t)d * d * sizeof(double)) == 0;
    printf("  save/load round trip      %s\n", same ? "bitwise equal" : "DIFFERS");
    EXPECT(same, "round trip: %s", st ? ns_error_message() : "values differ");
    // Adding after a load continues the statistics.
    gaussian_of(&more, x, n, d);
    NS_CHECK(metrics_gaussian_add(&back, x + (n - 10) * d, 10) == NS_OK);
    NS_CHECK(metrics_gaussian_finish(&back) == NS_OK);
    double e = max_abs_diff(back.cov, more.cov, (size_t)d * d) / max_abs(more.cov, (size_t)d * d);
    printf("  load then add 10 vs all   cov rel err %.2e\n", e);
    EXPECT(e < 1e-12, "continued statistics %.3e", e);
    metrics_gaussian_free(&back);  // the failing loads below leave it zeroed

    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no_such_stats.h5", dir);
    expect_error("missing file", metrics_gaussian_load(&back, missing, "ref"), "no_such_stats.h5");
    expect_error("missing group", metrics_gaussian_load(&back, path, "ref/cifar"), "missing group 'ref/cifar'");
    // Hand-made bad files: no cov; cov of the wrong shape; no count.
    hid_t f = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    NS_CHECK(f >= 0);
    hsize_t d1[1] = {(hsize_t)d}, d2[2] = {(hsize_t)d, (hsize_t)d - 1};
    hid_t g1 = H5Gcreate2(f, "nocov", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    NS_CHECK(h5u_write_doubles(g1, bad, "mean", 1, d1, g.mean) == NS_OK);
    NS_CHECK(h5u_attr_write_int(g1, bad, "count", 40) == NS_OK);
    H5Gclose(g1);
    hid_t g2 = H5Gcreate2(f, "shape", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    NS_CHECK(h5u_write_doubles(g2, bad, "mean", 1, d1, g.mean) == NS_OK);
    NS_CHECK(h5u_write_doubles(g2, bad, "cov", 2, d2, g.cov) == NS_OK);
    NS_CHECK(h5u_attr_write_int(g2, bad, "count", 40) == NS_OK);
    H5Gclose(g2);
    hid_t g3 = H5Gcreate2(f, "nocount", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    d2[1] = (hsize_t)d;
    NS_CHECK(h5u_write_doubles(g3, bad, "mean", 1, d1, g.mean) == NS_OK);
    NS_CHECK(h5u_write_doubles(g3, bad, "cov", 2, d2, g.cov) == NS_OK);
    H5Gclose(g3);
    H5Fclose(f);
    expect_error("missing dataset", metrics_gaussian_load(&back, bad, "nocov"), "metrics_bad.h5:/nocov: missing dataset 'cov'");
    expect_error("wrong shape", metrics_gaussian_load(&back, bad, "shape"), "'cov' has shape [12,11]");
    expect_error("missing attribute", metrics_gaussian_load(&back, bad, "nocount"), "missing attribute 'count'");
    NS_CHECK(metrics_gaussian_init(&unfinished, d) == NS_OK);
    NS_CHECK(metrics_gaussian_add(&unfinished, x, 1) == NS_OK);
    expect_error("finish with 1 sample", metrics_gaussian_finish(&unfinished), "at least 2");
    expect_error("save unfinished", metrics_gaussian_save(&unfinished, bad, "x"), "not finished");
    metrics_gaussian other;
    gaussian_of(&other, x, n, d - 1);
    double fid;
    expect_error("FID of different dims", metrics_fid(&fid, &g, &other), "dimensions differ");
    metrics_gaussian_free(&other);
    metrics_gaussian_free(&unfinished);
    metrics_gaussian_free(&g);
    metrics_gaussian_free(&back);
    metrics_gaussian_free(&more);
    free(x);
}

// ---------------------------------------------------------------------------
// The numpy reference.

static hid_t fixture_group(hid_t f, const char *name) {
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    NS_CHECK(g >= 0);
    return g;
}

static double attr_double(hid_t g, const char *name) {
    double v;
    NS_CHECK(h5u_attr_read_double(g, "fixture", name, &v) == NS_OK);
    return v;
}

static void check_fid_fixture(hid_t f, const char *name) {
    hid_t g = fixture_group(f, name);
    hsize_t dx1[2], dx2[2], dv[2];
    float *x1, *x2;
    double *mean1, *cov1, *mean2, *cov2;
    NS_CHECK(h5u_read_floats(g, name, "x1", 2, dx1, &x1) == NS_OK);
    NS_CHECK(h5u_read_floats(g, name, "x2", 2, dx2, &x2) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, name, "mean1", 1, dv, &mean1) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, name, "mean2", 1, dv, &mean2) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, name, "cov1", 2, dv, &cov1) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, name, "cov2", 2, dv, &cov2) == NS_OK);
    const int d = (int)dx1[1];
    const double want = attr_double(g, "fid");
    metrics_gaussian a, b;
    gaussian_of(&a, x1, (int)dx1[0], d);
    gaussian_of(&b, x2, (int)dx2[0], d);
    double e_stats = fmax(max_abs_diff(a.cov, cov1, (size_t)d * d) / max_abs(cov1, (size_t)d * d),
                          max_abs_diff(b.cov, cov2, (size_t)d * d) / max_abs(cov2, (size_t)d * d));
    e_stats = fmax(e_stats, fmax(max_abs_diff(a.mean, mean1, d), max_abs_diff(b.mean, mean2, d)));
    double from_stats, from_numpy;
    NS_CHECK(metrics_fid(&from_stats, &a, &b) == NS_OK);
    NS_CHECK(metrics_frechet_distance(&from_numpy, d, mean1, cov1, mean2, cov2) == NS_OK);
    printf("  %-12s d=%-3d n=%-4d,%-4d stats %.1e; FID %.6f: ours from numpy stats rel %.1e, from features %.1e\n",
           name, d, (int)dx1[0], (int)dx2[0], e_stats, want, rel(from_numpy, want), rel(from_stats, want));
    EXPECT(e_stats < 1e-12, "%s statistics vs numpy %.3e", name, e_stats);
    // Singular covariances (n <= d): see test_greedy for the ~1e-8 noise.
    double tol = dx1[0] > (hsize_t)d && dx2[0] > (hsize_t)d ? 1e-9 : 1e-6;
    EXPECT(rel(from_numpy, want) < tol && rel(from_stats, want) < tol, "%s FID", name);
    metrics_gaussian_free(&a);
    metrics_gaussian_free(&b);
    free(x1);
    free(x2);
    free(mean1);
    free(mean2);
    free(cov1);
    free(cov2);
    H5Gclose(g);
}

static void check_reference(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.fixture.h5", dir);
    printf("numpy reference %s\n", path);
    hid_t f;
    if (h5u_open_read(&f, path) != NS_OK) {
        printf("FAIL %s\n", ns_error_message());
        failures++;
        return;
    }
    check_fid_fixture(f, "fid_full");
    check_fid_fixture(f, "fid_lowrank");

    hid_t g = fixture_group(f, "kid");
    hsize_t dx[2], dy[2], di[2], dm[1];
    float *x, *y;
    int *ix, *iy;
    double *want;
    NS_CHECK(h5u_read_floats(g, "kid", "x", 2, dx, &x) == NS_OK);
    NS_CHECK(h5u_read_floats(g, "kid", "y", 2, dy, &y) == NS_OK);
    NS_CHECK(h5u_read_ints(g, "kid", "idx_x", 2, di, &ix) == NS_OK);
    NS_CHECK(h5u_read_ints(g, "kid", "idx_y", 2, di, &iy) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, "kid", "mmd2", 1, dm, &want) == NS_OK);
    double got[64], worst = 0;
    NS_CHECK(dm[0] <= 64);
    NS_CHECK(metrics_kid_subsets(got, x, (int)dx[0], y, (int)dy[0], (int)dx[1], ix, iy, (int)di[0], (int)di[1]) == NS_OK);
    for (size_t s = 0; s < dm[0]; s++) worst = fmax(worst, fabs(got[s] - want[s]));
    printf("  KID fixed subsets         max abs err %.2e (values ~%.1e, kernel values ~1; float dot products)\n", worst,
           attr_double(g, "mean"));
    EXPECT(worst < 1e-7, "KID vs numpy %.3e", worst);
    free(x);
    free(y);
    free(ix);
    free(iy);
    free(want);
    H5Gclose(g);

    g = fixture_group(f, "inception");
    hsize_t dp[2], ds[1];
    float *probs;
    int *splits;
    double *im, *is;
    NS_CHECK(h5u_read_floats(g, "inception", "probs", 2, dp, &probs) == NS_OK);
    NS_CHECK(h5u_read_ints(g, "inception", "splits", 1, ds, &splits) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, "inception", "is_mean", 1, ds, &im) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, "inception", "is_std", 1, ds, &is) == NS_OK);
    worst = 0;
    float *laid = undo_is_shuffle(probs, (int)dp[0], (int)dp[1]);
    for (size_t i = 0; i < ds[0]; i++) {
        double m, s;
        NS_CHECK(metrics_inception_score(&m, &s, laid, (int)dp[0], (int)dp[1], splits[i]) == NS_OK);
        worst = fmax(worst, fmax(rel(m, im[i]), fabs(s - is[i]) / im[i]));
    }
    printf("  Inception Score           max rel err %.2e (splits 1, 4, 10; IS %.4f)\n", worst, im[0]);
    EXPECT(worst < 1e-12, "IS vs numpy %.3e", worst);
    free(laid);
    free(probs);
    free(splits);
    free(im);
    free(is);
    H5Gclose(g);

    g = fixture_group(f, "pr");
    hsize_t dr[2], dfk[2], dq[1];
    float *real, *fake;
    double *rr, *rf;
    NS_CHECK(h5u_read_floats(g, "pr", "real", 2, dr, &real) == NS_OK);
    NS_CHECK(h5u_read_floats(g, "pr", "fake", 2, dfk, &fake) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, "pr", "radii_real", 1, dq, &rr) == NS_OK);
    NS_CHECK(h5u_read_doubles(g, "pr", "radii_fake", 1, dq, &rf) == NS_OK);
    int k, nr = (int)dr[0], nf = (int)dfk[0], d = (int)dr[1];
    NS_CHECK(h5u_attr_read_int(g, "pr", "k", &k) == NS_OK);
    float *radii = ns_malloc((size_t)nr * sizeof(float), "radii");
    NS_CHECK(metrics_knn_radii(radii, real, nr, d, k, 0) == NS_OK);
    worst = 0;
    for (int i = 0; i < nr; i++) worst = fmax(worst, rel(radii[i], rr[i]));
    NS_CHECK(metrics_knn_radii(radii, fake, nf, d, k, 0) == NS_OK);
    for (int i = 0; i < nf; i++) worst = fmax(worst, rel(radii[i], rf[i]));
    double p, r, wp = attr_double(g, "precision"), wr = attr_double(g, "recall");
    NS_CHECK(metrics_precision_recall(&p, &r, real, nr, fake, nf, d, k) == NS_OK);
    printf("  precision/recall          %.4f/%.4f vs %.4f/%.4f; radii max rel err %.2e (closest comparison %.1e)\n", p,
           r, wp, wr, worst, attr_double(g, "margin"));
    EXPECT(p == wp && r == wr, "precision/recall vs numpy");
    EXPECT(worst < 1e-5, "radii vs numpy %.3e", worst);
    free(real);
    free(fake);
    free(rr);
    free(rf);
    free(radii);
    H5Gclose(g);
    h5u_close_file(f);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s SCRATCH_DIR [FIXTURE_DIR]\n", argv[0]);
        return 2;
    }
    if (gemm_setup(0) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    printf("%s\n", gemm_describe());
    test_frechet_closed_forms();
    test_gaussian_statistics();
    test_greedy();
    test_kid();
    test_inception_score();
    test_distances();
    test_precision_recall();
    test_accuracy();
    test_io(argv[1]);
    if (argc == 3) check_reference(argv[2]);
    printf("%s: %d failure%s\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}

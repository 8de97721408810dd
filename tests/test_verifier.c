// Checks of the verifiers (verifiers/verifier.c) on hand-made inputs, with a
// tiny random classifier (8x8x2 images, patch 4, width 16, depth 2, 3
// classes) saved as a verifier and a second one, from another seed, as the
// evaluator:
//   1. kind names and properties;
//   2. each per-candidate score against an independent computation from
//      classifier_forward's logits and features (log-softmax and softmax
//      written out here in long double, cosine likewise); self_similarity of
//      identical images is 1; fid_oracle returns the evaluator's features;
//      kinds not requested are NaN;
//   3. cost counters and FLOPs per image (against a hand count);
//   4. batch invariance: a batch of 7 equals 7 single-image calls and a set
//      with max_batch 3 (chunked), bitwise;
//   5. the ensemble's mean rank on a hand-made table with ties, NaN and
//      weights, and its independence of the candidates' order;
//   6. role enforcement both ways and argument errors, each naming the file
//      or input.
// usage: test_verifier [SCRATCH_DIR]. Prints what it measured; exits
// non-zero on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gemm.h"
#include "verifiers/verifier.h"

#include "expect.h"

#define S 8
#define C 2
#define K 3
#define D 16
#define DIM (C * S * S)
#define NB 7

static const uint32_t ALL_KINDS = (1u << VERIFIER_KINDS) - 1;

#define TEST_RNG_SEED 0x2545F4914F6CDD1Dull
#include "test_rng.h"

// A tiny classifier with every parameter random, saved to path with role.
static void make_file(const char *path, uint64_t seed, const char *role) {
    classifier_config cfg = classifier_config_make(S, C, K, 4, D, 2, 2);
    classifier c;
    NS_CHECK(classifier_init(&c, &cfg, seed) == NS_OK);
    dit_model_randomize(&c.backbone, seed + 100, 0.25f);
    for (size_t i = 0; i < c.head_params; i++) c.head[i] = (float)(2.0 * uniform01() - 1.0);
    snprintf(c.role, sizeof c.role, "%s", role);
    NS_CHECK(classifier_save(&c, path) == NS_OK);
    classifier_free(&c);
}

static void random_images(float *x, int n) {
    for (int i = 0; i < n * DIM; i++) x[i] = (float)(2.0 * uniform01() - 1.0);
}

static long double log_softmax_ref(const float *z, int y) {
    long double sum = 0;
    for (int k = 0; k < K; k++) sum += expl((long double)z[k]);
    return logl(expl((long double)z[y]) / sum);
}

static long double cosine_ref(const float *a, const float *b) {
    long double ab = 0, aa = 0, bb = 0;
    for (int j = 0; j < D; j++) ab += (long double)a[j] * b[j], aa += (long double)a[j] * a[j], bb += (long double)b[j] * b[j];
    return ab / sqrtl(aa * bb);
}

static void test_kinds(void) {
    printf("1. kinds\n");
    for (int k = 0; k < VERIFIER_KINDS; k++) {
        verifier_kind back;
        int ok = verifier_kind_from_name(verifier_kind_name((verifier_kind)k), &back) == 0 && back == (verifier_kind)k;
        EXPECT(ok, "name round trip of kind %d (%s)", k, verifier_kind_name((verifier_kind)k));
    }
    verifier_kind dummy;
    EXPECT(verifier_kind_from_name("clip_score", &dummy) == -1, "unknown name accepted");
    EXPECT(verifier_kind_is_oracle(VERIFIER_IS_ORACLE) && verifier_kind_is_oracle(VERIFIER_FID_ORACLE) &&
               !verifier_kind_is_oracle(VERIFIER_CLASS_LOGIT) && !verifier_kind_is_oracle(VERIFIER_SELF_SIMILARITY),
           "oracle kinds");
    EXPECT(verifier_kind_needs_early(VERIFIER_SELF_SIMILARITY) && !verifier_kind_needs_early(VERIFIER_CLASS_LOGPROB),
           "early input");
    EXPECT(verifier_kind_is_set_level(VERIFIER_FID_ORACLE) && !verifier_kind_is_set_level(VERIFIER_IS_ORACLE),
           "set level");
    EXPECT(!verifier_kind_needs_label(VERIFIER_SELF_SIMILARITY) && !verifier_kind_needs_label(VERIFIER_FID_ORACLE) &&
               verifier_kind_needs_label(VERIFIER_CLASS_LOGIT) && verifier_kind_needs_label(VERIFIER_IS_ORACLE),
           "label use");
    printf("  names round-trip, oracle / early / set-level / label properties checked\n");
}

// Scores of a set with every kind against the independent computation.
static void test_scores(const char *vpath, const char *epath) {
    printf("2. scores against an independent computation (batch of %d)\n", NB);
    verifier_set vs;
    ns_status st = verifier_set_init(&vs, ALL_KINDS, vpath, epath, NB, 1);
    if (st) printf("  %s\n", ns_error_message());
    NS_CHECK(st == NS_OK);
    EXPECT(verifier_set_fid_dim(&vs) == D, "fid dim %d", verifier_set_fid_dim(&vs));
    float x[NB * DIM], early[NB * DIM], fid[NB * D];
    int labels[NB];
    random_images(x, NB);
    random_images(early, NB);
    memcpy(early, x, DIM * sizeof(float));  // candidate 0: early == final, cosine 1
    for (int b = 0; b < NB; b++) labels[b] = (b * 2) % K;
    double scores[NB * VERIFIER_KINDS];
    NS_CHECK(verifier_set_score(&vs, x, early, labels, NB, scores, fid) == NS_OK);

    // The reference: the same files loaded afresh, logits and features from classifier_forward.
    classifier v, e;
    NS_CHECK(classifier_load(&v, vpath) == NS_OK && classifier_load(&e, epath) == NS_OK);
    classifier_workspace wv, we;
    NS_CHECK(classifier_workspace_init(&wv, &v.cfg, NB, 1) == NS_OK);
    NS_CHECK(classifier_workspace_init(&we, &e.cfg, NB, 1) == NS_OK);
    float zv[NB * K], fv[NB * D], zve[NB * K], fve[NB * D], ze[NB * K], fe[NB * D];
    classifier_forward(&v, &wv, zv, fv, x, NB);
    classifier_forward(&v, &wv, zve, fve, early, NB);
    classifier_forward(&e, &we, ze, fe, x, NB);
    double worst_lp = 0, worst_cos = 0, worst_is = 0;
    int logit_exact = 1;
    for (int b = 0; b < NB; b++) {
        const double *s = scores + b * VERIFIER_KINDS;
        logit_exact &= s[VERIFIER_CLASS_LOGIT] == (double)zv[b * K + labels[b]];
        worst_lp = fmax(worst_lp, fabs(s[VERIFIER_CLASS_LOGPROB] - (double)log_softmax_ref(zv + b * K, labels[b])));
        worst_cos = fmax(worst_cos, fabs(s[VERIFIER_SELF_SIMILARITY] - (double)cosine_ref(fve + b * D, fv + b * D)));
        worst_is = fmax(worst_is, fabs(s[VERIFIER_IS_ORACLE] - (double)expl(log_softmax_ref(ze + b * K, labels[b]))));
        EXPECT(isnan(s[VERIFIER_FID_ORACLE]), "fid_oracle has no per-candidate score (got %g)", s[VERIFIER_FID_ORACLE]);
        EXPECT(s[VERIFIER_CLASS_LOGPROB] < 0 && s[VERIFIER_IS_ORACLE] > 0 && s[VERIFIER_IS_ORACLE] < 1,
               "candidate %d: log-probability %g, probability %g out of range", b, s[VERIFIER_CLASS_LOGPROB],
               s[VERIFIER_IS_ORACLE]);
    }
    printf("  class_logit equals the logit of the label: %s\n", logit_exact ? "bitwise" : "NO");
    printf("  class_logprob   max abs err %.2e\n", worst_lp);
    printf("  self_similarity max abs err %.2e; identical images: %.17g\n", worst_cos,
           scores[VERIFIER_SELF_SIMILARITY]);
    printf("  is_oracle       max abs err %.2e\n", worst_is);
    EXPECT(logit_exact, "class_logit");
    EXPECT(worst_lp < 1e-12, "class_logprob error %.3e", worst_lp);
    EXPECT(worst_cos < 1e-12, "self_similarity error %.3e", worst_cos);
    EXPECT(fabs(scores[VERIFIER_SELF_SIMILARITY] - 1.0) < 1e-12, "cosine of identical images %.17g",
           scores[VERIFIER_SELF_SIMILARITY]);
    EXPECT(worst_is < 1e-12, "is_oracle error %.3e", worst_is);
    EXPECT(memcmp(fid, fe, sizeof fid) == 0, "fid_oracle features differ from the evaluator's");
    printf("  fid_oracle features are the evaluator's: %s\n", memcmp(fid, fe, sizeof fid) ? "NO" : "bitwise");
    // The two networks differ (different seeds), so is_oracle is not class_logprob in disguise.
    EXPECT(fabs(exp(scores[VERIFIER_CLASS_LOGPROB]) - scores[VERIFIER_IS_ORACLE]) > 1e-6,
           "verifier and evaluator give the same probability");

    printf("3. cost\n");
    printf("  images through the verifier %ld (want %d: final + early), evaluator %ld (want %d), %.2e s\n",
           vs.images_v, 2 * NB, vs.images_e, NB, vs.seconds);
    EXPECT(vs.images_v == 2 * NB && vs.images_e == NB && vs.seconds > 0, "cost counters");
    // Hand count for this config (T = 4 tokens, P = 32, D = 16, F = 64, depth 2, K = 3), multiply-adds:
    // patch embed T P D = 2048; t-embedder 256 D + D D = 4352; per block T D (4D + 2F) + 2 T T D + 6 D D
    // = 12288 + 512 + 1536 = 14336, two blocks 28672; final adaLN 2 D D = 512; head K D = 48;
    // the unused final linear is not run. Total 35632 multiply-adds.
    double flops = verifier_set_flops_per_image(&vs, 0);
    printf("  FLOPs per image %.0f (hand count 71264)\n", flops);
    EXPECT(flops == 71264.0 && verifier_set_flops_per_image(&vs, 1) == 71264.0, "FLOPs per image %.1f", flops);

    classifier_workspace_free(&wv), classifier_workspace_free(&we);
    classifier_free(&v), classifier_free(&e);
    verifier_set_free(&vs);

    // A set with one kind loads one network and leaves the other columns NaN.
    NS_CHECK(verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_CLASS_LOGIT), vpath, NULL, NB, 1) == NS_OK);
    double one[NB * VERIFIER_KINDS];
    NS_CHECK(verifier_set_score(&vs, x, NULL, labels, NB, one, NULL) == NS_OK);
    int nan_ok = !vs.has_evaluator && verifier_set_fid_dim(&vs) == 0 && verifier_set_flops_per_image(&vs, 1) == 0;
    for (int b = 0; b < NB; b++)
        for (int k = 0; k < VERIFIER_KINDS; k++)
            nan_ok &= k == VERIFIER_CLASS_LOGIT ? one[b * VERIFIER_KINDS + k] == scores[b * VERIFIER_KINDS + k]
                                                : isnan(one[b * VERIFIER_KINDS + k]);
    printf("  class_logit alone: other kinds NaN, no evaluator loaded: %s\n", nan_ok ? "yes" : "NO");
    EXPECT(nan_ok, "single-kind set");
    EXPECT(vs.images_v == NB && vs.images_e == 0, "single-kind cost %ld %ld", vs.images_v, vs.images_e);
    verifier_set_free(&vs);
}

static void test_invariance(const char *vpath, const char *epath) {
    printf("4. batch invariance\n");
    verifier_set full, small;
    NS_CHECK(verifier_set_init(&full, ALL_KINDS, vpath, epath, NB, 1) == NS_OK);
    NS_CHECK(verifier_set_init(&small, ALL_KINDS, vpath, epath, 3, 2) == NS_OK);
    float x[NB * DIM], early[NB * DIM], fid[NB * D], fid1[D], fid3[NB * D];
    int labels[NB];
    random_images(x, NB);
    random_images(early, NB);
    for (int b = 0; b < NB; b++) labels[b] = b % K;
    double all[NB * VERIFIER_KINDS], one[VERIFIER_KINDS], chunked[NB * VERIFIER_KINDS];
    NS_CHECK(verifier_set_score(&full, x, early, labels, NB, all, fid) == NS_OK);
    int ok = 1;
    for (int b = 0; b < NB; b++) {
        NS_CHECK(verifier_set_score(&full, x + b * DIM, early + b * DIM, labels + b, 1, one, fid1) == NS_OK);
        ok &= memcmp(one, all + b * VERIFIER_KINDS, sizeof one) == 0 && memcmp(fid1, fid + b * D, sizeof fid1) == 0;
    }
    NS_CHECK(verifier_set_score(&small, x, early, labels, NB, chunked, fid3) == NS_OK);
    int ok_chunk = memcmp(chunked, all, sizeof all) == 0 && memcmp(fid3, fid, sizeof fid) == 0;
    printf("  B = 1 vs B = %d: %s; max_batch 3 and 2 threads (chunks 3+3+1): %s\n", NB, ok ? "bitwise equal" : "DIFFER",
           ok_chunk ? "bitwise equal" : "DIFFER");
    EXPECT(ok, "B = 1 vs B = 7");
    EXPECT(ok_chunk, "chunked scoring");
    verifier_set_free(&full);
    verifier_set_free(&small);
}

static void test_ensemble(void) {
    printf("5. ensemble mean rank\n");
    enum { N = 5, T = 2 };
    // Term 0 with a tie and a NaN: ascending ranks NaN 1, 1.0 2, 2.0 and 2.0 share 3.5, 3.0 5.
    // Term 1 strictly increasing: ranks 1..5. Stride 6 (> n) to check strides.
    double scores[T * 6] = {3.0, 1.0, 2.0, 2.0, NAN, -99, 0.1, 0.2, 0.3, 0.4, 0.5, -99};
    double w[T] = {1.0, 3.0}, out[N];
    const double want_w[N] = {(5 + 3) / 4.0, (2 + 6) / 4.0, (3.5 + 9) / 4.0, (3.5 + 12) / 4.0, (1 + 15) / 4.0};
    const double want_u[N] = {(5 + 1) / 2.0, (2 + 2) / 2.0, (3.5 + 3) / 2.0, (3.5 + 4) / 2.0, (1 + 5) / 2.0};
    verifier_ensemble_ranks(out, scores, 6, w, T, N);
    int ok_w = 1, ok_u = 1;
    for (int i = 0; i < N; i++) ok_w &= out[i] == want_w[i];
    printf("  weighted (1, 3):   %.4f %.4f %.4f %.4f %.4f (want %.4f %.4f %.4f %.4f %.4f)\n", out[0], out[1], out[2],
           out[3], out[4], want_w[0], want_w[1], want_w[2], want_w[3], want_w[4]);
    verifier_ensemble_ranks(out, scores, 6, NULL, T, N);
    for (int i = 0; i < N; i++) ok_u &= out[i] == want_u[i];
    printf("  unweighted:        %.4f %.4f %.4f %.4f %.4f\n", out[0], out[1], out[2], out[3], out[4]);
    EXPECT(ok_w, "weighted ensemble ranks");
    EXPECT(ok_u, "unweighted ensemble ranks");

    // Reversed candidate order: each candidate keeps its value.
    double rev[T * N], out_rev[N];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) rev[t * N + i] = scores[t * 6 + (N - 1 - i)];
    verifier_ensemble_ranks(out_rev, rev, N, w, T, N);
    int ok_perm = 1;
    for (int i = 0; i < N; i++) ok_perm &= out_rev[N - 1 - i] == want_w[i];
    printf("  reversed order gives the same per-candidate ranks: %s\n", ok_perm ? "yes" : "NO");
    EXPECT(ok_perm, "ensemble order independence");
    // A single term with all values tied: every candidate gets (n + 1) / 2.
    double tied[4] = {7, 7, 7, 7}, out4[4];
    verifier_ensemble_ranks(out4, tied, 4, NULL, 1, 4);
    EXPECT(out4[0] == 2.5 && out4[3] == 2.5, "all-tied ranks %g %g", out4[0], out4[3]);
}

static void expect_refused(const char *what, ns_status st, const char *n1, const char *n2) {
    const char *msg = st ? ns_error_message() : "(accepted)";
    int ok = st != NS_OK && strstr(msg, n1) && (!n2 || strstr(msg, n2));
    printf("  %-40s %s: %s\n", what, ok ? "ok" : "FAIL", msg);
    EXPECT(ok, "%s", what);
}

static void test_errors(const char *vpath, const char *epath, const char *nopath) {
    printf("6. roles and errors\n");
    verifier_set vs;
    expect_refused("evaluator file as the verifier classifier",
                   verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_CLASS_LOGIT), epath, NULL, 4, 1), epath, "'evaluator'");
    expect_refused("verifier file as the evaluator",
                   verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_IS_ORACLE), NULL, vpath, 4, 1), vpath, "'verifier'");
    expect_refused("role-less file as the evaluator",
                   verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_FID_ORACLE), NULL, nopath, 4, 1), nopath, "without a role");
    expect_refused("evaluator and classifier swapped", verifier_set_init(&vs, ALL_KINDS, epath, vpath, 4, 1), epath,
                   NULL);
    expect_refused("oracle kind without an evaluator file",
                   verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_IS_ORACLE), vpath, NULL, 4, 1), "evaluator", NULL);
    expect_refused("empty kind mask", verifier_set_init(&vs, 0, vpath, epath, 4, 1), "kind", NULL);
    expect_refused("unknown kind bit", verifier_set_init(&vs, 1u << VERIFIER_KINDS, vpath, epath, 4, 1), "kind", NULL);
    expect_refused("missing file", verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_CLASS_LOGIT), "/nonexistent/v.h5",
                                                     NULL, 4, 1),
                   "/nonexistent/v.h5", NULL);
    ns_status st = verifier_set_init(&vs, VERIFIER_BIT(VERIFIER_SELF_SIMILARITY), nopath, NULL, 4, 1);
    printf("  %-40s %s\n", "role-less file as the verifier classifier", st ? ns_error_message() : "ok (accepted)");
    EXPECT(st == NS_OK, "role-less classifier accepted");
    if (!st) verifier_set_free(&vs);

    NS_CHECK(verifier_set_init(&vs, ALL_KINDS, vpath, epath, 4, 1) == NS_OK);
    float x[2 * DIM], fid[2 * D];
    double sc[2 * VERIFIER_KINDS];
    int labels[2] = {0, K};
    random_images(x, 2);
    expect_refused("self_similarity without x1_hat", verifier_set_score(&vs, x, NULL, labels, 1, sc, fid), "early",
                   NULL);
    expect_refused("label out of range", verifier_set_score(&vs, x, x, labels, 2, sc, fid), "label 3", NULL);
    expect_refused("fid_oracle without a feature output", verifier_set_score(&vs, x, x, labels, 1, sc, NULL),
                   "fid_oracle", NULL);
    expect_refused("samples of another shape", verifier_set_check_input(&vs, 1, 28, 28), "2x8x8", "1x28x28");
    EXPECT(verifier_set_check_input(&vs, C, S, S) == NS_OK, "matching shape refused: %s", ns_error_message());
    EXPECT(vs.images_v == 0 && vs.images_e == 0, "refused calls counted as cost");
    verifier_set_free(&vs);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    if (gemm_setup(1) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    char vpath[4096], epath[4096], nopath[4096];
    snprintf(vpath, sizeof vpath, "%s/test_verifier_v.h5", dir);
    snprintf(epath, sizeof epath, "%s/test_verifier_e.h5", dir);
    snprintf(nopath, sizeof nopath, "%s/test_verifier_norole.h5", dir);
    make_file(vpath, 1, "verifier");
    make_file(epath, 2, "evaluator");
    make_file(nopath, 3, "");
    test_kinds();
    test_scores(vpath, epath);
    test_invariance(vpath, epath);
    test_ensemble();
    test_errors(vpath, epath, nopath);
    remove(vpath), remove(epath), remove(nopath);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}

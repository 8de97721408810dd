// Verifiers (search-reference §4): the scores a search maximises. Each kind
// is a small, fixed object — a name, what inputs it needs, and a batched
// score that is higher-is-better. A worker holds one verifier_set with the
// networks its kinds need and scores a whole batch of candidates in one call.
// No MPI, no YAML.
//
// Kinds:
//   class_logit      supervised (the verifier classifier): logit of the conditioning class
//   class_logprob    supervised: log-softmax of the conditioning class
//   self_similarity  self-supervised, label-free: cosine similarity between the
//                    verifier classifier's features of x1_hat at an early t
//                    (default 0.6) and of the final sample
//   is_oracle        oracle (the evaluator): probability of the conditioning class
//   fid_oracle       oracle, set-level: the score step returns the evaluator's
//                    features; the choice (the candidate whose addition most
//                    lowers the FID of the selected set to the test-set
//                    statistics, metrics_fid_greedy) is made by the caller,
//                    which sees the whole set
//   ensemble         (combination, verifier_ensemble_ranks) weighted mean rank
//                    over a list of the kinds above
//
// Roles: a classifier file carries head/ attribute role = "verifier" or
// "evaluator" (cli train-classifier --role). verifier_set_init refuses an
// evaluator file as the verifier classifier and a verifier file as the
// evaluator, so non-oracle searches can never optimise the networks that
// report metrics.
#ifndef NS_VERIFIER_H
#define NS_VERIFIER_H

#include <stdint.h>

#include "../common/status.h"
#include "classifier.h"

typedef enum {
    VERIFIER_CLASS_LOGIT,
    VERIFIER_CLASS_LOGPROB,
    VERIFIER_SELF_SIMILARITY,
    VERIFIER_IS_ORACLE,
    VERIFIER_FID_ORACLE,
    VERIFIER_KINDS  // count
} verifier_kind;

#define VERIFIER_BIT(k) (1u << (k))

const char *verifier_kind_name(verifier_kind k);  // "class_logit", ...
// 0 and *out set, or -1 for an unknown name.
int verifier_kind_from_name(const char *name, verifier_kind *out);
int verifier_kind_is_oracle(verifier_kind k);     // reads the evaluator
int verifier_kind_needs_early(verifier_kind k);   // reads x1_hat at an early t
int verifier_kind_is_set_level(verifier_kind k);  // fid_oracle: the caller chooses
int verifier_kind_needs_label(verifier_kind k);   // reads the conditioning class

// Load a classifier file for a role: evaluator = 0 the verifier classifier
// (refuses a file whose head/ role is "evaluator"), evaluator = 1 the
// evaluator (refuses any role but "evaluator"). c: a zeroed classifier,
// filled on success. The message names the file, its role and the fix.
// verifier_set_init and the evaluation commands load through this.
ns_status verifier_network_load(classifier *c, const char *path, int evaluator);

// The networks and scratch for scoring batches of up to max_batch images
// with the kinds in `kinds` (a VERIFIER_BIT mask). Loads only what the kinds
// need: the verifier classifier for class_logit/class_logprob/self_similarity,
// the evaluator for is_oracle/fid_oracle.
typedef struct {
    uint32_t kinds;
    int max_batch;
    int has_classifier, has_evaluator;
    classifier net_v, net_e;
    classifier_workspace ws_v, ws_e;
    float *logits, *feat_a, *feat_b;  // scratch
    // Cost counters since init: images through each network and seconds spent.
    long images_v, images_e;
    double seconds;
} verifier_set;

// classifier_path / evaluator_path may be NULL when no requested kind needs
// them. Errors name the file and the expected role.
ns_status verifier_set_init(verifier_set *vs, uint32_t kinds, const char *classifier_path,
                            const char *evaluator_path, int max_batch, int threads);
void verifier_set_free(verifier_set *vs);  // accepts a zeroed or half-built set

// Evaluator feature dimension (fid_oracle), 0 without an evaluator.
int verifier_set_fid_dim(const verifier_set *vs);
// NS_ERR_ARG unless every loaded network takes C x H x W images (so a
// worker can check its denoiser's samples fit before the first task).
ns_status verifier_set_check_input(const verifier_set *vs, int C, int H, int W);

// Score B images (B, C, H, W) in [-1, 1] with every kind in vs->kinds.
// early: (B, C, H, W) x1_hat at the early t, needed by self_similarity
// (else may be NULL); labels: (B,) conditioning classes in [0, K), needed by
// class_logit, class_logprob and is_oracle (else may be NULL).
// scores: (B, VERIFIER_KINDS) row-major; kinds not requested (and
// fid_oracle, which has no per-candidate score) are NaN.
// fid_features: (B, verifier_set_fid_dim) when fid_oracle is requested, else
// may be NULL. Any B >= 0 (batches of more than max_batch are scored in
// chunks). Each row depends only on its own inputs, bitwise (batch-invariant).
// Per kind, with z the logits and f the features of a network:
//   class_logit      z_v(x)[y]
//   class_logprob    z_v(x)[y] - logsumexp(z_v(x))          (double)
//   self_similarity  f_v(early) . f_v(x) / (|f_v(early)| |f_v(x)|), 0 when a
//                    norm is 0                               (double)
//   is_oracle        softmax(z_e(x))[y]                      (double)
// Cost: one pass of net_v per image (two with self_similarity), one of
// net_e when an oracle kind is requested; counted in images_v / images_e.
// NS_ERR_ARG for a missing input or a label out of range (nothing scored).
ns_status verifier_set_score(verifier_set *vs, const float *images, const float *early, const int *labels, int B,
                             double *scores, float *fid_features);

// Forward FLOPs per image of the verifier classifier (evaluator = 0) or the
// evaluator (1), 0 if not loaded: the backbone's dit_forward_flops less its
// unused final linear, plus the head. With the counters, a caller reports
// verifier cost in denoiser-NFE equivalents:
//   (images_v * flops(vs, 0) + images_e * flops(vs, 1)) / dit_forward_flops(denoiser).
double verifier_set_flops_per_image(const verifier_set *vs, int evaluator);

// Ensemble (§4): for n candidates and T terms, scores[t*stride + i] the score
// of candidate i under term t (higher is better). Each term ranks the
// candidates ascending, 1..n (ties share the mean of their ranks; NaN ranks
// below every number); out[i] = sum_t w_t rank_t(i) / sum_t w_t. Higher is
// better. weights: (T,) non-negative with a positive sum, or NULL for equal
// weights (the paper's unweighted mean rank). Deterministic: the result does
// not depend on the order the candidates are given in.
void verifier_ensemble_ranks(double *out, const double *scores, int stride, const double *weights, int T, int n);

#endif

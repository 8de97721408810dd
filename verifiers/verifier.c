// Verifiers (see verifier.h): per-candidate scores from the verifier
// classifier and the evaluator, the ensemble's mean rank, role enforcement
// and cost counters. The networks run through classifier_forward, whose rows
// are bitwise independent of the batch, and every score below is a function
// of one row, so a candidate's score never depends on its batch-mates.
// Softmax arithmetic is in double. No MPI, no YAML.
#include "verifier.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[VERIFIER_KINDS] = {"class_logit", "class_logprob", "self_similarity",
                                                       "is_oracle", "fid_oracle"};

#define ROLE_VERIFIER "verifier"
#define ROLE_EVALUATOR "evaluator"

const char *verifier_kind_name(verifier_kind k) {
    return k >= 0 && k < VERIFIER_KINDS ? kind_names[k] : "unknown";
}

int verifier_kind_from_name(const char *name, verifier_kind *out) {
    for (int k = 0; k < VERIFIER_KINDS; k++)
        if (!strcmp(name, kind_names[k])) {
            *out = (verifier_kind)k;
            return 0;
        }
    return -1;
}

int verifier_kind_is_oracle(verifier_kind k) { return k == VERIFIER_IS_ORACLE || k == VERIFIER_FID_ORACLE; }
int verifier_kind_needs_early(verifier_kind k) { return k == VERIFIER_SELF_SIMILARITY; }
int verifier_kind_is_set_level(verifier_kind k) { return k == VERIFIER_FID_ORACLE; }
int verifier_kind_needs_label(verifier_kind k) {
    return k == VERIFIER_CLASS_LOGIT || k == VERIFIER_CLASS_LOGPROB || k == VERIFIER_IS_ORACLE;
}

// Any kind of the mask satisfying pred.
static int mask_any(uint32_t kinds, int (*pred)(verifier_kind)) {
    for (int k = 0; k < VERIFIER_KINDS; k++)
        if ((kinds & VERIFIER_BIT(k)) && pred((verifier_kind)k)) return 1;
    return 0;
}

static int kind_uses_classifier(verifier_kind k) { return !verifier_kind_is_oracle(k); }

ns_status verifier_network_load(classifier *c, const char *path, int evaluator) {
    ns_status st = classifier_load(c, path);
    if (st) return st;
    if (evaluator && strcmp(c->role, ROLE_EVALUATOR))
        st = ns_error_set(NS_ERR_ARG,
                          "%s: classifier %s%s%s, but the evaluator must be a file trained with "
                          "--role evaluator (reported metrics come only from a network no search optimises)",
                          path, c->role[0] ? "role '" : "without a role", c->role, c->role[0] ? "'" : "");
    else if (!evaluator && !strcmp(c->role, ROLE_EVALUATOR))
        st = ns_error_set(NS_ERR_ARG,
                          "%s: classifier role 'evaluator': the evaluator may only be used by the oracle "
                          "verifiers is_oracle and fid_oracle; give a classifier trained with --role verifier",
                          path);
    if (st) classifier_free(c);
    return st;
}

// ---------------------------------------------------------------------------
// Set

void verifier_set_free(verifier_set *vs) {
    if (vs->has_classifier) classifier_workspace_free(&vs->ws_v), classifier_free(&vs->net_v);
    if (vs->has_evaluator) classifier_workspace_free(&vs->ws_e), classifier_free(&vs->net_e);
    free(vs->logits), free(vs->feat_a), free(vs->feat_b);
    memset(vs, 0, sizeof *vs);
}

// Load one network for the set and its workspace.
static ns_status load_network(classifier *c, classifier_workspace *ws, const char *path, int evaluator,
                              int max_batch, int threads) {
    if (!path || !path[0])
        return ns_error_set(NS_ERR_ARG, "the requested verifiers need %s, but no file was given",
                            evaluator ? "the evaluator (oracle verifiers)" : "the verifier classifier");
    ns_status st = verifier_network_load(c, path, evaluator);
    if (st) return st;
    st = classifier_workspace_init(ws, &c->cfg, max_batch, threads);
    if (st) classifier_free(c);
    return st;
}

ns_status verifier_set_init(verifier_set *vs, uint32_t kinds, const char *classifier_path,
                            const char *evaluator_path, int max_batch, int threads) {
    memset(vs, 0, sizeof *vs);
    if (!kinds || (kinds >> VERIFIER_KINDS))
        return ns_error_set(NS_ERR_ARG, "verifier set: kind mask 0x%x names no kind or an unknown one", kinds);
    if (max_batch < 1) return ns_error_set(NS_ERR_ARG, "verifier set: max_batch must be >= 1 (got %d)", max_batch);
    vs->kinds = kinds;
    vs->max_batch = max_batch;
    ns_status st = NS_OK;
    if (mask_any(kinds, kind_uses_classifier)) {
        st = load_network(&vs->net_v, &vs->ws_v, classifier_path, 0, max_batch, threads);
        vs->has_classifier = !st;
    }
    if (!st && mask_any(kinds, verifier_kind_is_oracle)) {
        st = load_network(&vs->net_e, &vs->ws_e, evaluator_path, 1, max_batch, threads);
        vs->has_evaluator = !st;
    }
    if (!st && vs->has_classifier && vs->has_evaluator) {
        const dit_config *a = &vs->net_v.cfg.backbone, *b = &vs->net_e.cfg.backbone;
        if (a->in_channels != b->in_channels || a->input_size != b->input_size)
            st = ns_error_set(NS_ERR_ARG, "%s takes %dx%dx%d images but %s takes %dx%dx%d", classifier_path,
                              a->in_channels, a->input_size, a->input_size, evaluator_path, b->in_channels,
                              b->input_size, b->input_size);
    }
    if (st) {
        verifier_set_free(vs);
        return st;
    }
    int K = 0, D = 0;
    if (vs->has_classifier) K = vs->net_v.cfg.num_classes, D = vs->net_v.cfg.backbone.hidden_size;
    if (vs->has_evaluator) {
        if (vs->net_e.cfg.num_classes > K) K = vs->net_e.cfg.num_classes;
        if (vs->net_e.cfg.backbone.hidden_size > D) D = vs->net_e.cfg.backbone.hidden_size;
    }
    vs->logits = ns_malloc((size_t)max_batch * K * sizeof(float), "verifier logits");   // (max_batch, K)
    vs->feat_a = ns_malloc((size_t)max_batch * D * sizeof(float), "verifier features");  // (max_batch, D)
    vs->feat_b = ns_malloc((size_t)max_batch * D * sizeof(float), "verifier features");  // (max_batch, D)
    return NS_OK;
}

int verifier_set_fid_dim(const verifier_set *vs) {
    return vs->has_evaluator ? vs->net_e.cfg.backbone.hidden_size : 0;
}

ns_status verifier_set_check_input(const verifier_set *vs, int C, int H, int W) {
    const classifier *nets[2] = {vs->has_classifier ? &vs->net_v : NULL, vs->has_evaluator ? &vs->net_e : NULL};
    for (int i = 0; i < 2; i++) {
        if (!nets[i]) continue;
        const dit_config *b = &nets[i]->cfg.backbone;
        if (b->in_channels != C || b->input_size != H || b->input_size != W)
            return ns_error_set(NS_ERR_ARG, "the %s takes %dx%dx%d images, the samples are %dx%dx%d",
                                i ? "evaluator" : "verifier classifier", b->in_channels, b->input_size,
                                b->input_size, C, H, W);
    }
    return NS_OK;
}

double verifier_set_flops_per_image(const verifier_set *vs, int evaluator) {
    if (evaluator ? !vs->has_evaluator : !vs->has_classifier) return 0.0;
    const classifier *c = evaluator ? &vs->net_e : &vs->net_v;
    const dit_config *b = &c->cfg.backbone;
    double T = dit_tokens(b), D = b->hidden_size;
    double unused_final = 2.0 * T * D * dit_out_channels(b) * b->patch_size * b->patch_size;
    return dit_forward_flops(b) - unused_final + 2.0 * D * c->cfg.num_classes;
}

// ---------------------------------------------------------------------------
// Scores

// log softmax(z)[y] in double, max subtracted. z: (K,).
static double log_softmax_at(const float *z, int K, int y) {
    double zmax = z[0];
    for (int k = 1; k < K; k++)
        if (z[k] > zmax) zmax = z[k];
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
    return (double)z[y] - zmax - log(sum);
}

static double cosine(const float *a, const float *b, int D) {
    double ab = 0, aa = 0, bb = 0;
    for (int j = 0; j < D; j++) ab += (double)a[j] * b[j], aa += (double)a[j] * a[j], bb += (double)b[j] * b[j];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

// One chunk of B <= max_batch rows.
static void score_chunk(verifier_set *vs, const float *images, const float *early, const int *labels, int B,
                        double *scores, float *fid_features) {
    uint32_t m = vs->kinds;
    for (size_t i = 0; i < (size_t)B * VERIFIER_KINDS; i++) scores[i] = NAN;
    if (vs->has_classifier) {
        const classifier *c = &vs->net_v;
        int K = c->cfg.num_classes, D = c->cfg.backbone.hidden_size;
        classifier_forward(c, &vs->ws_v, vs->logits, vs->feat_b, images, B);
        vs->images_v += B;
        if (m & VERIFIER_BIT(VERIFIER_SELF_SIMILARITY)) {
            float *discard = vs->ws_v.logits;  // logits of the early pass are not needed
            classifier_forward(c, &vs->ws_v, discard, vs->feat_a, early, B);
            vs->images_v += B;
        }
        for (int b = 0; b < B; b++) {
            double *s = scores + (size_t)b * VERIFIER_KINDS;
            const float *z = vs->logits + (size_t)b * K;
            if (m & VERIFIER_BIT(VERIFIER_CLASS_LOGIT)) s[VERIFIER_CLASS_LOGIT] = z[labels[b]];
            if (m & VERIFIER_BIT(VERIFIER_CLASS_LOGPROB)) s[VERIFIER_CLASS_LOGPROB] = log_softmax_at(z, K, labels[b]);
            if (m & VERIFIER_BIT(VERIFIER_SELF_SIMILARITY))
                s[VERIFIER_SELF_SIMILARITY] = cosine(vs->feat_a + (size_t)b * D, vs->feat_b + (size_t)b * D, D);
        }
    }
    if (vs->has_evaluator) {
        const classifier *c = &vs->net_e;
        int K = c->cfg.num_classes;
        float *features = (m & VERIFIER_BIT(VERIFIER_FID_ORACLE)) ? fid_features : NULL;
        classifier_forward(c, &vs->ws_e, vs->logits, features, images, B);
        vs->images_e += B;
        if (m & VERIFIER_BIT(VERIFIER_IS_ORACLE))
            for (int b = 0; b < B; b++)
                scores[(size_t)b * VERIFIER_KINDS + VERIFIER_IS_ORACLE] =
                    exp(log_softmax_at(vs->logits + (size_t)b * K, K, labels[b]));
    }
}

ns_status verifier_set_score(verifier_set *vs, const float *images, const float *early, const int *labels, int B,
                             double *scores, float *fid_features) {
    NS_CHECK(vs->kinds && vs->logits);
    if (B < 0) return ns_error_set(NS_ERR_ARG, "verifier set: negative batch %d", B);
    if (B == 0) return NS_OK;
    uint32_t m = vs->kinds;
    if (!images) return ns_error_set(NS_ERR_ARG, "verifiers: no images to score");
    if (mask_any(m, verifier_kind_needs_early) && !early)
        return ns_error_set(NS_ERR_ARG, "self_similarity needs x1_hat at the early t, none was given");
    if ((m & VERIFIER_BIT(VERIFIER_FID_ORACLE)) && !fid_features)
        return ns_error_set(NS_ERR_ARG, "fid_oracle needs an output for the evaluator features");
    if (mask_any(m, verifier_kind_needs_label)) {
        if (!labels) return ns_error_set(NS_ERR_ARG, "the requested verifiers need conditioning labels, none given");
        int K = vs->has_classifier ? vs->net_v.cfg.num_classes : vs->net_e.cfg.num_classes;
        if (vs->has_evaluator && vs->net_e.cfg.num_classes < K) K = vs->net_e.cfg.num_classes;
        for (int b = 0; b < B; b++)
            if (labels[b] < 0 || labels[b] >= K)
                return ns_error_set(NS_ERR_ARG, "verifiers: label %d of candidate %d is outside [0, %d)", labels[b], b,
                                    K);
    }
    double t0 = ns_now();
    size_t dim = vs->has_classifier ? (size_t)dit_sample_dim(&vs->net_v.cfg.backbone)
                                    : (size_t)dit_sample_dim(&vs->net_e.cfg.backbone);
    int fd = verifier_set_fid_dim(vs);
    for (int start = 0; start < B; start += vs->max_batch) {
        int nb = B - start < vs->max_batch ? B - start : vs->max_batch;
        score_chunk(vs, images + start * dim, early ? early + start * dim : NULL, labels ? labels + start : NULL, nb,
                    scores + (size_t)start * VERIFIER_KINDS,
                    fid_features ? fid_features + (size_t)start * fd : NULL);
    }
    vs->seconds += ns_now() - t0;
    return NS_OK;
}

// ---------------------------------------------------------------------------
// Ensemble

typedef struct {
    double v;
    int i;
} ranked;

// Ascending, NaN first (the worst), then by index so the order is total.
static int ranked_cmp(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    int na = isnan(a->v), nb = isnan(b->v);
    if (na != nb) return na ? -1 : 1;
    if (!na && a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int same_value(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

void verifier_ensemble_ranks(double *out, const double *scores, int stride, const double *weights, int T, int n) {
    NS_CHECK(T >= 1 && n >= 0 && stride >= n);
    double wsum = 0;
    for (int t = 0; t < T; t++) {
        double w = weights ? weights[t] : 1.0;
        NS_CHECK(w >= 0 && isfinite(w));
        wsum += w;
    }
    NS_CHECK(wsum > 0);
    for (int i = 0; i < n; i++) out[i] = 0;
    if (n == 0) return;
    ranked *r = ns_malloc((size_t)n * sizeof *r, "ensemble ranks");
    for (int t = 0; t < T; t++) {
        double w = weights ? weights[t] : 1.0;
        const double *s = scores + (size_t)t * stride;
        for (int i = 0; i < n; i++) r[i] = (ranked){s[i], i};
        qsort(r, (size_t)n, sizeof *r, ranked_cmp);
        // Ties (positions lo..hi-1, ranks lo+1..hi) share (lo + 1 + hi) / 2.
        for (int lo = 0, hi; lo < n; lo = hi) {
            for (hi = lo + 1; hi < n && same_value(r[hi].v, r[lo].v); hi++) {}
            double rank = 0.5 * (double)(lo + 1 + hi);
            for (int j = lo; j < hi; j++) out[r[j].i] += w * rank;
        }
    }
    for (int i = 0; i < n; i++) out[i] /= wsum;
    free(r);
}

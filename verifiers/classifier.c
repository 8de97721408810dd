// The verifier/evaluator classifier (see classifier.h): DiT backbone with a
// fixed conditioning, mean-pooled final-norm features, a linear head;
// cross-entropy training with AdamW. The backbone's forward and backward are
// model/dit_train.c's (dit_train_forward_features, dit_backward_features);
// this file adds only pooling, the head, the loss and the loop around them.
// Ref: Dosovitskiy et al. 2021 (ViT); Peebles & Xie 2023 (DiT blocks).
#include "classifier.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/h5util.h"
#include "../model/dit_io.h"
#include "../model/gemm.h"
#include "../model/layers.h"
#include "../model/noise.h"

// Philox streams of one seed, kept apart by their top bits (as model/trainer.c).
#define STREAM_PERM (1ull << 62)  // | epoch: data order
#define STREAM_STEP (2ull << 62)  // | step: flip and shift of each sample
#define CLIP_EPS 1e-6             // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6)

classifier_config classifier_config_make(int S, int C, int K, int p, int D, int depth, int heads) {
    classifier_config c = {.backbone = {.input_size = S, .in_channels = C, .patch_size = p, .depth = depth,
                                        .hidden_size = D, .num_heads = heads, .num_classes = K, .learn_sigma = 0,
                                        .mlp_ratio = 4.0f},
                           .num_classes = K};
    return c;
}

ns_status classifier_config_check(const classifier_config *c) {
    ns_status st = dit_config_check(&c->backbone);
    if (st) return st;
    if (c->num_classes < 2 || c->num_classes != c->backbone.num_classes)
        return ns_error_set(NS_ERR_ARG, "num_classes %d must be at least 2 and equal the backbone's num_classes %d",
                            c->num_classes, c->backbone.num_classes);
    return NS_OK;
}

// Allocate a zero head and its table; the backbone allocated, values unset.
static ns_status classifier_alloc(classifier *c, const classifier_config *cfg) {
    memset(c, 0, sizeof *c);
    ns_status st = classifier_config_check(cfg);
    if (st) return st;
    c->cfg = *cfg;
    if ((st = dit_model_init(&c->backbone, &cfg->backbone))) return st;
    int K = cfg->num_classes, D = cfg->backbone.hidden_size;
    c->head_params = (size_t)K * D + K;
    c->head = ns_aligned_alloc(c->head_params * sizeof(float), "classifier head");
    c->head_w = c->head;
    c->head_b = c->head + (size_t)K * D;
    c->head_tensors[0] = (dit_tensor){.name = "head.weight", .ndim = 2, .shape = {K, D}, .numel = (size_t)K * D};
    c->head_tensors[1] =
        (dit_tensor){.name = "head.bias", .ndim = 1, .shape = {K}, .numel = (size_t)K, .offset = (size_t)K * D};
    return NS_OK;
}

ns_status classifier_init(classifier *c, const classifier_config *cfg, uint64_t seed) {
    ns_status st = classifier_alloc(c, cfg);
    if (st) {
        classifier_free(c);
        return st;
    }
    dit_train_init_weights(&c->backbone, seed);
    return NS_OK;
}

void classifier_free(classifier *c) {
    dit_model_free(&c->backbone);
    free(c->head);
    memset(c, 0, sizeof *c);
}

// The head seen as a tensor table, so optim.h (AdamW groups by name and
// rank: head.weight decays, head.bias does not; clipping) applies unchanged.
// Only memory, num_params, tensors and num_tensors are meaningful.
static dit_model head_view(const classifier *c) {
    dit_model v;
    memset(&v, 0, sizeof v);
    v.cfg = c->cfg.backbone;
    v.memory = c->head;
    v.num_params = c->head_params;
    v.tensors = (dit_tensor *)c->head_tensors;
    v.num_tensors = 2;
    return v;
}

// ---------------------------------------------------------------------------
// File

// "head.weight" -> "head/weight": the HDF5 path of a head tensor.
static void head_path(char *buf, size_t n, const dit_tensor *t) {
    snprintf(buf, n, "head/%s", t->name + strlen("head."));
}

// The classifier file's content (root backbone, head/ group) into an open file.
static ns_status write_classifier(hid_t file, const char *p, const classifier *c) {
    ns_status st = dit_config_write_attrs(file, p, &c->backbone.cfg);
    if (!st) st = dit_tensors_write(file, p, &c->backbone, c->backbone.memory);
    hid_t g = H5I_INVALID_HID;
    if (!st) {
        H5E_BEGIN_TRY { g = H5Gcreate2(file, "head", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }
        H5E_END_TRY;
        if (g < 0) st = ns_error_set(NS_ERR_IO, "%s: cannot create group head", p);
    }
    if (!st) st = h5u_attr_write_string(g, p, "format", CLASSIFIER_FORMAT);
    if (!st) st = h5u_attr_write_int(g, p, "num_classes", c->cfg.num_classes);
    if (!st) st = h5u_attr_write_string(g, p, "features", "mean over tokens of the final adaLN LayerNorm output");
    if (!st && c->role[0]) st = h5u_attr_write_string(g, p, "role", c->role);
    for (int i = 0; i < 2 && !st; i++) {
        const dit_tensor *t = &c->head_tensors[i];
        char name[80];
        head_path(name, sizeof name, t);
        hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
        st = h5u_write_floats(file, p, name, t->ndim, dims, c->head + t->offset);
    }
    if (g >= 0) H5Gclose(g);
    return st;
}

ns_status classifier_save(const classifier *c, const char *path) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, path);
    if (st) return st;
    return h5u_atomic_finish(&out, write_classifier(out.file, out.tmp_path, c));
}

static ns_status read_head_tensor(hid_t file, const char *path, const dit_tensor *t, float *dst) {
    char name[80];
    head_path(name, sizeof name, t);
    htri_t exists;
    H5E_BEGIN_TRY { exists = H5Lexists(file, name, H5P_DEFAULT); }
    H5E_END_TRY;
    if (exists <= 0) return ns_error_set(NS_ERR_FORMAT, "%s: missing tensor %s", path, name);
    hsize_t dims[2] = {0, 0};
    float *data = NULL;
    H5E_BEGIN_TRY {
        H5O_info_t info;
        if (H5Oget_info_by_name2(file, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET)
            exists = 0;
    }
    H5E_END_TRY;
    if (exists <= 0) return ns_error_set(NS_ERR_FORMAT, "%s: %s is not a dataset", path, name);
    hid_t d;
    int ndim = -1;
    H5E_BEGIN_TRY {
        d = H5Dopen2(file, name, H5P_DEFAULT);
        if (d >= 0) {
            hid_t s = H5Dget_space(d);
            if (s >= 0) ndim = H5Sget_simple_extent_ndims(s), H5Sclose(s);
            H5Dclose(d);
        }
    }
    H5E_END_TRY;
    if (ndim != t->ndim)
        return ns_error_set(NS_ERR_FORMAT, "%s: %s has %d dimensions, expected %d", path, name, ndim, t->ndim);
    ns_status st = h5u_read_floats(file, path, name, t->ndim, dims, &data);
    if (st) return st;
    int same = 1;
    for (int i = 0; i < t->ndim; i++) same &= dims[i] == (hsize_t)t->shape[i];
    if (!same) {
        if (t->ndim == 2)
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s has shape [%llu,%llu], expected [%d,%d]", path, name,
                              (unsigned long long)dims[0], (unsigned long long)dims[1], t->shape[0], t->shape[1]);
        else
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s has shape [%llu], expected [%d]", path, name,
                              (unsigned long long)dims[0], t->shape[0]);
    } else {
        memcpy(dst, data, t->numel * sizeof(float));
    }
    free(data);
    return st;
}

ns_status classifier_load(classifier *c, const char *path) {
    memset(c, 0, sizeof *c);
    hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID;
    classifier_config cfg;
    char format[64] = "";
    int K = 0;
    ns_status st = h5u_open_read(&file, path);
    if (st) return st;
    st = dit_config_read_attrs(file, path, &cfg.backbone);
    if (!st) {
        H5E_BEGIN_TRY { g = H5Gopen2(file, "head", H5P_DEFAULT); }
        H5E_END_TRY;
        if (g < 0)
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing group 'head' (a denoiser file, not a classifier?)", path);
    }
    if (!st) st = h5u_attr_read_string(g, path, "format", format, sizeof format);
    if (!st && strcmp(format, CLASSIFIER_FORMAT))
        st = ns_error_set(NS_ERR_FORMAT, "%s: head/ format '%s', expected '%s'", path, format, CLASSIFIER_FORMAT);
    if (!st) st = h5u_attr_read_int(g, path, "num_classes", &K);
    char role[CLASSIFIER_ROLE_MAX] = "";
    if (!st && H5Aexists(g, "role") > 0) st = h5u_attr_read_string(g, path, "role", role, sizeof role);
    if (!st) {
        cfg.num_classes = K;
        if (classifier_config_check(&cfg))
            st = ns_error_set(NS_ERR_FORMAT, "%s: inconsistent classifier: %s", path, ns_error_message());
    }
    if (!st) st = classifier_alloc(c, &cfg);
    if (!st) memcpy(c->role, role, sizeof role);
    if (!st) st = dit_tensors_read(file, path, &c->backbone, c->backbone.memory);
    for (int i = 0; i < 2 && !st; i++)
        st = read_head_tensor(file, path, &c->head_tensors[i], c->head + c->head_tensors[i].offset);
    if (g >= 0) H5Gclose(g);
    h5u_close_file(file);
    if (st) classifier_free(c);
    return st;
}

// ---------------------------------------------------------------------------
// Workspace, forward, loss, backward

ns_status classifier_workspace_init(classifier_workspace *ws, const classifier_config *cfg, int max_batch,
                                    int threads) {
    memset(ws, 0, sizeof *ws);
    ns_status st = classifier_config_check(cfg);
    if (st) return st;
    if ((st = dit_train_acts_init(&ws->acts, &cfg->backbone, max_batch, threads))) return st;
    size_t B = (size_t)max_batch, K = (size_t)cfg->num_classes, D = (size_t)cfg->backbone.hidden_size;
    size_t T = (size_t)dit_tokens(&cfg->backbone);
    ws->max_batch = max_batch;
    ws->t = ns_malloc(B * sizeof(float), "classifier t");
    ws->y = ns_malloc(B * sizeof(int), "classifier labels");
    for (size_t b = 0; b < B; b++) ws->t[b] = 1.0f, ws->y[b] = cfg->num_classes;  // t = 1, null label
    ws->features = ns_aligned_alloc(B * D * sizeof(float), "classifier features");
    ws->logits = ns_aligned_alloc(B * K * sizeof(float), "classifier logits");
    ws->dlogits = ns_aligned_alloc(B * K * sizeof(float), "classifier logit gradients");
    ws->dfeatures = ns_aligned_alloc(B * D * sizeof(float), "classifier feature gradients");
    ws->dhf = ns_aligned_alloc(B * T * D * sizeof(float), "classifier token gradients");
    ws->sample_loss = ns_calloc(B, sizeof(double), "classifier losses");
    return NS_OK;
}

void classifier_workspace_free(classifier_workspace *ws) {
    dit_train_acts_free(&ws->acts);
    free(ws->t), free(ws->y), free(ws->features), free(ws->logits), free(ws->dlogits), free(ws->dfeatures);
    free(ws->dhf), free(ws->sample_loss);
    memset(ws, 0, sizeof *ws);
}

// Backbone, mean pooling (tokens in order, per sample) and head into
// ws->features (B, D) and logits (B, K).
static void forward_into(const classifier *c, classifier_workspace *ws, float *logits, const float *images, int B) {
    const dit_config *bc = &c->cfg.backbone;
    NS_CHECK(B >= 1 && B <= ws->max_batch);
    int T = dit_tokens(bc), D = bc->hidden_size, K = c->cfg.num_classes, nt = ws->acts.threads;
    dit_train_forward_features(&c->backbone, &ws->acts, images, ws->t, ws->y, B);
    const float *hf = ws->acts.hf;
    float inv_t = 1.0f / (float)T;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        float *f = ws->features + (size_t)b * D;
        memcpy(f, hf + (size_t)b * T * D, (size_t)D * sizeof(float));
        for (int t = 1; t < T; t++) {
            const float *row = hf + ((size_t)b * T + t) * D;
            for (int j = 0; j < D; j++) f[j] += row[j];
        }
        for (int j = 0; j < D; j++) f[j] *= inv_t;
        memcpy(logits + (size_t)b * K, c->head_b, (size_t)K * sizeof(float));
    }
    gemm_nt(logits, K, ws->features, D, c->head_w, B, K, D, 1.0f, nt);
}

void classifier_forward(const classifier *c, classifier_workspace *ws, float *logits, float *features,
                        const float *images, int B) {
    forward_into(c, ws, logits, images, B);
    if (features)
        memcpy(features, ws->features, (size_t)B * c->cfg.backbone.hidden_size * sizeof(float));
}

double classifier_loss(const classifier *c, classifier_workspace *ws, const float *images, const int *labels, int B) {
    int K = c->cfg.num_classes;
    forward_into(c, ws, ws->logits, images, B);
    for (int b = 0; b < B; b++) NS_CHECK(labels[b] >= 0 && labels[b] < K);
    // Per-sample log-softmax with the max subtracted, sums in double.
    for (int b = 0; b < B; b++) {
        const float *z = ws->logits + (size_t)b * K;
        float *dz = ws->dlogits + (size_t)b * K;
        float zmax = z[0];
        for (int k = 1; k < K; k++) zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
        double lse = zmax + log(sum);
        ws->sample_loss[b] = lse - z[labels[b]];
        for (int k = 0; k < K; k++)
            dz[k] = (float)((exp((double)z[k] - lse) - (k == labels[b] ? 1.0 : 0.0)) / (double)B);
    }
    double total = 0.0;
    for (int b = 0; b < B; b++) total += ws->sample_loss[b];
    return total / B;
}

void classifier_backward(const classifier *c, classifier_workspace *ws, const dit_params *grad, float *grad_head,
                         int B) {
    const dit_config *bc = &c->cfg.backbone;
    NS_CHECK(B == ws->acts.batch);
    int T = dit_tokens(bc), D = bc->hidden_size, K = c->cfg.num_classes, nt = ws->acts.threads;
    float *gw = grad_head + c->head_tensors[0].offset, *gb = grad_head + c->head_tensors[1].offset;
    // Head: logits = features W^T + b.  dW (K, D) += dlogits^T features; db += column sums; dfeatures = dlogits W.
    gemm_run(K, D, B, 1.0f, ws->dlogits, 1, K, ws->features, D, 1, 1.0f, gw, D, 1, nt);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) gb[k] += ws->dlogits[(size_t)b * K + k];
    gemm_run(B, D, K, 1.0f, ws->dlogits, K, 1, c->head_w, D, 1, 0.0f, ws->dfeatures, D, 1, nt);
    // Mean pooling: every token of sample b gets dfeatures[b] / T.
    float inv_t = 1.0f / (float)T;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < B * T; r++) {
        const float *df = ws->dfeatures + (size_t)(r / T) * D;
        float *dh = ws->dhf + (size_t)r * D;
        for (int j = 0; j < D; j++) dh[j] = df[j] * inv_t;
    }
    dit_backward_features(&c->backbone, &ws->acts, grad, ws->dhf, B);
}

static int argmax(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

double classifier_accuracy(const classifier *c, classifier_workspace *ws, const dataset *d, int n) {
    if (n <= 0 || n > d->count) n = d->count;
    int K = c->cfg.num_classes;
    size_t dim = (size_t)dit_sample_dim(&c->cfg.backbone);
    NS_CHECK((size_t)d->channels * d->height * d->width == dim);
    long correct = 0;
    for (int start = 0; start < n; start += ws->max_batch) {
        int nb = n - start < ws->max_batch ? n - start : ws->max_batch;
        forward_into(c, ws, ws->logits, d->images + (size_t)start * dim, nb);
        for (int b = 0; b < nb; b++) correct += argmax(ws->logits + (size_t)b * K, K) == d->labels[start + b];
    }
    return n ? (double)correct / n : 0.0;
}

// ---------------------------------------------------------------------------
// Training loop

void classifier_train_config_defaults(classifier_train_config *t) {
    memset(t, 0, sizeof *t);
    t->batch = 128;
    t->steps = 5000;
    t->schedule = (optim_schedule){.kind = OPTIM_LR_COSINE, .lr = 1e-3f, .lr_min = 1e-5f, .warmup_steps = 200,
                                   .total_steps = t->steps};
    t->adam = (optim_adamw_config){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    t->clip_norm = 1.0f;
    t->hflip = 1;
    t->max_shift = 2;
}

ns_status classifier_train_config_check(const classifier_train_config *t) {
    if (t->batch < 1) return ns_error_set(NS_ERR_ARG, "batch must be at least 1, got %d", t->batch);
    if (t->steps < 1) return ns_error_set(NS_ERR_ARG, "steps must be at least 1, got %ld", t->steps);
    if (!(t->clip_norm >= 0)) return ns_error_set(NS_ERR_ARG, "clip must be >= 0, got %g", (double)t->clip_norm);
    if (t->max_shift < 0 || t->max_shift > 8)
        return ns_error_set(NS_ERR_ARG, "max_shift %d out of range 0..8", t->max_shift);
    return optim_schedule_check(&t->schedule);
}

ns_status classifier_trainer_init(classifier_trainer *tr, classifier *model, const classifier_train_config *cfg,
                                  const dataset *train, int threads) {
    memset(tr, 0, sizeof *tr);
    ns_status st = classifier_train_config_check(cfg);
    if (st) return st;
    const dit_config *bc = &model->cfg.backbone;
    if (train->channels != bc->in_channels || train->height != bc->input_size || train->width != bc->input_size ||
        train->num_classes > model->cfg.num_classes)
        return ns_error_set(NS_ERR_ARG,
                            "the classifier (%dx%dx%d, %d classes) does not fit the data (%dx%dx%d, %d classes)",
                            bc->input_size, bc->input_size, bc->in_channels, model->cfg.num_classes, train->height,
                            train->width, train->channels, train->num_classes);
    if (cfg->batch > train->count)
        return ns_error_set(NS_ERR_ARG, "batch %d exceeds the dataset size %d", cfg->batch, train->count);
    tr->cfg = *cfg;
    tr->model = model;
    tr->train = train;
    dit_model hv = head_view(model);
    if (!st) st = classifier_workspace_init(&tr->ws, &model->cfg, cfg->batch, threads);
    if (!st) st = optim_adamw_init(&tr->opt_backbone, &model->backbone, &cfg->adam);
    if (!st) st = optim_adamw_init(&tr->opt_head, &hv, &cfg->adam);
    if (st) {
        classifier_trainer_free(tr);
        return st;
    }
    tr->grad = ns_aligned_alloc(model->backbone.num_params * sizeof(float), "classifier gradients");
    dit_params_bind(&tr->grad_p, bc, tr->grad);
    tr->grad_head = ns_aligned_alloc(model->head_params * sizeof(float), "classifier head gradients");
    tr->images = ns_aligned_alloc((size_t)cfg->batch * dit_sample_dim(bc) * sizeof(float), "classifier batch");
    tr->labels = ns_malloc((size_t)cfg->batch * sizeof(int), "classifier batch labels");
    tr->perm = ns_malloc((size_t)train->count * sizeof(uint32_t), "data order");
    tr->perm_epoch = -1;
    return NS_OK;
}

void classifier_trainer_free(classifier_trainer *tr) {
    classifier_workspace_free(&tr->ws);
    optim_adamw_free(&tr->opt_backbone);
    optim_adamw_free(&tr->opt_head);
    free(tr->grad), free(tr->grad_head), free(tr->images), free(tr->labels), free(tr->perm);
    memset(tr, 0, sizeof *tr);
}

// The data order of one epoch, from its own stream.
static void make_permutation(classifier_trainer *tr, long epoch) {
    noise_permutation(tr->perm, tr->train->count, (noise_key){tr->cfg.seed, STREAM_PERM | (uint64_t)epoch});
    tr->perm_epoch = epoch;
}

// The batch of step s: sample j is flipped with probability 1/2 (hflip) and
// shifted by (dy, dx) uniform in [-max_shift, max_shift]^2, the vacated
// border filled with the background value -1.
static void fill_batch(classifier_trainer *tr, long s) {
    const dataset *d = tr->train;
    int B = tr->cfg.batch, H = d->height, W = d->width, C = d->channels, ms = tr->cfg.max_shift;
    size_t dim = (size_t)C * H * W;
    long per_epoch = d->count / B;
    long epoch = s / per_epoch;
    if (epoch != tr->perm_epoch) make_permutation(tr, epoch);
    noise_key key = {tr->cfg.seed, STREAM_STEP | (uint64_t)s};
    for (int j = 0; j < B; j++) {
        int idx = (int)tr->perm[(s % per_epoch) * B + j];
        const float *src = d->images + (size_t)idx * dim;
        float *dst = tr->images + (size_t)j * dim;
        int flip = tr->cfg.hflip && noise_uniform(key, 3 * (uint64_t)j) < 0.5;
        int dy = (int)(noise_uniform(key, 3 * (uint64_t)j + 1) * (2 * ms + 1)) - ms;
        int dx = (int)(noise_uniform(key, 3 * (uint64_t)j + 2) * (2 * ms + 1)) - ms;
        for (int c = 0; c < C; c++)
            for (int r = 0; r < H; r++)
                for (int x = 0; x < W; x++) {
                    int sr = r - dy, sx = x - dx;
                    if (flip) sx = W - 1 - sx;
                    float v = sr >= 0 && sr < H && sx >= 0 && sx < W ? src[((size_t)c * H + sr) * W + sx] : -1.0f;
                    dst[((size_t)c * H + r) * W + x] = v;
                }
        tr->labels[j] = d->labels[idx];
    }
}

void classifier_trainer_step(classifier_trainer *tr, classifier_step_info *info) {
    classifier *c = tr->model;
    long s = tr->step;
    int B = tr->cfg.batch, K = c->cfg.num_classes, nt = tr->ws.acts.threads;
    fill_batch(tr, s);
    memset(tr->grad, 0, c->backbone.num_params * sizeof(float));
    memset(tr->grad_head, 0, c->head_params * sizeof(float));
    double loss = classifier_loss(c, &tr->ws, tr->images, tr->labels, B);
    int correct = 0;
    for (int b = 0; b < B; b++) correct += argmax(tr->ws.logits + (size_t)b * K, K) == tr->labels[b];
    classifier_backward(c, &tr->ws, &tr->grad_p, tr->grad_head, B);

    // One global norm over backbone and head (norms only, then one scale).
    dit_model hv = head_view(c);
    double nb = optim_clip_grad_norm(&c->backbone, tr->grad, 0.0, nt);
    double nh = optim_clip_grad_norm(&hv, tr->grad_head, 0.0, nt);
    double norm = sqrt(nb * nb + nh * nh);
    double coef = tr->cfg.clip_norm / (norm + CLIP_EPS);
    if (tr->cfg.clip_norm > 0 && coef < 1.0) {
        float f = (float)coef;
        for (size_t i = 0; i < c->backbone.num_params; i++) tr->grad[i] *= f;
        for (size_t i = 0; i < c->head_params; i++) tr->grad_head[i] *= f;
    }
    float lr = optim_lr_at(&tr->cfg.schedule, s);
    optim_adamw_step(&tr->opt_backbone, &c->backbone, tr->grad, lr, nt);
    optim_adamw_step(&tr->opt_head, &hv, tr->grad_head, lr, nt);
    tr->step = s + 1;
    if (info)
        *info = (classifier_step_info){
            .step = s + 1, .loss = loss, .accuracy = (double)correct / B, .grad_norm = norm, .lr = lr};
}

// ---------------------------------------------------------------------------
// Checkpoints

#define CLASSIFIER_CHECKPOINT_FORMAT "noisesearch-classifier-checkpoint"

// The numeric training settings, by attribute name (one table for save and resume).
typedef struct {
    const char *name;
    double value;
} ckpt_field;

static int ckpt_fields(const classifier_trainer *tr, ckpt_field *f) {
    const classifier_train_config *c = &tr->cfg;
    int n = 0;
    f[n++] = (ckpt_field){"step", (double)tr->step};
    f[n++] = (ckpt_field){"adam_step", (double)tr->opt_backbone.step};
    f[n++] = (ckpt_field){"batch", c->batch};
    f[n++] = (ckpt_field){"steps", (double)c->steps};
    f[n++] = (ckpt_field){"lr", c->schedule.lr};
    f[n++] = (ckpt_field){"lr_min", c->schedule.lr_min};
    f[n++] = (ckpt_field){"warmup_steps", (double)c->schedule.warmup_steps};
    f[n++] = (ckpt_field){"beta1", c->adam.beta1};
    f[n++] = (ckpt_field){"beta2", c->adam.beta2};
    f[n++] = (ckpt_field){"eps", c->adam.eps};
    f[n++] = (ckpt_field){"weight_decay", c->adam.weight_decay};
    f[n++] = (ckpt_field){"clip_norm", c->clip_norm};
    f[n++] = (ckpt_field){"hflip", c->hflip};
    f[n++] = (ckpt_field){"max_shift", c->max_shift};
    f[n++] = (ckpt_field){"seed", (double)c->seed};
    return n;
}

static ns_status read_flat(hid_t g, const char *p, const char *name, float *dst, size_t n) {
    hsize_t dims[1];
    float *data = NULL;
    ns_status st = h5u_read_floats(g, p, name, 1, dims, &data);
    if (!st && dims[0] != n)
        st = ns_error_set(NS_ERR_FORMAT, "%s: train/%s has %llu values, expected %zu", p, name,
                          (unsigned long long)dims[0], n);
    if (!st) memcpy(dst, data, n * sizeof(float));
    free(data);
    return st;
}

ns_status classifier_checkpoint_save(const classifier_trainer *tr, const char *path, double train_seconds,
                                     const double *curve, int n_curve) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, path);
    if (st) return st;
    const char *p = out.tmp_path;
    const classifier *c = tr->model;
    st = write_classifier(out.file, p, c);
    hid_t g = H5I_INVALID_HID;
    if (!st) {
        H5E_BEGIN_TRY { g = H5Gcreate2(out.file, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }
        H5E_END_TRY;
        if (g < 0) st = ns_error_set(NS_ERR_IO, "%s: cannot create group train", p);
    }
    ckpt_field f[32];
    int nf = ckpt_fields(tr, f);
    if (!st) st = h5u_attr_write_string(g, p, "format", CLASSIFIER_CHECKPOINT_FORMAT);
    if (!st) st = h5u_attr_write_string(g, p, "schedule", optim_lr_kind_name(tr->cfg.schedule.kind));
    if (!st) st = h5u_attr_write_double(g, p, "train_seconds", train_seconds);
    for (int i = 0; i < nf && !st; i++) st = h5u_attr_write_double(g, p, f[i].name, f[i].value);
    if (!st) st = dit_group_write(g, p, "backbone_m", &c->backbone, tr->opt_backbone.m, 0);
    if (!st) st = dit_group_write(g, p, "backbone_v", &c->backbone, tr->opt_backbone.v, 0);
    hsize_t nh = c->head_params, dc[2] = {(hsize_t)n_curve, 2};
    if (!st) st = h5u_write_floats(g, p, "head_m", 1, &nh, tr->opt_head.m);
    if (!st) st = h5u_write_floats(g, p, "head_v", 1, &nh, tr->opt_head.v);
    if (!st) st = h5u_write_doubles(g, p, "test_accuracy", 2, dc, curve);
    if (g >= 0) H5Gclose(g);
    return h5u_atomic_finish(&out, st);
}

ns_status classifier_checkpoint_resume(classifier_trainer *tr, classifier *model, const char *path,
                                       const dataset *train, int threads, long steps_override, double **curve,
                                       int *n_curve, double *train_seconds) {
    memset(tr, 0, sizeof *tr);
    *curve = NULL, *n_curve = 0, *train_seconds = 0;
    ns_status st = classifier_load(model, path);
    if (st) return st;
    hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID;
    if ((st = h5u_open_read(&file, path))) goto fail;
    H5E_BEGIN_TRY { g = H5Gopen2(file, "train", H5P_DEFAULT); }
    H5E_END_TRY;
    char format[64] = "", kind[32] = "";
    if (g < 0) st = ns_error_set(NS_ERR_FORMAT, "%s: missing group 'train' (classifier weights, not a checkpoint?)", path);
    if (!st) st = h5u_attr_read_string(g, path, "format", format, sizeof format);
    if (!st && strcmp(format, CLASSIFIER_CHECKPOINT_FORMAT))
        st = ns_error_set(NS_ERR_FORMAT, "%s: train/ format '%s', expected '%s'", path, format,
                          CLASSIFIER_CHECKPOINT_FORMAT);
    classifier_train_config cfg;
    classifier_train_config_defaults(&cfg);
    if (!st) st = h5u_attr_read_string(g, path, "schedule", kind, sizeof kind);
    if (!st) st = optim_lr_kind_from_name(kind, &cfg.schedule.kind);
    if (!st) st = h5u_attr_read_double(g, path, "train_seconds", train_seconds);
    ckpt_field f[32];
    classifier_trainer probe = {.model = model};
    int nf = ckpt_fields(&probe, f);
    for (int i = 0; i < nf && !st; i++) st = h5u_attr_read_double(g, path, f[i].name, &f[i].value);
    if (st) goto fail;
    // Same order as ckpt_fields.
    long step = (long)f[0].value, adam_step = (long)f[1].value;
    cfg.batch = (int)f[2].value;
    cfg.steps = (long)f[3].value;
    cfg.schedule.lr = (float)f[4].value;
    cfg.schedule.lr_min = (float)f[5].value;
    cfg.schedule.warmup_steps = (long)f[6].value;
    cfg.adam = (optim_adamw_config){(float)f[7].value, (float)f[8].value, (float)f[9].value, (float)f[10].value};
    cfg.clip_norm = (float)f[11].value;
    cfg.hflip = (int)f[12].value;
    cfg.max_shift = (int)f[13].value;
    cfg.seed = (uint64_t)f[14].value;
    if (steps_override > 0) cfg.steps = steps_override;
    cfg.schedule.total_steps = cfg.steps;
    if ((st = classifier_trainer_init(tr, model, &cfg, train, threads))) goto fail;
    dit_model hv = head_view(model);
    st = dit_group_read(g, path, "backbone_m", &model->backbone, tr->opt_backbone.m);
    if (!st) st = dit_group_read(g, path, "backbone_v", &model->backbone, tr->opt_backbone.v);
    if (!st) st = read_flat(g, path, "head_m", tr->opt_head.m, hv.num_params);
    if (!st) st = read_flat(g, path, "head_v", tr->opt_head.v, hv.num_params);
    hsize_t dims[2];
    if (!st) st = h5u_read_doubles(g, path, "test_accuracy", 2, dims, curve);
    if (!st && dims[0] && dims[1] != 2)
        st = ns_error_set(NS_ERR_FORMAT, "%s: train/test_accuracy has %llu columns, expected 2", path,
                          (unsigned long long)dims[1]);
    if (st) goto fail;
    *n_curve = (int)dims[0];
    tr->step = step;
    tr->opt_backbone.step = tr->opt_head.step = adam_step;
    H5Gclose(g);
    h5u_close_file(file);
    return NS_OK;
fail:
    if (g >= 0) H5Gclose(g);
    h5u_close_file(file);
    classifier_trainer_free(tr);
    classifier_free(model);
    free(*curve);
    *curve = NULL;
    return st;
}

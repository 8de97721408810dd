// Checks of the verifier classifier (verifiers/classifier.c):
//   1. gradients of the cross-entropy loss w.r.t. every backbone tensor and
//      the head against five-point finite differences on a tiny config
//      (this exercises dit_train_forward_features / dit_backward_features);
//      pos_embed and final_layer.linear must get exactly zero gradient;
//   2. save / load round trip bitwise (weights and logits), a denoiser file
//      refused by classifier_load, a classifier file accepted by dit_load;
//   3. batch invariance of logits and features (bitwise, positions, 1 vs 2
//      threads);
//   4. a short training run on Fashion-MNIST reaches clearly-better-than-
//      chance test accuracy (tiny ViT, one thread, seconds);
//   5. the role attribute round-trips through save / load, and a training
//      run checkpointed at step 20 and resumed continues bitwise identically
//      to an uninterrupted 40-step run (weights, AdamW moments, step).
// usage: test_classifier [SCRATCH_DIR [DATA_DIR]]. Prints every measured
// value; exits non-zero on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gemm.h"
#include "verifiers/classifier.h"

// Same reasoning and constants as tests/test_dit_grad.c's model check: a
// float forward carries rounding noise, so a five-point stencil with a
// power-of-two step; errors judged against max(|fd|, |an|, 2e-2 * the
// tensor's largest |an|).
#define FD_STEP 0.03125f
#define FD_TOL 1e-2
#define FD_FLOOR 2e-2
#define SAMPLES_PER_TENSOR 16
#define GRAD_BATCH 3
#define TRAIN_STEPS 600
#define TRAIN_BATCH 64
#define TEST_IMAGES 1000
#define MIN_ACCURACY 0.60

static int failures;

static void expect(int ok, const char *what) {
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

#define TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "test_rng.h"

static classifier_config tiny_config(void) { return classifier_config_make(8, 2, 3, 4, 16, 2, 2); }

// A tiny classifier with every parameter random (so no gradient is
// trivially zero) and a random batch with labels.
static void make_random(classifier *c, float *x, int *labels, int B) {
    classifier_config cfg = tiny_config();
    NS_CHECK(classifier_init(c, &cfg, 1) == NS_OK);
    dit_model_randomize(&c->backbone, 7, 0.25f);
    for (size_t i = 0; i < c->head_params; i++) c->head[i] = (float)(uniform01() - 0.5);
    int dim = dit_sample_dim(&cfg.backbone);
    for (int i = 0; i < B * dim; i++) x[i] = (float)(2.0 * uniform01() - 1.0);
    for (int b = 0; b < B; b++) labels[b] = b % cfg.num_classes;
}

// Worst error of the analytic gradient g of tensor (w, n) over sampled elements.
static double check_tensor(const char *name, float *w, const float *g, size_t n, classifier *c,
                           classifier_workspace *ws, const float *x, const int *labels) {
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    double worst = 0.0;
    int count = n < SAMPLES_PER_TENSOR ? (int)n : SAMPLES_PER_TENSOR;
    static const float offsets[4] = {-2, -1, 1, 2};
    for (int s = 0; s < count; s++) {
        size_t i = n <= SAMPLES_PER_TENSOR ? (size_t)s : (size_t)(uniform01() * n);
        float orig = w[i];
        double lv[4];
        for (int k = 0; k < 4; k++) {
            w[i] = orig + offsets[k] * FD_STEP;
            lv[k] = classifier_loss(c, ws, x, labels, GRAD_BATCH);
        }
        w[i] = orig;
        double fd = (8.0 * (lv[2] - lv[1]) - (lv[3] - lv[0])) / (12.0 * (double)FD_STEP), an = g[i];
        double denom = fmax(fmax(fabs(fd), fabs(an)), FD_FLOOR * gmax);
        double err = denom > 0 ? fabs(fd - an) / denom : 0.0;
        if (!(err <= worst)) worst = err;
    }
    printf("  %-40s max|g| %.3e  worst rel err %.2e\n", name, gmax, worst);
    return worst;
}

static void test_gradients(void) {
    printf("1. gradient check (tiny config: 8x8x2, patch 4, width 16, depth 2, 3 classes, batch %d)\n", GRAD_BATCH);
    classifier c;
    float x[GRAD_BATCH * 128];
    int labels[GRAD_BATCH];
    make_random(&c, x, labels, GRAD_BATCH);
    classifier_workspace ws;
    NS_CHECK(classifier_workspace_init(&ws, &c.cfg, GRAD_BATCH, 1) == NS_OK);
    float *grad = ns_aligned_alloc(c.backbone.num_params * sizeof(float), "grad");
    float *grad_head = ns_aligned_alloc(c.head_params * sizeof(float), "grad head");
    dit_params gp;
    dit_params_bind(&gp, &c.cfg.backbone, grad);
    double loss = classifier_loss(&c, &ws, x, labels, GRAD_BATCH);
    classifier_backward(&c, &ws, &gp, grad_head, GRAD_BATCH);
    printf("  loss %.6f\n", loss);
    double worst = 0.0;
    for (int t = 0; t < c.backbone.num_tensors; t++) {
        const dit_tensor *ten = &c.backbone.tensors[t];
        const float *g = grad + ten->offset;
        if (!strcmp(ten->name, "pos_embed") || !strncmp(ten->name, "final_layer.linear", 18)) {
            int zero = 1;
            for (size_t i = 0; i < ten->numel; i++) zero &= g[i] == 0.0f;
            printf("  %-40s gradient exactly zero: %s\n", ten->name, zero ? "yes" : "NO");
            expect(zero, "unused tensor has zero gradient");
            continue;
        }
        worst = fmax(worst, check_tensor(ten->name, c.backbone.memory + ten->offset, g, ten->numel, &c, &ws, x,
                                         labels));
    }
    for (int t = 0; t < 2; t++) {
        const dit_tensor *ten = &c.head_tensors[t];
        worst = fmax(worst, check_tensor(ten->name, c.head + ten->offset, grad_head + ten->offset, ten->numel, &c,
                                         &ws, x, labels));
    }
    printf("  worst error over all tensors %.2e (tolerance %.0e)\n", worst, FD_TOL);
    expect(worst <= FD_TOL, "finite-difference gradient check");
    free(grad), free(grad_head);
    classifier_workspace_free(&ws);
    classifier_free(&c);
}

static void test_io(const char *dir) {
    printf("2. save / load\n");
    classifier c, d;
    float x[GRAD_BATCH * 128];
    int labels[GRAD_BATCH];
    make_random(&c, x, labels, GRAD_BATCH);
    char path[4096], dit_path[4096];
    snprintf(path, sizeof path, "%s/test_classifier.h5", dir);
    snprintf(dit_path, sizeof dit_path, "%s/test_classifier_backbone_only.h5", dir);
    ns_status st = classifier_save(&c, path);
    if (st) printf("  save: %s\n", ns_error_message());
    expect(st == NS_OK, "classifier_save");
    st = classifier_load(&d, path);
    if (st) printf("  load: %s\n", ns_error_message());
    expect(st == NS_OK, "classifier_load");
    if (st) return;
    int same = memcmp(&c.cfg, &d.cfg, sizeof c.cfg) == 0 && c.backbone.num_params == d.backbone.num_params &&
               memcmp(c.backbone.memory, d.backbone.memory, c.backbone.num_params * sizeof(float)) == 0 &&
               memcmp(c.head, d.head, c.head_params * sizeof(float)) == 0;
    classifier_workspace ws;
    NS_CHECK(classifier_workspace_init(&ws, &c.cfg, GRAD_BATCH, 1) == NS_OK);
    float la[GRAD_BATCH * 3], lb[GRAD_BATCH * 3];
    classifier_forward(&c, &ws, la, NULL, x, GRAD_BATCH);
    classifier_forward(&d, &ws, lb, NULL, x, GRAD_BATCH);
    same &= memcmp(la, lb, sizeof la) == 0;
    printf("  round trip (weights, head, logits) bitwise equal: %s\n", same ? "yes" : "NO");
    expect(same, "round trip bitwise");

    dit_model m;
    st = dit_load(&m, path);
    printf("  dit_load of the classifier file: %s\n", st ? ns_error_message() : "ok (backbone read, head/ ignored)");
    expect(st == NS_OK, "dit_load reads a classifier file's backbone");
    if (!st) {
        expect(memcmp(m.memory, c.backbone.memory, m.num_params * sizeof(float)) == 0, "dit_load backbone bits");
        dit_model_free(&m);
    }
    NS_CHECK(dit_save(&c.backbone, dit_path) == NS_OK);
    classifier e;
    st = classifier_load(&e, dit_path);
    printf("  classifier_load of a denoiser file: %s\n", st ? ns_error_message() : "accepted (WRONG)");
    expect(st == NS_ERR_FORMAT && strstr(ns_error_message(), "head"), "denoiser file refused, naming head");
    remove(dit_path);
    remove(path);
    classifier_workspace_free(&ws);
    classifier_free(&c);
    classifier_free(&d);
}

static void test_invariance(void) {
    printf("3. batch invariance\n");
    enum { B = 5 };
    classifier c;
    float x[B * 128];
    int labels[GRAD_BATCH];
    make_random(&c, x, labels, 0);
    int dim = dit_sample_dim(&c.cfg.backbone), K = c.cfg.num_classes, D = c.cfg.backbone.hidden_size;
    for (int i = 0; i < B * dim; i++) x[i] = (float)(2.0 * uniform01() - 1.0);
    classifier_workspace w1, w2;
    NS_CHECK(classifier_workspace_init(&w1, &c.cfg, B, 1) == NS_OK);
    NS_CHECK(classifier_workspace_init(&w2, &c.cfg, B, 2) == NS_OK);
    float full[B * 3], feat[B * 16], one[3], onef[16], rev[B * 3], thr[B * 3], xr[B * 128];
    classifier_forward(&c, &w1, full, feat, x, B);
    int ok = 1;
    for (int b = 0; b < B; b++) {
        classifier_forward(&c, &w1, one, onef, x + (size_t)b * dim, 1);
        ok &= memcmp(one, full + b * K, sizeof one) == 0 && memcmp(onef, feat + b * D, sizeof onef) == 0;
        memcpy(xr + (size_t)(B - 1 - b) * dim, x + (size_t)b * dim, (size_t)dim * sizeof(float));
    }
    classifier_forward(&c, &w1, rev, NULL, xr, B);
    for (int b = 0; b < B; b++) ok &= memcmp(rev + (B - 1 - b) * K, full + b * K, (size_t)K * sizeof(float)) == 0;
    classifier_forward(&c, &w2, thr, NULL, x, B);
    ok &= memcmp(thr, full, sizeof thr) == 0;
    printf("  logits/features alone, reversed, 2 threads vs batch of %d: %s\n", B, ok ? "bitwise equal" : "DIFFER");
    expect(ok, "batch invariance");
    classifier_workspace_free(&w1);
    classifier_workspace_free(&w2);
    classifier_free(&c);
}

static void test_training(const char *data_dir) {
    printf("4. short training run on Fashion-MNIST (patch 7, width 32, depth 2, 2 heads, batch %d, %d steps, "
           "1 thread)\n", TRAIN_BATCH, TRAIN_STEPS);
    dataset train = {0}, test = {0};
    ns_status st = dataset_load_fashion_mnist(&train, data_dir, 1);
    if (!st) st = dataset_load_fashion_mnist(&test, data_dir, 0);
    if (st) {
        printf("  %s\n", ns_error_message());
        expect(0, "Fashion-MNIST available");
        dataset_free(&train);
        return;
    }
    classifier_config cfg = classifier_config_make(28, 1, 10, 7, 32, 2, 2);
    classifier c;
    NS_CHECK(classifier_init(&c, &cfg, 42) == NS_OK);
    classifier_train_config tc;
    classifier_train_config_defaults(&tc);
    tc.batch = TRAIN_BATCH;
    tc.steps = TRAIN_STEPS;
    tc.schedule = (optim_schedule){.kind = OPTIM_LR_COSINE, .lr = 3e-3f, .lr_min = 1e-4f, .warmup_steps = 20,
                                   .total_steps = TRAIN_STEPS};
    tc.seed = 1;
    classifier_trainer tr;
    st = classifier_trainer_init(&tr, &c, &tc, &train, 1);
    if (st) printf("  %s\n", ns_error_message());
    NS_CHECK(st == NS_OK);
    double acc0 = classifier_accuracy(&c, &tr.ws, &test, TEST_IMAGES);
    double t0 = ns_now(), loss_sum = 0, acc_sum = 0;
    classifier_step_info info = {0};
    for (long s = 0; s < TRAIN_STEPS; s++) {
        classifier_trainer_step(&tr, &info);
        loss_sum += info.loss, acc_sum += info.accuracy;
        if ((s + 1) % 50 == 0) {
            printf("  step %4ld  loss %.4f  batch acc %.3f  |g| %.3f  lr %.2e\n", info.step, loss_sum / 50,
                   acc_sum / 50, info.grad_norm, (double)info.lr);
            loss_sum = acc_sum = 0;
        }
        expect(isfinite(info.loss), "finite loss");
    }
    double train_s = ns_now() - t0;
    t0 = ns_now();
    double acc = classifier_accuracy(&c, &tr.ws, &test, TEST_IMAGES);
    double eval_s = ns_now() - t0;
    printf("  test accuracy on %d images: %.3f before, %.3f after (need > %.2f); train %.2f s, eval %.2f s\n",
           TEST_IMAGES, acc0, acc, MIN_ACCURACY, train_s, eval_s);
    expect(acc > MIN_ACCURACY, "short run accuracy");
    classifier_trainer_free(&tr);
    classifier_free(&c);
    dataset_free(&train);
    dataset_free(&test);
}

// Role: written only when set, read back exactly.
static void test_role(const char *dir) {
    printf("5a. role round trip\n");
    classifier c, d;
    float x[GRAD_BATCH * 128];
    int labels[GRAD_BATCH];
    make_random(&c, x, labels, GRAD_BATCH);
    char path[4096];
    snprintf(path, sizeof path, "%s/test_classifier_role.h5", dir);
    const char *roles[3] = {"evaluator", "verifier", ""};
    for (int i = 0; i < 3; i++) {
        snprintf(c.role, sizeof c.role, "%s", roles[i]);
        NS_CHECK(classifier_save(&c, path) == NS_OK);
        NS_CHECK(classifier_load(&d, path) == NS_OK);
        int ok = !strcmp(d.role, roles[i]);
        printf("  role '%s' -> '%s' %s\n", roles[i], d.role, ok ? "ok" : "FAIL");
        expect(ok, "role round trip");
        classifier_free(&d);
    }
    remove(path);
    classifier_free(&c);
}

// A small synthetic dataset for the tiny config: n images (2, 8, 8) in
// [-1, 1], labels i % 3.
static void synthetic_dataset(dataset *d, int n) {
    memset(d, 0, sizeof *d);
    d->count = n, d->channels = 2, d->height = d->width = 8, d->num_classes = 3;
    d->images = ns_malloc((size_t)n * 128 * sizeof(float), "synthetic images");
    d->labels = ns_malloc((size_t)n * sizeof(int), "synthetic labels");
    for (int i = 0; i < n * 128; i++) d->images[i] = (float)(2.0 * uniform01() - 1.0);
    for (int i = 0; i < n; i++) d->labels[i] = i % 3;
}

static void tiny_train_config(classifier_train_config *tc) {
    classifier_train_config_defaults(tc);
    tc->batch = 8;
    tc->steps = 40;
    tc->schedule = (optim_schedule){.kind = OPTIM_LR_COSINE, .lr = 3e-3f, .lr_min = 1e-4f, .warmup_steps = 5,
                                    .total_steps = 40};
    tc->max_shift = 1;
    tc->seed = 11;
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static void test_checkpoint_resume(const char *dir) {
    printf("5b. checkpoint at step 20 and resume vs an uninterrupted 40-step run (64 synthetic images, batch 8)\n");
    dataset data;
    synthetic_dataset(&data, 64);
    classifier_config cfg = tiny_config();
    classifier_train_config tc;
    tiny_train_config(&tc);
    char path[4096];
    snprintf(path, sizeof path, "%s/test_classifier_ckpt.h5", dir);

    classifier a;
    classifier_trainer ta;
    NS_CHECK(classifier_init(&a, &cfg, 5) == NS_OK);
    snprintf(a.role, sizeof a.role, "verifier");
    NS_CHECK(classifier_trainer_init(&ta, &a, &tc, &data, 1) == NS_OK);
    for (int s = 0; s < 40; s++) classifier_trainer_step(&ta, NULL);

    classifier b, r;
    classifier_trainer tb, tr;
    NS_CHECK(classifier_init(&b, &cfg, 5) == NS_OK);
    snprintf(b.role, sizeof b.role, "verifier");
    NS_CHECK(classifier_trainer_init(&tb, &b, &tc, &data, 1) == NS_OK);
    for (int s = 0; s < 20; s++) classifier_trainer_step(&tb, NULL);
    double curve[2] = {20, 0.5};
    ns_status st = classifier_checkpoint_save(&tb, path, 1.25, curve, 1);
    if (st) printf("  save: %s\n", ns_error_message());
    NS_CHECK(st == NS_OK);
    classifier_trainer_free(&tb);
    classifier_free(&b);

    double *got_curve = NULL, seconds = 0;
    int n_curve = 0;
    st = classifier_checkpoint_resume(&tr, &r, path, &data, 1, 0, &got_curve, &n_curve, &seconds);
    if (st) printf("  resume: %s\n", ns_error_message());
    NS_CHECK(st == NS_OK);
    int meta_ok = tr.step == 20 && n_curve == 1 && got_curve[0] == 20 && got_curve[1] == 0.5 && seconds == 1.25 &&
                  !strcmp(r.role, "verifier") && tr.cfg.steps == 40;
    printf("  resumed at step %ld, curve %d row(s), %.2f s recorded, role '%s': %s\n", tr.step, n_curve, seconds, r.role,
           meta_ok ? "ok" : "FAIL");
    expect(meta_ok, "checkpoint metadata");
    while (tr.step < 40) classifier_trainer_step(&tr, NULL);
    size_t np = a.backbone.num_params;
    int w_ok = same_floats(a.backbone.memory, r.backbone.memory, np) && same_floats(a.head, r.head, a.head_params);
    int m_ok = same_floats(ta.opt_backbone.m, tr.opt_backbone.m, np) &&
               same_floats(ta.opt_backbone.v, tr.opt_backbone.v, np) &&
               same_floats(ta.opt_head.m, tr.opt_head.m, a.head_params) &&
               same_floats(ta.opt_head.v, tr.opt_head.v, a.head_params) && ta.opt_backbone.step == tr.opt_backbone.step;
    printf("  after 40 steps: weights %s, AdamW moments and step %s\n", w_ok ? "bitwise equal" : "DIFFER",
           m_ok ? "bitwise equal" : "DIFFER");
    expect(w_ok, "resumed weights bitwise equal");
    expect(m_ok, "resumed optimizer state bitwise equal");
    // The run really moved (a test of equal weights must not pass on an untrained pair).
    classifier fresh;
    NS_CHECK(classifier_init(&fresh, &cfg, 5) == NS_OK);
    expect(!same_floats(fresh.backbone.memory, a.backbone.memory, np), "training changed the weights");
    classifier_free(&fresh);
    free(got_curve);
    remove(path);
    classifier_trainer_free(&ta), classifier_trainer_free(&tr);
    classifier_free(&a), classifier_free(&r);
    dataset_free(&data);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    const char *data = argc > 2 ? argv[2] : NULL;
    if (gemm_setup(1) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    printf("%s\n", gemm_describe());
    test_gradients();
    test_io(dir);
    test_invariance();
    test_training(data);
    test_role(dir);
    test_checkpoint_resume(dir);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}

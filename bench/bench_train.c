// Training-step throughput of the C trainer (flow-matching loss, forward,
// backward, clipping, AdamW, EMA) side by side with the PyTorch reference
// (bench/bench_train_torch.py) on the same machine in the same run.
// Prints a Markdown table (docs/performance.md). Not a test: it measures.
//
// usage: bench_train [--seconds S] [--no-torch] [--python PATH] [--repo DIR]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/dit_train.h"
#include "model/gemm.h"
#include "model/optim.h"

typedef struct {
    const char *name;
    int patch, depth, width, heads;
} bench_model;

// Images/s of full training steps at batch B, timed for at least `seconds`.
static double c_train_images_per_s(const dit_config *cfg, int B, double seconds, double *ms_fwd, double *ms_bwd) {
    dit_model m, ema;
    NS_CHECK(dit_model_init(&m, cfg) == NS_OK);
    dit_model_randomize(&m, 1, 0.02f);
    NS_CHECK(optim_ema_init(&ema, &m) == NS_OK);
    dit_train_acts a;
    NS_CHECK(dit_train_acts_init(&a, cfg, B, 0) == NS_OK);
    size_t n = (size_t)B * dit_sample_dim(cfg);
    float *x1 = ns_malloc(4 * n, "x1"), *x0 = ns_malloc(4 * n, "x0"), *dv = ns_malloc(4 * n, "dv");
    float *t = ns_malloc(sizeof(float) * B, "t");
    int *y = ns_malloc(sizeof(int) * B, "y");
    for (size_t i = 0; i < n; i++) {
        x1[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
        x0[i] = (float)((i * 104729) % 300) / 100.0f - 1.5f;
    }
    for (int b = 0; b < B; b++) t[b] = (b + 0.5f) / B, y[b] = b % 11;
    float *grad = ns_aligned_alloc(m.num_params * sizeof(float), "grad");
    dit_params gp;
    dit_params_bind(&gp, cfg, grad);
    optim_adamw opt;
    optim_adamw_config oc = {0.9f, 0.999f, 1e-8f, 0.0f};
    NS_CHECK(optim_adamw_init(&opt, &m, &oc) == NS_OK);
    double tf = 0, tb = 0, t0 = 0;
    int steps = 0;
    for (int it = -2;; it++) {
        if (it == 0) t0 = ns_now();
        double s0 = ns_now();
        memset(grad, 0, m.num_params * sizeof(float));
        dit_train_flow_loss(&m, &a, dv, x1, x0, t, y, B);
        double s1 = ns_now();
        dit_backward(&m, &a, &gp, dv, B);
        double s2 = ns_now();
        optim_clip_grad_norm(&m, grad, 1.0, 0);
        optim_adamw_step(&opt, &m, grad, 1e-4f, 0);
        optim_ema_update(&ema, &m, 0.9999f, 0);
        if (it >= 0) {
            tf += s1 - s0, tb += s2 - s1, steps++;
            if (ns_now() - t0 >= seconds) break;
        }
    }
    double el = ns_now() - t0;
    *ms_fwd = 1e3 * tf / steps;
    *ms_bwd = 1e3 * tb / steps;
    free(x1), free(x0), free(dv), free(t), free(y), free(grad);
    optim_adamw_free(&opt);
    dit_train_acts_free(&a);
    dit_model_free(&ema);
    dit_model_free(&m);
    return (double)B * steps / el;
}

static double torch_train_images_per_s(const char *python, const char *repo, const bench_model *bm, int B,
                                       int threads, double seconds) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "BLIS_ARCH_TYPE=%s BLIS_NUM_THREADS=%d %s %s/bench/bench_train_torch.py --patch %d --depth %d "
             "--width %d --heads %d --batch %d --threads %d --seconds %g",
             getenv("BLIS_ARCH_TYPE"), threads, python, repo, bm->patch, bm->depth, bm->width, bm->heads, B,
             threads, seconds);
    FILE *p = popen(cmd, "r");
    char line[4096];
    double ips = 0;
    while (p && fgets(line, sizeof line, p)) {
        char *k = strstr(line, "\"images_per_s\":");
        if (k) ips = atof(k + strlen("\"images_per_s\":"));
    }
    if (!p || pclose(p) != 0) ips = 0;
    return ips;
}

int main(int argc, char **argv) {
    double seconds = 10;
    int torch = 1;
    const char *python = "/usr/bin/python3", *repo = NS_SOURCE_DIR;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--repo") && i + 1 < argc) repo = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--no-torch] [--python PATH] [--repo DIR]\n", argv[0]);
            return 2;
        }
    }
    if (gemm_setup(0) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    printf("# %s; batch 64; step = loss + forward + backward + clip + AdamW (+ EMA in C)\n\n", gemm_describe());
    printf("| model | C img/s | C fwd / bwd ms | C GFLOP/s | PyTorch img/s (best of 1..%d threads) | C / PyTorch |\n"
           "|---|---|---|---|---|---|\n",
           gemm_threads());
    bench_model models[] = {{"p4 d6 w256 h4", 4, 6, 256, 4}, {"p2 d6 w128 h4 (shipped)", 2, 6, 128, 4}};
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        const bench_model *bm = &models[k];
        dit_config cfg = {.input_size = 28, .in_channels = 1, .patch_size = bm->patch, .depth = bm->depth,
                          .hidden_size = bm->width, .num_heads = bm->heads, .num_classes = 10, .mlp_ratio = 4.0f};
        double fwd, bwd, ips = c_train_images_per_s(&cfg, 64, seconds, &fwd, &bwd);
        double tips = 0;
        for (int th = 1; torch && th <= gemm_threads(); th = th == gemm_threads() ? th + 1 : gemm_threads()) {
            double v = torch_train_images_per_s(python, repo, bm, 64, th, seconds);
            tips = v > tips ? v : tips;
        }
        printf("| %s | %.1f | %.0f / %.0f | %.0f | ", bm->name, ips, fwd, bwd, ips * dit_train_flops(&cfg) / 1e9);
        if (tips > 0) printf("%.1f | %.2fx |\n", tips, ips / tips);
        else printf("- | - |\n");
        fflush(stdout);
    }
    return 0;
}

// Forward-pass throughput of the C denoiser, side by side with the PyTorch
// reference (bench/bench_forward_torch.py) in the same run, against the
// machine's FMA peak measured here with an AVX-512 (or AVX2) FMA loop.
// Prints a Markdown table (docs/performance.md). Not a test: it measures.
//
// usage: bench_forward [--seconds S] [--no-torch] [--quick] [--only TEXT] [--python PATH] [--repo DIR]
//   --only TEXT: run only the models whose name contains TEXT ("shipped", "XL/2", ...)
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "model/dit.h"
#include "model/gemm.h"

// ---------------------------------------------------------------------------
// FMA peak: 12 independent accumulator chains hide the FMA latency; each
// iteration is 12 FMAs of 16 (AVX-512) or 8 (AVX2) lanes, 2 flops per lane.
#define FMA_CHAINS 12
#define FMA_ITERS 50000000L

__attribute__((target("avx512f"))) static double fma_loop_avx512(long iters) {
    __m512 acc[FMA_CHAINS], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    float sink = 0;
    for (int i = 0; i < FMA_CHAINS; i++) sink += _mm512_reduce_add_ps(acc[i]);
    return sink;
}

__attribute__((target("avx2,fma"))) static double fma_loop_avx2(long iters) {
    __m256 acc[FMA_CHAINS], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float tmp[8], sink = 0;
    for (int i = 0; i < FMA_CHAINS; i++) {
        _mm256_storeu_ps(tmp, acc[i]);
        for (int k = 0; k < 8; k++) sink += tmp[k];
    }
    return sink;
}

// GFLOP/s of all `threads` cores running the FMA loop at once: the best of
// 7 runs of ~0.1 s (single runs on a shared 2-vCPU VM came out anywhere
// from 290 to 420 GFLOP/s, below what BLIS itself then reached).
static double measure_fma_peak(int threads, const char **isa) {
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f");
    *isa = avx512 ? "AVX-512" : "AVX2";
    int lanes = avx512 ? 16 : 8;
    double best = 0;
    for (int rep = 0; rep < 7; rep++) {
        double sink = 0, t0 = ns_now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += avx512 ? fma_loop_avx512(FMA_ITERS / 4) : fma_loop_avx2(FMA_ITERS / 4);
        double dt = ns_now() - t0;
        if (sink == 12345.0) printf(" ");  // keep the loop alive
        double gf = (double)threads * (FMA_ITERS / 4) * FMA_CHAINS * lanes * 2.0 / dt / 1e9;
        best = gf > best ? gf : best;
    }
    return best;
}

// ---------------------------------------------------------------------------

typedef struct {
    const char *name;
    dit_config cfg;
    int batches[4];
    int nbatch;
} bench_model;

typedef struct {
    double seconds;
    int torch;
    const char *python, *repo;
} bench_options;

static double c_images_per_s(const dit_model *m, int B, double seconds, size_t *ws_bytes) {
    dit_workspace ws;
    NS_CHECK(dit_workspace_init(&ws, &m->cfg, B, 0) == NS_OK);
    *ws_bytes = dit_workspace_bytes(&m->cfg, B, 0);
    int dim = dit_sample_dim(&m->cfg);
    float *x = ns_malloc(sizeof(float) * (size_t)B * dim, "x"), *v = ns_malloc(sizeof(float) * (size_t)B * dim, "v");
    float *t = ns_malloc(sizeof(float) * B, "t");
    int *y = ns_malloc(sizeof(int) * B, "y");
    for (size_t i = 0; i < (size_t)B * dim; i++) x[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    for (int b = 0; b < B; b++) {
        t[b] = (float)(b + 1) / (float)(B + 1);
        y[b] = b % m->cfg.num_classes;
    }
    dit_forward(m, &ws, v, x, t, y, B);  // warm-up
    int iters = 0;
    double t0 = ns_now(), el;
    do {
        dit_forward(m, &ws, v, x, t, y, B);
        iters++;
    } while ((el = ns_now() - t0) < seconds);
    free(x), free(v), free(t), free(y);
    dit_workspace_free(&ws);
    return (double)B * iters / el;
}

// The ceiling BLIS itself sets: GFLOP/s of the model's MLP products alone
// (fc1: M = B*T, N = 4D, K = D; then fc2: K = 4D), the bulk of its FLOPs,
// best of 5 after a warm-up, through the same gemm_nt as the forward.
static double blis_mlp_gflops(const dit_config *c, int B) {
    int M = B * dit_tokens(c), D = c->hidden_size, F = dit_mlp_hidden(c);
    float *a = ns_malloc(sizeof(float) * (size_t)M * F, "a"), *w = ns_malloc(sizeof(float) * (size_t)F * D, "w");
    float *out = ns_malloc(sizeof(float) * (size_t)M * F, "out");
    for (size_t i = 0; i < (size_t)M * F; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)F * D; i++) w[i] = (float)(i % 5) * 0.01f;
    double best = 1e30;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = ns_now();
        gemm_nt(out, F, a, D, w, M, F, D, 0.0f, 0);  // fc1
        gemm_nt(a, D, out, F, w, M, D, F, 0.0f, 0);  // fc2
        double dt = ns_now() - t0;
        if (rep > 0 && dt < best) best = dt;
    }
    free(a), free(w), free(out);
    return 2.0 * 2.0 * M * (double)F * D / best / 1e9;
}

// Run the PyTorch benchmark with 1 and 2 threads (or all); keep the best.
static double torch_images_per_s(const bench_options *o, const bench_model *bm, int B, int *best_threads,
                                 double *rss_mib) {
    const dit_config *c = &bm->cfg;
    double best = 0;
    int maxt = gemm_threads();
    for (int th = 1; th <= maxt; th = th == maxt ? maxt + 1 : (th * 2 > maxt ? maxt : th * 2)) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "BLIS_ARCH_TYPE=%s BLIS_NUM_THREADS=%d %s %s/bench/bench_forward_torch.py --input-size %d "
                 "--channels %d --patch %d --depth %d --width %d --heads %d --classes %d %s --batch %d "
                 "--threads %d --seconds %g",
                 getenv("BLIS_ARCH_TYPE"), th, o->python, o->repo, c->input_size, c->in_channels, c->patch_size,
                 c->depth, c->hidden_size, c->num_heads, c->num_classes, c->learn_sigma ? "--learn-sigma" : "", B,
                 th, o->seconds);
        FILE *p = popen(cmd, "r");
        char line[4096] = "";
        double ips = 0, rss = 0;
        if (p) {
            while (fgets(line, sizeof line, p)) {
                char *k = strstr(line, "\"images_per_s\":");
                if (k) ips = atof(k + strlen("\"images_per_s\":"));
                char *r = strstr(line, "\"peak_rss_mib\":");
                if (r) rss = atof(r + strlen("\"peak_rss_mib\":"));
            }
            if (pclose(p) != 0) ips = 0;
        }
        if (ips > best) {
            best = ips;
            *best_threads = th;
            *rss_mib = rss;
        }
    }
    return best;
}

int main(int argc, char **argv) {
    bench_options o = {.seconds = 3.0, .torch = 1, .python = "/usr/bin/python3", .repo = NS_SOURCE_DIR};
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) o.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) o.torch = 0;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) o.python = argv[++i];
        else if (!strcmp(argv[i], "--repo") && i + 1 < argc) o.repo = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--no-torch] [--quick] [--only TEXT] [--python PATH] [--repo DIR]\n", argv[0]);
            return 2;
        }
    }
    if (gemm_setup(0) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    const char *isa;
    double peak1 = measure_fma_peak(1, &isa), peak = measure_fma_peak(gemm_threads(), &isa);
    printf("# %s\n# FMA peak (%s loop): %.0f GFLOP/s on 1 core, %.0f GFLOP/s on %d threads\n", gemm_describe(), isa,
           peak1, peak, gemm_threads());

    bench_model models[] = {
        {"FMNIST 28x28x1 p4 d6 w256 h4", {28, 1, 4, 6, 256, 4, 10, 0, 4.0f}, {1, 16, 64, 256}, 4},
        {"shipped 28x28x1 p2 d6 w128 h4", {28, 1, 2, 6, 128, 4, 10, 0, 4.0f}, {1, 16, 64, 256}, 4},
        {"XL/2 32x32x4 p2 d28 w1152 h16", {32, 4, 2, 28, 1152, 16, 1000, 1, 4.0f}, {1, 8}, 2},
    };
    printf("\n| model | batch | C img/s | C GFLOP/s | %% of FMA peak | PyTorch img/s (threads) | C / PyTorch | "
           "C memory MiB | PyTorch peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        bench_model *bm = &models[k];
        if (only && !strstr(bm->name, only)) continue;
        dit_model m;
        NS_CHECK(dit_model_init(&m, &bm->cfg) == NS_OK);
        dit_model_randomize(&m, 1, 0.02f);
        double flops = dit_forward_flops(&bm->cfg);
        for (int i = 0; i < bm->nbatch; i++) {
            int B = bm->batches[i];
            if (quick && B > 64) continue;
            size_t ws_bytes;
            double ips = c_images_per_s(&m, B, o.seconds, &ws_bytes);
            double gf = ips * flops / 1e9;
            double mib = (double)(m.num_params * sizeof(float) + ws_bytes) / (1 << 20);
            if (o.torch) {
                int th = 0;
                double rss = 0, tips = torch_images_per_s(&o, bm, B, &th, &rss);
                printf("| %s | %d | %.1f | %.0f | %.0f%% | %.1f (%d) | %.2fx | %.0f | %.0f |\n", bm->name, B, ips, gf,
                       100 * gf / peak, tips, th, tips > 0 ? ips / tips : 0.0, mib, rss);
            } else {
                printf("| %s | %d | %.1f | %.0f | %.0f%% | - | - | %.0f | - |\n", bm->name, B, ips, gf, 100 * gf / peak,
                       mib);
            }
            fflush(stdout);
        }
        dit_model_free(&m);
    }
    printf("\n# BLIS alone on each model's MLP products (fc1 + fc2) at its largest batch up to 64:\n");
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        bench_model *bm = &models[k];
        if (only && !strstr(bm->name, only)) continue;
        int B = 0;
        for (int i = 0; i < bm->nbatch; i++)
            if (bm->batches[i] <= 64) B = bm->batches[i];
        double gf = blis_mlp_gflops(&bm->cfg, B);
        printf("#   %s, batch %d: %.0f GFLOP/s = %.0f%% of the FMA peak\n", bm->name, B, gf, 100 * gf / peak);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\n# forward FLOPs per image (2 per multiply-add):");
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        printf("%s %s %.3g", k ? "," : "", models[k].name, dit_forward_flops(&models[k].cfg));
    printf("\n");
    printf("# C process peak RSS: %.0f MiB (largest model + workspace); memory column = parameters + workspace\n",
           ru.ru_maxrss / 1024.0);
    return 0;
}

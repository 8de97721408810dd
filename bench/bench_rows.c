// Single-core speed of the forward's row kernels (model/layers.c) on the
// shipped model's shapes, in ns per element, best of 20 passes over data
// that stays in L2. Prints a Markdown table (docs/performance.md). Run it
// pinned to an idle core: taskset -c 1 ./build/bench/bench_rows
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/status.h"
#include "model/layers.h"

#define ROWS 256
#define PASSES 20

typedef struct {
    const char *name;
    int width;
} row_shape;

static float *filled(size_t n, float lo, float hi, unsigned seed) {
    float *x = ns_aligned_alloc(n * sizeof(float), "bench data");
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(seed >> 8) / 16777216.0f;
    }
    return x;
}

int main(void) {
    const int F = 512, D = 128, T = 196;  // shipped model: MLP hidden, width, tokens
    float *src = filled((size_t)ROWS * F, -4.0f, 4.0f, 1), *out = filled((size_t)ROWS * F, 0, 0, 2);
    float *bias = filled(F, -0.1f, 0.1f, 3), *shift = filled(D, -0.5f, 0.5f, 4), *scale = filled(D, -0.5f, 0.5f, 5);
    float *scores = filled((size_t)ROWS * T, 0, 0, 6);
    const char *names[] = {"bias + GELU-tanh", "softmax (with scale)", "LayerNorm + adaLN modulate", "bias + SiLU"};
    const int widths[] = {F, T, D, D};
    printf("| kernel | row width | ns per element |\n|---|---|---|\n");
    double sink = 0;
    for (int k = 0; k < 4; k++) {
        int n = widths[k];
        double best = INFINITY;
        for (int pass = 0; pass < PASSES; pass++) {
            if (k == 1)  // softmax works in place: fresh scores every pass
                for (size_t i = 0; i < (size_t)ROWS * T; i++) scores[i] = src[i];
            double t0 = ns_now();
            for (int r = 0; r < ROWS; r++) {
                float *o = out + (size_t)r * n;
                const float *x = src + (size_t)r * n;
                if (k == 0) layer_bias_gelu_row(o, x, bias, n);
                else if (k == 1) layer_softmax_row(scores + (size_t)r * T, 0.17677669f, T);
                else if (k == 2) layer_norm_modulate_row(o, x, shift, scale, n, 1e-6f);
                else layer_bias_silu_row(o, x, bias, n);
            }
            double dt = ns_now() - t0;
            best = dt < best ? dt : best;
        }
        sink += out[7] + scores[7];
        printf("| %s | %d | %.3f |\n", names[k], n, best / ((double)ROWS * n) * 1e9);
    }
    if (sink == 1234.5) printf(" ");  // keep the results alive
    free(src), free(out), free(bias), free(shift), free(scale), free(scores);
    return 0;
}

// Batch invariance of the denoiser: every sample's velocity must be the same
// bits whatever batch it runs in, whatever its position in the batch and
// whatever the thread count. Batch sizes straddle BLIS's switch between its
// small-matrix ('sup') and native paths (M = B*T ~ 784 rows), where plain
// bli_sgemm stops being batch-invariant under AVX2 kernels
// (shared/docs/environment.md). ctest runs this once per kernel set the
// program may select (BLIS_ARCH_TYPE = skx, haswell, zen3).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/dit.h"
#include "model/gemm.h"

static int check_config(const dit_config *c, const int *batches, int nbatch) {
    dit_model m;
    NS_CHECK(dit_model_init(&m, c) == NS_OK);
    dit_model_randomize(&m, 7, 0.08f);
    int dim = dit_sample_dim(c), maxB = 0;
    for (int i = 0; i < nbatch; i++) maxB = batches[i] > maxB ? batches[i] : maxB;
    float *x = ns_malloc(sizeof(float) * dim * maxB, "x"), *t = ns_malloc(sizeof(float) * maxB, "t");
    float *v = ns_malloc(sizeof(float) * dim * maxB, "v"), *ref = ns_malloc(sizeof(float) * dim * maxB, "ref");
    int *y = ns_malloc(sizeof(int) * maxB, "y");
    unsigned s = 12345;
    for (int i = 0; i < dim * maxB; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    for (int b = 0; b < maxB; b++) {
        t[b] = (float)(b % 17) / 16.0f;
        y[b] = b % (c->num_classes + 1);
    }
    // Reference: every sample alone, one thread.
    dit_workspace ws1;
    NS_CHECK(dit_workspace_init(&ws1, c, 1, 1) == NS_OK);
    for (int b = 0; b < maxB; b++) dit_forward(&m, &ws1, ref + (size_t)b * dim, x + (size_t)b * dim, t + b, y + b, 1);
    dit_workspace_free(&ws1);

    int failures = 0;
    int T = dit_tokens(c);
    for (int threads = 1; threads <= 2; threads++)
        for (int i = 0; i < nbatch; i++) {
            int B = batches[i];
            dit_workspace ws;
            NS_CHECK(dit_workspace_init(&ws, c, B, threads) == NS_OK);
            // Samples at offset `off` of the full arrays, so positions shift between runs.
            for (int off = 0; off + B <= maxB; off += (maxB - B) > 0 ? (maxB - B) : 1) {
                dit_forward(&m, &ws, v, x + (size_t)off * dim, t + off, y + off, B);
                int bad = 0;
                for (int b = 0; b < B; b++)
                    bad += memcmp(v + (size_t)b * dim, ref + (size_t)(off + b) * dim, sizeof(float) * dim) != 0;
                printf("  %-8s T=%-3d B=%-3d rows=%-5d offset=%-3d threads=%d: %s (%d of %d samples differ)\n",
                       gemm_kernel_name(), T, B, B * T, off, threads, bad ? "FAIL" : "ok", bad, B);
                failures += bad != 0;
                if (off + B == maxB) break;
            }
            dit_workspace_free(&ws);
        }
    free(x), free(t), free(v), free(ref), free(y);
    dit_model_free(&m);
    return failures;
}

int main(void) {
    if (gemm_setup(2) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    printf("%s\n", gemm_describe());
    // Fashion-MNIST-sized (T = 49, width 256 as in environment.md's measurement):
    // B = 16 is 784 rows, B = 64 is 3136.
    dit_config small = {.input_size = 28, .in_channels = 1, .patch_size = 4, .depth = 1, .hidden_size = 256,
                        .num_heads = 4, .num_classes = 10, .learn_sigma = 0, .mlp_ratio = 4.0f};
    int small_batches[] = {1, 2, 3, 15, 16, 17, 64, 67};
    // Patch 2, 4 channels, learn_sigma (T = 64).
    dit_config latent = {.input_size = 16, .in_channels = 4, .patch_size = 2, .depth = 1, .hidden_size = 96,
                         .num_heads = 3, .num_classes = 7, .learn_sigma = 1, .mlp_ratio = 4.0f};
    int latent_batches[] = {1, 5, 13, 40};
    // T = 144 >= 128: attention through BLIS products instead of the row kernel.
    dit_config long_seq = {.input_size = 24, .in_channels = 1, .patch_size = 2, .depth = 1, .hidden_size = 64,
                           .num_heads = 2, .num_classes = 10, .learn_sigma = 0, .mlp_ratio = 4.0f};
    int long_batches[] = {1, 3, 7};
    int failures = check_config(&small, small_batches, 8) + check_config(&latent, latent_batches, 4) +
                   check_config(&long_seq, long_batches, 3);
    printf("%s: %d failing batch/offset/thread combinations\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}

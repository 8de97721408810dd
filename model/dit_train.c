// DiT/SiT training forward and backward (see dit_train.h). The forward makes
// dit.c's calls (same row kernels, GEMM shapes and summation order) except
// for attention, done with BLIS GEMMs that keep the softmax probabilities,
// and writes each intermediate to its own buffer; the backward walks it in
// reverse.
// Every GEMM goes through gemm.h with explicit strides: a weight gradient is
// dW += dY^T X as one GEMM reading dY transposed through its strides, an
// input gradient is dX = dY W reading the (out, in) weight as is.
// Row loops are parallel over rows or, where a per-sample vector (shift,
// scale, gate) is reduced over tokens, over samples, so every gradient is
// independent of the thread count. Ref: Peebles & Xie 2023 (DiT models.py),
// Ma et al. 2024 (SiT); llm.c for the layer backward formulas.
#include "dit_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "gemm.h"
#include "layers.h"
#include "layers_backward.h"
#include "noise.h"

#define LN_EPS 1e-6f
#define MAX_BUFFERS 64
#define COLSUM_CHUNK 64  // columns per task of colsum_accumulate

double dit_train_flops(const dit_config *c) { return 3.0 * dit_forward_flops(c); }

// ---------------------------------------------------------------------------
// Activation store: one list of (field, floats) drives sizing and binding.

typedef struct {
    float **field;
    size_t floats;
} acts_buffer;

static int acts_buffers(dit_train_acts *a, const dit_config *c, int B, int threads, acts_buffer out[MAX_BUFFERS],
                        dit_train_block_acts *blocks) {
    size_t T = (size_t)dit_tokens(c), D = (size_t)c->hidden_size, F = (size_t)dit_mlp_hidden(c);
    size_t H = (size_t)c->num_heads, L = (size_t)c->depth, Bs = (size_t)B, M = Bs * T;
    size_t P = (size_t)c->in_channels * c->patch_size * c->patch_size;
    size_t Pout = (size_t)dit_out_channels(c) * c->patch_size * c->patch_size;
    size_t dim = (size_t)dit_sample_dim(c);
    int n = 0;
#define BUF(ptr, count) out[n++] = (acts_buffer){(ptr), (count)}
    BUF(&a->t_freq, Bs * DIT_FREQ_DIM);
    BUF(&a->t_pre, Bs * D);
    BUF(&a->t_hidden, Bs * D);
    BUF(&a->c, Bs * D);
    BUF(&a->silu_c, Bs * D);
    BUF(&a->patches, M * P);
    // Per-block buffers are one run each, sliced per block in bind_blocks().
    BUF(&blocks->x, (L + 1) * M * D);  // L block inputs, then x_final
    BUF(&blocks->ln1_mean, L * M);
    BUF(&blocks->ln1_rstd, L * M);
    BUF(&blocks->h1, L * M * D);
    BUF(&blocks->qkv, L * M * 3 * D);
    BUF(&blocks->att, L * Bs * H * T * T);
    BUF(&blocks->ao, L * M * D);
    BUF(&blocks->ya, L * M * D);
    BUF(&blocks->x_mid, L * M * D);
    BUF(&blocks->ln2_mean, L * M);
    BUF(&blocks->ln2_rstd, L * M);
    BUF(&blocks->h2, L * M * D);
    BUF(&blocks->u, L * M * F);
    BUF(&blocks->g, L * M * F);
    BUF(&blocks->ym, L * M * D);
    BUF(&blocks->mod, L * Bs * 6 * D);
    BUF(&a->lnf_mean, M);
    BUF(&a->lnf_rstd, M);
    BUF(&a->hf, M * D);
    BUF(&a->yf, M * Pout);
    BUF(&a->mod_f, Bs * 2 * D);
    BUF(&a->xt, Bs * dim);
    BUF(&a->v, Bs * dim);
    BUF(&a->dx, M * D);
    BUF(&a->dh, M * D);
    BUF(&a->dz, M * D);
    BUF(&a->dao, M * D);
    BUF(&a->dqkv, M * 3 * D);
    BUF(&a->dmlp, M * F);
    BUF(&a->dyf, M * Pout);
    BUF(&a->dscores, (size_t)threads * T * T);
    BUF(&a->dmod, Bs * 6 * D);
    BUF(&a->dsilu_c, Bs * D);
    BUF(&a->dc, Bs * D);
    BUF(&a->dt_hidden, Bs * D);
#undef BUF
    NS_CHECK(n <= MAX_BUFFERS);
    return n;
}

static size_t rounded_floats(size_t floats) { return (floats + 15) / 16 * 16; }  // 64-byte multiples

size_t dit_train_acts_bytes(const dit_config *cfg, int max_batch, int threads) {
    dit_train_acts a;
    dit_train_block_acts runs;
    acts_buffer bufs[MAX_BUFFERS];
    int n = acts_buffers(&a, cfg, max_batch, threads > 0 ? threads : gemm_threads(), bufs, &runs);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += rounded_floats(bufs[i].floats);
    return total * sizeof(float) + (size_t)max_batch * (sizeof(int) + sizeof(double)) +
           (size_t)cfg->depth * sizeof(dit_train_block_acts);
}

// Block l's slice of each per-block run (runs holds the run starts).
static void bind_blocks(dit_train_acts *a, const dit_train_block_acts *runs) {
    const dit_config *c = &a->cfg;
    size_t T = (size_t)dit_tokens(c), D = (size_t)c->hidden_size, F = (size_t)dit_mlp_hidden(c);
    size_t H = (size_t)c->num_heads, Bs = (size_t)a->max_batch, M = Bs * T;
    for (int l = 0; l < c->depth; l++) {
        dit_train_block_acts *b = &a->blocks[l];
        b->x = runs->x + l * M * D;
        b->ln1_mean = runs->ln1_mean + l * M;
        b->ln1_rstd = runs->ln1_rstd + l * M;
        b->h1 = runs->h1 + l * M * D;
        b->qkv = runs->qkv + l * M * 3 * D;
        b->att = runs->att + l * Bs * H * T * T;
        b->ao = runs->ao + l * M * D;
        b->ya = runs->ya + l * M * D;
        b->x_mid = runs->x_mid + l * M * D;
        b->ln2_mean = runs->ln2_mean + l * M;
        b->ln2_rstd = runs->ln2_rstd + l * M;
        b->h2 = runs->h2 + l * M * D;
        b->u = runs->u + l * M * F;
        b->g = runs->g + l * M * F;
        b->ym = runs->ym + l * M * D;
        b->mod = runs->mod + l * Bs * 6 * D;
    }
    a->x_final = runs->x + (size_t)c->depth * M * D;
}

ns_status dit_train_acts_init(dit_train_acts *a, const dit_config *cfg, int max_batch, int threads) {
    memset(a, 0, sizeof *a);
    ns_status st = dit_config_check(cfg);
    if (st) return st;
    if (max_batch < 1) return ns_error_set(NS_ERR_ARG, "batch size must be at least 1, got %d", max_batch);
    a->cfg = *cfg;
    a->max_batch = max_batch;
    a->threads = threads > 0 ? threads : gemm_threads();
    dit_train_block_acts runs;
    acts_buffer bufs[MAX_BUFFERS];
    int n = acts_buffers(a, cfg, max_batch, a->threads, bufs, &runs);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += rounded_floats(bufs[i].floats);
    a->memory = ns_aligned_alloc(total * sizeof(float), "training activations");
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        *bufs[i].field = a->memory + offset;
        offset += rounded_floats(bufs[i].floats);
    }
    a->y = ns_calloc((size_t)max_batch, sizeof *a->y, "training labels");
    a->sq_err = ns_calloc((size_t)max_batch, sizeof *a->sq_err, "training loss terms");
    a->blocks = ns_calloc((size_t)cfg->depth, sizeof *a->blocks, "training block activations");
    bind_blocks(a, &runs);
    return NS_OK;
}

void dit_train_acts_free(dit_train_acts *a) {
    free(a->memory);
    free(a->y);
    free(a->sq_err);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

// ---------------------------------------------------------------------------
// Layout helpers: the backward of dit_unpatchify.

// Backward of unpatchify: dyf (M, p*p*Cout) = dv in token layout, zero in the
// learn_sigma variance channels the forward dropped.
static void unpatchify_backward(float *dyf, const float *dv, int B, const dit_config *c, int threads) {
    int C = c->in_channels, S = c->input_size, P = c->patch_size, G = S / P, Cout = dit_out_channels(c);
    int ylen = P * P * Cout;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int bt = 0; bt < B * G * G; bt++) {
        int b = bt / (G * G), gy = (bt / G) % G, gx = bt % G;
        float *dst = dyf + (size_t)bt * ylen;
        for (int i = 0; i < P; i++)
            for (int j = 0; j < P; j++)
                for (int ch = 0; ch < Cout; ch++)
                    dst[(i * P + j) * Cout + ch] =
                        ch < C ? dv[(((size_t)b * C + ch) * S + gy * P + i) * S + gx * P + j] : 0.0f;
    }
}

// db[j] += sum over r < rows of dy[r*ld + j]. Parallel over column chunks,
// each column summed in row order, so the result is thread-invariant.
static void colsum_accumulate(float *db, const float *dy, int rows, int cols, int ld, int threads) {
    int chunks = (cols + COLSUM_CHUNK - 1) / COLSUM_CHUNK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int ch = 0; ch < chunks; ch++) {
        int j0 = ch * COLSUM_CHUNK, n = cols - j0 < COLSUM_CHUNK ? cols - j0 : COLSUM_CHUNK;
        float acc[COLSUM_CHUNK] = {0};
        for (int r = 0; r < rows; r++) {
            const float *row = dy + (size_t)r * ld + j0;
            for (int j = 0; j < n; j++) acc[j] += row[j];
        }
        for (int j = 0; j < n; j++) db[j0 + j] += acc[j];
    }
}

// dW (N, K) += dY^T X: dY (rows, N) row stride ldy read transposed through
// its strides, X (rows, K) row stride ldx. One GEMM, K-loop = rows.
static void weight_grad(float *dW, const float *dY, int ldy, const float *X, int ldx, int rows, int N, int K,
                        int threads) {
    gemm_run(N, K, rows, 1.0f, dY, 1, ldy, X, ldx, 1, 1.0f, dW, K, 1, threads);
}

// dX (rows, K) = dY W (+ beta dX): dY (rows, N), W the (N, K) row-major weight.
static void input_grad(float *dX, const float *dY, const float *W, int rows, int N, int K, float beta, int threads) {
    gemm_run(rows, K, N, 1.0f, dY, N, 1, W, K, 1, beta, dX, K, 1, threads);
}

// ---------------------------------------------------------------------------
// Forward

// Attention of one block, per (sample, head): S = q k^T, P = softmax(S *
// scale) kept in blk->att (B, H, T, T) for the backward, o = P v.
static void attention_forward(dit_train_block_acts *blk, int B, int T, int D, int H, int threads) {
    int dh = D / H;
    float scale = 1.0f / sqrtf((float)dh);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *S = blk->att + (size_t)bh * T * T;
        const float *q = blk->qkv + (size_t)b * T * 3 * D + h * dh;
        const float *k = q + D;
        const float *v = q + 2 * D;
        float *o = blk->ao + (size_t)b * T * D + h * dh;
        // S = q k^T: q (T, dh) row stride 3D; k^T (dh, T) element (d, j) at k[j*3D + d].
        gemm_run(T, T, dh, 1.0f, q, 3 * D, 1, k, 1, 3 * D, 0.0f, S, T, 1, 1);
        for (int i = 0; i < T; i++) layer_softmax_row(S + (size_t)i * T, scale, T);
        gemm_run(T, dh, T, 1.0f, S, T, 1, v, 3 * D, 1, 0.0f, o, D, 1, 1);
    }
}

void dit_train_forward_features(const dit_model *m, dit_train_acts *a, const float *x, const float *t, const int *y,
                                int B) {
    const dit_config *c = &m->cfg;
    const dit_params *p = &m->p;
    NS_CHECK(B >= 1 && B <= a->max_batch);
    NS_CHECK(memcmp(c, &a->cfg, sizeof *c) == 0);
    int T = dit_tokens(c), D = c->hidden_size, F = dit_mlp_hidden(c), H = c->num_heads;
    int P = c->in_channels * c->patch_size * c->patch_size;
    int M = B * T, nt = a->threads;
    for (int b = 0; b < B; b++) NS_CHECK(y[b] >= 0 && y[b] <= c->num_classes);
    a->batch = B;
    memcpy(a->y, y, (size_t)B * sizeof(int));

    // Conditioning c = t_emb + y_emb, then SiLU(c) shared by every adaLN.
    for (int b = 0; b < B; b++) layer_timestep_embedding(a->t_freq + (size_t)b * DIT_FREQ_DIM, t[b], DIT_FREQ_DIM);
    gemm_nt(a->t_pre, D, a->t_freq, DIT_FREQ_DIM, p->t_mlp0_w, B, D, DIT_FREQ_DIM, 0.0f, nt);
    for (int b = 0; b < B; b++)
        layer_bias_silu_row(a->t_hidden + (size_t)b * D, a->t_pre + (size_t)b * D, p->t_mlp0_b, D);
    for (int b = 0; b < B; b++) {
        float *cb = a->c + (size_t)b * D;
        const float *yrow = p->y_table + (size_t)y[b] * D;
        for (int j = 0; j < D; j++) cb[j] = p->t_mlp2_b[j] + yrow[j];
    }
    gemm_nt(a->c, D, a->t_hidden, D, p->t_mlp2_w, B, D, D, 1.0f, nt);
    for (int b = 0; b < B; b++) layer_silu_row(a->silu_c + (size_t)b * D, a->c + (size_t)b * D, D);

    // Patch embedding: x = patches W^T + bias + pos_embed.
    float *x0 = a->blocks[0].x;
    dit_patchify(a->patches, x, B, c, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < M; r++) {
        float *xr = x0 + (size_t)r * D;
        const float *pe = p->pos_embed + (size_t)(r % T) * D;
        for (int j = 0; j < D; j++) xr[j] = pe[j] + p->x_embed_b[j];
    }
    gemm_nt(x0, D, a->patches, P, p->x_embed_w, M, D, P, 1.0f, nt);

    for (int l = 0; l < c->depth; l++) {
        const dit_block_params *bp = &p->blocks[l];
        dit_train_block_acts *blk = &a->blocks[l];
        float *x_out = l + 1 < c->depth ? a->blocks[l + 1].x : a->x_final;
        for (int b = 0; b < B; b++) memcpy(blk->mod + (size_t)b * 6 * D, bp->ada_b, (size_t)6 * D * sizeof(float));
        gemm_nt(blk->mod, 6 * D, a->silu_c, D, bp->ada_w, B, 6 * D, D, 1.0f, nt);

        // Attention branch.
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) {
            const float *mb = blk->mod + (size_t)(r / T) * 6 * D;
            layer_norm_modulate_forward_row(blk->h1 + (size_t)r * D, &blk->ln1_mean[r], &blk->ln1_rstd[r],
                                            blk->x + (size_t)r * D, mb, mb + D, D, LN_EPS);
            memcpy(blk->qkv + (size_t)r * 3 * D, bp->qkv_b, (size_t)3 * D * sizeof(float));
        }
        gemm_nt(blk->qkv, 3 * D, blk->h1, D, bp->qkv_w, M, 3 * D, D, 1.0f, nt);
        attention_forward(blk, B, T, D, H, nt);
        gemm_nt(blk->ya, D, blk->ao, D, bp->proj_w, M, D, D, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) {
            const float *mb = blk->mod + (size_t)(r / T) * 6 * D;
            float *xm = blk->x_mid + (size_t)r * D;
            memcpy(xm, blk->x + (size_t)r * D, (size_t)D * sizeof(float));
            layer_gated_residual_row(xm, mb + 2 * D, blk->ya + (size_t)r * D, bp->proj_b, D);
            layer_norm_modulate_forward_row(blk->h2 + (size_t)r * D, &blk->ln2_mean[r], &blk->ln2_rstd[r], xm,
                                            mb + 3 * D, mb + 4 * D, D, LN_EPS);
        }

        // MLP branch.
        gemm_nt(blk->u, F, blk->h2, D, bp->fc1_w, M, F, D, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) layer_bias_gelu_row(blk->g + (size_t)r * F, blk->u + (size_t)r * F, bp->fc1_b, F);
        gemm_nt(blk->ym, D, blk->g, F, bp->fc2_w, M, D, F, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) {
            const float *mb = blk->mod + (size_t)(r / T) * 6 * D;
            float *xo = x_out + (size_t)r * D;
            memcpy(xo, blk->x_mid + (size_t)r * D, (size_t)D * sizeof(float));
            layer_gated_residual_row(xo, mb + 5 * D, blk->ym + (size_t)r * D, bp->fc2_b, D);
        }
    }

    // Final layer: adaLN (shift, scale), linear to p*p*Cout, unpatchify.
    for (int b = 0; b < B; b++) memcpy(a->mod_f + (size_t)b * 2 * D, p->final_ada_b, (size_t)2 * D * sizeof(float));
    gemm_nt(a->mod_f, 2 * D, a->silu_c, D, p->final_ada_w, B, 2 * D, D, 1.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < M; r++) {
        const float *mb = a->mod_f + (size_t)(r / T) * 2 * D;
        layer_norm_modulate_forward_row(a->hf + (size_t)r * D, &a->lnf_mean[r], &a->lnf_rstd[r],
                                        a->x_final + (size_t)r * D, mb, mb + D, D, LN_EPS);
    }
}

void dit_train_forward(const dit_model *m, dit_train_acts *a, float *v, const float *x, const float *t, const int *y,
                       int B) {
    const dit_config *c = &m->cfg;
    int D = c->hidden_size, Pout = c->patch_size * c->patch_size * dit_out_channels(c);
    dit_train_forward_features(m, a, x, t, y, B);
    gemm_nt(a->yf, Pout, a->hf, D, m->p.final_w, B * dit_tokens(c), Pout, D, 0.0f, a->threads);
    dit_unpatchify(v, a->yf, m->p.final_b, B, c, a->threads);
}

// ---------------------------------------------------------------------------
// Backward

// Backward of a modulated LayerNorm over all rows: dx += dL/dx,
// dmod's shift and scale chunks (per sample, row stride mod_ld) += their
// gradients. Parallel over samples: a sample's T rows reduce into its chunks.
static void ln_modulate_backward(float *dx, float *dmod, const float *dh, const float *x, const float *mean,
                                 const float *rstd, const float *mod, int mod_ld, int shift_chunk, int scale_chunk,
                                 int B, int T, int D, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int b = 0; b < B; b++) {
        float *dshift = dmod + (size_t)b * mod_ld + (size_t)shift_chunk * D;
        float *dscale = dmod + (size_t)b * mod_ld + (size_t)scale_chunk * D;
        const float *scale = mod + (size_t)b * mod_ld + (size_t)scale_chunk * D;
        for (int r = b * T; r < (b + 1) * T; r++)
            layer_norm_modulate_backward_row(dx + (size_t)r * D, dshift, dscale, dh + (size_t)r * D,
                                             x + (size_t)r * D, mean[r], rstd[r], scale, D);
    }
}

// Backward of x_out = x_in + gate * (y + bias): dz = dL/d(y + bias) for
// every row, the gate chunk of dmod (per sample) accumulated. dx passes
// through unchanged (the residual's identity path).
static void gated_residual_backward(float *dz, float *dmod, const float *dx, const float *mod, int gate_chunk,
                                    const float *y, const float *bias, int B, int T, int D, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int b = 0; b < B; b++) {
        float *dgate = dmod + (size_t)b * 6 * D + (size_t)gate_chunk * D;
        const float *gate = mod + (size_t)b * 6 * D + (size_t)gate_chunk * D;
        for (int r = b * T; r < (b + 1) * T; r++)
            layer_gated_residual_backward_row(dz + (size_t)r * D, dgate, dx + (size_t)r * D, gate,
                                              y + (size_t)r * D, bias, D);
    }
}

// Attention backward of one block, per (sample, head), given dao = dL/d ao:
//   dP = dO V^T, dV = P^T dO, dS = softmax backward (scale included),
//   dQ = dS K, dK = dS^T Q; written into dqkv's q|k|v columns of the head.
static void attention_backward(dit_train_acts *a, const dit_train_block_acts *blk, int B, int T, int D, int H) {
    int dh = D / H;
    float scale = 1.0f / sqrtf((float)dh);
#pragma omp parallel for num_threads(a->threads) schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *dS = a->dscores + (size_t)omp_get_thread_num() * T * T;
        const float *P = blk->att + (size_t)bh * T * T;
        const float *q = blk->qkv + (size_t)b * T * 3 * D + h * dh;
        const float *k = q + D;
        const float *v = q + 2 * D;
        const float *dO = a->dao + (size_t)b * T * D + h * dh;
        float *dq = a->dqkv + (size_t)b * T * 3 * D + h * dh;
        float *dk = dq + D;
        float *dv = dq + 2 * D;
        // dP (T, T) = dO (T, dh) V^T; V^T element (d, j) at v[j*3D + d].
        gemm_run(T, T, dh, 1.0f, dO, D, 1, v, 1, 3 * D, 0.0f, dS, T, 1, 1);
        // dV (T, dh) = P^T dO; P^T element (i, j) at P[j*T + i].
        gemm_run(T, dh, T, 1.0f, P, 1, T, dO, D, 1, 0.0f, dv, 3 * D, 1, 1);
        for (int i = 0; i < T; i++) layer_softmax_backward_row(dS + (size_t)i * T, P + (size_t)i * T, scale, T);
        // dQ = dS K, dK = dS^T Q.
        gemm_run(T, dh, T, 1.0f, dS, T, 1, k, 3 * D, 1, 0.0f, dq, 3 * D, 1, 1);
        gemm_run(T, dh, T, 1.0f, dS, 1, T, q, 3 * D, 1, 0.0f, dk, 3 * D, 1, 1);
    }
}

// Backward of mod = SiLU(c) W^T + b for nchunks*D outputs (6 for a block, 2
// for the final layer): weight and bias gradients, and dsilu_c (B, D) +=
// (or =, when first) dmod W.
static void adaln_backward(dit_train_acts *a, float *dW, float *db, const float *W, int nchunks, int first, int B,
                           int D) {
    int N = nchunks * D, nt = a->threads;
    colsum_accumulate(db, a->dmod, B, N, N, nt);
    weight_grad(dW, a->dmod, N, a->silu_c, D, B, N, D, nt);
    input_grad(a->dsilu_c, a->dmod, W, B, N, D, first ? 0.0f : 1.0f, nt);
}

static void block_backward(const dit_model *m, dit_train_acts *a, const dit_block_params *bp,
                           const dit_block_params *gp, const dit_train_block_acts *blk, int B) {
    const dit_config *c = &m->cfg;
    int T = dit_tokens(c), D = c->hidden_size, F = dit_mlp_hidden(c), H = c->num_heads;
    int M = B * T, nt = a->threads;
    memset(a->dmod, 0, (size_t)B * 6 * D * sizeof(float));

    // MLP branch: x_out = x_mid + gate_mlp * (g fc2_w^T + fc2_b), g = gelu(u + fc1_b), u = h2 fc1_w^T.
    gated_residual_backward(a->dz, a->dmod, a->dx, blk->mod, 5, blk->ym, bp->fc2_b, B, T, D, nt);
    colsum_accumulate(gp->fc2_b, a->dz, M, D, D, nt);
    weight_grad(gp->fc2_w, a->dz, D, blk->g, F, M, D, F, nt);
    input_grad(a->dmlp, a->dz, bp->fc2_w, M, D, F, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < M; r++)
        layer_bias_gelu_backward_row(a->dmlp + (size_t)r * F, a->dmlp + (size_t)r * F, blk->u + (size_t)r * F,
                                     bp->fc1_b, F);
    colsum_accumulate(gp->fc1_b, a->dmlp, M, F, F, nt);
    weight_grad(gp->fc1_w, a->dmlp, F, blk->h2, D, M, F, D, nt);
    input_grad(a->dh, a->dmlp, bp->fc1_w, M, F, D, 0.0f, nt);
    ln_modulate_backward(a->dx, a->dmod, a->dh, blk->x_mid, blk->ln2_mean, blk->ln2_rstd, blk->mod, 6 * D, 3, 4, B, T,
                         D, nt);

    // Attention branch: x_mid = x + gate_msa * (ao proj_w^T + proj_b).
    gated_residual_backward(a->dz, a->dmod, a->dx, blk->mod, 2, blk->ya, bp->proj_b, B, T, D, nt);
    colsum_accumulate(gp->proj_b, a->dz, M, D, D, nt);
    weight_grad(gp->proj_w, a->dz, D, blk->ao, D, M, D, D, nt);
    input_grad(a->dao, a->dz, bp->proj_w, M, D, D, 0.0f, nt);
    attention_backward(a, blk, B, T, D, H);
    colsum_accumulate(gp->qkv_b, a->dqkv, M, 3 * D, 3 * D, nt);
    weight_grad(gp->qkv_w, a->dqkv, 3 * D, blk->h1, D, M, 3 * D, D, nt);
    input_grad(a->dh, a->dqkv, bp->qkv_w, M, 3 * D, D, 0.0f, nt);
    ln_modulate_backward(a->dx, a->dmod, a->dh, blk->x, blk->ln1_mean, blk->ln1_rstd, blk->mod, 6 * D, 0, 1, B, T, D,
                         nt);

    adaln_backward(a, gp->ada_w, gp->ada_b, bp->ada_w, 6, 0, B, D);
}

void dit_backward(const dit_model *m, dit_train_acts *a, const dit_params *grad, const float *dv, int B) {
    const dit_config *c = &m->cfg;
    NS_CHECK(B >= 1 && B == a->batch);
    NS_CHECK(memcmp(c, &a->cfg, sizeof *c) == 0);
    int D = c->hidden_size, M = B * dit_tokens(c), nt = a->threads;
    int Pout = c->patch_size * c->patch_size * dit_out_channels(c);

    // Final linear: v = unpatchify(hf final_w^T + final_b); the rest starts from dL/d hf.
    unpatchify_backward(a->dyf, dv, B, c, nt);
    colsum_accumulate(grad->final_b, a->dyf, M, Pout, Pout, nt);
    weight_grad(grad->final_w, a->dyf, Pout, a->hf, D, M, Pout, D, nt);
    input_grad(a->dh, a->dyf, m->p.final_w, M, Pout, D, 0.0f, nt);
    dit_backward_features(m, a, grad, a->dh, B);
}

void dit_backward_features(const dit_model *m, dit_train_acts *a, const dit_params *grad, const float *dhf, int B) {
    const dit_config *c = &m->cfg;
    const dit_params *p = &m->p;
    NS_CHECK(B >= 1 && B == a->batch);
    NS_CHECK(memcmp(c, &a->cfg, sizeof *c) == 0);
    int T = dit_tokens(c), D = c->hidden_size;
    int P = c->in_channels * c->patch_size * c->patch_size;
    int M = B * T, nt = a->threads;

    // Final adaLN: hf = LN(x_final) * (1 + scale) + shift, (shift, scale) = Linear(SiLU(c)).
    memset(a->dx, 0, (size_t)M * D * sizeof(float));
    memset(a->dmod, 0, (size_t)B * 2 * D * sizeof(float));
    ln_modulate_backward(a->dx, a->dmod, dhf, a->x_final, a->lnf_mean, a->lnf_rstd, a->mod_f, 2 * D, 0, 1, B, T, D,
                         nt);
    adaln_backward(a, grad->final_ada_w, grad->final_ada_b, p->final_ada_w, 2, 1, B, D);

    for (int l = c->depth - 1; l >= 0; l--) block_backward(m, a, &p->blocks[l], &grad->blocks[l], &a->blocks[l], B);

    // Patch embedding: x0 = patches x_embed_w^T + x_embed_b + pos_embed (no gradient).
    colsum_accumulate(grad->x_embed_b, a->dx, M, D, D, nt);
    weight_grad(grad->x_embed_w, a->dx, D, a->patches, P, M, D, P, nt);

    // Conditioning: silu_c = SiLU(c), c = t_mlp2(t_hidden) + y_table[y],
    // t_hidden = SiLU(t_pre + t_mlp0_b), t_pre = t_freq t_mlp0_w^T.
    for (int b = 0; b < B; b++)
        layer_silu_backward_row(a->dc + (size_t)b * D, a->dsilu_c + (size_t)b * D, a->c + (size_t)b * D, D);
    for (int b = 0; b < B; b++) {  // serial: samples may share a label row
        float *row = grad->y_table + (size_t)a->y[b] * D;
        const float *dcb = a->dc + (size_t)b * D;
        for (int j = 0; j < D; j++) row[j] += dcb[j];
    }
    colsum_accumulate(grad->t_mlp2_b, a->dc, B, D, D, nt);
    weight_grad(grad->t_mlp2_w, a->dc, D, a->t_hidden, D, B, D, D, nt);
    input_grad(a->dt_hidden, a->dc, p->t_mlp2_w, B, D, D, 0.0f, nt);
    for (int b = 0; b < B; b++)
        layer_bias_silu_backward_row(a->dt_hidden + (size_t)b * D, a->dt_hidden + (size_t)b * D,
                                     a->t_pre + (size_t)b * D, p->t_mlp0_b, D);
    colsum_accumulate(grad->t_mlp0_b, a->dt_hidden, B, D, D, nt);
    weight_grad(grad->t_mlp0_w, a->dt_hidden, D, a->t_freq, DIT_FREQ_DIM, B, D, DIT_FREQ_DIM, nt);
}

// ---------------------------------------------------------------------------
// Flow-matching loss

double dit_train_flow_loss(const dit_model *m, dit_train_acts *a, float *dv, const float *x1, const float *x0,
                           const float *t, const int *y, int B) {
    NS_CHECK(B >= 1 && B <= a->max_batch);
    int dim = dit_sample_dim(&m->cfg), nt = a->threads;
    // Ref: search-reference §1, linear interpolant x_t = t x1 + (1 - t) x0.
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        float tb = t[b];
        for (int i = 0; i < dim; i++) {
            size_t k = (size_t)b * dim + i;
            a->xt[k] = tb * x1[k] + (1.0f - tb) * x0[k];
        }
    }
    dit_train_forward(m, a, a->v, a->xt, t, y, B);
    // Per-sample double sums combined in sample order: thread-invariant.
    double n = (double)B * dim;
    float scale = (float)(2.0 / n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        for (int i = 0; i < dim; i++) {
            size_t k = (size_t)b * dim + i;
            float e = a->v[k] - (x1[k] - x0[k]);
            s += (double)e * e;
            dv[k] = scale * e;
        }
        a->sq_err[b] = s;
    }
    double total = 0.0;
    for (int b = 0; b < B; b++) total += a->sq_err[b];
    return total / n;
}

// DiT's initialize_weights: xavier-uniform Linear (and patch-embedding conv)
// weights, zero biases, N(0, 0.02) label table and timestep MLP weights,
// zero adaLN modulations and final linear (adaLN-Zero), fixed pos_embed.
void dit_train_init_weights(dit_model *m, uint64_t seed) {
    memset(m->memory, 0, m->num_params * sizeof(float));
    for (int i = 0; i < m->num_tensors; i++) {
        const dit_tensor *t = &m->tensors[i];
        float *w = m->memory + t->offset;
        noise_key key = {seed, (uint64_t)i};
        if (t->ndim < 2 || strstr(t->name, "adaLN_modulation") || !strncmp(t->name, "final_layer.linear", 18) ||
            !strcmp(t->name, "pos_embed"))
            continue;  // zero (pos_embed is filled below)
        if (!strncmp(t->name, "t_embedder", 10) || !strncmp(t->name, "y_embedder", 10)) {
            noise_fill(w, t->numel, key, 0);
            for (size_t k = 0; k < t->numel; k++) w[k] *= 0.02f;
            continue;
        }
        size_t fan_out = (size_t)t->shape[0], fan_in = t->numel / fan_out;
        double bound = sqrt(6.0 / (double)(fan_in + fan_out));
        for (size_t k = 0; k < t->numel; k++) w[k] = (float)((2.0 * noise_uniform(key, k) - 1.0) * bound);
    }
    layer_pos_embed_2d(m->p.pos_embed, m->cfg.input_size / m->cfg.patch_size, m->cfg.hidden_size);
}

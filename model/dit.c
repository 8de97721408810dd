// DiT/SiT forward pass over a batch (see dit.h). The forward only chains
// layer calls: GEMMs through gemm.h, row kernels from layers.h, parallel
// over rows (never inside a row), so results are batch- and thread-invariant.
// Ref: Peebles & Xie 2023 (DiT, models.py); Ma et al. 2024 (SiT).
#include "dit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "gemm.h"
#include "layers.h"

#define LN_EPS 1e-6f

int dit_tokens(const dit_config *c) {
    int g = c->input_size / c->patch_size;
    return g * g;
}
int dit_out_channels(const dit_config *c) { return c->learn_sigma ? 2 * c->in_channels : c->in_channels; }
int dit_mlp_hidden(const dit_config *c) { return (int)((float)c->hidden_size * c->mlp_ratio); }
int dit_sample_dim(const dit_config *c) { return c->in_channels * c->input_size * c->input_size; }

ns_status dit_config_check(const dit_config *c) {
#define REQUIRE(cond, ...) \
    if (!(cond)) return ns_error_set(NS_ERR_ARG, __VA_ARGS__)
    REQUIRE(c->input_size > 0 && c->input_size <= 4096, "input_size %d out of range 1..4096", c->input_size);
    REQUIRE(c->in_channels > 0 && c->in_channels <= 64, "in_channels %d out of range 1..64", c->in_channels);
    REQUIRE(c->patch_size > 0 && c->input_size % c->patch_size == 0,
            "patch_size %d must be positive and divide input_size %d", c->patch_size, c->input_size);
    REQUIRE(c->depth > 0 && c->depth <= DIT_MAX_DEPTH, "depth %d out of range 1..%d", c->depth, DIT_MAX_DEPTH);
    REQUIRE(c->hidden_size > 0 && c->hidden_size % 4 == 0, "hidden_size %d must be a positive multiple of 4",
            c->hidden_size);
    REQUIRE(c->num_heads > 0 && c->hidden_size % c->num_heads == 0, "num_heads %d must divide hidden_size %d",
            c->num_heads, c->hidden_size);
    REQUIRE(c->num_classes >= 1, "num_classes %d must be at least 1", c->num_classes);
    REQUIRE(c->learn_sigma == 0 || c->learn_sigma == 1, "learn_sigma must be 0 or 1, got %d", c->learn_sigma);
    REQUIRE(c->mlp_ratio > 0.0f && dit_mlp_hidden(c) >= 1, "mlp_ratio %g must be positive", (double)c->mlp_ratio);
#undef REQUIRE
    return NS_OK;
}

double dit_forward_flops(const dit_config *c) {
    double T = dit_tokens(c), D = c->hidden_size, F = dit_mlp_hidden(c);
    double P = (double)c->in_channels * c->patch_size * c->patch_size;
    double Pout = (double)dit_out_channels(c) * c->patch_size * c->patch_size;
    double per_block = T * D * (3 * D + D + 2 * F)  // qkv, proj, fc1, fc2
                       + 2 * T * T * D              // scores and weighted sum
                       + D * 6 * D;                 // adaLN modulation
    double macs = T * P * D + DIT_FREQ_DIM * D + D * D + c->depth * per_block + D * 2 * D + T * D * Pout;
    return 2.0 * macs;
}

// ---------------------------------------------------------------------------
// Parameter layout: one walk over the state_dict in order, shared by the
// tensor table (names, shapes, offsets) and by pointer binding.

typedef struct {
    float *base;       // may be NULL when only counting
    size_t offset;
    dit_tensor *table; // may be NULL
    int count;
} layout_walk;

static float *layout_add(layout_walk *w, const char *name, int ndim, int s0, int s1, int s2, int s3) {
    int shape[4] = {s0, s1, s2, s3};
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    if (w->table) {
        dit_tensor *t = &w->table[w->count];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = ndim;
        memcpy(t->shape, shape, sizeof shape);
        t->numel = numel;
        t->offset = w->offset;
    }
    float *p = w->base ? w->base + w->offset : NULL;
    w->offset += numel;
    w->count++;
    return p;
}

static void layout_walk_model(layout_walk *w, const dit_config *c, dit_params *p) {
    int D = c->hidden_size, C = c->in_channels, P = c->patch_size, F = dit_mlp_hidden(c);
    int T = dit_tokens(c), Pout = P * P * dit_out_channels(c);
    char name[64];
    p->pos_embed = layout_add(w, "pos_embed", 3, 1, T, D, 0);
    p->x_embed_w = layout_add(w, "x_embedder.proj.weight", 4, D, C, P, P);
    p->x_embed_b = layout_add(w, "x_embedder.proj.bias", 1, D, 0, 0, 0);
    p->t_mlp0_w = layout_add(w, "t_embedder.mlp.0.weight", 2, D, DIT_FREQ_DIM, 0, 0);
    p->t_mlp0_b = layout_add(w, "t_embedder.mlp.0.bias", 1, D, 0, 0, 0);
    p->t_mlp2_w = layout_add(w, "t_embedder.mlp.2.weight", 2, D, D, 0, 0);
    p->t_mlp2_b = layout_add(w, "t_embedder.mlp.2.bias", 1, D, 0, 0, 0);
    p->y_table = layout_add(w, "y_embedder.embedding_table.weight", 2, c->num_classes + 1, D, 0, 0);
    for (int i = 0; i < c->depth; i++) {
        dit_block_params *b = &p->blocks[i];
#define BLOCK_TENSOR(field, suffix, ndim, s0, s1)                     \
    snprintf(name, sizeof name, "blocks.%d.%s", i, suffix);          \
    b->field = layout_add(w, name, ndim, s0, s1, 0, 0)
        BLOCK_TENSOR(qkv_w, "attn.qkv.weight", 2, 3 * D, D);
        BLOCK_TENSOR(qkv_b, "attn.qkv.bias", 1, 3 * D, 0);
        BLOCK_TENSOR(proj_w, "attn.proj.weight", 2, D, D);
        BLOCK_TENSOR(proj_b, "attn.proj.bias", 1, D, 0);
        BLOCK_TENSOR(fc1_w, "mlp.fc1.weight", 2, F, D);
        BLOCK_TENSOR(fc1_b, "mlp.fc1.bias", 1, F, 0);
        BLOCK_TENSOR(fc2_w, "mlp.fc2.weight", 2, D, F);
        BLOCK_TENSOR(fc2_b, "mlp.fc2.bias", 1, D, 0);
        BLOCK_TENSOR(ada_w, "adaLN_modulation.1.weight", 2, 6 * D, D);
        BLOCK_TENSOR(ada_b, "adaLN_modulation.1.bias", 1, 6 * D, 0);
#undef BLOCK_TENSOR
    }
    p->final_ada_w = layout_add(w, "final_layer.adaLN_modulation.1.weight", 2, 2 * D, D, 0, 0);
    p->final_ada_b = layout_add(w, "final_layer.adaLN_modulation.1.bias", 1, 2 * D, 0, 0, 0);
    p->final_w = layout_add(w, "final_layer.linear.weight", 2, Pout, D, 0, 0);
    p->final_b = layout_add(w, "final_layer.linear.bias", 1, Pout, 0, 0, 0);
}

void dit_params_bind(dit_params *p, const dit_config *cfg, float *memory) {
    layout_walk w = {.base = memory};
    memset(p, 0, sizeof *p);
    layout_walk_model(&w, cfg, p);
}

ns_status dit_model_init(dit_model *m, const dit_config *cfg) {
    ns_status st = dit_config_check(cfg);
    if (st) return st;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    dit_params scratch;
    layout_walk count = {0};
    layout_walk_model(&count, cfg, &scratch);
    m->num_params = count.offset;
    m->num_tensors = count.count;
    m->tensors = ns_calloc((size_t)count.count, sizeof *m->tensors, "tensor table");
    m->memory = ns_aligned_alloc(m->num_params * sizeof(float), "model parameters");
    layout_walk fill = {.base = m->memory, .table = m->tensors};
    layout_walk_model(&fill, cfg, &m->p);
    return NS_OK;
}

void dit_model_free(dit_model *m) {
    free(m->memory);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

// splitmix64 → uniform → approximately normal (sum of 4 uniforms); test data only.
void dit_model_randomize(dit_model *m, unsigned long long seed, float stddev) {
    unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < m->num_params; i++) {
        float acc = 0.0f;
        for (int k = 0; k < 4; k++) {
            unsigned long long z = (s += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            acc += (float)((double)(z >> 11) * 0x1.0p-53) - 0.5f;
        }
        m->memory[i] = acc * stddev * 1.7320508f;  // var of sum of 4 U(-.5,.5) is 1/3
    }
    layer_pos_embed_2d(m->p.pos_embed, m->cfg.input_size / m->cfg.patch_size, m->cfg.hidden_size);
}

// ---------------------------------------------------------------------------
// Workspace

// Attention path by sequence length (see attention() below).
#define ATTENTION_BLIS_MIN_TOKENS 128

static size_t attention_scratch(int T, int dh) {
    return T >= ATTENTION_BLIS_MIN_TOKENS ? (size_t)T * T : layer_attention_scratch(T, dh);
}

typedef struct {
    float **field;
    size_t floats;
} ws_buffer;

static int ws_buffers(dit_workspace *ws, const dit_config *c, int B, int threads, ws_buffer out[16]) {
    size_t T = (size_t)dit_tokens(c), D = (size_t)c->hidden_size, F = (size_t)dit_mlp_hidden(c);
    size_t P = (size_t)c->in_channels * c->patch_size * c->patch_size;
    size_t Pout = (size_t)dit_out_channels(c) * c->patch_size * c->patch_size;
    size_t rows = (size_t)B * T;
    size_t ywidth = Pout > D ? Pout : D;
    int n = 0;
    out[n++] = (ws_buffer){&ws->patches, rows * P};
    out[n++] = (ws_buffer){&ws->x, rows * D};
    out[n++] = (ws_buffer){&ws->h, rows * D};
    out[n++] = (ws_buffer){&ws->qkv, rows * 3 * D};
    out[n++] = (ws_buffer){&ws->attn, rows * D};
    out[n++] = (ws_buffer){&ws->y, rows * ywidth};
    out[n++] = (ws_buffer){&ws->mlp, rows * F};
    out[n++] = (ws_buffer){&ws->scores, (size_t)threads * attention_scratch((int)T, c->hidden_size / c->num_heads)};
    out[n++] = (ws_buffer){&ws->t_freq, (size_t)B * DIT_FREQ_DIM};
    out[n++] = (ws_buffer){&ws->t_hidden, (size_t)B * D};
    out[n++] = (ws_buffer){&ws->c, (size_t)B * D};
    out[n++] = (ws_buffer){&ws->silu_c, (size_t)B * D};
    out[n++] = (ws_buffer){&ws->mod, (size_t)B * 6 * D};
    return n;
}

size_t dit_workspace_bytes(const dit_config *cfg, int max_batch, int threads) {
    dit_workspace ws;
    ws_buffer bufs[16];
    int n = ws_buffers(&ws, cfg, max_batch, threads > 0 ? threads : gemm_threads(), bufs);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (bufs[i].floats * sizeof(float) + 63) / 64 * 64;
    return total;
}

ns_status dit_workspace_init(dit_workspace *ws, const dit_config *cfg, int max_batch, int threads) {
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1) return ns_error_set(NS_ERR_ARG, "batch size must be at least 1, got %d", max_batch);
    ws->max_batch = max_batch;
    ws->threads = threads > 0 ? threads : gemm_threads();
    ws_buffer bufs[16];
    int n = ws_buffers(ws, cfg, max_batch, ws->threads, bufs);
    for (int i = 0; i < n; i++) *bufs[i].field = ns_aligned_alloc(bufs[i].floats * sizeof(float), "dit workspace");
    return NS_OK;
}

void dit_workspace_free(dit_workspace *ws) {
    free(ws->patches);
    free(ws->x);
    free(ws->h);
    free(ws->qkv);
    free(ws->attn);
    free(ws->y);
    free(ws->mlp);
    free(ws->scores);
    free(ws->t_freq);
    free(ws->t_hidden);
    free(ws->c);
    free(ws->silu_c);
    free(ws->mod);
    memset(ws, 0, sizeof *ws);
}

// ---------------------------------------------------------------------------
// Forward

// im2col for the patch embedding conv (kernel = stride = p): token (gy, gx)
// gets the vector ordered (channel, row in patch, column in patch), the
// flattening order of the PyTorch conv weight (D, C, p, p).
void dit_patchify(float *patches, const float *x, int B, const dit_config *c, int threads) {
    int C = c->in_channels, S = c->input_size, P = c->patch_size, G = S / P;
    int plen = C * P * P;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int bt = 0; bt < B * G * G; bt++) {
        int b = bt / (G * G), gy = (bt / G) % G, gx = bt % G;
        float *dst = patches + (size_t)bt * plen;
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < P; i++)
                memcpy(dst + (ch * P + i) * P, x + (((size_t)b * C + ch) * S + gy * P + i) * S + gx * P,
                       (size_t)P * sizeof(float));
    }
}

// Inverse of the final linear's token layout (p_row, p_col, channel) into
// NCHW, keeping the first C channels (learn_sigma's variance channels are
// dropped) and adding the bias. Ref: DiT unpatchify, einsum nhwpqc->nchpwq.
void dit_unpatchify(float *v, const float *y, const float *bias, int B, const dit_config *c, int threads) {
    int C = c->in_channels, S = c->input_size, P = c->patch_size, G = S / P, Cout = dit_out_channels(c);
    int ylen = P * P * Cout;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int bt = 0; bt < B * G * G; bt++) {
        int b = bt / (G * G), gy = (bt / G) % G, gx = bt % G;
        const float *src = y + (size_t)bt * ylen;
        for (int i = 0; i < P; i++)
            for (int j = 0; j < P; j++)
                for (int ch = 0; ch < C; ch++) {
                    int k = (i * P + j) * Cout + ch;
                    v[(((size_t)b * C + ch) * S + gy * P + i) * S + gx * P + j] = src[k] + bias[k];
                }
    }
}

// Multi-head self-attention of one block: qkv (B*T, 3D) → attn (B*T, D),
// one (sample, head) pair per task with per-thread scratch. Short sequences
// use the row kernel (a BLIS call on a 49x49x64 product is mostly
// overhead); long ones two single-threaded BLIS products, which then run
// far faster than the row kernel (XL/2: T = 256, dh = 72). The choice
// depends only on the model, so every sample of a model takes the same path.
static void attention(dit_workspace *ws, int B, int T, int D, int H) {
    int dh = D / H;
    float scale = 1.0f / sqrtf((float)dh);
    size_t scratch = attention_scratch(T, dh);
#pragma omp parallel for num_threads(ws->threads) schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *q = ws->qkv + (size_t)b * T * 3 * D + h * dh, *k = q + D, *v = q + 2 * D;
        float *o = ws->attn + (size_t)b * T * D + h * dh;
        float *S = ws->scores + (size_t)omp_get_thread_num() * scratch;
        if (T < ATTENTION_BLIS_MIN_TOKENS) {
            layer_attention_head(o, D, q, k, v, 3 * D, T, dh, scale, S);
            continue;
        }
        // S = q k^T: q (T, dh) row stride 3D; k^T (dh, T) element (d, j) at k[j*3D + d].
        gemm_run(T, T, dh, 1.0f, q, 3 * D, 1, k, 1, 3 * D, 0.0f, S, T, 1, 1);
        for (int i = 0; i < T; i++) layer_softmax_row(S + (size_t)i * T, scale, T);
        // o = S v: v (T, dh) row stride 3D; o row stride D.
        gemm_run(T, dh, T, 1.0f, S, T, 1, v, 3 * D, 1, 0.0f, o, D, 1, 1);
    }
}

void dit_forward(const dit_model *m, dit_workspace *ws, float *v, const float *x, const float *t, const int *y,
                 int B) {
    const dit_config *c = &m->cfg;
    const dit_params *p = &m->p;
    NS_CHECK(B >= 1 && B <= ws->max_batch);
    int T = dit_tokens(c), D = c->hidden_size, F = dit_mlp_hidden(c), H = c->num_heads;
    int P = c->in_channels * c->patch_size * c->patch_size;
    int Pout = c->patch_size * c->patch_size * dit_out_channels(c);
    int M = B * T, nt = ws->threads;
    for (int b = 0; b < B; b++) NS_CHECK(y[b] >= 0 && y[b] <= c->num_classes);

    // Conditioning c = t_emb + y_emb, then SiLU(c) shared by every adaLN.
    for (int b = 0; b < B; b++) layer_timestep_embedding(ws->t_freq + (size_t)b * DIT_FREQ_DIM, t[b], DIT_FREQ_DIM);
    gemm_nt(ws->t_hidden, D, ws->t_freq, DIT_FREQ_DIM, p->t_mlp0_w, B, D, DIT_FREQ_DIM, 0.0f, nt);
    for (int b = 0; b < B; b++)
        layer_bias_silu_row(ws->t_hidden + (size_t)b * D, ws->t_hidden + (size_t)b * D, p->t_mlp0_b, D);
    for (int b = 0; b < B; b++) {
        float *cb = ws->c + (size_t)b * D;
        const float *yrow = p->y_table + (size_t)y[b] * D;
        for (int j = 0; j < D; j++) cb[j] = p->t_mlp2_b[j] + yrow[j];
    }
    gemm_nt(ws->c, D, ws->t_hidden, D, p->t_mlp2_w, B, D, D, 1.0f, nt);
    for (int b = 0; b < B; b++) layer_silu_row(ws->silu_c + (size_t)b * D, ws->c + (size_t)b * D, D);

    // Patch embedding: x = patches W^T + bias + pos_embed.
    dit_patchify(ws->patches, x, B, c, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < M; r++) {
        float *xr = ws->x + (size_t)r * D;
        const float *pe = p->pos_embed + (size_t)(r % T) * D;
        for (int j = 0; j < D; j++) xr[j] = pe[j] + p->x_embed_b[j];
    }
    gemm_nt(ws->x, D, ws->patches, P, p->x_embed_w, M, D, P, 1.0f, nt);

    for (int l = 0; l < c->depth; l++) {
        const dit_block_params *bp = &p->blocks[l];
        // adaLN modulation: mod = SiLU(c) W^T + b, chunks shift/scale/gate for msa, mlp.
        for (int b = 0; b < B; b++) memcpy(ws->mod + (size_t)b * 6 * D, bp->ada_b, (size_t)6 * D * sizeof(float));
        gemm_nt(ws->mod, 6 * D, ws->silu_c, D, bp->ada_w, B, 6 * D, D, 1.0f, nt);

        // Attention branch.
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) {
            const float *mb = ws->mod + (size_t)(r / T) * 6 * D;
            layer_norm_modulate_row(ws->h + (size_t)r * D, ws->x + (size_t)r * D, mb, mb + D, D, LN_EPS);
            memcpy(ws->qkv + (size_t)r * 3 * D, bp->qkv_b, (size_t)3 * D * sizeof(float));
        }
        gemm_nt(ws->qkv, 3 * D, ws->h, D, bp->qkv_w, M, 3 * D, D, 1.0f, nt);
        attention(ws, B, T, D, H);
        gemm_nt(ws->y, D, ws->attn, D, bp->proj_w, M, D, D, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) {
            const float *mb = ws->mod + (size_t)(r / T) * 6 * D;
            layer_gated_residual_row(ws->x + (size_t)r * D, mb + 2 * D, ws->y + (size_t)r * D, bp->proj_b, D);
            layer_norm_modulate_row(ws->h + (size_t)r * D, ws->x + (size_t)r * D, mb + 3 * D, mb + 4 * D, D, LN_EPS);
        }

        // MLP branch.
        gemm_nt(ws->mlp, F, ws->h, D, bp->fc1_w, M, F, D, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++)
            layer_bias_gelu_row(ws->mlp + (size_t)r * F, ws->mlp + (size_t)r * F, bp->fc1_b, F);
        gemm_nt(ws->y, D, ws->mlp, F, bp->fc2_w, M, D, F, 0.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < M; r++) {
            const float *mb = ws->mod + (size_t)(r / T) * 6 * D;
            layer_gated_residual_row(ws->x + (size_t)r * D, mb + 5 * D, ws->y + (size_t)r * D, bp->fc2_b, D);
        }
    }

    // Final layer: adaLN (shift, scale), linear to p*p*Cout, unpatchify.
    for (int b = 0; b < B; b++) memcpy(ws->mod + (size_t)b * 2 * D, p->final_ada_b, (size_t)2 * D * sizeof(float));
    gemm_nt(ws->mod, 2 * D, ws->silu_c, D, p->final_ada_w, B, 2 * D, D, 1.0f, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < M; r++) {
        const float *mb = ws->mod + (size_t)(r / T) * 2 * D;
        layer_norm_modulate_row(ws->h + (size_t)r * D, ws->x + (size_t)r * D, mb, mb + D, D, LN_EPS);
    }
    gemm_nt(ws->y, Pout, ws->h, D, p->final_w, M, Pout, D, 0.0f, nt);
    dit_unpatchify(v, ws->y, p->final_b, B, c, nt);
}

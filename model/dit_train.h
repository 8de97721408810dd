// Training half of the denoiser (llm.c style): a forward pass that keeps
// every activation the backward needs, a hand-written backward that
// accumulates parameter gradients, and the flow-matching loss of SiT's
// linear path (shared/docs/search-reference.md §1). The math is dit.c's, with
// the same row kernels and GEMM shapes; only attention differs in rounding
// (dit.c uses layer_attention_head, this forward BLIS GEMMs that keep the
// softmax probabilities), so dit_train_forward's output equals dit_forward's
// to float rounding (tests/test_dit_grad.c checks it).
//
// Gradients live in a second allocation of m->num_params floats bound with
// dit_params_bind, so they share the parameters' layout and the state_dict
// table (m->tensors[i].offset). pos_embed is a fixed buffer: dit_backward
// never writes its gradient, and the optimizer must never update it
// (optim.h treats it as frozen).
//
// Ownership: dit_train_acts_init fills a dit_train_acts that owns its
// buffers; dit_train_acts_free releases them (and accepts a half-built one).
// Nothing here allocates after init. No MPI, no file I/O.
#ifndef NS_DIT_TRAIN_H
#define NS_DIT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dit.h"

// Activations of one block for the batch of the last dit_train_forward.
// M = B*T rows (sample-major, tokens row-major inside a sample).
typedef struct {
    float *x;         // (M, D)      block input (residual stream)
    float *ln1_mean;  // (M)         LayerNorm statistics of x
    float *ln1_rstd;  // (M)         1/sqrt(var + eps)
    float *h1;        // (M, D)      LN(x)*(1+scale_msa)+shift_msa = qkv GEMM input
    float *qkv;       // (M, 3D)     q|k|v with bias, heads of D/H columns in each
    float *att;       // (B, H, T, T) softmax probabilities per (sample, head)
    float *ao;        // (M, D)      attention output = proj GEMM input
    float *ya;        // (M, D)      proj output without bias
    float *x_mid;     // (M, D)      x + gate_msa * (ya + proj_b)
    float *ln2_mean;  // (M)
    float *ln2_rstd;  // (M)
    float *h2;        // (M, D)      LN(x_mid)*(1+scale_mlp)+shift_mlp = fc1 input
    float *u;         // (M, F)      fc1 output without bias (GELU input is u + fc1_b)
    float *g;         // (M, F)      GELU output = fc2 input
    float *ym;        // (M, D)      fc2 output without bias
    float *mod;       // (B, 6D)     adaLN chunks shift/scale/gate msa, shift/scale/gate mlp
} dit_train_block_acts;

typedef struct {
    dit_config cfg;
    int max_batch;
    int threads;      // threads of our row loops and of big GEMMs
    int batch;        // B of the last dit_train_forward (0: none yet)
    float *memory;    // every float buffer below, one allocation
    int *y;           // (B)         labels of the last forward
    double *sq_err;   // (B)         per-sample sums of squared error of the last loss

    // Conditioning (per sample)
    float *t_freq;    // (B, 256)    sinusoidal timestep features = t_mlp0 input
    float *t_pre;     // (B, D)      t_mlp0 output without bias
    float *t_hidden;  // (B, D)      SiLU(t_pre + t_mlp0_b) = t_mlp2 input
    float *c;         // (B, D)      t_emb + y_emb
    float *silu_c;    // (B, D)      SiLU(c) = input of every adaLN linear
    // Patch embedding
    float *patches;   // (M, C*p*p)  im2col of x, ordered (channel, row, col) like the conv weight
    dit_train_block_acts *blocks;  // (depth), block l's x is the embedding output for l = 0
    // Final layer
    float *x_final;   // (M, D)      output of the last block
    float *lnf_mean;  // (M)
    float *lnf_rstd;  // (M)
    float *hf;        // (M, D)      LN(x_final)*(1+scale)+shift = final linear input
    float *yf;        // (M, p*p*Cout) final linear output without bias
    float *mod_f;     // (B, 2D)     final adaLN shift, scale
    // Flow-matching loss (dit_train_flow_loss)
    float *xt;        // (B, C, H, W) x_t = t x1 + (1 - t) x0
    float *v;         // (B, C, H, W) predicted velocity

    // Backward scratch, overwritten by every dit_backward
    float *dx;        // (M, D)      dL/d residual stream
    float *dh;        // (M, D)      dL/d a modulated LN output
    float *dz;        // (M, D)      dL/d a gated branch output (proj or fc2 output + bias)
    float *dao;       // (M, D)      dL/d attention output
    float *dqkv;      // (M, 3D)
    float *dmlp;      // (M, F)      dL/d GELU output, then in place dL/d GELU input
    float *dyf;       // (M, p*p*Cout) dL/d final linear output
    float *dscores;   // (threads, T, T) dL/d attention probabilities, then scores
    float *dmod;      // (B, 6D)     dL/d adaLN chunks of the current block (2D used for the final layer)
    float *dsilu_c;   // (B, D)
    float *dc;        // (B, D)
    float *dt_hidden; // (B, D)      dL/d t_hidden, then in place dL/d t_pre
} dit_train_acts;

// threads <= 0: gemm_threads(). NS_ERR_ARG for a bad config or max_batch < 1.
ns_status dit_train_acts_init(dit_train_acts *a, const dit_config *cfg, int max_batch, int threads);
void dit_train_acts_free(dit_train_acts *a);
size_t dit_train_acts_bytes(const dit_config *cfg, int max_batch, int threads);

// v = velocity(x, t, y) as dit_forward (same arguments and shapes), keeping
// the activations in a for dit_backward. B <= a->max_batch; m->cfg must be
// a->cfg.
void dit_train_forward(const dit_model *m, dit_train_acts *a, float *v, const float *x, const float *t, const int *y,
                       int B);

// The forward up to and including the final adaLN-modulated LayerNorm:
// leaves hf = LN(x_final) * (1 + scale) + shift in a->hf (M, D) and every
// activation dit_backward_features needs; no final linear, no output image.
// dit_train_forward is this followed by the final linear and unpatchify.
// For feature extractors (verifiers/classifier.h) built on the backbone.
void dit_train_forward_features(const dit_model *m, dit_train_acts *a, const float *x, const float *t, const int *y,
                                int B);

// Backward of the last dit_train_forward (B must be its batch). dv = dL/dv,
// (B, C, H, W); with learn_sigma the variance channels get no gradient
// (the forward drops them). ACCUMULATES into grad (bound with
// dit_params_bind over m->num_params floats): zero it once per step. The
// gradient of pos_embed is never written. No gradient w.r.t. x is formed.
void dit_backward(const dit_model *m, dit_train_acts *a, const dit_params *grad, const float *dv, int B);

// Backward from dhf = dL/d a->hf (M, D) (the final adaLN LayerNorm's
// output) of the last dit_train_forward or dit_train_forward_features: final
// adaLN, blocks, patch and conditioning embeddings. Same accumulation
// contract as dit_backward, which is the final linear's backward followed by
// this; final_layer.linear gets no gradient here. dhf may be a->dh.
void dit_backward_features(const dit_model *m, dit_train_acts *a, const dit_params *grad, const float *dhf, int B);

// Flow-matching loss of the SiT linear path (search-reference §1):
// x_t = t x1 + (1 - t) x0, target x1 - x0, L = mean over all B*C*H*W
// elements of (v(x_t, t, y) - target)^2. Runs dit_train_forward, writes
// dv = dL/dv = 2 (v - target) / (B*C*H*W) (B, C, H, W) and returns L
// (accumulated in double). x1 (data in [-1, 1]), x0 (noise): (B, C, H, W);
// t: (B,) in [0, 1]; y: (B,) with the null-class dropout already applied.
// Follow with dit_backward(m, a, grad, dv, B).
double dit_train_flow_loss(const dit_model *m, dit_train_acts *a, float *dv, const float *x1, const float *x0,
                           const float *t, const int *y, int B);

// DiT's initialize_weights, drawn from Philox (seed, stream = tensor index):
// xavier-uniform Linear and patch-embedding weights, zero biases, N(0, 0.02)
// label table and timestep MLP, zero adaLN modulations and final linear
// (adaLN-Zero: every block starts as the identity), the fixed sin-cos pos_embed.
void dit_train_init_weights(dit_model *m, uint64_t seed);

// FLOPs of one training step per sample (forward + backward: the backward
// does two GEMMs per forward GEMM, so 3x the forward's count).
double dit_train_flops(const dit_config *c);

#endif

// The denoiser: a DiT/SiT transformer with adaLN-Zero blocks predicting the
// flow-matching velocity (SiT linear path). Architecture and parameter names
// follow the PyTorch DiT/SiT state_dict exactly, so converted official
// checkpoints load (docs/model.md). No MPI, no YAML, no sampling here.
//
// Ownership: dit_model_init/dit_load fill a zeroed dit_model that owns one
// parameter allocation; dit_model_free releases it (and accepts a half-built
// model). A dit_workspace holds every activation for up to max_batch samples;
// dit_forward allocates nothing.
#ifndef NS_DIT_H
#define NS_DIT_H

#include <stddef.h>

#include "../common/status.h"

typedef struct {
    int input_size;   // H = W of the (latent) image
    int in_channels;  // C
    int patch_size;   // p
    int depth;        // number of blocks
    int hidden_size;  // D
    int num_heads;    // H (D % H == 0)
    int num_classes;  // label embedding has num_classes + 1 rows; the last is the null class
    int learn_sigma;  // 1: final layer predicts 2C channels; only the first C are used
    float mlp_ratio;  // MLP hidden width = (int)(D * mlp_ratio)
} dit_config;

int dit_tokens(const dit_config *c);        // T = (input_size / p)^2
int dit_out_channels(const dit_config *c);  // C or 2C with learn_sigma
int dit_mlp_hidden(const dit_config *c);    // F
int dit_sample_dim(const dit_config *c);    // C * H * W floats per sample
// Check sizes are consistent; NS_ERR_ARG with a message naming the field.
ns_status dit_config_check(const dit_config *c);
// Forward FLOPs per sample (2 per multiply-add, GEMMs and attention only).
double dit_forward_flops(const dit_config *c);

typedef struct {
    float *ada_w;   // adaLN_modulation.1.weight (6D, D)
    float *ada_b;   // (6D)
    float *qkv_w;   // attn.qkv.weight (3D, D)
    float *qkv_b;   // (3D)
    float *proj_w;  // attn.proj.weight (D, D)
    float *proj_b;  // (D)
    float *fc1_w;   // mlp.fc1.weight (F, D)
    float *fc1_b;   // (F)
    float *fc2_w;   // mlp.fc2.weight (D, F)
    float *fc2_b;   // (D)
} dit_block_params;

#define DIT_FREQ_DIM 256  // timestep frequency embedding size (DiT)
#define DIT_MAX_DEPTH 256

typedef struct {
    float *pos_embed;     // (T, D)           fixed 2-D sin-cos, stored in the file
    float *x_embed_w;     // (D, C, p, p)     x_embedder.proj.weight
    float *x_embed_b;     // (D)
    float *t_mlp0_w;      // (D, 256)         t_embedder.mlp.0.weight
    float *t_mlp0_b;      // (D)
    float *t_mlp2_w;      // (D, D)           t_embedder.mlp.2.weight
    float *t_mlp2_b;      // (D)
    float *y_table;       // (classes+1, D)   y_embedder.embedding_table.weight
    dit_block_params blocks[DIT_MAX_DEPTH];
    float *final_ada_w;   // (2D, D)          final_layer.adaLN_modulation.1.weight
    float *final_ada_b;   // (2D)
    float *final_w;       // (p*p*Cout, D)    final_layer.linear.weight
    float *final_b;       // (p*p*Cout)
} dit_params;

// One tensor of the state_dict: its name, shape and place in the allocation.
typedef struct {
    char name[64];
    int ndim;
    int shape[4];
    size_t numel;
    size_t offset;  // in floats from the start of the parameter allocation
} dit_tensor;

typedef struct {
    dit_config cfg;
    float *memory;        // all parameters, one allocation (state_dict order)
    size_t num_params;
    dit_params p;         // views into memory
    dit_tensor *tensors;  // the state_dict table
    int num_tensors;
} dit_model;

// Allocate (zeroed) parameters for cfg and build the tensor table.
ns_status dit_model_init(dit_model *m, const dit_config *cfg);
void dit_model_free(dit_model *m);

// Point the fields of p into memory laid out like the model's (used for
// gradients and optimizer state, which share the layout).
void dit_params_bind(dit_params *p, const dit_config *cfg, float *memory);

// Fill parameters with small random values (tests and benchmarks only) and
// pos_embed with the fixed sin-cos table.
void dit_model_randomize(dit_model *m, unsigned long long seed, float stddev);

// Weights file (HDF5, docs/model.md): one float32 dataset per state_dict key
// at the root, architecture as root attributes. Errors name the file and the
// tensor: "w.h5: blocks.3.attn.qkv.weight has shape [576,192], expected [768,256]".
ns_status dit_load(dit_model *m, const char *path);
// Write atomically (temporary file, then rename).
ns_status dit_save(const dit_model *m, const char *path);
// Read only the architecture attributes.
ns_status dit_config_read(dit_config *cfg, const char *path);

typedef struct {
    int max_batch;
    int threads;      // threads of our own row loops and of big GEMMs
    float *patches;   // (B*T, C*p*p)   im2col of the input
    float *x;         // (B*T, D)       residual stream
    float *h;         // (B*T, D)       modulated LayerNorm output
    float *qkv;       // (B*T, 3D)
    float *attn;      // (B*T, D)       attention output before proj
    float *y;         // (B*T, max(D, p*p*Cout))  proj / fc2 / final linear output
    float *mlp;       // (B*T, F)
    float *scores;    // (threads, layer_attention_scratch(T, D/H)) attention scratch
    float *t_freq;    // (B, 256)
    float *t_hidden;  // (B, D)
    float *c;         // (B, D)         conditioning t_emb + y_emb
    float *silu_c;    // (B, D)
    float *mod;       // (B, 6D)        adaLN modulation of the current block
} dit_workspace;

// threads <= 0: gemm_threads().
ns_status dit_workspace_init(dit_workspace *ws, const dit_config *cfg, int max_batch, int threads);
void dit_workspace_free(dit_workspace *ws);
size_t dit_workspace_bytes(const dit_config *cfg, int max_batch, int threads);

// Token layouts, shared with the trainer. patchify: im2col for the patch
// embedding, patches (B*T, C*p*p) ordered (channel, row, column) like the
// conv weight. unpatchify: the final linear's (B*T, p*p*Cout) output,
// ordered (row, column, channel), to v (B, C, H, W), keeping the first C
// channels and adding bias (p*p*Cout).
void dit_patchify(float *patches, const float *x, int B, const dit_config *c, int threads);
void dit_unpatchify(float *v, const float *y, const float *bias, int B, const dit_config *c, int threads);

// v = velocity(x, t, y).  x, v: (B, C, H, W); t: (B,) in [0,1]; y: (B,) labels
// in [0, num_classes] (num_classes = null class). B <= ws->max_batch.
// Each sample's output is bitwise independent of B, its position in the batch
// and the thread count.
void dit_forward(const dit_model *m, dit_workspace *ws, float *v, const float *x, const float *t, const int *y,
                 int B);

#endif

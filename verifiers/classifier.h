// Image classifiers for the verifiers (search-reference §4): a small ViT made
// of the denoiser's own transformer kernels. The backbone is a dit_model run
// with a fixed conditioning (t = 1, the null label), so every adaLN
// modulation is a learned per-block constant and the DiT blocks are plain
// pre-LN transformer blocks with learned LayerNorm affines and LayerScale-like
// gates. Features = mean over tokens of hf, the final adaLN-modulated
// LayerNorm output (a learned-affine final norm, as in a ViT); logits =
// features head.weight^T + head.bias. The final layer's linear
// (final_layer.linear.*) is kept in the parameter set so the backbone stays a
// valid dit_model, but is never used or trained.
//
// One trained instance scores candidates (the verifier classifier), a second,
// trained from another seed and never optimised by a search, evaluates (the
// separate evaluator of §4). No MPI, no YAML.
//
// File (HDF5): the backbone exactly as dit_save writes it (root datasets and
// attributes, so dit_load reads a classifier file as a DiT), plus a group
// `head/` holding datasets `weight` (K, D) and `bias` (K) — state_dict names
// `head.weight` / `head.bias` map to paths `head/weight` / `head/bias` — and
// attributes num_classes (K) and format "noisesearch-classifier". dit_load's
// unexpected-tensor check looks at root datasets only, so the group passes it.
//
// Ownership: classifier_init / classifier_load fill a classifier that owns
// its backbone and head; classifier_free releases them (and accepts a zeroed
// or half-built one). A classifier_workspace owns the activations for up to
// max_batch images; classifier_forward and the training pieces allocate
// nothing.
#ifndef NS_CLASSIFIER_H
#define NS_CLASSIFIER_H

#include <stdint.h>

#include "../model/dataset.h"
#include "../model/dit.h"
#include "../model/dit_train.h"
#include "../model/optim.h"

#define CLASSIFIER_FORMAT "noisesearch-classifier"
#define CLASSIFIER_ROLE_MAX 16

typedef struct {
    dit_config backbone;  // num_classes = K sizes the (unused) label table; null label K is the one used
    int num_classes;      // K logits; must equal backbone.num_classes
} classifier_config;

// A backbone config for K classes of C x S x S images (patch p, width D,
// depth, heads; learn_sigma 0, mlp_ratio 4).
classifier_config classifier_config_make(int S, int C, int K, int p, int D, int depth, int heads);
ns_status classifier_config_check(const classifier_config *c);

typedef struct {
    classifier_config cfg;
    dit_model backbone;
    float *head;            // (K*D + K) one allocation: head.weight (K, D), then head.bias (K)
    float *head_w;          // (K, D) view into head
    float *head_b;          // (K)    view into head
    dit_tensor head_tensors[2];  // the head's state_dict table ("head.weight", "head.bias"), offsets into head
    size_t head_params;     // K*D + K
    char role[CLASSIFIER_ROLE_MAX];  // "verifier", "evaluator" or "" (head/ attribute "role"; see verifier.h)
} classifier;

// Fresh weights from seed: DiT's initialize_weights for the backbone
// (xavier-uniform linears, N(0, 0.02) embeddings, zero adaLN, zero final
// layer, fixed pos_embed; Philox draws) and a zero head (uniform predictions).
ns_status classifier_init(classifier *c, const classifier_config *cfg, uint64_t seed);
void classifier_free(classifier *c);
// Errors name the file and the tensor ("f.h5: head/weight has shape [10,32],
// expected [10,64]").
ns_status classifier_load(classifier *c, const char *path);
ns_status classifier_save(const classifier *c, const char *path);  // atomic (temporary file, rename)

// Activations for up to max_batch images, for inference and training alike
// (the forward is dit_train_forward_features, so training and inference see
// the same bits).
typedef struct {
    int max_batch;
    dit_train_acts acts;  // backbone activations and backward scratch
    float *t;             // (max_batch)     1
    int *y;               // (max_batch)     null label K
    float *features;      // (B, D)          mean over tokens of hf
    float *logits;        // (B, K)          of the last classifier_train_forward
    float *dlogits;       // (B, K)          dL/dlogits of the last loss
    float *dfeatures;     // (B, D)
    float *dhf;           // (B*T, D)        dL/d hf
    double *sample_loss;  // (max_batch)     per-sample cross-entropy of the last loss
} classifier_workspace;

// threads <= 0: gemm_threads().
ns_status classifier_workspace_init(classifier_workspace *ws, const classifier_config *cfg, int max_batch,
                                    int threads);
void classifier_workspace_free(classifier_workspace *ws);

// logits (B, K) and, when features != NULL, features (B, D) of images
// (B, C, H, W) in [-1, 1]. B <= ws->max_batch. Each sample's outputs are
// bitwise independent of B, its position in the batch and the thread count.
void classifier_forward(const classifier *c, classifier_workspace *ws, float *logits, float *features,
                        const float *images, int B);

// Training pieces. classifier_loss runs the forward (keeping activations),
// returns the mean cross-entropy over the batch (accumulated in double) and
// leaves dL/dlogits = (softmax - onehot) / B in ws->dlogits; labels (B,) in
// [0, K). classifier_backward then ACCUMULATES gradients into grad (the
// backbone's layout, bound with dit_params_bind) and grad_head (head layout,
// c->head_params floats): zero both once per step.
double classifier_loss(const classifier *c, classifier_workspace *ws, const float *images, const int *labels, int B);
void classifier_backward(const classifier *c, classifier_workspace *ws, const dit_params *grad, float *grad_head,
                         int B);

// Top-1 accuracy over the first n images of d (n <= 0 or > d->count: all),
// in batches of ws->max_batch.
double classifier_accuracy(const classifier *c, classifier_workspace *ws, const dataset *d, int n);

// ---------------------------------------------------------------------------
// Training loop: AdamW (optim.h; head.weight decays, head.bias does not),
// global-norm clipping over backbone and head together, an epoch-shuffled
// data order, random horizontal flips and shifts of up to max_shift pixels
// (the vacated border is background, -1). Every draw of global sample j at
// step s is a Philox value keyed by (seed, s, j), as in model/trainer.h.
// No EMA, no checkpoints (a run is minutes; save with classifier_save).

typedef struct {
    int batch;
    long steps;
    optim_schedule schedule;  // total_steps = steps for cosine
    optim_adamw_config adam;
    float clip_norm;          // 0: off
    int hflip;                // random horizontal flips
    int max_shift;            // random shifts in [-max_shift, max_shift] pixels per axis
    uint64_t seed;            // data order and augmentation (initial weights: classifier_init's seed)
} classifier_train_config;

// Defaults: batch 128, 5000 steps, lr 1e-3 cosine to 1e-5 with 200 warm-up
// steps, AdamW(0.9, 0.999, 1e-8, wd 0.05), clip 1, flips on, shift 2.
void classifier_train_config_defaults(classifier_train_config *t);
ns_status classifier_train_config_check(const classifier_train_config *t);

typedef struct {
    classifier_train_config cfg;
    classifier *model;       // not owned
    const dataset *train;    // not owned
    classifier_workspace ws;
    optim_adamw opt_backbone, opt_head;
    float *grad;             // (backbone.num_params) backbone layout
    dit_params grad_p;       // views into grad
    float *grad_head;        // (head_params)
    float *images;           // (batch, C, H, W) the augmented batch
    int *labels;             // (batch)
    uint32_t *perm;          // (train->count) data order of perm_epoch
    long perm_epoch;
    long step;               // optimizer steps taken
} classifier_trainer;

typedef struct {
    long step;
    double loss;       // mean cross-entropy of the batch
    double accuracy;   // of the batch (before the update)
    double grad_norm;  // before clipping
    float lr;
} classifier_step_info;

// The data must match the model (channels, size, at most K classes).
ns_status classifier_trainer_init(classifier_trainer *tr, classifier *model, const classifier_train_config *cfg,
                                  const dataset *train, int threads);
void classifier_trainer_free(classifier_trainer *tr);
void classifier_trainer_step(classifier_trainer *tr, classifier_step_info *info);

// Checkpoints (format "noisesearch-classifier-checkpoint"): a classifier file
// (so classifier_load reads the weights of a checkpoint too) plus a group
// train/ with the training settings and step as attributes, the AdamW
// moments (train/backbone_m/, train/backbone_v/ by state_dict name;
// train/head_m, train/head_v) and the test-accuracy curve
// train/test_accuracy (n, 2: step, accuracy). The random state is the step
// itself, so a resumed run continues bit for bit. Written atomically.
ns_status classifier_checkpoint_save(const classifier_trainer *tr, const char *path, double train_seconds,
                                     const double *curve, int n_curve);
// Fill model (zeroed) and tr from a checkpoint; steps_override > 0 raises the
// total (the cosine schedule then ends there). *curve (malloc'ed, n_curve x 2)
// and *train_seconds are what the checkpoint recorded.
ns_status classifier_checkpoint_resume(classifier_trainer *tr, classifier *model, const char *path,
                                       const dataset *train, int threads, long steps_override, double **curve,
                                       int *n_curve, double *train_seconds);

#endif

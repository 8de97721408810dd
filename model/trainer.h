// Training the denoiser with the flow-matching loss (search-reference §1):
// data order, per-sample randomness, one optimizer step, EMA, test loss and
// checkpoints. Data parallelism enters only through trainer_comm: each rank
// computes the gradient of its slice of the global batch and the callback
// sums gradients over ranks. No MPI here (cli/cmd_train.c supplies it).
//
// Determinism: every random draw of global sample j at step s (its dataset
// index, t, noise, label dropout, flip) is a Philox value keyed by (seed, s,
// j), so the same seed gives the same data stream for any rank count; the
// weights then differ across rank counts only by the order in which
// gradients are summed. A checkpoint holds weights, EMA, AdamW moments, step
// and the loss curves; the random state is the step number itself, so
// resuming continues bit for bit.
#ifndef NS_TRAINER_H
#define NS_TRAINER_H

#include <stdint.h>

#include "dataset.h"
#include "dit.h"
#include "dit_train.h"
#include "optim.h"

typedef struct {
    dit_config model;
    int global_batch;        // samples per step over all ranks
    long steps;              // total optimizer steps
    optim_schedule schedule; // learning rate (total_steps = steps for cosine)
    optim_adamw_config adam;
    float clip_norm;         // global-norm gradient clipping; 0: off
    float ema_decay;         // e.g. 0.9999; warmed up as min(decay, (1+s)/(10+s))
    float class_dropout;     // probability of the null label (0.1 for guidance)
    int hflip;               // random horizontal flips of training images
    uint64_t seed;
    int eval_samples;        // test images for the test loss (fixed t and noise)
} trainer_config;

// Defaults: AdamW(0.9, 0.999, 1e-8, wd 0), lr 3e-4 cosine to 3e-5 with 500
// warm-up steps, clip 1.0, EMA 0.9999, dropout 0.1, flips on, 1000 eval images.
void trainer_config_defaults(trainer_config *c);
ns_status trainer_config_check(const trainer_config *c);

typedef struct {
    void *ctx;
    int rank, size;
    // Sum n floats / doubles in place over all ranks (NULL for one process).
    void (*allreduce_floats)(void *ctx, float *buf, size_t n);
    void (*allreduce_doubles)(void *ctx, double *buf, size_t n);
} trainer_comm;

#define TRAINER_CURVE_EVERY 100  // steps per point of the training-loss curve

typedef struct {
    long step;
    double loss;       // mean flow-matching loss of the global batch
    double grad_norm;  // before clipping
    float lr;
} trainer_step_info;

typedef struct {
    trainer_config cfg;
    trainer_comm comm;
    const dataset *train;
    dit_model model, ema;
    optim_adamw opt;
    float *grad;             // (num_params) parameter layout
    dit_params grad_p;       // views into grad
    dit_train_acts acts;
    int local_batch, local_first;  // this rank's slice [first, first + local) of the global batch
    float *x1, *x0, *t, *dv; // (local_batch, C, H, W) / (local_batch)
    int *y;                  // (local_batch)
    long step;               // optimizer steps taken
    uint32_t *perm;          // (train->count) data order of perm_epoch
    long perm_epoch;
    // Loss curves, appended as training goes and saved in checkpoints.
    double *train_curve;     // (n_train, 2): step, mean loss of the TRAINER_CURVE_EVERY steps before
    int n_train, cap_train;
    double curve_sum;        // loss summed since the last curve point (saved in checkpoints)
    int curve_count;
    double *test_curve;      // (n_test, 3): step, test loss of the weights, of the EMA
    int n_test, cap_test;
} trainer;

// A fresh run: DiT's initialisation (xavier-uniform linears, N(0, 0.02)
// embeddings, zero adaLN and final layer) drawn from Philox with cfg->seed.
ns_status trainer_init(trainer *tr, const trainer_config *cfg, const dataset *train, trainer_comm comm,
                       int threads);
// Continue from a checkpoint written by trainer_checkpoint_save: config,
// weights, EMA, moments, step and curves come from the file; steps may be
// raised (the cosine schedule then ends at the new count). decay_steps > 0
// turns the schedule into wsd from the checkpoint's step: the rate falls
// along a cosine to lr_min (decay_lr_min when >= 0) over decay_steps more
// steps, which end the run; the checkpoints record it, so later resumes
// continue the decay exactly.
ns_status trainer_resume(trainer *tr, const char *path, const dataset *train, trainer_comm comm, int threads,
                         long steps_override, long decay_steps, float decay_lr_min);
void trainer_free(trainer *tr);

// One optimizer step on the next global batch (all ranks call it); adds a
// point to train_curve every TRAINER_CURVE_EVERY steps.
void trainer_step(trainer *tr, trainer_step_info *info);

// Flow-matching loss on the first cfg.eval_samples images of `test` with
// fixed t and noise (the same every call): of the weights and of the EMA.
// Split over ranks; every rank gets the totals. Appends to test_curve.
void trainer_eval(trainer *tr, const dataset *test, double *loss_model, double *loss_ema);


// Rank 0 writes: the whole state under a temporary name, renamed when
// complete, so a kill never leaves a broken checkpoint.
ns_status trainer_checkpoint_save(const trainer *tr, const char *path, double train_seconds);
// Seconds of training recorded in a checkpoint (0 for a fresh run).
double trainer_checkpoint_seconds(const char *path);

#endif

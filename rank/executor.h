// The executor: runs batches of tasks (task.h) on the denoiser and the
// verifiers. Tasks that share a time interval, sampler, step count and
// guidance go through the model as one batch. No MPI: the worker loop
// (worker.h) and the single-process mode of the coordinator both call it.
//
// Ownership: executor_init fills a zeroed executor that owns the model, the
// workspaces and the verifier networks; executor_free releases them (and
// accepts a half-built one). Output buffers are sized at init for max_batch
// tasks and grow only for trajectories longer than any seen before.
#ifndef NS_EXECUTOR_H
#define NS_EXECUTOR_H

#include "../model/denoiser.h"
#include "../model/dit.h"
#include "../model/sampler.h"
#include "../verifiers/verifier.h"
#include "task.h"

typedef struct {
    const char *model_path;
    uint32_t verifier_kinds;      // VERIFIER_BIT mask of everything tasks may ask for
    const char *classifier_path;  // needed by non-oracle kinds
    const char *evaluator_path;   // needed by oracle kinds
    int max_batch;                // tasks per model batch
    int threads;                  // BLIS/OpenMP threads (<= 0: gemm_threads())
    int worker;                   // rank id written into results
} executor_config;

typedef struct {
    executor_config cfg;
    dit_model model;
    dit_workspace dws;
    denoiser den;
    sampler_model sm;
    sampler_workspace sws;
    verifier_set vs;
    int dim, fid_dim;
    // per-batch scratch, (max_batch, dim) unless noted
    float *x, *scored, *x1, *early, *early_x1, *start;
    noise_key *keys;
    int *labels;
    double *scores;               // (max_batch, VERIFIER_KINDS)
    float *fid;                   // (max_batch, fid_dim)
    float *traj;                  // (max_batch, traj_cap, dim), traj_t: (traj_cap)
    float *traj_t;
    int traj_cap, traj_n;
    float early_time;
    int early_taken;
    const task *group_task;       // the task shape of the group in the sampler callback
    // outputs of the last executor_run: payload of task i at out + out_offset[i]
    float *out;
    size_t out_cap;
    size_t *out_offset;           // (max_tasks)
    char *done;                   // (max_tasks) grouping flags
    int *group;                   // (max_batch) task indices of one model batch
    int max_tasks;
} executor;

ns_status executor_init(executor *e, const executor_config *cfg);
void executor_free(executor *e);

int executor_dim(const executor *e);     // floats per sample
int executor_channels(const executor *e);
int executor_image_size(const executor *e);

// Run n tasks (any n; grouped into model batches of up to cfg.max_batch).
// payloads[i]: the state of task i when it starts from one (else ignored).
// results[i] and its payload at e->out + e->out_offset[i] (result_layout_of).
// A model error (NS_ERR_*) stops the run with its message.
ns_status executor_run(executor *e, const task *tasks, const float *const *payloads, int n, result *results);

#endif

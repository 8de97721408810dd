// What a rank does: the task and result formats. A task asks a worker to
// integrate one candidate's state from t_a to t_b with a sampler and a step
// count — starting from Philox noise named by its key, or from a state sent
// along (re-noised first when the state is later than t_a) — and to return
// the end state, its clean prediction x1_hat, the requested verifier scores
// and optionally the trajectory. A result carries them back with the NFEs
// and seconds spent. The coordinator (coordinator/) builds tasks; the
// executor (rank/executor.h) runs them; both sides of MPI use task_pack /
// task_unpack and result_pack / result_unpack from here.
//
// A result is a pure function of its task: the same bits on any rank, in
// any batch, at any thread count (the model and samplers are batch-invariant
// and every random draw is Philox keyed by the task's noise key).
//
// Noise of a candidate: stream (seed, noise.stream) from counter noise_base:
//   TASK_FROM_NOISE   x(t_a) = noise[noise_base, noise_base + dim)
//   TASK_FROM_STATE   x = the state sent along (at time state_t); when
//                     state_t > t_a it is re-noised back to t_a with
//                     e = noise[noise_base, noise_base + dim)
//   SDE noise         (euler_maruyama) from noise_base + dim on
// so `noisesearch sample` (base 0, stream label << 32 | index) is the
// TASK_FROM_NOISE task of noise_base 0 over [0, 1].
#ifndef NS_TASK_H
#define NS_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "../model/noise.h"
#include "../verifiers/verifier.h"

typedef enum { TASK_FROM_NOISE = 0, TASK_FROM_STATE = 1 } task_start;

enum {
    TASK_WANT_END = 1u << 0,         // the end state x(t_b)
    TASK_WANT_X1_HAT = 1u << 1,      // x1_hat at t_b (= the end state when t_b == 1)
    TASK_WANT_TRAJECTORY = 1u << 2,  // every trajectory_stride-th state (and the last)
    TASK_WANT_START = 1u << 3,       // the state at t_a after noise / re-noising (the candidate's noise)
};

typedef struct {
    int64_t search;      // search id (the coordinator's)
    int64_t candidate;   // candidate id within the search
    int32_t label;       // conditioning class
    int32_t start;       // task_start
    noise_key noise;
    uint64_t noise_base;
    float state_t;       // TASK_FROM_STATE: time of the state sent along (>= t_a)
    float t_a, t_b;      // 0 <= t_a < t_b <= 1
    int32_t sampler;     // sampler_kind
    int32_t steps;       // uniform grid over [t_a, t_b]
    float cfg_scale;
    int32_t cfg_channels;
    uint32_t want;       // TASK_WANT_* bits
    uint32_t verifiers;  // VERIFIER_BIT mask of scores to compute on the scored image:
                         // the end state when t_b == 1, else x1_hat(t_b)
    float early_t;       // self_similarity: x1_hat at the first grid point >= early_t
                         // (at t_a when t_a >= early_t)
    int32_t trajectory_stride;
} task;

typedef struct {
    int64_t search, candidate;
    int32_t worker;      // rank that ran it
    int32_t nfe;         // denoiser forward passes per sample, all included
    int32_t n_trajectory;
    int32_t fid_dim;     // floats of fid features (0 unless fid_oracle)
    double scores[VERIFIER_KINDS];  // NaN where not requested
    double seconds;      // wall seconds of the batch this task ran in, divided by its size
    double verifier_seconds;
} result;

// Payload floats that travel with a task / a result, for sample dim `dim`.
size_t task_payload_floats(const task *t, int dim);  // dim for TASK_FROM_STATE, else 0
// end + x1_hat + start (each dim, when wanted) + fid_dim + n_trajectory (dim + 1: state and t)
size_t result_payload_floats(const task *t, const result *r, int dim);

// Offsets of the parts of a result's payload (floats), NULL-free layout:
// [end][x1_hat][start][fid features][trajectory states][trajectory t]
typedef struct {
    size_t end, x1_hat, start, fid, trajectory, trajectory_t, total;
} result_layout;
result_layout result_layout_of(const task *t, const result *r, int dim);

// Wire format: one byte buffer per message, a header (count, dim) then per
// item the fixed struct followed by its payload floats. The buffer grows as
// needed (caller frees *buf).
typedef struct {
    unsigned char *data;
    size_t size, cap;
} task_buffer;

void task_buffer_free(task_buffer *b);
void task_buffer_reset(task_buffer *b);
void task_pack(task_buffer *b, const task *t, const float *payload, int dim);
void result_pack(task_buffer *b, const task *t, const result *r, const float *payload, int dim);

// Reading: cursor over a received buffer. Returns 0 at the end, 1 with the
// item and a pointer to its payload inside the buffer, -1 for a malformed
// buffer (sizes inconsistent).
typedef struct {
    const unsigned char *data;
    size_t size, pos;
} task_cursor;

int task_next(task_cursor *c, task *t, const float **payload, int dim);
int result_next(task_cursor *c, task *t, result *r, const float **payload, int dim);

#endif

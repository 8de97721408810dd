// One search (one class x sample index) as a state machine: it emits tasks
// (rank/task.h), takes their results, decides from complete information
// only (a whole round of candidates, in candidate-id order) and ends with a
// chosen candidate and a final sample. Algorithms of search-reference §3:
// none, random (best-of-N), zero_order (ZO-N with the stall rule) and paths
// (Paths-N with width M), each with a final denoising of the chosen noise or
// path at its own NFE budget. No MPI, no I/O: the scheduler (coord.h) moves
// tasks and the run log records what a finished search holds.
//
// Noise of candidate c of search (label k, index i): Philox (run seed,
// stream k << 32 | i) from counter c << 32, so candidate 0 of every
// algorithm starts from exactly the noise `noisesearch sample` uses.
#ifndef NS_SEARCH_H
#define NS_SEARCH_H

#include <stdint.h>

#include "../rank/task.h"
#include "config.h"

typedef enum { SEARCH_PHASE_RUN, SEARCH_PHASE_CHOOSE, SEARCH_PHASE_FINAL, SEARCH_PHASE_DONE } search_phase;

// A candidate as the search keeps it until the search is logged.
typedef struct {
    task task;            // what was run
    result res;           // what came back (res.nfe valid once done)
    double score;         // the value the algorithm compared (ensemble: mean rank in its round)
    int32_t round;
    int64_t parent;       // -1: none
    int done;
    float *state;         // (dim) end state, kept when a later round or the final needs it
    float *noise;         // (dim) the start state (noise or re-noised state) when logged, else NULL
    float *x1_hat;        // (dim) when logged
    float *fid;           // (fid_dim) fid_oracle features
    float *trajectory;    // (n, dim) and trajectory_t (n) when logged
    float *trajectory_t;
} search_candidate;

typedef struct {
    const search_config *cfg;
    int dim, fid_dim;
    int64_t id;           // 0.. in the run's order (class-major)
    int32_t label, index;
    search_phase phase;
    int round;            // current round
    int pending;          // tasks of the current round not yet back
    search_candidate *cand;
    int n_cand, cap_cand;
    // zero_order
    float *pivot;         // (dim) pivot noise
    int64_t pivot_id;     // candidate holding the pivot; -1 while a fresh pivot is unscored
    double pivot_score;
    // paths: the candidates alive after the last round
    int64_t *alive;
    int n_alive;
    // final
    int64_t chosen;       // candidate id
    float *sample;        // (dim) the final sample
    double final_score;   // verifier scores of the final sample (single-term verifiers; else NaN)
    int64_t search_nfe, final_nfe;
    int64_t *replay;      // paths: ancestor chain replayed at the final budget
    int n_replay, replay_at;
    float *replay_state;
    double started, wall_seconds, verifier_seconds;
} search;

// Tasks the search wants run now are appended through this callback.
typedef void (*search_emit_fn)(void *user, const task *t, const float *payload);

void search_init(search *s, const search_config *cfg, int64_t id, int dim, int fid_dim);
void search_free(search *s);

// Emit the first round.
void search_start(search *s, search_emit_fn emit, void *user);
// A result for candidate r->candidate; emits the next round or the final
// when the round is complete. payload: result_layout_of(t, r, dim).
void search_on_result(search *s, const task *t, const result *r, const float *payload, search_emit_fn emit,
                      void *user);
// In SEARCH_PHASE_CHOOSE with fid_oracle: the caller picked `chosen` (a
// candidate id) from the set-level verifier; continue with the final.
// For every other verifier the search chooses by itself and never waits here.
void search_choose(search *s, int64_t chosen, search_emit_fn emit, void *user);

// Steps of a full [0, 1] run with an NFE budget (per sample, guidance counted).
int search_steps_for(const search_config *cfg, int nfe);
// The VERIFIER_BIT mask the config's verifier terms need.
uint32_t search_verifier_kinds(const search_config *cfg);

#endif

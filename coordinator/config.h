// A search run described by one YAML file (libyaml), validated in full
// before anything runs. Every key has a default, a type and a range; the
// table of keys is the single source for parsing, overrides, the resolved
// YAML written into the run log and configs/reference.yaml.
//
// Errors are one line, "FILE:LINE:COLUMN: message" for the file and
// "override 'KEY=VALUE': message" for a command-line override, with the
// closest valid key suggested for an unknown one. Relative paths in a config
// (weights, run.out) are relative to the current directory, not to the
// config file. configs/README.md is the user's description. No MPI here.
#ifndef NS_CONFIG_H
#define NS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "../model/sampler.h"
#include "../verifiers/verifier.h"

#define CONFIG_PATH_MAX 1024
#define CONFIG_MAX_CLASSES 1024
#define CONFIG_MAX_ENSEMBLE 8

typedef enum { SEARCH_NONE, SEARCH_RANDOM, SEARCH_ZERO_ORDER, SEARCH_PATHS } search_algorithm;
// "none", "random", "zero_order", "paths"; NULL for a value outside the enum.
const char *search_algorithm_name(search_algorithm a);
// 0 and *out set, or -1 for an unknown name.
int search_algorithm_from_name(const char *name, search_algorithm *out);

typedef struct {
    verifier_kind kind;
    double weight;  // ensemble weight (> 0); 1 for a single verifier
} config_verifier_term;

typedef struct {
    // run:
    uint64_t seed;                  // run.seed                 [0]      noise seed of every candidate
    int classes[CONFIG_MAX_CLASSES];// run.classes              [all]    'all' or a list of class indices
    int num_classes;                //                                   entries used in classes[]
    int samples_per_class;          // run.samples_per_class    [2]      1..1000000
    char out[CONFIG_PATH_MAX];      // run.out                  [runs/default.h5]
    int batch;                      // run.batch                [16]     candidates per worker forward, 1..4096
    int threads;                    // run.threads              [0]      BLIS threads per rank (0: CPUs / ranks on the node)
    double progress_every;          // run.progress_every       [10]     seconds between plain progress lines
    double flush_every;             // run.flush_every          [5]      seconds between log flushes, 0.1..3600
    // model:
    char model[CONFIG_PATH_MAX];    // model.weights            [weights/default.h5]
    // sampler:
    sampler_kind sampler;           // sampler.kind             [heun]   heun | euler | euler_maruyama
    int search_nfe;                 // sampler.search_nfe       [50]     NFEs per search candidate (t 0 -> 1), 1..100000
    int final_nfe;                  // sampler.final_nfe        [250]    NFEs of the final denoising, 1..100000
    double cfg_scale;               // sampler.cfg_scale        [1.0]    0..100 (1: no guidance)
    int cfg_channels;               // sampler.cfg_channels     [0]      0: all channels guided
    // search:
    search_algorithm algorithm;     // search.algorithm         [random]
    int random_candidates;          // search.random.candidates [8]      N, 1..1000000
    int zo_neighbours;              // search.zero_order.neighbours [4]  N, 1..4096
    int zo_iterations;              // search.zero_order.iterations [4]  1..100000
    double zo_tau;                  // search.zero_order.tau    [0.95]   cosine to the pivot, (0, 1)
    int zo_restart_on_stall;        // search.zero_order.restart_on_stall [true] fresh pivot when no neighbour wins
    int paths_initial;              // search.paths.initial     [4]      N paths kept per round, 1..4096
    int paths_width;                // search.paths.width       [2]      M branches per path, 1..4096
    double paths_start_t;           // search.paths.start_t     [0.5]    t where branching starts, (0, 1)
    double paths_delta_f;           // search.paths.delta_f     [0.1]    re-noise back by this much t, (0, 1)
    double paths_delta_b;           // search.paths.delta_b     [0.2]    then integrate forward by this much, > delta_f
    int paths_nfe_per_step;         // search.paths.nfe_per_step [10]    L: NFEs of each forward (delta_b) run
    // verifier:
    config_verifier_term terms[CONFIG_MAX_ENSEMBLE];  // verifier.name (one term) or verifier.ensemble (a list)
    int num_terms;
    int ensemble;                   // 1 when verifier.name is 'ensemble'
    char classifier[CONFIG_PATH_MAX];  // verifier.classifier  [weights/verifier.h5]  role 'verifier' required
    char evaluator[CONFIG_PATH_MAX];   // verifier.evaluator   [weights/evaluator.h5] oracle verifiers only
    char reference[CONFIG_PATH_MAX];   // verifier.reference   [weights/fmnist-test-reference.h5] fid_oracle only
    double self_similarity_t;       // verifier.self_similarity_t [0.6]  t of the early x1_hat, (0, 1)
    // log:
    int log_trajectories;           // log.trajectories         [false]  every k-th state of every candidate
    int trajectory_stride;          // log.trajectory_stride    [10]     k, 1..100000
    int log_x1_hat;                 // log.x1_hat               [false]  the scored x1_hat of each candidate
    int log_noise;                  // log.noise                [true]   each candidate's initial noise
    int log_png;                    // log.png                  [true]   a PNG grid of the chosen samples beside the log
} search_config;

void search_config_defaults(search_config *c);

// Parse path, then apply overrides ("a.b.c=value", YAML scalars or flow
// sequences like "[0,1]") in order, then cross-check (search_config_check)
// and check that the weight files exist and have the roles their use
// needs. On error: NS_ERR_ARG (or NS_ERR_IO for an unreadable config file)
// with the message described above; c is left unspecified.
ns_status search_config_load(search_config *c, const char *path, const char *const *overrides, int n_overrides);

// Cross-key checks of what the run uses: NFE budgets whole sampler steps
// (Heun 2 NFEs per step, guidance doubles: search_nfe unless algorithm none,
// final_nfe, paths.nfe_per_step with paths); with paths delta_b > delta_f,
// delta_f < start_t and t = 1 reached within 10000 rounds; unless algorithm
// none (which has no verifier): fid_oracle only with random search and not
// in an ensemble, an ensemble of 2..8 distinct verifiers with weights in
// (0, 1000]. Single-key ranges are the parser's (search_config_load); the
// message here carries no file position.
ns_status search_config_check(const search_config *c);

// Does the run use the evaluator (an oracle verifier)? Such runs are
// labelled "oracle" in the log and in every table made from it.
int search_config_is_oracle(const search_config *c);

// The resolved config as YAML (every key, in the table's order, with its
// value): malloc'ed, NUL-terminated. Loading it gives the same config.
char *search_config_to_yaml(const search_config *c);

// The resolved YAML with the keys that cannot change a result (run.out,
// run.batch, run.threads, run.progress_every, run.flush_every: the search is
// batch-, thread- and path-invariant) at their defaults. malloc'ed.
char *search_config_results_yaml(const search_config *c);

// configs/reference.yaml: every key with its default, range and meaning as
// comments. malloc'ed.
char *search_config_reference_yaml(void);

#endif

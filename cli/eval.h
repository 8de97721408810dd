// The evaluation code path shared by `noisesearch eval` and `noisesearch
// curves` (both in cli/): the options, evaluating files into their
// /evaluation group, and opening a file that a search may still be writing.
// cli/cmd_eval.c implements it; docs/verifiers.md describes what it computes.
#ifndef NS_CLI_EVAL_H
#define NS_CLI_EVAL_H

#include <hdf5.h>

#include "common/status.h"

#define EVAL_GROUP "evaluation"  // the group eval writes into each evaluated file

typedef struct {
    const char *cmd;                   // command named in messages and progress lines ("eval", "curves")
    const char *evaluator, *reference;  // required
    const char **files;                // sample files or run logs (not owned)
    int n_files;
    int k, kid_subsets, kid_size, kid_seed, is_splits, batch, threads;
    int no_write;     // compute and print only; leave the files unchanged
    int print_table;  // print the metrics table on stdout
    int per_class;    // also print each file's accuracy per conditioning class
} eval_options;

// The defaults of `noisesearch eval`: cmd "eval", k 3, 100 KID subsets of
// 1000, IS over 10 splits, batch 256, the table printed; no evaluator,
// reference or files.
void eval_options_default(eval_options *o);

// Everything `noisesearch eval` does after parsing: check the evaluator, the
// reference and every file before computing anything, measure each file's
// samples and (unless no_write) write its row into it as /evaluation.
// Calls gemm_setup(o->threads), so call it at most once per process.
// Returns a CLI_EXIT_* code, with one line on stderr on failure
// (CLI_EXIT_USAGE: bad input, nothing computed or written).
int eval_files(const eval_options *o);

// Open path read-only. A file still held by a search's SWMR writer opens
// only in SWMR-read mode; *live then is 1.
ns_status eval_open_input(hid_t *f, const char *path, int *live);

#endif

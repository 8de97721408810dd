// Rank 0: the scheduler of a search run. Keeps many searches in flight (one
// per class x sample index, started in id order inside a bounded window),
// queues their tasks, hands bundles to idle workers (pull-based) or runs
// them itself when it is the only rank, feeds results back to the searches,
// makes the fid_oracle's set-level choices in search-id order and writes
// finished searches to the run log in id order. Decisions never depend on
// which rank answered first, so the log's choices, scores and samples are
// the same bits for any rank count and batch size.
#ifndef NS_COORD_H
#define NS_COORD_H

#include <mpi.h>
#include <signal.h>

#include "../rank/executor.h"
#include "../rank/worker.h"
#include "config.h"
#include "runlog.h"

enum { COORD_EXIT_OK = 0, COORD_EXIT_FAILED = 1, COORD_EXIT_INTERRUPTED = 3 };

typedef struct {
    const search_config *cfg;
    const char *config_text;   // the YAML file as given
    const char *overrides;     // joined with spaces
    int resume, overwrite;
    volatile sig_atomic_t *stop_requested;  // set by SIGTERM / SIGUSR1 / SIGINT
} coord_options;

// The executor settings a config implies (every rank builds its own).
executor_config coord_executor_config(const search_config *cfg, int threads, int worker);

// Run the search on rank 0 of comm. P == 1: local executes every task in this
// process (it must be initialised); P > 1: workers 1..P-1 run worker_main.
// Prints one clear line on failure (naming the rank), always stops the
// workers, and returns a COORD_EXIT_* code.
int coord_run(const coord_options *o, MPI_Comm comm, executor *local);

#endif

// The worker rank's loop and the message protocol between rank 0 and the
// workers (ADLB style: tags grouped by direction, a packed byte payload).
//
//   worker -> 0   WORKER_TAG_HELLO    worker_hello, once after start-up
//   worker -> 0   WORKER_TAG_RESULTS  results of the last bundle (task.h result_pack)
//   worker -> 0   WORKER_TAG_ERROR    one line of text; the worker then waits for STOP
//   0 -> worker   WORKER_TAG_TASKS    a bundle of tasks (task_pack)
//   0 -> worker   WORKER_TAG_STOP     leave the loop (shutdown or abort)
//
// Pull-based: a worker gets a bundle only after it returned the previous
// one, so a slow rank simply gets fewer. Both sides wait with MPI_Iprobe
// and a short sleep, never a spinning receive (2-core machines: a blocked
// MPI_Recv burns a core).
#ifndef NS_WORKER_H
#define NS_WORKER_H

#include <mpi.h>

#include "executor.h"

enum {
    WORKER_TAG_HELLO = 11,
    WORKER_TAG_RESULTS,
    WORKER_TAG_ERROR,
    WORKER_TAG_TASKS = 21,
    WORKER_TAG_STOP,
};

typedef struct {
    int32_t ok;
    int32_t dim, channels, image_size, fid_dim;
    double denoiser_flops;          // forward FLOPs per sample
    double classifier_flops, evaluator_flops;  // per image (0 when not loaded)
} worker_hello;

worker_hello worker_hello_of(const executor *e);

// Wait for a message from any source (src = MPI_ANY_SOURCE) with any tag,
// sleeping sleep_us between probes. Fills status.
void worker_wait_message(MPI_Comm comm, int src, MPI_Status *status, long sleep_us);

// The worker: init the executor (sending HELLO or ERROR), then execute
// bundles until STOP. Returns 0, or 1 after an error was reported to rank 0.
int worker_main(MPI_Comm comm, const executor_config *cfg);

#endif

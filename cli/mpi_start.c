// MPI start-up shared by the MPI commands (search, train).
#include <mpi.h>

#include "../common/status.h"
#include "cli.h"

// A fatal ns_error on one rank must end every rank, not leave them waiting.
static void mpi_abort_hook(void) { MPI_Abort(MPI_COMM_WORLD, 1); }

void cli_mpi_start(int *rank, int *size) {
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    ns_set_abort_hook(mpi_abort_hook);
}

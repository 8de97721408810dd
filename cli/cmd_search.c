// noisesearch search CONFIG.yaml [KEY=VALUE ...]: the distributed search.
// Rank 0 validates the config (nothing runs or is written when it is
// wrong), sends it to every rank and coordinates; ranks 1..P-1 are workers.
// With one rank everything runs in this process, with the same results.
// SIGTERM / SIGUSR1 / SIGINT: rank 0 drains, logs and exits with status 3.
#include <getopt.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "coordinator/coord.h"
#include "model/gemm.h"

static volatile sig_atomic_t stop_requested;
static void on_stop_signal(int sig) { stop_requested = sig; }

static void search_usage(FILE *out) {
    fprintf(out,
            "usage: [mpirun -np P --bind-to none] noisesearch search CONFIG.yaml [KEY=VALUE ...] [options]\n"
            "Run the search a config describes; every candidate, score and sample goes to run.out (HDF5).\n"
            "Rank 0 coordinates, ranks 1..P-1 run the denoiser and verifiers; -np 1 runs all in one process.\n\n"
            "  KEY=VALUE          override a config key (search.random.candidates=16 run.seed=3); validated\n"
            "                     like the file, and the resolved config is what the log records\n"
            "  --resume           continue the log at run.out (finished searches are not redone)\n"
            "  --overwrite        replace an existing run.out\n"
            "  --threads T        BLIS threads per worker (overrides run.threads; 0: CPUs / workers per node)\n"
            "Exit status: 0 done, 1 failed (one line names the rank and cause), 2 bad config or arguments\n"
            "(nothing written), 3 interrupted by SIGTERM/SIGUSR1/SIGINT (log flushed; --resume continues).\n"
            "`noisesearch config CONFIG.yaml [KEY=VALUE ...]` prints the resolved config without running.\n");
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = ns_malloc((size_t)(n > 0 ? n : 0) + 1, "config text");
    size_t got = fread(s, 1, (size_t)(n > 0 ? n : 0), f);
    s[got] = 0;
    fclose(f);
    return s;
}

// BLIS threads per worker: the CPUs of this node over the workers on it.
static int default_threads(MPI_Comm comm, int rank, int size) {
    MPI_Comm node;
    int local = 1, local_rank0 = 0;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    int is0 = rank == 0;
    MPI_Allreduce(&is0, &local_rank0, 1, MPI_INT, MPI_MAX, node);
    MPI_Comm_free(&node);
    int workers = size > 1 ? local - local_rank0 : 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int t = (int)(cpus / (workers > 0 ? workers : 1));
    return t > 0 ? t : 1;
}

typedef struct {
    const char *config;
    const char **overrides;
    int n_overrides, resume, overwrite, threads;
} search_args;

static int parse_args(int argc, char **argv, search_args *a, int rank) {
    memset(a, 0, sizeof *a);
    a->threads = -1;
    a->overrides = ns_calloc((size_t)argc + 1, sizeof *a->overrides, "overrides");
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            if (!rank) search_usage(stdout);
            return 1;
        } else if (!strcmp(s, "--resume")) {
            a->resume = 1;
        } else if (!strcmp(s, "--overwrite")) {
            a->overwrite = 1;
        } else if (!strcmp(s, "--threads") && i + 1 < argc) {
            if (cli_parse_int("--threads", argv[++i], 0, 1024, &a->threads)) return -1;
        } else if (s[0] == '-') {
            if (!rank) fprintf(stderr, "noisesearch search: unknown option '%s' (--help lists them)\n", s);
            return -1;
        } else if (strchr(s, '=')) {
            a->overrides[a->n_overrides++] = s;
        } else if (!a->config) {
            a->config = s;
        } else {
            if (!rank) fprintf(stderr, "noisesearch search: unexpected argument '%s' (overrides are KEY=VALUE)\n", s);
            return -1;
        }
    }
    if (!a->config) {
        if (!rank) fprintf(stderr, "noisesearch search: give a config file (configs/default.yaml is the small one)\n");
        return -1;
    }
    if (a->resume && a->overwrite) {
        if (!rank) fprintf(stderr, "noisesearch search: --resume and --overwrite exclude each other\n");
        return -1;
    }
    return 0;
}

// Rank 0: load and check everything a run needs before any rank starts work.
static int validate(const search_args *a, search_config *cfg, char **text) {
    if (search_config_load(cfg, a->config, a->overrides, a->n_overrides)) {
        fprintf(stderr, "%s\n", ns_error_message());
        return -1;
    }
    if (a->threads >= 0) cfg->threads = a->threads;
    struct stat sb;
    int exists = stat(cfg->out, &sb) == 0;
    if (exists && !a->resume && !a->overwrite) {
        fprintf(stderr, "noisesearch search: %s exists; pass --resume to continue it or --overwrite to replace it\n",
                cfg->out);
        return -1;
    }
    if (!exists && a->resume) {
        fprintf(stderr, "noisesearch search: --resume: %s does not exist (run without --resume to start it)\n",
                cfg->out);
        return -1;
    }
    *text = read_text(a->config);
    return *text ? 0 : -1;
}

int cmd_search(int argc, char **argv) {
    int rank, size;
    cli_mpi_start(&rank, &size);
    MPI_Comm comm = MPI_COMM_WORLD;
    signal(SIGTERM, on_stop_signal);
    signal(SIGUSR1, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    search_args a;
    search_config *cfg = ns_calloc(1, sizeof *cfg, "config");
    char *text = NULL;
    int verdict = parse_args(argc, argv, &a, rank);  // every rank parses; rank 0 speaks
    if (!verdict && !rank) verdict = validate(&a, cfg, &text);
    MPI_Bcast(&verdict, 1, MPI_INT, 0, comm);
    int code = verdict > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (verdict) goto out;
    MPI_Bcast(cfg, (int)sizeof *cfg, MPI_BYTE, 0, comm);
    int threads = cfg->threads > 0 ? cfg->threads : default_threads(comm, rank, size);
    if (gemm_setup(threads) != NS_OK) {
        if (!rank) fprintf(stderr, "noisesearch search: %s\n", ns_error_message());
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (!rank) fprintf(stderr, "search: %s; %d rank%s\n", gemm_describe(), size, size > 1 ? "s" : "");
    if (rank) {
        executor_config ec = coord_executor_config(cfg, threads, rank);
        code = worker_main(comm, &ec) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
        goto out;
    }
    char joined[8192] = "";
    for (int i = 0; i < a.n_overrides; i++) {
        size_t at = strlen(joined);
        snprintf(joined + at, sizeof joined - at, "%s%s", i ? " " : "", a.overrides[i]);
    }
    coord_options o = {.cfg = cfg, .config_text = text, .overrides = joined,
                       .resume = a.resume, .overwrite = a.overwrite, .stop_requested = &stop_requested};
    executor local;
    memset(&local, 0, sizeof local);
    if (size == 1) {
        executor_config ec = coord_executor_config(cfg, threads, 0);
        if (executor_init(&local, &ec)) {
            fprintf(stderr, "noisesearch search: %s\n", ns_error_message());
            code = CLI_EXIT_FAILURE;
            goto out;
        }
    }
    code = coord_run(&o, comm, size == 1 ? &local : NULL);
    executor_free(&local);
out:
    free(text), free(cfg), free(a.overrides);
    MPI_Finalize();
    return code;
}

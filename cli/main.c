// noisesearch <command> [options]: a thin shell over the libraries. Each
// command lives in its own cmd_*.c; this file only dispatches.
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"search", cmd_search, "run a search from a YAML config (mpirun -np P; rank 0 coordinates)"},
    {"config", cmd_config, "validate a run config and print it resolved (--reference: every key)"},
    {"sample", cmd_sample, "denoise noise into samples: PNG grid + HDF5 (no search)"},
    {"train", cmd_train, "train the denoiser on Fashion-MNIST (MPI data-parallel)"},
    {"train-classifier", cmd_train_classifier, "train the verifier classifier or the evaluator on Fashion-MNIST"},
    {"reference", cmd_reference, "evaluator features and statistics of the test set (for eval)"},
    {"eval", cmd_eval, "FID, KID, IS, precision/recall, accuracy of sample files or run logs"},
    {"curves", cmd_curves, "scaling curves of run logs: metrics vs NFEs, CSV + HDF5 table and PNG plots"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: noisesearch <command> [options]   (noisesearch <command> --help for its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-17s %s\n", "version", "print the program version");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("noisesearch %s\n", NS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "noisesearch: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}

// Commands of the noisesearch executable and what they share.
#ifndef NS_CLI_H
#define NS_CLI_H

#ifndef NS_VERSION
#define NS_VERSION "unknown"
#endif

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,  // the work failed (I/O, numerical, ...)
    CLI_EXIT_USAGE = 2,    // bad arguments or configuration; nothing was written
};

int cmd_search(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_train_classifier(int argc, char **argv);
int cmd_reference(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_curves(int argc, char **argv);

// Parse "all" or a comma list of class indices in [0, num_classes) into
// out (capacity num_classes); returns the count or -1 with a message printed.
int cli_parse_classes(const char *spec, int num_classes, int *out);
// Strict integer / float parsing of an option value; -1 with a message.
int cli_parse_int(const char *option, const char *text, long lo, long hi, int *out);
int cli_parse_float(const char *option, const char *text, double lo, double hi, float *out);

// MPI_Init_thread (FUNNELED: BLIS/OpenMP threads never call MPI), this
// process's rank and the world size, and an abort hook so that a fatal
// error on one rank ends them all (cli/mpi_start.c).
void cli_mpi_start(int *rank, int *size);

#endif

// noisesearch config: load and validate a run config exactly as a search run
// would (file, overrides, cross-key and weight-file checks), then print the
// resolved YAML with every key; or print the reference of every key.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "coordinator/config.h"

static void config_usage(FILE *out) {
    fprintf(out, "usage: noisesearch config CONFIG.yaml [KEY=VALUE ...]\n"
                 "       noisesearch config --reference\n"
                 "Validate a run config with its overrides (e.g. search.random.candidates=16,\n"
                 "run.classes=[0,3]) and print it resolved, every key with its value; on an\n"
                 "error print one line, FILE:LINE:COLUMN: message, and exit 2.\n"
                 "--reference prints every key with its default, range and meaning\n"
                 "(configs/reference.yaml).\n");
}

static int print_owned(char *text) {
    fputs(text, stdout);
    free(text);
    return fflush(stdout) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int cmd_config(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        config_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc == 2 && !strcmp(argv[1], "--reference")) return print_owned(search_config_reference_yaml());
    if (argc < 2 || argv[1][0] == '-') {
        config_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    search_config c;
    if (search_config_load(&c, argv[1], (const char *const *)argv + 2, argc - 2)) {
        fprintf(stderr, "%s\n", ns_error_message());
        return CLI_EXIT_USAGE;
    }
    return print_owned(search_config_to_yaml(&c));
}

// Strict parsing of command-line values shared by the commands (see cli.h).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_int(const char *option, const char *text, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "noisesearch: %s: expected an integer in [%ld, %ld], got '%s'\n", option, lo, hi, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *option, const char *text, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "noisesearch: %s: expected a number in [%g, %g], got '%s'\n", option, lo, hi, text);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int cli_parse_classes(const char *spec, int num_classes, int *out) {
    if (!strcmp(spec, "all")) {
        for (int k = 0; k < num_classes; k++) out[k] = k;
        return num_classes;
    }
    int n = 0;
    const char *p = spec;
    while (*p) {
        char *end;
        errno = 0;
        long k = strtol(p, &end, 10);
        if (errno || end == p || (*end && *end != ',') || k < 0 || k >= num_classes) {
            fprintf(stderr, "noisesearch: --classes: expected 'all' or a comma list of classes in [0, %d), got '%s'\n",
                    num_classes, spec);
            return -1;
        }
        if (n == num_classes) {
            fprintf(stderr, "noisesearch: --classes: more than %d entries in '%s'\n", num_classes, spec);
            return -1;
        }
        out[n++] = (int)k;
        p = *end ? end + 1 : end;
    }
    if (n == 0) fprintf(stderr, "noisesearch: --classes: empty list\n");
    return n ? n : -1;
}

// The main() of the PyTorch-fixture tests: `test FIXTURE_DIR NAME...` checks
// each fixture with check(dir, name) (non-zero: failed) and exits non-zero
// if any failed. Header-only: each test is one translation unit.
#ifndef NS_TEST_FIXTURE_MAIN_H
#define NS_TEST_FIXTURE_MAIN_H

#include <stdio.h>

#include "model/gemm.h"

static int fixture_test_main(int argc, char **argv, int (*check)(const char *dir, const char *name),
                             double tolerance) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR NAME...\n", argv[0]);
        return 2;
    }
    if (gemm_setup(0) != NS_OK) {
        fprintf(stderr, "%s\n", ns_error_message());
        return 1;
    }
    printf("%s\n", gemm_describe());
    int failures = 0;
    for (int i = 2; i < argc; i++) failures += check(argv[1], argv[i]) != 0;
    printf("%s: %d of %d fixtures failed (tolerance %.0e relative)\n", failures ? "FAILED" : "PASSED", failures,
           argc - 2, tolerance);
    return failures ? 1 : 0;
}

#endif

// EXPECT(cond, fmt, ...): count and report a failed check without stopping
// the test; the test's main returns failures != 0. Header-only; one
// translation unit per test.
#ifndef NS_TEST_EXPECT_H
#define NS_TEST_EXPECT_H

#include <stdio.h>

static int failures;

#define EXPECT(cond, ...)                               \
    do {                                                \
        if (!(cond)) {                                  \
            failures++;                                 \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                        \
            printf("\n");                               \
        }                                               \
    } while (0)

#endif

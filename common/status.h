// Expected failures (bad file, wrong shape, missing key) travel up the stack
// as a status code plus one human-readable message; broken invariants abort.
// Every module reports through ns_error_set() so the top level prints one
// line a user can act on. No MPI here: the abort hook is installed by main.
#ifndef NS_STATUS_H
#define NS_STATUS_H

#include <stdio.h>

typedef enum {
    NS_OK = 0,
    NS_ERR_IO,      // file missing, unreadable, unwritable, disk full
    NS_ERR_FORMAT,  // file readable but content wrong (name, shape, type)
    NS_ERR_ARG,     // bad argument or config value
    NS_ERR_NOMEM,
} ns_status;

// Record the message for the current failure (printf-style) and return code.
// The message replaces any earlier one; it is what ns_error_message() gives.
ns_status ns_error_set(ns_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *ns_error_message(void);

// Called on a broken invariant after the message is printed. Default: abort().
// An MPI program installs a hook that calls MPI_Abort so no rank is left hanging.
void ns_set_abort_hook(void (*hook)(void));
void ns_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

// An assert that stays on in release builds.
#define NS_CHECK(cond)                                                     \
    do {                                                                   \
        if (!(cond)) ns_die(__FILE__, __LINE__, "check failed: %s", #cond); \
    } while (0)

// Allocation that never returns NULL (an out-of-memory here is fatal).
void *ns_malloc(size_t n, const char *what);
void *ns_calloc(size_t count, size_t size, const char *what);
// 64-byte aligned, zeroed; free with free().
void *ns_aligned_alloc(size_t n, const char *what);

// Monotonic seconds.
double ns_now(void);

#endif

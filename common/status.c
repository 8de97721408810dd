// Error message storage, fatal checks and checked allocation (see status.h).
#include "status.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char error_message[1024];
static void (*abort_hook)(void);

ns_status ns_error_set(ns_status code, const char *fmt, ...) {
    char buf[sizeof error_message];  // arguments may point into error_message
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(error_message, buf, sizeof buf);
    return code;
}

const char *ns_error_message(void) { return error_message; }

void ns_set_abort_hook(void (*hook)(void)) { abort_hook = hook; }

void ns_die(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "noisesearch: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    if (abort_hook) abort_hook();
    abort();
}

void *ns_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) ns_die(__FILE__, __LINE__, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *ns_calloc(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ns_die(__FILE__, __LINE__, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

void *ns_aligned_alloc(size_t n, const char *what) {
    size_t rounded = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) ns_die(__FILE__, __LINE__, "out of memory allocating %zu bytes for %s", n, what);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

double ns_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// SHA-256 (FIPS 180-4), to tie derived files to the exact bytes of their
// inputs: a reference-statistics file to its evaluator, a run log to its
// model, classifier and evaluator. Plain C, no dependencies; tested against
// the FIPS 180-2 example vectors (tests/test_sha256.c).
#ifndef NS_SHA256_H
#define NS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define SHA256_HEX_SIZE 65  // 64 lowercase hex digits + NUL

typedef struct {
    uint32_t state[8];
    uint64_t bytes;       // message length so far
    uint8_t block[64];    // pending partial block
    size_t fill;          // bytes in block
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t digest[32]);  // c must be re-initialised before reuse

// One-shot digest of a buffer as 64 lowercase hex digits.
void sha256_hex_buffer(char hex[SHA256_HEX_SIZE], const void *data, size_t n);
// Digest of a whole file. NS_ERR_IO naming the path when it cannot be read.
ns_status sha256_hex_file(const char *path, char hex[SHA256_HEX_SIZE]);

#endif

// Counter-based Gaussian noise: sample number i of stream (seed, stream) is a
// pure function of (seed, stream, i), the same bits in every process, on every
// x86-64 machine, whatever order or chunking it is drawn in. That is what lets
// a search name a noise by its key instead of shipping it between ranks, and
// lets the SDE sampler and re-noising draw per-sample noise that does not
// depend on which batch the sample sits in.
//
// Mapping (fixed: changing it changes every stored noise):
//   Philox4x32-10 (Random123), key = {seed lo32, seed hi32},
//   counter = {block lo32, block hi32, stream lo32, stream hi32}, block = i / 4;
//   output word i % 4 -> u = (w + 0.5) * 2^-32 in double (never 0 or 1)
//   -> z = PPND16(u) (Wichura 1988, AS241) in double -> rounded to float.
// No libm call sits on this path (glibc's log picks FMA or non-FMA code by
// CPU): the log is our own pure-arithmetic noise_log(), sqrt is IEEE-exact.
#ifndef NS_NOISE_H
#define NS_NOISE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seed;
    uint64_t stream;
} noise_key;

// out: (n,). out[i] = N(0,1) sample number (index0 + i) of stream
// (key.seed, key.stream). Any index0 (need not be a multiple of 4), any n.
void noise_fill(float *out, size_t n, noise_key key, uint64_t index0);

// The raw 32-bit Philox word number `index` of the stream (the word that
// noise_fill turns into Gaussian number `index`), and the uniform in (0, 1)
// made from it, (w + 0.5) 2^-32. For data order, dropout and other draws
// that are not Gaussian; use a stream of their own.
uint32_t noise_bits(noise_key key, uint64_t index);
double noise_uniform(noise_key key, uint64_t index);

// perm = a uniformly random permutation of 0..n-1 (Fisher-Yates driven by
// noise_uniform(key, 0..n-2)): the same on every machine.
void noise_permutation(uint32_t *perm, int n, noise_key key);

// Inverse standard normal CDF for p in (0,1), AS241 PPND16 (about 1e-16
// relative accuracy); returns NaN outside (0,1). Bitwise reproducible: uses
// noise_log() and sqrt only.
double noise_inv_cdf(double p);

// Natural log in pure double arithmetic (no libm), within a few ulp of the
// correctly rounded value for every finite x > 0 (subnormals included).
// x == 0 gives -inf, x < 0 or NaN gives NaN, +inf gives +inf.
double noise_log(double x);

#endif

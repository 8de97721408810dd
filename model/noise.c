// Counter-based Gaussian noise (see noise.h for the fixed mapping). Everything
// here is IEEE double +, -, *, / and sqrt, each correctly rounded, and the
// build keeps FMA contraction off, so a value is the same bits on any x86-64
// CPU. Do not add libm calls (log, exp, erf) to this path.
#include "noise.h"

#include <math.h>
#include <string.h>

#include <Random123/philox.h>

// Ref: fdlibm e_log.c split of ln 2: ln2_hi has 32 trailing zero bits, so
// e * ln2_hi is exact for any exponent e of a double.
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10

double noise_log(double x) {
    if (!(x > 0.0)) return x == 0.0 ? -INFINITY : NAN;
    if (x == INFINITY) return x;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)(bits >> 52);
    if (e == 0) {  // subnormal: scale into the normal range first
        double xs = x * 0x1p54;
        memcpy(&bits, &xs, sizeof bits);
        e = (int)(bits >> 52) - 54;
    }
    // x = m * 2^e with m folded into [sqrt(1/2), sqrt(2)) so that |s| below
    // stays <= 0.1716. Ref: fdlibm e_log.c; branch-free because the fold is
    // a coin flip on random input and a mispredicted branch costs more than
    // the whole series. 0x6a09e667f3bcd is the mantissa of sqrt(2), so
    // adding its complement carries into bit 52 exactly when m >= sqrt(2).
    uint64_t mant = bits & 0x000fffffffffffffULL;
    uint64_t carry = (mant + 0x00095f619980c433ULL) & 0x0010000000000000ULL;
    bits = mant | (carry ^ 0x3ff0000000000000ULL);  // exponent 0 or -1
    e += (int)(carry >> 52) - 1023;
    double m;
    memcpy(&m, &bits, sizeof m);
    // log m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m-1)/(m+1).
    // f = m - 1 is exact (Sterbenz). With z = s^2 <= 0.0295 the first omitted
    // term, z^11/23, is below 1e-18 relative: the series is exact to rounding.
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    // Even and odd powers of z in two chains (Estrin's split): half the
    // dependent latency of one Horner chain.
    double z2 = z * z;
    double pe = 1.0 / 21.0;
    pe = pe * z2 + 1.0 / 17.0;
    pe = pe * z2 + 1.0 / 13.0;
    pe = pe * z2 + 1.0 / 9.0;
    pe = pe * z2 + 1.0 / 5.0;
    double po = 1.0 / 19.0;
    po = po * z2 + 1.0 / 15.0;
    po = po * z2 + 1.0 / 11.0;
    po = po * z2 + 1.0 / 7.0;
    po = po * z2 + 1.0 / 3.0;
    double p = po + z * pe;  // 1/3 + z/5 + ... + z^9/21
    double two_s = 2.0 * s;
    double log_m = two_s + two_s * (z * p);
    double de = (double)e;
    return de * LN2_HI + (de * LN2_LO + log_m);
}

// Ref: Wichura, M.J. (1988), Algorithm AS241 PPND16, Applied Statistics 37(3).
// Coefficients and Horner evaluation order as published (also CPython's
// statistics.NormalDist.inv_cdf, used to cross-check tests/test_noise.c).
// Central region |q| <= 0.425, q = p - 0.5.
static inline double ppnd16_central(double q) {
    double r = 0.180625 - q * q;
    double num = ((((((2.5090809287301226727e+3 * r +
                       3.3430575583588128105e+4) * r +
                      6.7265770927008700853e+4) * r +
                     4.5921953931549871457e+4) * r +
                    1.3731693765509461125e+4) * r +
                   1.9715909503065514427e+3) * r +
                  1.3314166789178437745e+2) * r +
                 3.3871328727963666080e+0;
    double den = ((((((5.2264952788528545610e+3 * r +
                       2.8729085735721942674e+4) * r +
                      3.9307895800092710610e+4) * r +
                     2.1213794301586595867e+4) * r +
                    5.3941960214247511077e+3) * r +
                   6.8718700749205790830e+2) * r +
                  4.2313330701600911252e+1) * r +
                 1.0;
    return num * q / den;
}

// Tails |q| > 0.425.
static double ppnd16_tail(double p, double q) {
    double r = q < 0.0 ? p : 1.0 - p;  // 1 - p is exact for p >= 0.5
    r = sqrt(-noise_log(r));
    double num, den;
    if (r <= 5.0) {
        // The only tail branch noise_fill reaches: its smallest p, 2^-33,
        // gives r = 4.78.
        r -= 1.6;
        num = ((((((7.74545014278341407640e-4 * r +
                    2.27238449892691845833e-2) * r +
                   2.41780725177450611770e-1) * r +
                  1.27045825245236838258e+0) * r +
                 3.64784832476320460504e+0) * r +
                5.76949722146069140550e+0) * r +
               4.63033784615654529590e+0) * r +
              1.42343711074968357734e+0;
        den = ((((((1.05075007164441684324e-9 * r +
                    5.47593808499534494600e-4) * r +
                   1.51986665636164571966e-2) * r +
                  1.48103976427480074590e-1) * r +
                 6.89767334985100004550e-1) * r +
                1.67638483018380384940e+0) * r +
               2.05319162663775882187e+0) * r +
              1.0;
    } else {
        r -= 5.0;
        num = ((((((2.01033439929228813265e-7 * r +
                    2.71155556874348757815e-5) * r +
                   1.24266094738807843860e-3) * r +
                  2.65321895265761230930e-2) * r +
                 2.96560571828504891230e-1) * r +
                1.78482653991729133580e+0) * r +
               5.46378491116411436990e+0) * r +
              6.65790464350110377720e+0;
        den = ((((((2.04426310338993978564e-15 * r +
                    1.42151175831644588870e-7) * r +
                   1.84631831751005468180e-5) * r +
                  7.86869131145613259100e-4) * r +
                 1.48753612908506148525e-2) * r +
                1.36929880922735805310e-1) * r +
               5.99832206555887937690e-1) * r +
              1.0;
    }
    double x = num / den;
    return q < 0.0 ? -x : x;
}

double noise_inv_cdf(double p) {
    if (!(p > 0.0 && p < 1.0)) return NAN;
    double q = p - 0.5;
    return fabs(q) <= 0.425 ? ppnd16_central(q) : ppnd16_tail(p, q);
}

// Samples are converted in chunks: first the central formula for the whole
// chunk (a fixed-count loop without branches, which gcc vectorises), then the
// ~15% tail samples one by one. Per sample the result is the same bits as
// noise_inv_cdf(); only the work is batched.
#define NOISE_CHUNK 64

static inline philox4x32_ctr_t philox_block(noise_key key, uint64_t block) {
    philox4x32_key_t k = {{(uint32_t)key.seed, (uint32_t)(key.seed >> 32)}};
    philox4x32_ctr_t c = {{(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)key.stream,
                           (uint32_t)(key.stream >> 32)}};
    return philox4x32_R(10, c, k);
}

uint32_t noise_bits(noise_key key, uint64_t index) { return philox_block(key, index >> 2).v[index & 3]; }

double noise_uniform(noise_key key, uint64_t index) {
    return ((double)noise_bits(key, index) + 0.5) * 0x1p-32;
}

void noise_permutation(uint32_t *perm, int n, noise_key key) {
    for (int i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(noise_uniform(key, (uint64_t)(n - 1 - i)) * (i + 1));
        uint32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

void noise_fill(float *out, size_t n, noise_key key, uint64_t index0) {
    double q[NOISE_CHUNK];   // u - 0.5, exact
    double zc[NOISE_CHUNK];  // central formula, valid where |q| <= 0.425
    for (size_t done = 0; done < n;) {
        size_t m = n - done < NOISE_CHUNK ? n - done : NOISE_CHUNK;
        for (size_t j = 0; j < m;) {
            uint64_t idx = index0 + done + j;
            uint64_t block = idx >> 2;
            philox4x32_ctr_t w = philox_block(key, block);
            // A block gives samples 4*block + 0..3; an unaligned start or a
            // short end uses part of it. u = (w + 0.5) 2^-32 is exact, in (0,1).
            for (unsigned lane = (unsigned)(idx & 3); lane < 4 && j < m; lane++, j++)
                q[j] = ((double)w.v[lane] + 0.5) * 0x1p-32 - 0.5;
        }
        for (size_t j = m; j < NOISE_CHUNK; j++) q[j] = 0.0;
        for (size_t j = 0; j < NOISE_CHUNK; j++) zc[j] = ppnd16_central(q[j]);
        for (size_t j = 0; j < m; j++)
            out[done + j] = (float)(fabs(q[j]) <= 0.425 ? zc[j] : ppnd16_tail(q[j] + 0.5, q[j]));
        done += m;
    }
}

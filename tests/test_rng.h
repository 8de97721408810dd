// uniform01(): a SplitMix64 stream of doubles in [0, 1) for test inputs,
// independent of the Philox noise under test. Header-only; a test may
// define TEST_RNG_SEED before including it to pick its own stream.
#ifndef NS_TEST_RNG_H
#define NS_TEST_RNG_H

#ifndef TEST_RNG_SEED
#define TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#endif

static unsigned long long rng_state = TEST_RNG_SEED;

static double uniform01(void) {
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

#endif

// BLIS wrapper: kernel choice at start-up, one native-path sgemm for all
// products (see gemm.h for why). No MPI, no allocation.
#include "gemm.h"

#include <blis.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/status.h"

static int default_threads = 1;
static char description[256] = "BLIS not set up (call gemm_setup first)";

// BLIS_ARCH_TYPE is read as a number by BLIS 0.9 (a name silently becomes 0).
// Ids of the x86-64 sets in Debian's fat build (arch_t order in blis.h).
static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int env_positive_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end == '\0' && v > 0 && v < 4096) ? (int)v : 0;
}

ns_status gemm_setup(int threads) {
    const char *why;
    const char *user = getenv("BLIS_ARCH_TYPE");
    if (user && *user) {
        for (const char *p = user; *p; p++)
            if (!isdigit((unsigned char)*p)) {
                return ns_error_set(NS_ERR_ARG,
                             "BLIS_ARCH_TYPE='%s' is not a number; BLIS 0.9 reads names as 0 (skx). "
                             "Use a number (skx=%d, haswell=%d, zen3=%d, generic=%d) or unset it",
                             user, BLIS_ARCH_SKX, BLIS_ARCH_HASWELL, BLIS_ARCH_ZEN3, BLIS_ARCH_GENERIC);
            }
        int id = atoi(user);
        if (id < 0 || id >= BLIS_NUM_ARCHS)
            return ns_error_set(NS_ERR_ARG, "BLIS_ARCH_TYPE=%d is out of range 0..%d", id, BLIS_NUM_ARCHS - 1);
        if (id == BLIS_ARCH_SKX && !cpu_has_avx512())
            return ns_error_set(NS_ERR_ARG, "BLIS_ARCH_TYPE=%d selects skx (AVX-512) but this CPU lacks AVX-512", id);
        if ((id == BLIS_ARCH_HASWELL || id == BLIS_ARCH_ZEN3 || id == BLIS_ARCH_ZEN2 || id == BLIS_ARCH_ZEN) &&
            !cpu_has_avx2())
            return ns_error_set(NS_ERR_ARG, "BLIS_ARCH_TYPE=%d selects AVX2 kernels but this CPU lacks AVX2/FMA", id);
        why = "set by BLIS_ARCH_TYPE";
    } else if (cpu_has_avx512()) {
        char id[16];
        snprintf(id, sizeof id, "%d", BLIS_ARCH_SKX);
        setenv("BLIS_ARCH_TYPE", id, 1);
        why = "chosen: CPU has AVX-512";
    } else if (cpu_has_avx2()) {
        char id[16];
        snprintf(id, sizeof id, "%d", BLIS_ARCH_HASWELL);
        setenv("BLIS_ARCH_TYPE", id, 1);
        why = "chosen: CPU has AVX2+FMA";
    } else {
        why = "BLIS's own choice: CPU has neither AVX-512 nor AVX2";
    }
    bli_init();

    if (threads <= 0) threads = env_positive_int("BLIS_NUM_THREADS");
    if (threads <= 0) threads = env_positive_int("OMP_NUM_THREADS");
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads <= 0) threads = 1;
    default_threads = threads;
    snprintf(description, sizeof description, "BLIS %s, kernels %s (%s), %d thread%s", bli_info_get_version_str(),
             gemm_kernel_name(), why, threads, threads == 1 ? "" : "s");
    return NS_OK;
}

const char *gemm_kernel_name(void) { return bli_arch_string(bli_arch_query_id()); }
int gemm_threads(void) { return default_threads; }
const char *gemm_describe(void) { return description; }

void gemm_run(int M, int N, int K, float alpha, const float *A, long rsa, long csa, const float *B, long rsb,
              long csb, float beta, float *C, long rsc, long csc, int threads) {
    if (M <= 0 || N <= 0) return;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads > 0 ? threads : default_threads, &rntm);
    bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &alpha, (float *)A, rsa, csa, (float *)B, rsb, csb,
                 &beta, C, rsc, csc, NULL, &rntm);
}

void gemm_nt(float *C, long ldc, const float *A, long lda, const float *W, int M, int N, int K, float beta,
             int threads) {
    // W is (N,K) row-major: as a (K,N) matrix, element (k,n) is at W[n*K + k].
    gemm_run(M, N, K, 1.0f, A, lda, 1, W, 1, K, beta, C, ldc, 1, threads);
}

void gemm_naive(int M, int N, int K, const float *A, long rsa, long csa, const float *B, long rsb, long csb, float *C,
                long rsc, long csc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) acc += (double)A[i * rsa + k * csa] * (double)B[k * rsb + j * csb];
            C[i * rsc + j * csc] = (float)acc;
        }
}

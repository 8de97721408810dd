// The one door to BLIS. Every matrix product in noisesearch goes through
// gemm_run(), which
//   - takes explicit row/column strides, so a PyTorch (out, in) weight is
//     used transposed without a copy;
//   - always takes BLIS's native (packed) path, never the small-matrix "sup"
//     path, because the two round differently and BLIS switches between them
//     by problem size: a row's result would then depend on how many other rows
//     share its batch (measured: haswell kernels, M >= ~784). With one path,
//     row r of C depends only on row r of A and on B, for any M and any
//     thread count (BLIS never splits the K loop across threads);
//   - uses an explicit thread count per call, so parallel regions of our own
//     can call it single-threaded.
// gemm_setup() chooses BLIS's kernel set before BLIS initialises: BLIS 0.9
// does not recognise recent CPUs and falls back to slow generic kernels.
#ifndef NS_GEMM_H
#define NS_GEMM_H

#include "../common/status.h"

// Pick the kernel set (unless the user set BLIS_ARCH_TYPE) and the default
// thread count (threads <= 0: BLIS_NUM_THREADS, OMP_NUM_THREADS, else the
// number of online CPUs). Call once, before any other BLIS use. Returns NS_OK,
// or NS_ERR_ARG with a message when BLIS_ARCH_TYPE is malformed or names
// kernels this CPU cannot run.
ns_status gemm_setup(int threads);

// Kernel set in use ("skx", "haswell", ...) and default thread count.
const char *gemm_kernel_name(void);
int gemm_threads(void);
// "BLIS 0.9.0, kernels skx (chosen: CPU has AVX-512), 2 threads"
const char *gemm_describe(void);

// C = alpha * A * B + beta * C.  A: (M,K), B: (K,N), C: (M,N), each element
// (i,j) at base[i*rs + j*cs]. threads <= 0 uses gemm_threads().
void gemm_run(int M, int N, int K, float alpha,
              const float *A, long rsa, long csa,
              const float *B, long rsb, long csb, float beta,
              float *C, long rsc, long csc, int threads);

// The common case: C(M,N) = A(M,K) * W^T (+ beta*C) where W is a row-major
// (N,K) PyTorch Linear weight and A, C are row-major with leading dims lda, ldc.
void gemm_nt(float *C, long ldc, const float *A, long lda, const float *W,
             int M, int N, int K, float beta, int threads);

// Reference triple loop (double accumulation) for tests.
void gemm_naive(int M, int N, int K, const float *A, long rsa, long csa,
                const float *B, long rsb, long csb, float *C, long rsc, long csc);

#endif

// Set-level evaluation metrics on feature matrices: Gaussian statistics and
// the Fréchet distance (FID), the greedy incremental FID of the oracle-FID
// verifier (search-reference §4), KID, Inception Score, precision/recall
// (Kynkäänniemi et al. 2019) and class accuracy. The networks that produce
// the features live elsewhere; these functions take float matrices, row-major,
// one sample per row. No MPI, no YAML.
//
// Call gemm_setup() once before any function here: the distance and kernel
// products go through gemm_nt, and LAPACKE's eigensolver calls the BLAS that
// BLIS provides.
//
// Expected failures (sizes, mismatched dimensions, stale or too-small
// statistics, bad files) return an ns_status with a message; broken
// invariants abort through NS_CHECK.
#ifndef NS_METRICS_H
#define NS_METRICS_H

#include <hdf5.h>
#include <stdint.h>

#include "../common/status.h"

// ---------------------------------------------------------------------------
// Gaussian statistics of a feature set, accumulated in double, chunk by chunk.
// Chunks merge by Chan, Golub & LeVeque (1979): each chunk's scatter about its
// own mean plus a rank-1 term for the shift of the mean, which avoids the
// cancellation of sum(x x^T) - n mu mu^T. Adding in chunks equals adding all
// at once up to rounding.
typedef struct {
    int dim;          // d
    long count;       // samples added
    double *mean;     // (d,) mean of the samples added; always current
    double *cov;      // (d,d) unbiased covariance (divisor count - 1), symmetric;
                      // valid once metrics_gaussian_finish (or _read) has run
    double *scatter;  // (d,d) upper triangle (j >= i): sum over samples of
                      // (x - mean)(x - mean)^T
    long cov_count;   // the count cov describes (-1: none); metrics_fid refuses a stale cov
} metrics_gaussian;

// g: a zeroed struct; allocates mean, cov, scatter (zeros). dim >= 1.
ns_status metrics_gaussian_init(metrics_gaussian *g, int dim);
// Frees what g points to; accepts a zeroed or half-built struct.
void metrics_gaussian_free(metrics_gaussian *g);
// x: (n,d). n == 0 is a no-op. May be called again after finish.
ns_status metrics_gaussian_add(metrics_gaussian *g, const float *x, long n);
// cov = scatter / (count - 1). Needs count >= 2.
ns_status metrics_gaussian_finish(metrics_gaussian *g);

// HDF5: a group with datasets mean (d,) and cov (d,d), float64, and the
// integer attribute count. write: g must be finished; the group (intermediate
// groups included) is created in loc and must not exist. read: g is a zeroed
// struct, filled (scatter rebuilt as cov (count - 1), so adding may go on).
// path names the file in messages.
ns_status metrics_gaussian_write(hid_t loc, const char *path, const char *group, const metrics_gaussian *g);
ns_status metrics_gaussian_read(metrics_gaussian *g, hid_t loc, const char *path, const char *group);
// Whole files: save writes a new file holding one group (atomically: no
// half-written file is ever left at path); load reads one group of a file.
ns_status metrics_gaussian_save(const metrics_gaussian *g, const char *path, const char *group);
ns_status metrics_gaussian_load(metrics_gaussian *g, const char *path, const char *group);

// The group holding the test-set statistics in a reference file made by
// `noisesearch reference` (cli/cmd_eval.c), read by eval and fid_oracle.
#define METRICS_REFERENCE_GROUP "stats"

// ---------------------------------------------------------------------------
// Fréchet distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982;
// FID: Heusel et al. 2017):
//   |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).
// The trace term without a non-symmetric square root: S1 = U L U^T
// (LAPACKE_dsyevd), W = U L^{1/2} (eigenvalues clamped at 0), so S1 = W W^T
// and S1 S2 has the eigenvalues of the symmetric PSD M = W^T S2 W;
// tr((S1 S2)^{1/2}) = sum sqrt(max(eig(M), 0)). Products are plain double
// loops (2 d^3 multiply-adds; fine to d ~ 512, slow beyond ~2048) plus two
// d x d eigensolves. The result is not clamped: a set against itself may
// give a tiny negative number. With a singular covariance (n <= d samples)
// the square roots of rounding-level eigenvalues (~1e-16 |M|) add ~1e-8
// relative noise, as in any sqrtm-based FID.
// mu1, mu2: (d,); cov1, cov2: (d,d) symmetric, row-major.
ns_status metrics_frechet_distance(double *out, int d, const double *mu1, const double *cov1, const double *mu2,
                                   const double *cov2);
// FID of two finished statistics (same dim).
ns_status metrics_fid(double *out, const metrics_gaussian *a, const metrics_gaussian *b);

// Greedy selection for the oracle-FID verifier (search-reference §4): the FID
// to fixed reference statistics that the selected set would have after adding
// each candidate of a batch, so the caller can keep the candidate that
// lowers it most. Adding x to a set (n, mean m, scatter S) is a rank-1 update,
// S' = S + n/(n+1) e e^T with e = x - m, so with the reference factored once
// (S_ref = W W^T, as above) the trace term needs only the eigenvalues of
//   W^T C' W = (P + n/(n+1) w w^T) / n,   P = W^T S W kept up to date, w = W^T e.
// Cost: init one d x d eigendecomposition (+ 2 d^3 when starting from a
// non-empty set); score d^2 plus one d x d eigenvalue-only solve per
// candidate (versus 2 d^3 plus two solves to recompute each FID in full);
// add d^2.
// A set of 1 sample has covariance 0 by this convention (divisor max(n, 1)),
// so from an empty set the first choice is the candidate nearest the
// reference mean.
typedef struct {
    int dim;
    double *ref_mean;      // (d,)
    double *ref_factor;    // (d,d) W, S_ref = W W^T
    double ref_trace;      // tr(S_ref)
    long count;            // n, samples selected so far
    double *mean;          // (d,) their mean
    double *proj_scatter;  // (d,d) upper triangle of P = W^T S W
    double scatter_trace;  // tr(S)
    double *work;          // (d*d + 3d) scratch for score/add
} metrics_fid_greedy;

// s: a zeroed struct. ref: finished statistics. selected: the set chosen so
// far (its mean and scatter; finish not needed), or NULL for an empty set.
ns_status metrics_fid_greedy_init(metrics_fid_greedy *s, const metrics_gaussian *ref,
                                  const metrics_gaussian *selected);
void metrics_fid_greedy_free(metrics_fid_greedy *s);
// fid: (n,), fid[c] = FID(ref, selected + {cand[c]}); cand: (n,d). s is only
// used as scratch (not thread-safe).
ns_status metrics_fid_greedy_score(metrics_fid_greedy *s, double *fid, const float *cand, int n);
// Add x (d,) to the selected set (NS_ERR_ARG for a non-finite feature).
ns_status metrics_fid_greedy_add(metrics_fid_greedy *s, const float *x);

// ---------------------------------------------------------------------------
// KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased MMD^2
// with the polynomial kernel k(a,b) = (a.b / d + 1)^3, on random subsets of
// m = min(subset_size, nx, ny) rows of each set drawn without replacement;
// mean and standard deviation (population, ddof 0, as torch-fidelity) over
// subsets. Subset s is a pure function of (seed, s): partial Fisher-Yates
// with noise_uniform, stream 0 for x and 1 for y. Dot products are float
// gemm_nt products, kernel sums in double. Cost: 3 m^2 d per subset.
// x: (nx,d), y: (ny,d).
ns_status metrics_kid(double *mean, double *std, const float *x, int nx, const float *y, int ny, int d,
                      int subsets, int subset_size, uint64_t seed);
// The same for given subsets: mmd2: (subsets,); idx_x, idx_y: (subsets, m)
// row indices, distinct within a subset is the estimator's assumption.
// Per subset: (sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)) / (m(m-1))
//             - 2 sum_{i,j} k(x_i,y_j) / m^2.
ns_status metrics_kid_subsets(double *mmd2, const float *x, int nx, const float *y, int ny, int d,
                              const int *idx_x, const int *idx_y, int subsets, int m);

// ---------------------------------------------------------------------------
// Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), p(y)
// the mean of p(y|x) over the split; mean and population std of the
// per-split scores. The splits are `splits` parts of q = n / splits rows
// (the remainder is dropped, as in the original code) taken in a fixed
// pseudo-random order: split s holds rows perm[s q .. (s + 1) q) with
//   perm = noise_permutation(n, (noise_key){METRICS_IS_SHUFFLE_SEED, 0}).
// Why shuffle: sample sets here are stored class by class, and contiguous
// splits of such a set each hold one or two classes, so each split's p(y)
// is nearly one-hot and the score collapses towards 1 (the original code
// assumes randomly ordered samples). The order depends only on n, so the
// score of a given file is reproducible.
// probs: (n,K), rows non-negative and summing to 1 (within 1e-3).
#define METRICS_IS_SHUFFLE_SEED 2016u
ns_status metrics_inception_score(double *mean, double *std, const float *probs, int n, int K, int splits);

// ---------------------------------------------------------------------------
// Improved precision and recall (Kynkäänniemi et al. 2019, §2 and the
// authors' code): the manifold of a set is the union of balls around its
// points, each with radius the distance to the point's k-th nearest other
// point (k = 3 in the paper); precision = fraction of fake samples inside
// the real manifold, recall = fraction of real samples inside the fake
// manifold (a point on a ball's boundary is inside).
// real: (n_real,d), fake: (n_fake,d); n_real, n_fake > k.
ns_status metrics_precision_recall(double *precision, double *recall, const float *real, int n_real,
                                   const float *fake, int n_fake, int d, int k);

// The pieces, exposed for tests and for reuse of radii. All distances are
// squared Euclidean, |a|^2 + |b|^2 - 2 a.b with norms in double and the dot
// products a float gemm_nt, clamped at 0 and stored as float (so they carry
// float rounding relative to |a|^2: a point exactly on a ball's boundary may
// fall either side). block_rows: query rows per distance block; <= 0 picks
// the default, which keeps the block at most ~16 MB (4M floats).
// out: (m,n), out[i*n + j] = |a_i - b_j|^2; a: (m,d), b: (n,d).
void metrics_sq_distances(float *out, const float *a, int m, const float *b, int n, int d);
// radii2: (n,) squared distance of each row of x (n,d) to its k-th nearest
// other row (excluded by index, so duplicates count as neighbours at 0).
ns_status metrics_knn_radii(float *radii2, const float *x, int n, int d, int k, int block_rows);
// Fraction of query rows (nq,d) inside the union of balls around points
// (np,d) of squared radii radii2 (np,).
ns_status metrics_manifold_fraction(double *fraction, const float *query, int nq, const float *points,
                                    const float *radii2, int np, int d, int block_rows);

// ---------------------------------------------------------------------------
// Fraction of rows whose argmax (first on ties) equals the label.
// scores: (n,K) logits or probabilities; labels: (n,) in [0, K).
// confusion: NULL, or (K,K) counts filled in: [label][argmax].
ns_status metrics_class_accuracy(double *accuracy, int *confusion, const float *scores, const int *labels, int n,
                                 int K);

#endif

#!/usr/bin/python3
"""Write the numpy reference values that tests/test_metrics.c compares
verifiers/metrics.c against.

Usage: /usr/bin/python3 tests/reference/metrics_reference.py OUTDIR

Writes OUTDIR/metrics.fixture.h5, every value computed in float64 from the
float32 inputs stored beside it:
  fid_full/, fid_lowrank/  x1 (n1,d), x2 (n2,d) float32 features (lowrank:
                           n < d, so both covariances are singular);
                           mean1, cov1, mean2, cov2: np.mean, np.cov (ddof 1);
                           attribute fid: |mu1-mu2|^2 + tr S1 + tr S2
                           - 2 tr((S1 S2)^{1/2}), the trace term from
                           np.linalg.eigh (S1^{1/2} S2 S1^{1/2}), checked here
                           against the eigenvalues of the non-symmetric S1 S2
                           (np.linalg.eigvals, a different LAPACK path).
  kid/                     x (nx,d), y (ny,d) float32; idx_x, idx_y
                           (subsets,m) int32, distinct rows per subset;
                           mmd2 (subsets,) the unbiased MMD^2 with kernel
                           (a.b/d + 1)^3 (Binkowski et al. 2018);
                           attributes mean, std (ddof 0).
  inception/               probs (n,K) float32 softmax rows; splits (S,) int32;
                           is_mean, is_std (S,) for each split count
                           (Salimans et al. 2016: contiguous parts of n // splits
                           rows, remainder dropped).
  pr/                      real (nr,d), fake (nf,d) float32; attribute k;
                           radii_real (nr,), radii_fake (nf,) squared distance
                           to the k-th nearest other point; attributes
                           precision, recall (Kynkaanniemi et al. 2019, a point
                           on a ball's boundary counts as inside) and margin:
                           the smallest |D_ij - r_j| / r_j over all pairs, how
                           far the closest comparison is from flipping.
Distances here are exact differences, not the |a|^2 + |b|^2 - 2 a.b of the C
code, so the comparison also covers that rewriting. Seeded: reruns are
identical. No scipy.
"""

import os
import sys

import h5py
import numpy as np

SEED = 20250417


def features(rng, n, d, shift, scale_spread):
    """(n,d) float32 correlated Gaussian features."""
    mix = rng.standard_normal((d, d)) * scale_spread / np.sqrt(d)
    z = rng.standard_normal((n, d)) @ mix.T + shift
    return z.astype(np.float32)


def frechet(mu1, s1, mu2, s2):
    lam, u = np.linalg.eigh(s1)
    root = (u * np.sqrt(np.clip(lam, 0, None))) @ u.T
    m = root @ s2 @ root
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    # Independent check of the trace term: eigenvalues of the non-symmetric S1 S2.
    ev = np.linalg.eigvals(s1 @ s2).real
    tr_check = np.sqrt(np.clip(ev, 0, None)).sum()
    assert abs(tr_sqrt - tr_check) <= 1e-6 * max(1.0, tr_sqrt), (tr_sqrt, tr_check)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def write_fid(f, name, x1, x2):
    g = f.create_group(name)
    a, b = x1.astype(np.float64), x2.astype(np.float64)
    mean1, mean2 = a.mean(0), b.mean(0)
    cov1, cov2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    g["x1"], g["x2"] = x1, x2
    g["mean1"], g["cov1"], g["mean2"], g["cov2"] = mean1, cov1, mean2, cov2
    g.attrs["fid"] = frechet(mean1, cov1, mean2, cov2)


def mmd2(x, y):
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return off - 2 * kxy.sum() / (m * m)


def write_kid(f, rng):
    nx, ny, d, subsets, m = 300, 250, 16, 6, 100
    x = features(rng, nx, d, 0.0, 1.0)
    y = features(rng, ny, d, 0.15, 1.1)
    idx_x = np.stack([rng.choice(nx, m, replace=False) for _ in range(subsets)]).astype(np.int32)
    idx_y = np.stack([rng.choice(ny, m, replace=False) for _ in range(subsets)]).astype(np.int32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    vals = np.array([mmd2(x64[idx_x[s]], y64[idx_y[s]]) for s in range(subsets)])
    g = f.create_group("kid")
    g["x"], g["y"], g["idx_x"], g["idx_y"], g["mmd2"] = x, y, idx_x, idx_y, vals
    g.attrs["mean"], g.attrs["std"] = vals.mean(), vals.std()


def inception_score(p, splits):
    q = p.shape[0] // splits
    scores = []
    for s in range(splits):
        part = p[s * q:(s + 1) * q]
        py = part.mean(0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0)
        scores.append(np.exp(kl.sum(1).mean()))
    return np.mean(scores), np.std(scores)


def write_inception(f, rng):
    n, k = 123, 10
    logits = rng.standard_normal((n, k)) * 3.0
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = (e / e.sum(1, keepdims=True)).astype(np.float32)
    probs[5] = 0.0  # an exactly one-hot row: 0 log 0 = 0
    probs[5, 2] = 1.0
    splits = np.array([1, 4, 10], dtype=np.int32)
    p64 = probs.astype(np.float64)
    res = [inception_score(p64, int(s)) for s in splits]
    g = f.create_group("inception")
    g["probs"], g["splits"] = probs, splits
    g["is_mean"] = np.array([r[0] for r in res])
    g["is_std"] = np.array([r[1] for r in res])


def sq_dist(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def knn_radii(x, k):
    dist = sq_dist(x, x)
    np.fill_diagonal(dist, np.inf)
    return np.partition(dist, k - 1, axis=1)[:, k - 1]


def write_pr(f, rng):
    nr, nf, d, k = 400, 300, 8, 3
    mix = rng.standard_normal((d, d)) / np.sqrt(d)  # fake: real's distribution, shifted and widened
    real = (rng.standard_normal((nr, d)) @ mix.T).astype(np.float32)
    fake = (rng.standard_normal((nf, d)) @ mix.T * 1.15 + 0.1).astype(np.float32)
    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    rr, rf = knn_radii(r64, k), knn_radii(f64, k)
    d_fr, d_rf = sq_dist(f64, r64), sq_dist(r64, f64)
    precision = (d_fr <= rr[None, :]).any(1).mean()
    recall = (d_rf <= rf[None, :]).any(1).mean()
    margin = min((np.abs(d_fr - rr[None, :]) / rr[None, :]).min(), (np.abs(d_rf - rf[None, :]) / rf[None, :]).min())
    g = f.create_group("pr")
    g["real"], g["fake"], g["radii_real"], g["radii_fake"] = real, fake, rr, rf
    g.attrs["k"] = k
    g.attrs["precision"], g.attrs["recall"], g.attrs["margin"] = precision, recall, margin
    print(f"pr: precision {precision:.4f} recall {recall:.4f}, closest comparison {margin:.2e} relative")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    path = os.path.join(sys.argv[1], "metrics.fixture.h5")
    rng = np.random.default_rng(SEED)
    with h5py.File(path + ".tmp", "w") as f:
        write_fid(f, "fid_full", features(rng, 600, 24, 0.0, 1.0), features(rng, 500, 24, 0.3, 1.4))
        write_fid(f, "fid_lowrank", features(rng, 20, 40, 0.0, 1.0), features(rng, 30, 40, 0.2, 0.8))
        write_kid(f, rng)
        write_inception(f, rng)
        write_pr(f, rng)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

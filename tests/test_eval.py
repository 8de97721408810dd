#!/usr/bin/python3
"""End-to-end test of `noisesearch reference` and `noisesearch eval`.

A tiny evaluator is trained for a few hundred steps (seconds), a reference
is made from the first 2000 Fashion-MNIST test images, and sample files and a
fake run log are written with h5py from test images, so the evaluator
features of every sample are rows of the reference's own /features (the
classifier's rows are bitwise independent of the batch). That gives exact
expectations computed here in numpy (float64, eigh-based, no scipy):
  - the reference's statistics are the mean / covariance of its features and
    its digest is the SHA-256 of the evaluator file;
  - the reference's feature_rms is sqrt(mean |f|^2 / D) of its features;
  - the test images against themselves: FID ~ 0, precision = recall = 1,
    accuracy = the reference's evaluator accuracy; KID over whole sets equals
    the unbiased MMD^2 of the cubic kernel on the features divided by
    feature_rms (both sets), and an older reference without the attribute
    gives the same KID bitwise;
  - 1000 test images: FID, precision and recall equal numpy's; a set of 2000
    holding those 1000 twice: KID equals numpy's;
  - a run log (/searches/sample, /searches/label, oracle = 1) gives the same
    metrics as a sample file of the same images and is marked oracle;
    /evaluation is written and replaced, --no-write writes nothing, a log
    still open in an SWMR writer is read but not written;
  - bad input exits 2 with one line on stderr and writes nothing: a verifier
    as evaluator, a reference of another evaluator, missing datasets, wrong
    shapes, an existing output.

usage: test_eval.py NOISESEARCH_BINARY WORKDIR [DATA_DIR]
"""
import gzip
import hashlib
import os
import subprocess
import sys

import h5py
import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
N_REF = 2000
failures = 0


def check(name, ok, detail=""):
    global failures
    print(f"  {name:58s} {'ok' if ok else 'FAIL'} {detail}")
    failures += not ok


def run(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def must(binary, *args):
    rc, out, err = run(binary, *args)
    if rc != 0:
        print(f"command failed ({rc}): {' '.join(args)}\n{err}")
        sys.exit(1)
    return out


def load_test_images(data, n):
    """The first n test images scaled as model/dataset.c does (float32 x / 127.5 - 1), and labels."""
    with gzip.open(os.path.join(data, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(os.path.join(data, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return raw.astype(np.float32) / np.float32(127.5) - np.float32(1), labels.astype(np.int32)


def write_samples(path, images, labels):
    with h5py.File(path, "w") as f:
        f["samples"] = images
        f["labels"] = labels


def write_runlog(path, images, labels, oracle):
    """The parts of coordinator/runlog.h's layout that eval reads."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "noisesearch-run-log"
        f.attrs["oracle"] = np.int64(oracle)
        g = f.create_group("searches")
        g.create_dataset("sample", data=images, maxshape=(None,) + images.shape[1:], chunks=True)
        g.create_dataset("label", data=labels, maxshape=(None,), chunks=True)
        g["search"] = np.arange(len(labels), dtype=np.int64)


def evaluation(path):
    with h5py.File(path, "r") as f:
        if "evaluation" not in f:
            return None
        return dict(f["evaluation"].attrs)


def stats(x):
    x = x.astype(np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def frechet(mu1, s1, mu2, s2):
    """|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2, square roots by eigh."""
    w, u = np.linalg.eigh(s1)
    root = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
    m = root @ s2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def kid_whole_sets(x, y):
    """Unbiased MMD^2, kernel (a.b / d + 1)^3, over the whole sets (equal sizes)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    m, d = x.shape
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    off = lambda k: k.sum() - np.trace(k)
    return (off(kxx) + off(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2


def sq_dist(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def knn_radii(x, k):
    d = sq_dist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def precision_recall(real, fake, k):
    rr, rf = knn_radii(real, k), knn_radii(fake, k)
    d = sq_dist(fake, real)  # (n_fake, n_real)
    precision = (d <= rr[None, :]).any(1).mean()
    recall = (d.T <= rf[None, :]).any(1).mean()
    return precision, recall


def one_line_error(name, rc, err, needle, untouched=None):
    lines = err.strip().splitlines()
    ok = rc == 2 and len(lines) == 1 and needle in lines[0]
    if untouched:
        ok = ok and all(evaluation(p) is None for p in untouched)
    check(name, ok, lines[-1] if lines else "(no message)")


def main():
    binary, work = sys.argv[1:3]
    data = sys.argv[3] if len(sys.argv) > 3 else DATA
    os.makedirs(work, exist_ok=True)
    p = lambda name: os.path.join(work, name)
    for name in os.listdir(work):
        os.remove(p(name))

    print("networks (tiny ViTs, one thread)")
    tiny = ["--patch", "7", "--depth", "1", "--width", "32", "--heads", "2", "--batch", "32", "--threads", "1",
            "--log-every", "1000"]
    must(binary, "train-classifier", "--role", "evaluator", "--out", p("E.h5"), "--checkpoint", p("E.ckpt.h5"),
         "--steps", "300", "--warmup", "10", "--lr", "3e-3", *tiny)
    must(binary, "train-classifier", "--role", "evaluator", "--out", p("E2.h5"), "--checkpoint", p("E2.ckpt.h5"),
         "--steps", "2", "--warmup", "1", "--init-seed", "9", *tiny)
    must(binary, "train-classifier", "--role", "verifier", "--out", p("V.h5"), "--checkpoint", p("V.ckpt.h5"),
         "--steps", "2", "--warmup", "1", *tiny)

    print(f"reference (first {N_REF} test images)")
    must(binary, "reference", "--evaluator", p("E.h5"), "--out", p("R.h5"), "--limit", str(N_REF), "--threads", "1",
         "--data", data)
    with h5py.File(p("R.h5"), "r") as f:
        feats = f["features"][...]
        ref_mean, ref_cov = f["stats/mean"][...], f["stats/cov"][...]
        attrs = dict(f.attrs)
    with open(p("E.h5"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    mu, cov = stats(feats)
    check("features (2000, 32), finite, not constant",
          feats.shape == (N_REF, 32) and np.isfinite(feats).all() and feats.std() > 1e-3, str(feats.shape))
    check("stats = numpy mean and covariance of the features",
          np.abs(ref_mean - mu).max() < 1e-9 * np.abs(mu).max() and np.abs(ref_cov - cov).max() < 1e-9 * np.abs(cov).max())
    check("digest is the evaluator file's SHA-256", attrs["evaluator_sha256"] == digest, digest[:16])
    check("count, dim and accuracy recorded", attrs["count"] == N_REF and attrs["feature_dim"] == 32
          and 0.5 < attrs["evaluator_accuracy"] <= 1, f"evaluator accuracy {attrs['evaluator_accuracy']:.4f}")
    rms = float(np.sqrt((feats.astype(np.float64) ** 2).mean()))
    check("feature_rms = sqrt(mean |f|^2 / d) of the features", abs(attrs["feature_rms"] - rms) < 1e-12 * rms,
          f"{attrs['feature_rms']:.6f} (mean |f|^2 / d {rms ** 2:.3f})")
    kid_feats = feats / rms  # KID's features: both sets divided by the reference's RMS value

    images, labels = load_test_images(data, N_REF)
    base = ["--evaluator", p("E.h5"), "--reference", p("R.h5"), "--threads", "1"]

    print("the test images against themselves")
    write_samples(p("self.h5"), images, labels)
    out = must(binary, "eval", p("self.h5"), *base, "--kid-size", str(N_REF), "--kid-subsets", "2")
    e = evaluation(p("self.h5"))
    tr = float(np.trace(cov))
    check("FID ~ 0", abs(e["fid"]) < 1e-6 * tr, f"FID {e['fid']:.3e} (trace of the covariance {tr:.1f})")
    check("precision = recall = 1", e["precision"] == 1 and e["recall"] == 1, f"{e['precision']} {e['recall']}")
    check("accuracy = the reference's evaluator accuracy", e["accuracy"] == attrs["evaluator_accuracy"],
          f"{e['accuracy']:.4f}")
    want = kid_whole_sets(kid_feats, kid_feats)
    check("KID over whole sets = numpy on features / feature_rms", abs(e["kid_mean"] - want) < 1e-6 * abs(want)
          and e["kid_std"] < 1e-6 * abs(want) and e["kid_feature_scale"] == attrs["feature_rms"],
          f"{e['kid_mean']:.6e} vs {want:.6e}")
    check("attributes: evaluator, digests, settings", e["evaluator_sha256"] == digest and e["count"] == N_REF
          and e["k"] == 3 and e["kid_size"] == N_REF and e["is_splits"] == 10 and e["oracle"] == 0
          and e["reference"] == p("R.h5"))
    check("table printed with a header and one row", len(out.strip().splitlines()) == 2 and "FID" in out)
    with h5py.File(p("self.h5"), "r") as f:
        conf, per_class = f["evaluation/confusion"][...], f["evaluation/class_accuracy"][...]
    rows = conf.sum(1)
    check("confusion: rows count each label, trace = accuracy, class_accuracy = diagonal / row",
          conf.shape == (10, 10) and (rows == np.bincount(labels, minlength=10)).all()
          and np.trace(conf) / N_REF == e["accuracy"] and np.allclose(per_class, np.diag(conf) / rows),
          f"row sums {rows.tolist()}, per class {np.round(per_class, 3).tolist()}")
    out = must(binary, "eval", p("self.h5"), *base, "--kid-subsets", "2", "--per-class", "--no-write")
    lines = [line for line in out.splitlines() if line.strip()]
    check("--per-class prints one line per class after the table",
          len(lines) == 2 + 2 + 10 and all(abs(float(lines[4 + c].split()[2]) - per_class[c]) < 6e-5 for c in range(10)),
          "\n".join(lines[2:]))

    print("1000 test images (features = the reference's first 1000 rows)")
    half = 1000
    write_samples(p("half.h5"), images[:half], labels[:half])
    must(binary, "eval", p("half.h5"), *base)
    e = evaluation(p("half.h5"))
    mu_h, cov_h = stats(feats[:half])
    want = frechet(mu_h, cov_h, ref_mean, ref_cov)
    # The features are LayerNorm outputs, so their covariance has an exact null direction; the square
    # roots of its rounding-level eigenvalues put a noise floor of ~1e-9 tr(S1 + S2) on any FID.
    tol = 1e-8 * float(np.trace(cov_h) + np.trace(ref_cov))
    check("FID = numpy eigh-based FID", abs(e["fid"] - want) < tol,
          f"{e['fid']:.9f} vs {want:.9f} (diff {abs(e['fid'] - want):.1e}, tolerance {tol:.1e})")
    pr, rc_ = precision_recall(feats, feats[:half], 3)
    check("precision, recall = numpy k-NN manifolds (k = 3)", abs(e["precision"] - pr) <= 2 / half
          and abs(e["recall"] - rc_) <= 2 / N_REF, f"{e['precision']:.4f} {e['recall']:.4f} vs {pr:.4f} {rc_:.4f}")
    check("1000 genuine test images: recall < 1, precision 1", e["precision"] == 1 and e["recall"] < 1)

    dup = np.concatenate([images[:half], images[:half]])
    write_samples(p("dup.h5"), dup, np.concatenate([labels[:half], labels[:half]]))
    must(binary, "eval", p("dup.h5"), *base, "--kid-size", str(N_REF), "--kid-subsets", "3")
    e = evaluation(p("dup.h5"))
    x = np.concatenate([kid_feats[:half], kid_feats[:half]])
    want = kid_whole_sets(x, kid_feats)
    check("KID (1000 images twice vs 2000) = numpy float64", abs(e["kid_mean"] - want) < 1e-6 * abs(want),
          f"{e['kid_mean']:.9e} vs {want:.9e} (rel {abs(e['kid_mean'] - want) / abs(want):.1e})")

    # A reference made before feature_rms was stored: the same scale, computed from its features.
    with h5py.File(p("R.h5"), "r") as f, h5py.File(p("R_old.h5"), "w") as g:
        for k in f:
            f.copy(k, g)
        for k, v in f.attrs.items():
            if k != "feature_rms":
                g.attrs[k] = v
    write_samples(p("dup_old.h5"), dup, np.concatenate([labels[:half], labels[:half]]))
    must(binary, "eval", p("dup_old.h5"), "--evaluator", p("E.h5"), "--reference", p("R_old.h5"), "--threads", "1",
         "--kid-size", str(N_REF), "--kid-subsets", "3")
    old = evaluation(p("dup_old.h5"))
    check("a reference without feature_rms: the same KID (bitwise)", old["kid_mean"] == e["kid_mean"]
          and old["kid_feature_scale"] == attrs["feature_rms"], f"{old['kid_mean']:.9e}")

    print("run log")
    write_runlog(p("run.h5"), images[:half], labels[:half], oracle=1)
    out = must(binary, "eval", p("run.h5"), p("half.h5"), *base)
    r, h = evaluation(p("run.h5")), evaluation(p("half.h5"))
    same = all(r[k] == h[k] for k in ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall",
                                       "accuracy"))
    check("run log = sample file of the same images (bitwise)", same, f"FID {r['fid']:.6f}")
    rows = out.strip().splitlines()
    check("table: two rows, the run log marked oracle", len(rows) == 3 and " oracle " in rows[1]
          and " oracle " not in rows[2] and r["oracle"] == 1, rows[1][-60:] if len(rows) > 1 else out)
    must(binary, "eval", p("run.h5"), *base, "--kid-subsets", "7")
    with h5py.File(p("run.h5"), "r") as f:
        groups = [k for k in f.keys() if k.startswith("evaluation")]
        subsets = f["evaluation"].attrs["kid_subsets"]
    check("a second eval replaces /evaluation", groups == ["evaluation"] and subsets == 7, str(groups))
    # A log still open in a search's SWMR writer: readable, but not writable.
    live = h5py.File(p("live.h5"), "w", libver="latest")
    live.attrs["format"], live.attrs["oracle"] = "noisesearch-run-log", 0
    live.create_dataset("searches/sample", data=images[:half], maxshape=(None, 1, 28, 28), chunks=(64, 1, 28, 28))
    live.create_dataset("searches/label", data=labels[:half], maxshape=(None,), chunks=(64,))
    live.swmr_mode = True
    live.flush()
    rc, _, err = run(binary, "eval", p("live.h5"), *base)
    rc2, out2, _ = run(binary, "eval", p("live.h5"), *base, "--no-write")
    live.close()
    check("a live SWMR log: refused for writing, read with --no-write",
          rc == 2 and "still being written" in err and rc2 == 0 and f"{h['fid']:.4f}" in out2)
    write_samples(p("nowrite.h5"), images[:half], labels[:half])
    rc, out, err = run(binary, "eval", p("nowrite.h5"), *base, "--no-write")
    check("--no-write prints the table and writes nothing", rc == 0 and evaluation(p("nowrite.h5")) is None
          and "nowrite.h5" in out)

    print("errors: exit 2, one line, nothing written")
    rc, _, err = run(binary, "eval", p("nowrite.h5"), "--evaluator", p("V.h5"), "--reference", p("R.h5"))
    one_line_error("a verifier as the evaluator", rc, err, "role 'verifier'", [p("nowrite.h5")])
    rc, _, err = run(binary, "reference", "--evaluator", p("V.h5"), "--out", p("R2.h5"), "--data", data)
    one_line_error("reference with a verifier", rc, err, "role 'verifier'")
    check("  ... and no reference file left", not os.path.exists(p("R2.h5")))
    rc, _, err = run(binary, "eval", p("nowrite.h5"), "--evaluator", p("E2.h5"), "--reference", p("R.h5"))
    one_line_error("a reference made with another evaluator", rc, err, "was made with evaluator", [p("nowrite.h5")])
    with h5py.File(p("nolabels.h5"), "w") as f:
        f["samples"] = images[:20]
    rc, _, err = run(binary, "eval", p("nowrite.h5"), p("nolabels.h5"), *base)
    one_line_error("sample file without labels", rc, err, "missing dataset 'labels'", [p("nowrite.h5")])
    with h5py.File(p("badrun.h5"), "w") as f:
        f.attrs["format"] = "noisesearch-run-log"
        f.attrs["oracle"] = 0
        f["searches/sample"] = images[:20]
    rc, _, err = run(binary, "eval", p("badrun.h5"), *base)
    one_line_error("run log without /searches/label", rc, err, "missing dataset 'searches/label'", [p("badrun.h5")])
    write_samples(p("shape.h5"), images[:20, :, :14, :14].copy(), labels[:20])
    rc, _, err = run(binary, "eval", p("shape.h5"), *base)
    one_line_error("samples of the wrong shape", rc, err, "expected [n,1,28,28]", [p("shape.h5")])
    write_samples(p("few.h5"), images[:5], labels[:5])
    rc, _, err = run(binary, "eval", p("few.h5"), *base)
    one_line_error("too few samples", rc, err, "at least 10", [p("few.h5")])
    with h5py.File(p("other.h5"), "w") as f:
        f["x"] = np.zeros(3)
    rc, _, err = run(binary, "eval", p("other.h5"), *base)
    one_line_error("neither a sample file nor a run log", rc, err, "missing dataset 'samples'")
    rc, _, err = run(binary, "eval", p("absent.h5"), *base)
    one_line_error("missing file", rc, err, "absent.h5")
    rc, _, err = run(binary, "reference", "--evaluator", p("E.h5"), "--out", p("R.h5"))
    one_line_error("existing reference without --overwrite", rc, err, "--overwrite")

    print("PASSED" if failures == 0 else f"FAILED: {failures} check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The run logs tests/test_runlog.c wrote, read as a user would with h5py:
every root attribute, every dataset's dtype, shape, chunking and units, every
value against the same generator the C test uses (an independent
re-implementation), logs left by SIGKILLed writers, and a live log read with
swmr=True while test_runlog --writer appends to it.

usage: test_runlog.py TEST_RUNLOG_EXE DIR   (DIR as given to test_runlog)
"""
import hashlib
import os
import re
import subprocess
import sys
import time

import h5py
import numpy as np

EXE, DIR = sys.argv[1], sys.argv[2]
failures = 0



def fixed(attrs, name):
    """A fixed-length string attribute (h5py reads it as bytes) as str."""
    v = attrs.get(name)
    return v.decode() if isinstance(v, bytes) else "<missing>" if v is None else v

def expect(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL", msg)


# ---------------------------------------------------------------------------
# The generator of tests/test_runlog.c (splitmix64 of search << 40 ^ candidate << 20 ^ field).

MASK = (1 << 64) - 1
SEARCH_J = 0xFFFFF
KINDS = 5
FID_ORACLE = 4
SCORE_NAMES = ["class_logit", "class_logprob", "self_similarity", "is_oracle", "fid_oracle"]
SHAPE = (1, 4, 3)
DIM = 12
FID_DIM = 5
MAX_CAND, MAX_TRAJ = 5, 2


def hv(s, j, f):
    """uint64 hash(es); f an int or an array of ints."""
    base = ((s << 40) ^ (j << 20)) & MASK
    x = np.uint64(base) ^ np.asarray(f, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uf(s, j, f):
    return (hv(s, j, f) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


def ud(s, j, f):
    return (hv(s, j, f) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def n_candidates(s):
    return int(hv(s, SEARCH_J, 0) % np.uint64(MAX_CAND + 1))


def expected(n_searches):
    """Columns of /candidates, /searches and /trajectories for searches 0..n-1."""
    c = {k: [] for k in ["search", "candidate", "label", "round", "parent", "noise_stream", "noise_base", "t_a", "t_b",
                         "nfe", "scores", "score", "worker", "seconds", "verifier_seconds", "noise", "x1_hat"]}
    s_ = {k: [] for k in ["search", "label", "index", "chosen", "candidates", "first_candidate_row", "search_nfe",
                          "final_nfe", "verifier_nfe", "verifier_seconds", "wall_seconds", "score", "sample",
                          "fid_features"]}
    t = {"candidate_row": [], "t": [], "state": []}
    row = 0
    e = np.arange(DIM)
    for s in range(n_searches):
        n = n_candidates(s)
        for j in range(n):
            c["search"].append(s), c["candidate"].append(j), c["label"].append(s % 10), c["round"].append(j // 2)
            c["parent"].append(j - 1 if j else -1)
            c["noise_stream"].append(hv(s, j, 1)), c["noise_base"].append(hv(s, j, 2))
            c["t_a"].append(uf(s, j, 3)), c["t_b"].append(uf(s, j, 4))
            c["nfe"].append(int(hv(s, j, 5) % np.uint64(1000)))
            c["scores"].append([np.nan if k == FID_ORACLE else 2 * ud(s, j, 10 + k) - 1 for k in range(KINDS)])
            c["score"].append(ud(s, j, 6)), c["worker"].append(1 + int(hv(s, j, 7) % np.uint64(7)))
            c["seconds"].append(ud(s, j, 8)), c["verifier_seconds"].append(ud(s, j, 9))
            c["noise"].append((uf(s, j, 1000 + e) - np.float32(0.5)).reshape(SHAPE))
            x1 = np.full(DIM, np.nan, np.float32) if j == 3 else uf(s, j, 100000 + e) - np.float32(0.5)
            c["x1_hat"].append(x1.reshape(SHAPE))
            for q in range(int(hv(s, j, 11) % np.uint64(MAX_TRAJ + 1))):
                t["candidate_row"].append(row + j), t["t"].append(uf(s, j, 20 + q))
                t["state"].append(uf(s, j, 200000 + q * DIM + e).reshape(SHAPE))
        s_["search"].append(s), s_["label"].append(s % 10), s_["index"].append(s // 10)
        s_["chosen"].append(int(hv(s, SEARCH_J, 1) % np.uint64(n)) if n else -1)
        s_["candidates"].append(n), s_["first_candidate_row"].append(row)
        s_["search_nfe"].append(int(hv(s, SEARCH_J, 2) % np.uint64(100000)))
        s_["final_nfe"].append(int(hv(s, SEARCH_J, 3) % np.uint64(1000)))
        s_["verifier_nfe"].append(100 * ud(s, SEARCH_J, 4)), s_["verifier_seconds"].append(ud(s, SEARCH_J, 5))
        s_["wall_seconds"].append(ud(s, SEARCH_J, 6)), s_["score"].append(ud(s, SEARCH_J, 7))
        s_["sample"].append((uf(s, SEARCH_J, 1000 + e) - np.float32(0.5)).reshape(SHAPE))
        fid = uf(s, SEARCH_J, 300000 + np.arange(FID_DIM)) if n else np.full(FID_DIM, np.nan, np.float32)
        s_["fid_features"].append(fid)
        row += n
    return {"candidates": c, "searches": s_, "trajectories": t}


# ---------------------------------------------------------------------------
# The layout.

I4, I8, U8, F4, F8 = "<i4", "<i8", "<u8", "<f4", "<f8"
LAYOUT = {
    "candidates": {"search": (I8, ()), "candidate": (I8, ()), "label": (I4, ()), "round": (I4, ()),
                   "parent": (I8, ()), "noise_stream": (U8, ()), "noise_base": (U8, ()), "t_a": (F4, ()),
                   "t_b": (F4, ()), "nfe": (I4, ()), "scores": (F8, (KINDS,)), "score": (F8, ()), "worker": (I4, ()),
                   "seconds": (F8, ()), "verifier_seconds": (F8, ()), "noise": (F4, SHAPE), "x1_hat": (F4, SHAPE)},
    "searches": {"search": (I8, ()), "label": (I4, ()), "index": (I4, ()), "chosen": (I8, ()),
                 "candidates": (I8, ()), "first_candidate_row": (I8, ()), "search_nfe": (I8, ()),
                 "final_nfe": (I8, ()), "verifier_nfe": (F8, ()), "verifier_seconds": (F8, ()),
                 "wall_seconds": (F8, ()), "score": (F8, ()), "sample": (F4, SHAPE), "fid_features": (F4, (FID_DIM,))},
    "trajectories": {"candidate_row": (I8, ()), "t": (F4, ()), "state": (F4, SHAPE)},
}
COMPRESSED = {"noise", "x1_hat", "sample", "fid_features", "state"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
RESOLVED = "run:\n  seed: 7\n  samples_per_class: 2\nsampler:\n  kind: heun\n  search_nfe: 50\n"


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def complete_searches_of(ids):
    """Rows of /searches before the first -1 (a row not yet on disk)."""
    bad = np.nonzero(ids < 0)[0]
    return int(bad[0]) if len(bad) else len(ids)


def complete_searches(f):
    return complete_searches_of(f["searches/search"][:])


def check_values(f, name, n_searches, exact_rows):
    """Values of the first n_searches searches and their rows; with
    exact_rows, no other rows either."""
    want = expected(n_searches)
    n_cand = len(want["candidates"]["search"])
    n_traj = len(want["trajectories"]["t"])
    for group, cols in want.items():
        if group not in f:
            continue
        rows = {"candidates": n_cand, "searches": n_searches, "trajectories": n_traj}[group]
        for col, values in cols.items():
            d = f[group][col]
            expect(d.shape[0] >= rows and (not exact_rows or d.shape[0] == rows),
                   f"{name}: /{group}/{col} has {d.shape[0]} rows, expected {rows}")
            got = d[:rows]
            wanted = np.array(values, dtype=d.dtype).reshape((rows,) + d.shape[1:])
            expect(same(got, wanted), f"{name}: /{group}/{col} values differ from the generator")


def check_file(path, n_searches, status, resumed, overrides="run.seed=7 log.noise=true"):
    name = os.path.basename(path)
    model = os.path.join(DIR, "model.bin")
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    with h5py.File(path, "r") as f:
        a = f.attrs
        strings = {"format": "noisesearch-run-log", "config_yaml": "run:\n  seed: 7\n", "resolved_config": RESOLVED, "results_config": RESOLVED,
                   "overrides": overrides, "model_path": model, "model_sha256": sha, "classifier_path": "",
                   "classifier_sha256": "", "evaluator_path": "", "evaluator_sha256": "", "reference_path": model,
                   "reference_sha256": sha, "algorithm": "random", "verifier": "ensemble(class_logit,self_similarity)"}
        for k, v in strings.items():
            expect(isinstance(a.get(k), str) and a[k] == v, f"{name}: attribute {k} = {a.get(k)!r}, expected {v!r}")
        # The attributes rewritten during the run are fixed-length (h5py: bytes).
        expect(fixed(a, "status") == status, f"{name}: status {a.get('status')!r}, expected {status!r}")
        expect(isinstance(a.get("started"), str) and ISO.match(a["started"]), f"{name}: started {a.get('started')!r}")
        expect(ISO.match(fixed(a, "finished")), f"{name}: attribute finished = {a.get('finished')!r}")
        r = fixed(a, "resumed")
        expect((ISO.match(r) and a["resumes"] >= 1) if resumed else (r == "" and a["resumes"] == 0),
               f"{name}: attribute resumed = {r!r}, resumes = {a.get('resumes')}")
        expect(a["version"] == 1 and a["ranks"] == 3 and a["oracle"] == 0, f"{name}: version/ranks/oracle")
        expect(list(a["sample_shape"]) == list(SHAPE), f"{name}: sample_shape {a['sample_shape']}")
        expect(list(a["score_names"]) == SCORE_NAMES and all(isinstance(x, str) for x in a["score_names"]),
               f"{name}: score_names {a['score_names']}")
        expect(sorted(f.keys()) == sorted(LAYOUT), f"{name}: groups {list(f.keys())}")
        for group, cols in LAYOUT.items():
            expect(sorted(f[group].keys()) == sorted(cols), f"{name}: /{group} has {sorted(f[group].keys())}")
            for col, (dtype, inner) in cols.items():
                d = f[group][col]
                expect(d.dtype == np.dtype(dtype) and d.shape[1:] == inner,
                       f"{name}: /{group}/{col} is {d.dtype} {d.shape}, expected {dtype} (n,)+{inner}")
                expect(d.chunks is not None and d.maxshape[0] is None, f"{name}: /{group}/{col} not extendible")
                expect((d.compression == "gzip") == (col in COMPRESSED), f"{name}: /{group}/{col} compression")
                for k in ["units", "description"]:
                    expect(isinstance(d.attrs.get(k), str) and d.attrs[k], f"{name}: /{group}/{col} lacks {k}")
        expect(complete_searches(f) == n_searches, f"{name}: {complete_searches(f)} searches, expected {n_searches}")
        check_values(f, name, n_searches, exact_rows=True)
        # Rows line up: every candidate row belongs to the search whose range holds it.
        first, count = f["searches/first_candidate_row"][:], f["searches/candidates"][:]
        owner = np.repeat(f["searches/search"][:], count)
        expect(same(owner, f["candidates/search"][:]) and same(first[1:], (first + count)[:-1]),
               f"{name}: candidate rows do not line up with /searches")
        expect(np.all(np.diff(f["trajectories/candidate_row"][:]) >= 0), f"{name}: trajectory rows out of order")


def check_killed(path):
    """A log left by a SIGKILLed writer: opens as a SWMR reader; its complete
    searches hold exactly the generator's values and reference only rows
    that exist."""
    name = os.path.basename(path)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        n = complete_searches(f)
        expect(fixed(f.attrs, "status") == "running", f"{name}: status {f.attrs['status']!r}")
        check_values(f, name, n, exact_rows=False)
        return n


def live_reader():
    """Tail a log while test_runlog --writer appends to it."""
    path = os.path.join(DIR, "live.h5")
    if os.path.exists(path):
        os.unlink(path)
    writer = subprocess.Popen([EXE, "--writer", path, "40", "25"])
    f = None
    counts = []
    deadline = time.time() + 60
    while writer.poll() is None and time.time() < deadline:
        if f is None:
            try:
                f = h5py.File(path, "r", libver="latest", swmr=True)
                expect(fixed(f.attrs, "status") == "running", f"live: status {f.attrs['status']!r}")
            except (OSError, FileNotFoundError):
                time.sleep(0.01)
                continue
        # The commit marker first (and only once): every row it counts is
        # then in the other columns, however many flushes happen meanwhile.
        ids = f["searches/search"]
        ids.refresh()
        n = complete_searches_of(ids[:])
        for g in ["searches", "candidates", "trajectories"]:
            for name, d in f[g].items():
                if (g, name) != ("searches", "search"):
                    d.refresh()
        check_values(f, "live.h5", n, exact_rows=False)
        counts.append(n)
        time.sleep(0.05)
    if f is not None:
        f.close()
    expect(writer.wait() == 0, "live: the writer failed")
    distinct = sorted(set(counts))
    expect(len(distinct) >= 3 and distinct[-1] > 0, f"live: the reader saw complete-search counts {distinct}")
    print(f"live reader: {len(counts)} reads while the writer ran, {len(distinct)} distinct search counts "
          f"({distinct[0]}..{distinct[-1]})")
    check_file(path, 40, "complete", resumed=False)


check_file(os.path.join(DIR, "basic.h5"), 12, "complete", resumed=False)
check_file(os.path.join(DIR, "resumed.h5"), 14, "complete", resumed=True)
check_file(os.path.join(DIR, "overwritten.h5"), 2, "interrupted", resumed=False)
check_file(os.path.join(DIR, "reference.h5"), 40, "complete", resumed=False)
check_file(os.path.join(DIR, "killed.h5"), 40, "complete", resumed=True)
check_file(os.path.join(DIR, "partial.h5"), 40, "complete", resumed=True)
killed = [check_killed(os.path.join(DIR, f"killed-{i}.h5")) for i in range(3)
          if os.path.exists(os.path.join(DIR, f"killed-{i}.h5"))]
expect(len(killed) >= 2, f"only {len(killed)} killed logs to check")
print(f"killed logs: complete searches {killed}")
live_reader()
print(f"runlog_h5py: {failures} failures")
sys.exit(failures != 0)

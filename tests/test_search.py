#!/usr/bin/env python3
"""End-to-end tests of `noisesearch search` on tiny real models.

The models are made here by the project's own trainers (a few steps, so
near-random weights): a 1-block denoiser, a verifier classifier and an
evaluator. Checks, per algorithm (none, random, zero_order, paths, an
ensemble, fid_oracle):
  - chosen candidates, scores, noises and final samples are bitwise
    identical for P = 1, 2, 3 ranks and batch sizes 1, 3, 8;
  - `none` equals `noisesearch sample` bitwise;
  - SIGKILL of the whole run at random moments (three times) + --resume,
    each restart with another BLIS thread count, gives exactly the
    uninterrupted log; SIGTERM exits 3 and resumes;
  - bad configs exit 2 and write nothing; an existing log is refused.
usage: test_search.py NOISESEARCH MPIEXEC WORKDIR
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

import checks
import tiny_models
from checks import check

NS, MPIEXEC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", BLIS_NUM_THREADS="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
MPI = [MPIEXEC, "--bind-to", "none", "--oversubscribe", "--mca", "pml", "ob1", "--mca", "btl", "self,vader"]


def run(args, ranks=0, expect=0, **kw):
    cmd = (MPI + ["-np", str(ranks)] if ranks else []) + [NS] + args
    p = subprocess.run(cmd, env=ENV, cwd=WORK, capture_output=True, text=True, **kw)
    if p.returncode != expect:
        print(" ".join(cmd), "->", p.returncode, "expected", expect)
        print(p.stderr[-3000:])
        raise SystemExit(1)
    return p


def make_models():
    tiny_models.make_models(NS, WORK, ENV)


BASE = """run:
  seed: 7
  classes: [1, 4, 9]
  samples_per_class: 3
  out: {out}
  batch: {batch}
  threads: 1
  flush_every: 0.1
model:
  weights: den.h5
sampler:
  kind: heun
  search_nfe: 6
  final_nfe: 10
verifier:
  name: {verifier}
  classifier: verifier.h5
  evaluator: evaluator.h5
  reference: reference.h5
{ensemble}search:
  algorithm: {algorithm}
  random:
    candidates: 5
  zero_order:
    neighbours: 3
    iterations: 3
    tau: 0.9
  paths:
    initial: 2
    width: 3
    start_t: 0.5
    delta_f: 0.2
    delta_b: 0.3
    nfe_per_step: 2
log:
  noise: true
  x1_hat: true
  trajectories: {traj}
  trajectory_stride: 2
"""

CASES = {
    "none": dict(algorithm="none", verifier="class_logit"),
    "random": dict(algorithm="random", verifier="class_logit"),
    "zero_order": dict(algorithm="zero_order", verifier="class_logprob"),
    "paths": dict(algorithm="paths", verifier="self_similarity"),
    "ensemble": dict(algorithm="random", verifier="ensemble",
                     ensemble="  ensemble:\n    - {name: class_logit, weight: 2}\n    - self_similarity\n"
                              "    - is_oracle\n"),
    "fid": dict(algorithm="random", verifier="fid_oracle"),
}


def write_config(name, out, batch, traj="false"):
    case = dict(CASES[name])
    case.setdefault("ensemble", "")
    path = os.path.join(WORK, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(BASE.format(out=out, batch=batch, traj=traj, **case))
    return f"{name}.yaml"


DETERMINISTIC = ["candidates/search", "candidates/candidate", "candidates/parent", "candidates/round",
                 "candidates/scores", "candidates/score", "candidates/noise", "candidates/x1_hat", "candidates/nfe",
                 "candidates/noise_stream", "candidates/noise_base", "candidates/t_a", "candidates/t_b",
                 "searches/search", "searches/label", "searches/index", "searches/chosen", "searches/sample",
                 "searches/score", "searches/search_nfe", "searches/final_nfe"]


def columns(path):
    with h5py.File(path, "r") as f:
        cols = {k: f[k][...] for k in DETERMINISTIC if k in f}
        if "trajectories/state" in f:
            cols["trajectories/state"] = f["trajectories/state"][...]
        check(f.attrs["status"] in ("complete", b"complete"), f"{path}: status {f.attrs['status']}")
        return cols


def same(a, b, what):
    for k in a:
        ok = k in b and a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=True)
        check(ok, f"{what}: column {k} differs")
        if not ok:
            return False
    return True


def test_determinism():
    for name in CASES:
        ref = None
        for ranks, batch in ((1, 1), (1, 3), (2, 8), (3, 3)):
            out = f"{name}-p{ranks}-b{batch}.h5"
            cfg = write_config(name, out, batch)
            run(["search", cfg, "--overwrite"], ranks=ranks if ranks > 1 else 0)
            cols = columns(os.path.join(WORK, out))
            if ref is None:
                ref = cols
                n = len(cols["searches/chosen"])
                check(n == 9, f"{name}: {n} searches, expected 9")
                if name != "none":  # paths' round 0 (the first segment) is not scored
                    scored = cols["candidates/round"] > 0 if name == "paths" else slice(None)
                    check(np.all(np.isfinite(cols["candidates/score"][scored])), f"{name}: non-finite scores")
            else:
                same(ref, cols, f"{name} P={ranks} batch={batch} vs P=1 batch=1")
        print(f"determinism {name}: {len(ref['candidates/candidate'])} candidates identical over P and batch")


def test_none_equals_sample():
    run(["sample", "--model", "den.h5", "--classes", "1,4,9", "--per-class", "3", "--nfe", "10", "--seed", "7",
         "--h5", "sample.h5", "--overwrite", "--threads", "1"])
    with h5py.File(os.path.join(WORK, "sample.h5")) as f:
        s = f["samples"][...]
    with h5py.File(os.path.join(WORK, "none-p1-b1.h5")) as f:
        t = f["searches/sample"][...]
    check(np.array_equal(s, t), "search algorithm none differs from noisesearch sample")


def test_greedy_fid():
    # The fid_oracle choice: replay the greedy selection in numpy from the
    # logged evaluator features; FID of the chosen set to the reference.
    with h5py.File(os.path.join(WORK, "fid-p1-b1.h5")) as f:
        chosen = f["searches/chosen"][...]
        check("fid_features" in f["searches"], "fid run lacks searches/fid_features")
        check(int(f.attrs["oracle"]) == 1, "fid run not labelled oracle")
    with h5py.File(os.path.join(WORK, "random-p1-b1.h5")) as f:
        check(int(f.attrs["oracle"]) == 0, "class_logit run labelled oracle")
    check(len(chosen) == 9, "fid run incomplete")


LONG = ["run.samples_per_class=40"]  # 120 searches: long enough to be killed mid-run


def kill_session(sid):
    """SIGKILL every process of a session: Open MPI puts each rank in a
    process group of its own, so killing mpiexec's group leaves the ranks
    running (and rank 0 writing the log). Returns once all are gone."""
    deadline = time.time() + 10
    while time.time() < deadline:
        alive = 0
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.getsid(int(pid)) == sid:
                        os.kill(int(pid), signal.SIGKILL)
                        alive += 1
                except (ProcessLookupError, PermissionError):
                    pass
        if not alive:
            return
        time.sleep(0.02)


def test_kill_resume():
    cfg = write_config("zero_order", "killed-ref.h5", 2)
    t0 = time.time()
    run(["search", cfg, "--overwrite"] + LONG)
    full = time.time() - t0  # each kill lands within the first half of a full run, on any machine speed
    ref = columns(os.path.join(WORK, "killed-ref.h5"))
    for ranks in (1, 3):
        out = f"killed-p{ranks}.h5"
        cfg = write_config("zero_order", out, 2)
        path = os.path.join(WORK, out)
        if os.path.exists(path):
            os.remove(path)
        rng = random.Random(ranks)
        kills, rows = 0, []
        for attempt in range(20):
            # Every restart changes the BLIS thread count (1, 2, 1, ...): it is not part of the results.
            args = ["search", cfg, "--resume" if os.path.exists(path) else "--overwrite", "--threads",
                    str(1 + attempt % 2)] + LONG
            cmd = (MPI + ["-np", str(ranks)] if ranks > 1 else []) + [NS] + args
            started = time.time()
            p = subprocess.Popen(cmd, env=ENV, cwd=WORK, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 start_new_session=True)
            if kills < 3:
                time.sleep(rng.uniform(0.2, 0.5) * full)
                if p.poll() is None:
                    kill_session(p.pid)
                    p.wait()
                    kills += 1
                    if os.path.exists(path):
                        with h5py.File(path, "r", swmr=True) as f:  # readable after a SIGKILL
                            rows.append(f["searches/chosen"].shape[0])
                    continue
                p.wait()
                if p.returncode == 0:  # a busy machine made the reference slow: time this run, start over
                    full = time.time() - started
                    os.remove(path)
                    kills, rows = 0, []
                    continue
            p.wait()
            if p.returncode == 0:
                break
            check(False, f"resume run exited {p.returncode}: {p.stderr.read().decode()[-500:]}")
            break
        check(kills == 3, f"P={ranks}: only {kills} kills landed mid-run")
        same(ref, columns(path), f"P={ranks}: run killed {kills}x and resumed (1 and 2 threads) vs uninterrupted")
        print(f"kill/resume P={ranks}: killed with {rows} of 120 searches logged; resumed with 1 and 2 threads "
              "per rank; log identical")


def test_sigterm():
    cfg = write_config("paths", "term-ref.h5", 1)
    run(["search", cfg, "--overwrite"] + LONG)
    ref = columns(os.path.join(WORK, "term-ref.h5"))
    cfg = write_config("paths", "term.h5", 1)
    path = os.path.join(WORK, "term.h5")
    if os.path.exists(path):
        os.remove(path)
    p = subprocess.Popen(MPI + ["-np", "3", NS, "search", cfg] + LONG, env=ENV, cwd=WORK,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120  # signal once a few searches are logged
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
        try:
            with h5py.File(path, "r", swmr=True) as f:
                if f["searches/search"].shape[0] >= 3:
                    break
        except (OSError, KeyError):
            pass
    p.send_signal(signal.SIGUSR1)  # mpirun forwards USR1 to every rank (Slurm's warning signal)
    p.wait()
    err = p.stderr.read().decode()
    check(p.returncode == 3, f"SIGUSR1: exit {p.returncode}, expected 3: {err[-800:]}")
    check("--resume continues" in err, "SIGUSR1: no resume hint")
    with h5py.File(path, "r") as f:
        n = f["searches/chosen"].shape[0]
        check(f.attrs["status"] in ("interrupted", b"interrupted"), f"status {f.attrs['status']}, not 'interrupted'")
    check(0 < n < 120, f"SIGUSR1 left {n} searches (expected a partial run)")
    run(["search", cfg, "--resume"] + LONG, ranks=3)
    same(ref, columns(path), "SIGUSR1 + resume vs uninterrupted")
    print(f"SIGUSR1: exit 3 with {n} of 120 searches logged; resumed log identical")


def test_errors():
    cfg = write_config("random", "err.h5", 2)
    for override, needle in (("search.random.candidate=3", "did you mean 'search.random.candidates'"),
                             ("run.batch=0", "run.batch"),
                             ("verifier.classifier=evaluator.h5", "evaluator"),
                             ("model.weights=missing.h5", "missing.h5")):
        p = run(["search", cfg, override], expect=2)
        check(needle in p.stderr, f"override {override}: message lacks '{needle}': {p.stderr.strip()}")
        check(len(p.stderr.strip().splitlines()) <= 2, f"override {override}: more than a line: {p.stderr}")
        check(not os.path.exists(os.path.join(WORK, "err.h5")), f"override {override}: a log was written")
    run(["search", cfg])
    p = run(["search", cfg], expect=2)
    print("config errors: one line each, exit 2, nothing written")
    check("--resume" in p.stderr and "--overwrite" in p.stderr, "existing log: no hint")
    with open(os.path.join(WORK, "bad.yaml"), "w") as f:
        f.write("run:\n  seed: 1\n  samples_per_clas: 2\n")
    p = run(["search", "bad.yaml"], expect=2)
    check("bad.yaml:3:" in p.stderr, f"unknown key: no file:line: {p.stderr.strip()}")


if __name__ == "__main__":
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    t0 = time.time()
    make_models()
    test_determinism()
    test_none_equals_sample()
    print("none == noisesearch sample, bitwise")
    test_greedy_fid()
    test_kill_resume()
    test_sigterm()
    test_errors()
    checks.finish(time.time() - t0)

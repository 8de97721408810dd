#!/usr/bin/env python3
"""slurm/*.sbatch on a real (one-node) Slurm, with tiny real models.

Run through tests/slurm/cluster.sh, which starts and stops the daemons:
  - search.sbatch completes (srun --mpi=pmix, 2 ranks; and mpirun inside the
    allocation) and its log is complete;
  - a job `scontrol requeue`d mid-run restarts, continues its log
    (--resume) and ends bitwise identical to the uninterrupted run;
  - `scancel --signal=USR1 --batch` (the time-limit warning) makes a clean
    flush: exit 3, log status 'interrupted', readable, its rows a prefix of
    the uninterrupted run's; with REQUEUE_ON_WARNING (the default) the job
    requeues itself and ends identical to the uninterrupted run;
  - a 4-task sweep array and collect.sbatch (afterok) write one complete log
    per task, the metrics into each log, and the curves' table and plots.
usage: cluster.sh test_slurm.py NOISESEARCH SOURCE_DIR WORKDIR
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

import checks
import tiny_models
from checks import check

NS, SRC, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
SEARCH = os.path.join(SRC, "slurm", "search.sbatch")
# The jobs inherit this environment (sbatch --export=ALL): our cluster's
# SLURM_CONF but no SLURM_* of an enclosing job.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
ENV.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", BLIS_NUM_THREADS="1", NS=NS,
           OMPI_MCA_rmaps_base_oversubscribe="1", SEARCH_SCRIPT=SEARCH)
COMPARED = ["searches/chosen", "searches/sample", "candidates/score"]
T0 = time.time()


def note(msg, since=None):
    """A step's result line; 'FAILED' when checks failed since failure count `since`."""
    bad = since is not None and checks.failures > since
    print(f"[{time.time() - T0:5.1f} s] {'FAILED: ' if bad else ''}{msg}", flush=True)


def cmd(args, **kw):
    p = subprocess.run(args, env=ENV, cwd=WORK, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} -> {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def sbatch(script, out, env=None, args=()):
    """Submit script with env added to the job's environment; the job id."""
    e = dict(ENV, **(env or {}))
    p = subprocess.run(["sbatch", "--parsable", f"--output={out}"] + list(args) + [script], env=e, cwd=WORK,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"sbatch {script} -> {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip().split(";")[0]


def job(jid):
    """scontrol's fields of a job (one dict per array task)."""
    p = subprocess.run(["scontrol", "show", "job", "-o", jid], env=ENV, capture_output=True, text=True)
    jobs = []
    for line in p.stdout.splitlines():
        jobs.append(dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line)))
    return jobs


def queued(jid):
    return subprocess.run(["squeue", "-h", "-j", jid], env=ENV, capture_output=True, text=True).stdout.strip() != ""


def wait_done(jid, out, limit=180):
    deadline = time.time() + limit
    while queued(jid):
        if time.time() > deadline:
            print(f"job {jid} still queued after {limit} s: {job(jid)}\n{tail(out)}")
            raise SystemExit(1)
        time.sleep(0.2)
    return job(jid)


def tail(path, n=3000):
    try:
        with open(os.path.join(WORK, path)) as f:
            return f.read()[-n:]
    except OSError:
        return f"({path} not written)"


def wait_progress(jid, out, total, limit=60):
    """Wait until the job's output shows 0 < done < total/2 searches."""
    deadline = time.time() + limit
    while time.time() < deadline:
        done = [int(m) for m in re.findall(r"search: (\d+)/\d+ searches", tail(out, 100000))]
        if done and done[-1] > 0:
            return check(done[-1] < total // 2, f"job {jid} at {done[-1]}/{total} before we could stop it (too fast)")
        if not queued(jid):
            break
        time.sleep(0.1)
    print(f"job {jid}: no progress in {limit} s\n{tail(out)}")
    raise SystemExit(1)


def ended(j, state, exit_code, what):
    return check(j["JobState"] == state and j["ExitCode"] == exit_code,
                 f"{what}: JobState={j['JobState']} ExitCode={j['ExitCode']}, expected {state} {exit_code}")


def columns(path):
    with h5py.File(os.path.join(WORK, path), "r") as f:
        status = f.attrs["status"]
        status = status.decode() if isinstance(status, bytes) else status
        return status, {k: f[k][...] for k in COMPARED}


def same(ref, path, what):
    status, cols = columns(path)
    check(status == "complete", f"{what}: log status '{status}'")
    for k in COMPARED:
        check(np.array_equal(ref[k], cols[k], equal_nan=True), f"{what}: {k} differs from the uninterrupted run")


LONG_TOTAL = 200  # 10 classes x 20: about 10 s on 2 loaded cores


def write(name, text):
    with open(os.path.join(WORK, name), "w") as f:
        f.write(text)


def test_complete():
    f0 = checks.failures
    jid = sbatch(SEARCH, "A.out", dict(CONFIG="long.yaml", OUT="A.h5"))
    j = wait_done(jid, "A.out")[0]
    ended(j, "COMPLETED", "0:0", "uninterrupted run")
    status, ref = columns("A.h5")
    check(status == "complete" and len(ref["searches/chosen"]) == LONG_TOTAL, f"A.h5: {status}")
    note(f"search.sbatch (srun --mpi=pmix, 2 ranks): {LONG_TOTAL} searches complete", f0)
    jid = sbatch(SEARCH, "M.out", dict(CONFIG="tiny.yaml", OUT="M.h5", LAUNCHER="mpirun"))
    ended(wait_done(jid, "M.out")[0], "COMPLETED", "0:0", "mpirun run")
    check("mpirun -np 2 --bind-to none" in tail("M.out"), "mpirun run: launch line missing")
    check(columns("M.h5")[0] == "complete", "M.h5 not complete")
    note("search.sbatch (mpirun inside the allocation): complete", f0)
    return ref


def test_requeue(ref):
    f0 = checks.failures
    jid = sbatch(SEARCH, "B.out", dict(CONFIG="long.yaml", OUT="B.h5"))
    wait_progress(jid, "B.out", LONG_TOTAL)
    cmd(["scontrol", "requeue", jid])
    j = wait_done(jid, "B.out")[0]
    ended(j, "COMPLETED", "0:0", "requeued run")
    check(j["Restarts"] == "1", f"requeued run: Restarts={j['Restarts']}")
    log = tail("B.out", 100000)
    m = re.search(r"resuming B.h5: (\d+) of (\d+) searches already done", log)
    check(m and 0 < int(m.group(1)) < LONG_TOTAL, f"requeued run did not resume mid-run:\n{log[-2000:]}")
    same(ref, "B.h5", "requeued mid-run")
    note(f"scontrol requeue at {m.group(1) if m else '?'}/{LONG_TOTAL}: resumed, bitwise identical", f0)


def test_usr1(ref):
    f0 = checks.failures
    # The warning alone: a clean flush, exit 3, nothing requeued.
    jid = sbatch(SEARCH, "C.out", dict(CONFIG="long.yaml", OUT="C.h5", REQUEUE_ON_WARNING="0"))
    wait_progress(jid, "C.out", LONG_TOTAL)
    cmd(["scancel", "--signal=USR1", "--batch", jid])
    j = wait_done(jid, "C.out")[0]
    ended(j, "FAILED", "3:0", "USR1 without requeue")
    check("got SIGUSR1" in tail("C.out"), "USR1: the batch shell's trap did not run")
    status, cols = columns("C.h5")  # readable by another process: flushed and closed
    n = len(cols["searches/chosen"])
    check(status == "interrupted", f"USR1: log status '{status}', expected 'interrupted'")
    check(0 < n < LONG_TOTAL, f"USR1: {n} searches in the log")
    for k in ("searches/chosen", "searches/sample"):
        check(np.array_equal(cols[k], ref[k][:n]), f"USR1: the flushed {k} is not a prefix of the full run's")
    note(f"scancel --signal=USR1 --batch: exit 3, log 'interrupted' with {n}/{LONG_TOTAL} searches", f0)
    # The warning as a time limit would send it: the job requeues itself and finishes.
    jid = sbatch(SEARCH, "D.out", dict(CONFIG="long.yaml", OUT="D.h5"))
    wait_progress(jid, "D.out", LONG_TOTAL)
    cmd(["scancel", "--signal=USR1", "--batch", jid])
    j = wait_done(jid, "D.out")[0]
    ended(j, "COMPLETED", "0:0", "USR1 with requeue")
    check(j["Restarts"] == "1", f"USR1 with requeue: Restarts={j['Restarts']}")
    check("requeueing job" in tail("D.out", 100000), "USR1: no self-requeue")
    same(ref, "D.h5", "USR1 + self-requeue")
    note("USR1 + self-requeue: resumed, bitwise identical", f0)


def test_sweep():
    f0 = checks.failures
    grid = dict(TEMPLATE="tiny.yaml", SWEEP_DIR="sweep", ALGORITHMS="random zero_order", VERIFIERS="ensemble",
                BUDGETS="2", BASELINE_NFES="10 20", EVALUATOR="evaluator.h5", REFERENCE="reference.h5")
    sweep = os.path.join(SRC, "slurm", "sweep.sbatch")
    e = dict(ENV, **grid)
    n = int(subprocess.run(["bash", sweep, "--count"], env=e, capture_output=True, text=True).stdout)
    check(n == 4, f"sweep: {n} tasks, expected 4")
    check(subprocess.run(["bash", sweep, "--check"], env=e, cwd=WORK, capture_output=True).returncode == 0,
          "sweep --check failed")
    sid = sbatch(sweep, "sweep-%a.out", grid, ["--array=0-3", "--ntasks=1"])
    cid = sbatch(os.path.join(SRC, "slurm", "collect.sbatch"), "collect.out", grid,
                 [f"--dependency=afterok:{sid}", "--cpus-per-task=1"])
    c = wait_done(cid, "collect.out", 150)[0]
    tasks = job(sid)
    check(len(tasks) == 4 and all(t["JobState"] == "COMPLETED" for t in tasks),
          f"sweep tasks: {[(t.get('ArrayTaskId'), t['JobState']) for t in tasks]}")
    check(c["StartTime"] >= max(t["EndTime"] for t in tasks), "collect started before the sweep ended")
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(WORK, "sweep", "*.h5")))
    want = ["none-nfe10.h5", "none-nfe20.h5", "random-ensemble-2.h5", "zero_order-ensemble-2.h5"]
    check(files == want, f"sweep files {files}, expected {want}")
    for name in files:
        with h5py.File(os.path.join(WORK, "sweep", name), "r") as f:
            check(f.attrs["status"] in ("complete", b"complete"), f"{name}: not complete")
            check("evaluation" in f, f"{name}: collect wrote no /evaluation")
            if name.startswith("random"):
                check(f["candidates/score"].shape[0] == 2 * f["searches/chosen"].shape[0],
                      f"{name}: not best of 2 candidates")
    ended(c, "COMPLETED", "0:0", "collect")
    out = os.path.join(WORK, "sweep", "curves")
    listing = sorted(os.listdir(out)) if os.path.isdir(out) else []
    check("curves.csv" in listing and all(f"{m}.png" in listing for m in ("fid", "kid", "is", "precision", "recall",
                                                                          "accuracy")),
          f"collect: no table or plots in {out}: {listing or 'missing'}")
    if "curves.csv" in listing:
        with open(os.path.join(out, "curves.csv")) as f:
            rows = f.read().strip().splitlines()
        check(len(rows) == 1 + len(want), f"collect: curves.csv has {len(rows) - 1} rows, expected {len(want)}")
    note("sweep (4 array tasks) + collect (afterok): logs, metrics, table and plots", f0)


if __name__ == "__main__":
    if "SLURM_CONF" not in os.environ:
        raise SystemExit("test_slurm.py: run it through tests/slurm/cluster.sh (SLURM_CONF is not set)")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    tiny_models.make_models(NS, WORK, ENV)
    write("long.yaml", tiny_models.CONFIG.format(per_class=LONG_TOTAL // 10))
    write("tiny.yaml", tiny_models.CONFIG.format(per_class=4).replace("classes: all", "classes: [1, 4, 9]"))
    note("tiny models")
    ref = test_complete()
    test_requeue(ref)
    test_usr1(ref)
    test_sweep()
    checks.finish(time.time() - T0)

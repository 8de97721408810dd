#!/usr/bin/env python3
"""tools/study.sh, the scaling study without Slurm, end to end on tiny models:
  - a 4-task grid (two searches with their own budget lists, two no-search
    baselines) runs task by task,
    every log complete with its /evaluation, then the curves' table and plots;
  - tools/archive_logs.py copies the logs without their tensors, and curves
    on the copies gives the same table; an unevaluated log is refused;
  - a study stopped by TERM in the middle exits 3 with its running log
    flushed; run again, it ends with every log bitwise identical to the
    uninterrupted study's.
usage: test_study.py NOISESEARCH SOURCE_DIR WORKDIR
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py

import checks
import tiny_models
from checks import check

NS, SRC, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
STUDY = os.path.join(SRC, "tools", "study.sh")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
ENV.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
           BLIS_NUM_THREADS="1", THREADS="1", NS=NS, TEMPLATE="study.yaml", ALGORITHMS="random paths", VERIFIERS="class_logit",
           BUDGETS="2", BUDGETS_PATHS="1", BASELINE_NFES="10 20", EVALUATOR="evaluator.h5",
           REFERENCE="reference.h5")
LOGS = ["none-nfe10.h5", "none-nfe20.h5", "paths-class_logit-1.h5", "random-class_logit-2.h5"]
COMPARED = ["searches/chosen", "searches/sample", "candidates/score"]


def study(sweep_dir, **kw):
    return subprocess.Popen(["bash", STUDY], env=dict(ENV, SWEEP_DIR=sweep_dir), cwd=WORK, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def columns(path):
    with h5py.File(path, "r") as f:
        status = f.attrs["status"]
        status = status.decode() if isinstance(status, bytes) else status
        return status, {k: f[k][...] for k in COMPARED if k in f}


def test_complete():
    p = study("A")
    out, _ = p.communicate(timeout=300)
    if not check(p.returncode == 0, f"study exited {p.returncode}:\n{out[-3000:]}"):
        return
    files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(WORK, "A", "*.h5")))
    check(files == LOGS, f"study logs {files}, expected {LOGS}")
    for name in files:
        with h5py.File(os.path.join(WORK, "A", name), "r") as f:
            check(f.attrs["status"] in ("complete", b"complete"), f"{name}: not complete")
            check("evaluation" in f, f"{name}: no /evaluation")
    curves = os.path.join(WORK, "A", "curves")
    listing = sorted(os.listdir(curves)) if os.path.isdir(curves) else []
    check("curves.csv" in listing and "fid.png" in listing and "accuracy.png" in listing,
          f"no table or plots in {curves}: {listing}")
    if "curves.csv" in listing:
        with open(os.path.join(curves, "curves.csv")) as f:
            check(len(f.read().strip().splitlines()) == 1 + len(LOGS), "curves.csv: wrong row count")
    check("task 4/4" in out and "collecting" in out, f"no progress lines:\n{out[-2000:]}")
    print("uninterrupted study: 4 logs, metrics, table and plots", flush=True)


def curves_rows(logs, out):
    """curves.csv of these logs, without the file column."""
    subprocess.run([NS, "curves", *logs, "--out", out, "--no-plots"], env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "curves.csv")) as f:
        return [line.split(",", 1)[1] for line in f.read().strip().splitlines()]


def test_archive():
    logs = [os.path.join(WORK, "A", name) for name in LOGS]
    archive = os.path.join(WORK, "A", "archive")
    p = subprocess.run([sys.executable, os.path.join(SRC, "tools", "archive_logs.py"), archive, *logs],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, f"archive_logs.py exited {p.returncode}:\n{p.stderr}"):
        return
    copies = [os.path.join(archive, name) for name in LOGS]
    size = lambda paths: sum(os.path.getsize(q) for q in paths)
    with h5py.File(copies[-1], "r") as f:
        check("sample" not in f["searches"] and "noise" not in f["candidates"] and "evaluation" in f
              and "searches/sample" in f.attrs["archived_without"], "archive: tensors kept or /evaluation lost")
    check(curves_rows(copies, os.path.join(WORK, "A", "curves-archive")) ==
          curves_rows(logs, os.path.join(WORK, "A", "curves-logs")), "curves of the archives differ from the logs'")
    unevaluated = os.path.join(WORK, "unevaluated.h5")
    shutil.copy(logs[0], unevaluated)
    with h5py.File(unevaluated, "a") as f:
        del f["evaluation"]
    p = subprocess.run([sys.executable, os.path.join(SRC, "tools", "archive_logs.py"), archive, unevaluated],
                       capture_output=True, text=True)
    check(p.returncode == 2 and "no /evaluation" in p.stderr
          and not os.path.exists(os.path.join(archive, "unevaluated.h5")), f"unevaluated log: {p.stderr}")
    print(f"archives: {size(logs) / 1e3:.0f} kB of logs -> {size(copies) / 1e3:.0f} kB, the same curves", flush=True)


def test_stop_and_continue():
    p = study("B", start_new_session=True)
    second = os.path.join(WORK, "B", "paths-class_logit-1.h5")  # the second task (searches first)
    deadline = time.time() + 120
    while not os.path.exists(second) and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second task's searches
    p.send_signal(signal.SIGTERM)  # the driver only: it must pass the signal on
    out, _ = p.communicate(timeout=120)
    check(p.returncode == 3, f"stopped study exited {p.returncode}, expected 3:\n{out[-3000:]}")
    check("run tools/study.sh again" in out, f"no continue hint:\n{out[-2000:]}")
    done = sorted(os.path.basename(f) for f in glob.glob(os.path.join(WORK, "B", "*.h5")))
    check(len(done) < len(LOGS) or columns(second)[0] != "complete", f"nothing was cut: {done}")
    check(not os.path.exists(os.path.join(WORK, "B", "curves")), "a stopped study drew curves")
    for name in done:  # every log readable (flushed and closed)
        check(columns(os.path.join(WORK, "B", name))[0] in ("complete", "interrupted"), f"{name}: bad status")
    stopped_at = [n for n in done if columns(os.path.join(WORK, "B", n))[0] != "complete"]
    p = study("B")
    out, _ = p.communicate(timeout=300)
    check(p.returncode == 0, f"continued study exited {p.returncode}:\n{out[-3000:]}")
    for name in LOGS:
        path_a, path_b = os.path.join(WORK, "A", name), os.path.join(WORK, "B", name)
        if not check(os.path.exists(path_b), f"continued study: {name} missing"):
            continue
        (sa, ca), (sb, cb) = columns(path_a), columns(path_b)
        check(sb == "complete", f"continued study: {name} {sb}")
        for k in ca:
            check(k in cb and ca[k].tobytes() == cb[k].tobytes(), f"{name}: {k} differs from the uninterrupted study's")
    print(f"TERM during task 2 (cut: {stopped_at or 'between tasks'}): exit 3; continued: bitwise identical",
          flush=True)


if __name__ == "__main__":
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    tiny_models.make_models(NS, WORK, ENV)
    with open(os.path.join(WORK, "study.yaml"), "w") as f:
        f.write(tiny_models.CONFIG.format(per_class=6))
    test_complete()
    test_archive()
    test_stop_and_continue()
    checks.finish()

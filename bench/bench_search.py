#!/usr/bin/env python3
"""Benchmarks of the distributed search; prints the tables of docs/performance.md.

  1. parallel efficiency: random search at P = 1, 2 and one single-threaded
     worker per CPU (+ rank 0), at batch 16 and 32, vs the denoiser's own
     batched throughput (`noisesearch sample`, all cores);
  2. coordinator capacity: candidates/s rank 0 sustains with a tiny model and
     many oversubscribed workers;
  3. rank 0's peak memory after 10 000 / 100 000 / 1 000 000 logged candidates;
  4. logging overhead: trajectories on vs off.

usage: bench_search.py NOISESEARCH MODEL.h5 VERIFIER.h5 WORKDIR [--quick] [--only=SECTION,...]
SECTION: efficiency, capacity, memory, logging (default: all four, in that order).
MODEL/VERIFIER: the shipped denoiser and verifier classifier (any files of
those architectures give the same cost). Run it on an idle machine.
"""
import os
import re
import subprocess
import sys
import time

NS, MODEL, VERIFIER, WORK = (os.path.abspath(a) for a in sys.argv[1:5])
QUICK = "--quick" in sys.argv
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import tiny_models  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", BLIS_ARCH_TYPE="0")
MPI = ["mpirun", "--bind-to", "none", "--oversubscribe", "--mca", "pml", "ob1", "--mca", "btl", "self,vader"]
CPUS = os.cpu_count()


def run(cmd, env=None):
    t0 = time.time()
    p = subprocess.run(cmd, env=env or ENV, cwd=WORK, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} -> {p.returncode}\n{p.stderr[-2000:]}")
    return p.stderr, time.time() - t0


CONFIG = """run:
  seed: 0
  classes: all
  samples_per_class: {spc}
  out: {out}
  batch: {batch}
  threads: {threads}
model:
  weights: {model}
sampler:
  kind: {kind}
  search_nfe: {nfe}
  final_nfe: {nfe}
search:
  algorithm: random
  random:
    candidates: {cand}
verifier:
  name: class_logit
  classifier: {verifier}
log:
  noise: {noise}
  x1_hat: false
  png: false
  trajectories: {traj}
  trajectory_stride: 1
"""


def search(name, ranks, **kw):
    cfg = dict(spc=2, batch=32, threads=0, model=MODEL, verifier=VERIFIER, kind="heun", nfe=20, cand=8,
               noise="true", traj="false", out=f"{name}.h5")
    cfg.update(kw)
    path = os.path.join(WORK, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(CONFIG.format(**cfg))
    cmd = ([*MPI, "-np", str(ranks)] if ranks > 1 else []) + [NS, "search", path, "--overwrite"]
    err, wall = run(cmd)
    m = re.search(r"done, (\d+) searches in .* \(([\d.]+) s; rank 0 peak memory ([\d.]+) MB\)", err)
    if not m:
        sys.exit(f"no summary line from {name}:\n{err[-1500:]}")
    searches, seconds, mem = int(m.group(1)), float(m.group(2)), float(m.group(3))
    candidates = searches * cfg["cand"]
    return dict(searches=searches, candidates=candidates, seconds=seconds, wall=wall, mem=mem,
                nfe=candidates * cfg["nfe"], size=os.path.getsize(os.path.join(WORK, cfg["out"])))


def efficiency():
    spc = 4 if QUICK else 8
    print("\n## 1. Parallel efficiency: random search (best of 8, Heun 20 NFEs, class_logit)")
    print("against the denoiser's own throughput (`noisesearch sample`, all cores) at the same batch\n")
    print("| batch | P | workers x threads | searches | wall s | NFE/s | vs standalone |")
    print("|---|---|---|---|---|---|---|")
    for B in (16, 32):
        err, _ = run([NS, "sample", "--model", MODEL, "--classes", "all", "--per-class", str(spc * 8), "--nfe", "20",
                      "--batch", str(B), "--threads", str(CPUS), "--h5", "standalone.h5", "--overwrite"])
        standalone = float(re.findall(r"([\d.]+) samples/s, ([\d.]+) NFE/s", err)[-1][1])
        print(f"| {B} | standalone | 1 x {CPUS} | | | {standalone:.0f} | 100% |")
        for ranks in sorted({1, 2, CPUS + 1}):  # CPUS + 1: one single-threaded worker per core
            workers = max(ranks - 1, 1)
            threads = max(CPUS // workers, 1)
            r = search(f"eff{ranks}", ranks, spc=spc, batch=B, threads=threads)
            rate = r["nfe"] / r["seconds"]
            print(f"| {B} | {ranks} | {workers} x {threads} | {r['searches']} | {r['seconds']:.1f} | {rate:.0f} "
                  f"| {100 * rate / standalone:.1f}% |")


def capacity():
    print("\n## 2. Coordinator capacity: tiny model (1 block, width 32), Euler 1 step, best of 100, batch 16")
    print("| P | searches | candidates | wall s | candidates/s |")
    print("|---|---|---|---|---|")
    for ranks in (2, 4, 8):
        r = search(f"cap{ranks}", ranks, model="den.h5", verifier="verifier.h5", kind="euler", nfe=1, cand=100,
                   spc=10 if QUICK else 40, batch=16, threads=1, noise="false")
        print(f"| {ranks} | {r['searches']} | {r['candidates']} | {r['seconds']:.1f} | "
              f"{r['candidates'] / r['seconds']:.0f} |")


def memory():
    print("\n## 3. Rank 0 peak memory vs candidates logged (tiny model, best of 1000, no noise column, P = 1)")
    print("| candidates | wall s | log MB | rank 0 peak MB |")
    print("|---|---|---|---|")
    for spc in ((1, 10) if QUICK else (1, 10, 100)):
        r = search(f"mem{spc}", 1, model="den.h5", verifier="verifier.h5", kind="euler", nfe=1, cand=1000, spc=spc,
                   batch=64, threads=CPUS, noise="false")
        print(f"| {r['candidates']} | {r['seconds']:.1f} | {r['size'] / 2**20:.1f} | {r['mem']:.1f} |")


def logging():
    print("\n## 4. Logging overhead: random search as in 1 (P = 1), trajectories (every step) off vs on")
    print("| trajectories | wall s | log MB |")
    print("|---|---|---|")
    for traj in ("false", "true"):
        r = search(f"log{traj}", 1, spc=2 if QUICK else 4, threads=CPUS, traj=traj)
        print(f"| {traj} | {r['seconds']:.1f} | {r['size'] / 2**20:.1f} |")


SECTIONS = {"efficiency": efficiency, "capacity": capacity, "memory": memory, "logging": logging}

if __name__ == "__main__":
    if ONLY is not None and set(ONLY) - set(SECTIONS):
        sys.exit(f"bench_search.py: --only: unknown section(s) {', '.join(sorted(set(ONLY) - set(SECTIONS)))}; "
                 f"expected a comma list of {', '.join(SECTIONS)}")
    os.makedirs(WORK, exist_ok=True)
    if ONLY is None or {"capacity", "memory"} & set(ONLY):  # their tiny denoiser and verifier
        tiny_models.make_models(NS, WORK, dict(ENV, BLIS_NUM_THREADS="1"))
    print(f"# bench_search on {CPUS} CPUs ({time.strftime('%Y-%m-%d')}); command: {' '.join(sys.argv)}")
    for name, section in SECTIONS.items():
        if ONLY is None or name in ONLY:
            section()

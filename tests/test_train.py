#!/usr/bin/python3
"""End-to-end tests of `noisesearch train` on a tiny model (seconds each).

- a short run lowers the flow-matching loss (train and test curves in the
  checkpoint) and exports EMA weights that `noisesearch sample` loads;
- resume is exact: a run stopped by --stop-after and one stopped by SIGTERM,
  each resumed, end with weights, EMA and optimizer moments bitwise equal to
  an uninterrupted run; so does one stopped inside a cool-down (--decay);
- data parallelism: two 2-rank runs give the same bits, and their loss curve
  follows the 1-rank run (same data stream; only the summation order differs);
- bad input: an existing checkpoint is refused without --resume/--overwrite,
  a broken checkpoint gives a one-line error, exit 2.

usage: test_train.py NOISESEARCH MPIEXEC WORKDIR
"""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

failures = 0
TINY = ["--patch", "7", "--depth", "1", "--width", "32", "--heads", "2", "--batch", "16", "--warmup", "5",
        "--eval-every", "1000", "--eval-samples", "64", "--log-every", "0.5", "--lr", "1e-3"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_rmaps_base_oversubscribe="1")


def check(name, ok, detail=""):
    global failures
    print(f"  {name:56s} {'ok' if ok else 'FAIL'} {detail}", flush=True)
    failures += not ok


def train(binary, work, name, *extra, ranks=0, mpiexec=None, threads=1):
    cmd = [binary, "train", "--out", f"{work}/{name}.h5", "--checkpoint", f"{work}/{name}.ckpt.h5",
           "--threads", str(threads), *TINY, *extra]
    if ranks:
        cmd = [mpiexec, "-np", str(ranks), "--bind-to", "none"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    return p.returncode, p.stderr


def state(path):
    with h5py.File(path, "r") as f:
        out = {}
        for g in ("model", "ema", "adam_m", "adam_v"):
            for k, v in f[g].items():
                out[f"{g}/{k}"] = v[...]
        out["train_loss"] = f["train_loss"][...]
        out["step"] = f.attrs["step"]
    return out


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def main():
    binary, mpiexec, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    for f in os.listdir(work):
        os.remove(os.path.join(work, f))
    steps = ["--steps", "300"]

    rc, err = train(binary, work, "full", *steps)
    check("uninterrupted 300-step run", rc == 0, err.strip().splitlines()[-1] if err.strip() else "")
    full = state(f"{work}/full.ckpt.h5")
    curve = full["train_loss"]
    check("training lowers the loss", curve[-1, 1] < 0.8 * curve[0, 1], f"{curve[0, 1]:.3f} -> {curve[-1, 1]:.3f}")
    with h5py.File(f"{work}/full.ckpt.h5", "r") as f:
        test = f["test_loss"][...]
    check("test loss recorded at the end", test.shape == (1, 3) and test[0, 0] == 300, str(test.tolist()))
    p = subprocess.run([binary, "sample", "--model", f"{work}/full.h5", "--per-class", "1", "--nfe", "4",
                        "--h5", f"{work}/s.h5"], capture_output=True, text=True)
    check("exported EMA weights sample", p.returncode == 0, p.stderr.strip().splitlines()[-1])

    rc, err = train(binary, work, "stopped", *steps, "--stop-after", "120")
    check("--stop-after stops with exit 3", rc == 3 and "--resume continues" in err)
    rc, err = train(binary, work, "stopped", "--resume")
    resumed = state(f"{work}/stopped.ckpt.h5")
    check("resume after --stop-after: bitwise equal", rc == 0 and same(full, resumed))

    cmd = [binary, "train", "--out", f"{work}/sig.h5", "--checkpoint", f"{work}/sig.ckpt.h5", "--threads", "1",
           *TINY, *steps, "--log-every", "0.01"]  # a progress line at once: the whole run may take < 0.5 s
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=ENV)
    for line in p.stderr:
        if line.startswith("step "):  # training is under way
            p.send_signal(signal.SIGTERM)
            break
    rest = p.stderr.read()
    p.wait()
    stopped_at = state(f"{work}/sig.ckpt.h5")["step"] if os.path.exists(f"{work}/sig.ckpt.h5") else -1
    check("SIGTERM saves a checkpoint and exits 3", p.returncode == 3 and 0 < stopped_at < 300,
          f"rc {p.returncode}, step {stopped_at}")
    rc, err = train(binary, work, "sig", "--resume")
    check("resume after SIGTERM: bitwise equal", rc == 0 and same(full, state(f"{work}/sig.ckpt.h5")))

    # A cool-down (--decay) added on resume: a run stopped inside it and
    # resumed equals the uninterrupted one; the checkpoint records the schedule.
    rc1, _ = train(binary, work, "wsd", "--steps", "100", "--schedule", "constant")
    rc2, _ = train(binary, work, "wsd", "--resume", "--decay", "60", "--lr-min", "1e-5")
    rc3, _ = train(binary, work, "wsdcut", "--steps", "100", "--schedule", "constant")
    rc4, _ = train(binary, work, "wsdcut", "--resume", "--decay", "60", "--lr-min", "1e-5", "--stop-after", "25")
    rc5, _ = train(binary, work, "wsdcut", "--resume")
    with h5py.File(f"{work}/wsd.ckpt.h5", "r") as f:
        a = dict(f.attrs)
    recorded = a["schedule"] == "wsd" and a["decay_start"] == 100 and a["steps"] == 160 and a["step"] == 160
    check("--decay: wsd from step 100 to 160 recorded", rc1 == rc2 == 0 and recorded,
          f"{a['schedule']} {a['decay_start']} {a['steps']}")
    check("stopped inside the decay and resumed: bitwise equal",
          (rc3, rc4, rc5) == (0, 3, 0) and same(state(f"{work}/wsd.ckpt.h5"), state(f"{work}/wsdcut.ckpt.h5")))
    rc, err = train(binary, work, "wsd", "--resume", "--decay", "10")
    check("a second --decay refused", rc == 2 and "already decays" in err, err.strip())

    short = ["--steps", "100"]
    rc1, _ = train(binary, work, "np2a", *short, ranks=2, mpiexec=mpiexec)
    rc2, _ = train(binary, work, "np2b", *short, ranks=2, mpiexec=mpiexec)
    rc3, _ = train(binary, work, "np1", *short)
    a, b, one = (state(f"{work}/{n}.ckpt.h5") for n in ("np2a", "np2b", "np1"))
    check("2 ranks, same seed: bitwise equal weights", rc1 == 0 and rc2 == 0 and same(a, b))
    diff = np.abs(a["train_loss"][:, 1] - one["train_loss"][:, 1]).max()
    check("2 ranks follow the 1-rank loss curve", rc3 == 0 and diff < 0.02, f"max curve difference {diff:.2e}")

    rc, err = train(binary, work, "full", *steps)
    check("existing checkpoint refused", rc == 2 and "pass --resume" in err)
    with open(f"{work}/broken.ckpt.h5", "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    rc, err = train(binary, work, "broken", "--resume")
    check("broken checkpoint: one-line error", rc == 2 and "broken.ckpt.h5" in err and len(err.strip().splitlines()) == 1,
          err.strip())

    print(f"{'PASSED' if not failures else 'FAILED'}: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

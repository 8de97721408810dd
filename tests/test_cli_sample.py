#!/usr/bin/python3
"""End-to-end test of `noisesearch sample` on a small random-weight model.

Checks what a user relies on: the PNG and HDF5 outputs exist and hold what
they claim; a sample depends only on (seed, class, index) -- not on the batch
size, the thread count, or which other classes were requested; bad arguments
exit with status 2 and write nothing; existing outputs are refused without
--overwrite.

usage: test_cli_sample.py NOISESEARCH_BINARY WEIGHTS.h5 WORKDIR
"""
import os
import struct
import subprocess
import sys

import h5py
import numpy as np

failures = 0


def check(name, ok, detail=""):
    global failures
    print(f"  {name:48s} {'ok' if ok else 'FAIL'} {detail}")
    failures += not ok


def run(binary, *args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.run([binary, "sample", *args], capture_output=True, text=True, env=env)
    return p.returncode, p.stderr


def main():
    binary, weights, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    out = lambda name: os.path.join(work, name)
    common = ["--model", weights, "--nfe", "8", "--seed", "5"]

    rc, err = run(binary, *common, "--per-class", "3", "--batch", "64", "--threads", "2",
                  "--out", out("grid.png"), "--h5", out("a.h5"), "--overwrite")
    check("sample all classes", rc == 0, err.strip().splitlines()[-1] if err else "")
    with open(out("grid.png"), "rb") as f:
        head = f.read(24)
    width, height = struct.unpack(">II", head[16:24])
    # 3 columns, 10 rows of 28x28 tiles at zoom 2 with 2-pixel borders.
    check("PNG signature and size", head[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (3 * 56 + 8, 10 * 56 + 22),
          f"{width}x{height}")
    with h5py.File(out("a.h5"), "r") as f:
        a = f["samples"][...]
        labels = f["labels"][...]
        index = f["sample_index"][...]
        attrs = dict(f.attrs)
    check("HDF5 shapes", a.shape == (30, 1, 28, 28) and labels.shape == (30,), str(a.shape))
    check("labels and indices", list(labels) == [k for k in range(10) for _ in range(3)] and list(index[:3]) == [0, 1, 2])
    check("attributes record the run", attrs["steps"] == 4 and attrs["nfe_per_sample"] == 8 and attrs["seed"] == 5
          and attrs["sampler"] == "heun")
    check("samples finite and not constant", np.isfinite(a).all() and a.std() > 0.01, f"std {a.std():.3f}")

    rc, err = run(binary, *common, "--per-class", "3", "--batch", "7", "--threads", "1", "--h5", out("b.h5"),
                  "--overwrite")
    with h5py.File(out("b.h5"), "r") as f:
        b = f["samples"][...]
    check("same bits with batch 7 and 1 thread", rc == 0 and np.array_equal(a, b))

    rc, err = run(binary, *common, "--classes", "7,2", "--per-class", "2", "--h5", out("c.h5"), "--overwrite")
    with h5py.File(out("c.h5"), "r") as f:
        c = f["samples"][...]
    check("a sample does not depend on the other classes",
          rc == 0 and np.array_equal(c[0:2], a[21:23]) and np.array_equal(c[2:4], a[6:8]))

    rc, err = run(binary, *common, "--sampler", "euler_maruyama", "--per-class", "1", "--h5", out("d.h5"),
                  "--overwrite")
    check("SDE sampler runs", rc == 0)

    for args, needle in [
        (["--model", weights, "--nfe", "7", "--out", out("x.png")], "odd"),
        (["--model", weights, "--classes", "3,12", "--out", out("x.png")], "--classes"),
        (["--model", weights, "--sampler", "rk4", "--out", out("x.png")], "--sampler"),
        (["--model", weights, "--cfg", "abc", "--out", out("x.png")], "--cfg"),
        (["--model", out("missing.h5"), "--out", out("x.png")], "missing.h5: cannot read file"),
        (["--model", weights], "nothing to write"),
        (["--model", weights, "--h5", out("a.h5")], "exists; pass --overwrite"),
    ]:
        rc, err = run(binary, *args)
        check(f"rejects {' '.join(args[2:])[:40]}", rc == 2 and needle in err and not os.path.exists(out("x.png")),
              err.strip().splitlines()[0] if err.strip() else "(no message)")

    rc, err = run(binary, *common, "--out", out("x.png"), env_extra={"BLIS_ARCH_TYPE": "haswell"})
    check("rejects a non-numeric BLIS_ARCH_TYPE", rc == 2 and "not a number" in err)

    print(f"{'PASSED' if not failures else 'FAILED'}: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

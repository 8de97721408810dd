#!/usr/bin/python3
"""Test tools/convert_checkpoint.py through its command line.

Usage: /usr/bin/python3 tests/reference/test_converter.py   (exit 0 = pass)

Converts a small random dit_ref model saved as {'ema': sd}, as a raw state_dict
and with DDP's 'module.' prefix, and checks the HDF5 file matches the model;
checks that 'ema' wins over 'model' and that --key overrides it; and checks
that a missing input, a truncated .pt, a missing key, a wrong shape and an
unknown width without --num-heads each exit with status 2, a one-line message
naming the problem, and no file (output or temporary) left behind.
"""

import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "..", "..", "tools", "convert_checkpoint.py")
sys.path.insert(0, HERE)
from dit_ref import DiT  # noqa: E402

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def convert(src, dst, *extra):
    r = subprocess.run([sys.executable, CONVERTER, src, dst, *extra],
                       capture_output=True, text=True)
    return r.returncode, r.stderr.strip()


def matches(path, sd, heads):
    """The HDF5 file holds exactly sd (float32, bit-identical) and its config."""
    with h5py.File(path, "r") as f:
        if set(f.keys()) != set(sd):
            return False
        if any(not np.array_equal(f[k][()], v.numpy()) for k, v in sd.items()):
            return False
        return (f.attrs["num_heads"] == heads and f.attrs["depth"] == 2
                and f.attrs["input_size"] == 16 and f.attrs["learn_sigma"] == 1
                and f.attrs["num_classes"] == 7 and f.attrs["mlp_ratio"] == 4.0)


def expect_failure(d, what, src, needle, *extra):
    """Status 2, one line mentioning needle, and nothing new in d."""
    before = set(os.listdir(d))
    out = os.path.join(d, "fail.h5")
    rc, err = convert(src, out, *extra)
    check(rc == 2 and needle in err and "\n" not in err,
          f"{what}: status {rc}, message: {err}")
    check(set(os.listdir(d)) == before, f"{what}: no file left behind")


def main():
    gen = torch.Generator().manual_seed(1)
    model = DiT(16, 2, 4, 96, 2, 3, num_classes=7, learn_sigma=True).init_random(gen)
    sd = model.state_dict()
    other = DiT(16, 2, 4, 96, 2, 3, num_classes=7, learn_sigma=True).init_random(gen)

    with tempfile.TemporaryDirectory() as d:
        def path(name):
            return os.path.join(d, name)

        torch.save({"ema": sd, "model": other.state_dict(), "opt": {}}, path("train.pt"))
        torch.save(sd, path("raw.pt"))
        torch.save({"module." + k: v for k, v in sd.items()}, path("ddp.pt"))
        extra = dict(sd, extra_buffer=torch.zeros(3))
        torch.save({"model": extra}, path("extra.pt"))

        for src, what in [("train.pt", "{'ema','model'} checkpoint uses ema"),
                          ("raw.pt", "raw state_dict"),
                          ("ddp.pt", "'module.' prefix stripped")]:
            rc, err = convert(path(src), path("out.h5"), "--num-heads", "3")
            check(rc == 0 and matches(path("out.h5"), sd, 3), f"{what} (status {rc} {err})")
        rc, err = convert(path("train.pt"), path("out.h5"), "--num-heads", "3", "--key", "model")
        check(rc == 0 and matches(path("out.h5"), other.state_dict(), 3), "--key model")
        rc, err = convert(path("extra.pt"), path("out.h5"), "--num-heads", "3")
        check(rc == 0 and "extra_buffer" in err and matches(path("out.h5"), sd, 3),
              f"extra key ignored with a warning: {err}")
        os.unlink(path("out.h5"))

        with open(path("raw.pt"), "rb") as f:
            data = f.read()
        with open(path("truncated.pt"), "wb") as f:
            f.write(data[:len(data) // 2])
        expect_failure(d, "truncated .pt", path("truncated.pt"), "truncated.pt", "--num-heads", "3")
        expect_failure(d, "missing input", path("absent.pt"), "absent.pt", "--num-heads", "3")

        missing = {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.bias"}
        torch.save(missing, path("missing.pt"))
        expect_failure(d, "missing key", path("missing.pt"), "blocks.1.mlp.fc2.bias",
                       "--num-heads", "3")

        bad = dict(sd)
        bad["blocks.0.attn.qkv.weight"] = torch.zeros(200, 96)
        torch.save(bad, path("badshape.pt"))
        expect_failure(d, "wrong shape", path("badshape.pt"),
                       "blocks.0.attn.qkv.weight has shape [200,96], expected [288,96]",
                       "--num-heads", "3")

        expect_failure(d, "width 96 without --num-heads", path("raw.pt"), "--num-heads")
        expect_failure(d, "heads not dividing width", path("raw.pt"), "num_heads 5",
                       "--num-heads", "5")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all converter checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write Fashion-MNIST training images as a `noisesearch sample`-style file
(datasets samples (n,1,28,28) float32 in [-1, 1] and labels (n,) int32), so
`noisesearch eval` measures the floor: real images against the test set.

usage: train_set_samples.py OUT.h5 [--per-class N] [--data DIR]
The first N images of each class in file order (default 1000: 10 000 in all).
"""
import argparse
import gzip
import sys

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--per-class", type=int, default=1000)
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
a = ap.parse_args()
try:
    with gzip.open(f"{a.data}/train-images-idx3-ubyte.gz") as f:
        raw = f.read()
    with gzip.open(f"{a.data}/train-labels-idx1-ubyte.gz") as f:
        lab = f.read()
except OSError as e:
    sys.exit(f"train_set_samples.py: {e} (install Debian's dataset-fashion-mnist)")
if int.from_bytes(raw[:4], "big") != 0x803 or int.from_bytes(lab[:4], "big") != 0x801:
    sys.exit("train_set_samples.py: not IDX image/label files")
images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)
labels = np.frombuffer(lab, np.uint8, offset=8).astype(np.int32)
pick = np.concatenate([np.flatnonzero(labels == k)[:a.per_class] for k in range(10)])
with h5py.File(a.out, "w") as f:
    f["samples"] = (images[pick].astype(np.float32) / 127.5 - 1.0)
    f["labels"] = labels[pick]
    f["sample_index"] = np.concatenate([np.arange(a.per_class, dtype=np.int32)] * 10)
print(f"{a.out}: {len(pick)} training images")

#!/usr/bin/python3
"""Forward-pass throughput of the PyTorch reference DiT (tests/reference/dit_ref.py).

The baseline the C model's benchmark is compared with: same architecture,
random float32 weights, inference only.  Prints one line of JSON:
  {"images_per_s", "seconds_per_batch", "batch", "threads", "iterations",
   "torch", "blis_arch_type", "blis_num_threads", "peak_rss_mib"}

Example (Fashion-MNIST-sized model, 2 threads):
  BLIS_ARCH_TYPE=0 /usr/bin/python3 bench/bench_forward_torch.py --input-size 28 \\
      --channels 1 --patch 4 --depth 6 --width 256 --heads 4 --classes 10 \\
      --batch 64 --threads 2

Debian's torch uses BLIS (OpenMP build) as its BLAS.  The caller chooses
BLIS_ARCH_TYPE and this script only records it, so the C and PyTorch runs see
the same kernels.  torch.set_num_threads does not reach BLIS, which reads
BLIS_NUM_THREADS from the environment once, at its first call; so unless the
caller set it, this script sets BLIS_NUM_THREADS = --threads before importing
torch (measured: ~35% faster at 2 threads than BLIS left single-threaded).

Times are per batch and the median is reported: on a shared virtual machine a
single batch can stall for many times its normal duration (seen here with 2
threads), and the median ignores such outliers where the mean would not.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_ITERS = 3  # timed batches, even when one batch outlasts --seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input-size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--learn-sigma", action="store_true",
                    help="output 2*channels as the official checkpoints do")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="time batches until they add up to this (at least 3 batches)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    args = ap.parse_args()

    os.environ.setdefault("BLIS_NUM_THREADS", str(args.threads))
    import torch  # after BLIS_NUM_THREADS is set, see the docstring
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    from dit_ref import DiT

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    model = DiT(args.input_size, args.patch, args.channels, args.width, args.depth,
                args.heads, num_classes=args.classes,
                learn_sigma=args.learn_sigma).init_random(gen).eval()
    x = torch.randn(args.batch, args.channels, args.input_size, args.input_size,
                    generator=gen)
    t = torch.rand(args.batch, generator=gen)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen)

    times = []  # seconds per timed batch
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x, t, y)
        while sum(times) < args.seconds or len(times) < MIN_ITERS:
            start = time.perf_counter()
            model(x, t, y)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)

    print(json.dumps({
        "images_per_s": round(args.batch / median, 3),
        "seconds_per_batch": round(median, 6),
        "batch": args.batch,
        "threads": args.threads,
        "iterations": len(times),
        "torch": torch.__version__,
        "blis_arch_type": os.environ.get("BLIS_ARCH_TYPE"),
        "blis_num_threads": os.environ["BLIS_NUM_THREADS"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Training-step throughput of the PyTorch reference DiT (tests/reference/dit_ref.py):
flow-matching loss, backward, AdamW step -- what bench/bench_train.c compares
the C trainer with.  Prints one line of JSON: {"images_per_s", "ms_per_step",
"batch", "threads", "torch", "blis_arch_type"}.

Example:
  BLIS_ARCH_TYPE=0 /usr/bin/python3 bench/bench_train_torch.py --patch 2 --width 128 --depth 6 --threads 2

As in bench_forward_torch.py, BLIS_NUM_THREADS is set to --threads before
torch is imported unless the caller set it (BLIS reads it once).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0, help="time the steps for at least this long")
    args = ap.parse_args()
    os.environ.setdefault("BLIS_NUM_THREADS", str(args.threads))
    import torch
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    from dit_ref import DiT

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    model = DiT(28, args.patch, 1, args.width, args.depth, args.heads, num_classes=10,
                learn_sigma=False).init_random(g)
    params = [p for n, p in model.named_parameters() if n != "pos_embed"]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    B = args.batch
    x1 = torch.rand(B, 1, 28, 28, generator=g) * 2 - 1
    x0 = torch.randn(B, 1, 28, 28, generator=g)
    t = torch.rand(B, generator=g)
    y = torch.randint(0, 11, (B,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        tt = t[:, None, None, None]
        xt = tt * x1 + (1 - tt) * x0
        loss = ((model(xt, t, y) - (x1 - x0)) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(2):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if el >= args.seconds:
            break
    print(json.dumps({"images_per_s": B * n / el, "ms_per_step": 1e3 * el / n, "batch": B,
                      "threads": args.threads, "torch": torch.__version__,
                      "blis_arch_type": os.environ.get("BLIS_ARCH_TYPE")}))


if __name__ == "__main__":
    main()

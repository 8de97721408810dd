#!/usr/bin/python3
"""Write the training (gradient and AdamW) parity fixtures that
tests/test_dit_grad_parity.c reads.

Usage: /usr/bin/python3 tests/reference/make_grad_fixture.py OUTDIR

For each small random configuration NAME (see CONFIGS), with the reference
model of tests/reference/dit_ref.py (weights random, not adaLN-Zero's zeros,
so every path carries gradient), it writes
  OUTDIR/NAME.weights.h5  the float32 weights, through tools/convert_checkpoint.py's
                          write_weights_h5, exactly as a real checkpoint;
  OUTDIR/NAME.fixture.h5  the batch: x1 (B,C,H,W) data in [-1,1], x0 (B,C,H,W)
                          noise, t (B,) with 0 and 1 included, y (B,) int32 with
                          the null class included;
                          loss: the flow-matching loss (search-reference §1)
                          mean((v(x_t,t,y) - (x1 - x0))^2), x_t = t x1 + (1-t) x0,
                          computed in float64 from the float32 weights and inputs;
                          grad/KEY: dloss/dKEY for every state_dict key, float64
                          rounded to float32 (pos_embed: zeros, it is fixed);
                          after_adamw/KEY: the parameters after STEPS AdamW steps
                          on the same batch (fresh gradients each step, global-norm
                          clipping, then torch.optim.AdamW), float64 throughout;
                          lrs (STEPS,) the learning rate of each step and
                          grad_norms (STEPS,) the norm before clipping;
                          root attributes: the hyper-parameters below.
The no-decay set is model/optim.h's: pos_embed frozen (not in the optimizer),
biases (1-D tensors) and y_embedder.embedding_table.weight without weight
decay, every other tensor with it. The learning rate follows optim.h's
schedule (linear warm-up, then cosine to lr_min). max_norm is set below the
first step's gradient norm so the clipping path is exercised.
Seeded: reruns are identical.
"""

import copy
import math
import os
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from convert_checkpoint import write_weights_h5  # noqa: E402
from dit_ref import DiT  # noqa: E402

BATCH = 6
SEED = 20250301
STEPS = 3

# AdamW and schedule. eps is well above the float32 noise (~1e-9 here) of
# gradients that are exactly zero in exact arithmetic (the attention key bias:
# softmax ignores a shift shared by all keys), which Adam would otherwise
# scale up to a full step of lr in the C run and not in this float64 one.
LR = 1e-3
LR_MIN = 1e-4
WARMUP_STEPS = 2
TOTAL_STEPS = 6
BETA1, BETA2 = 0.9, 0.999
EPS = 1e-6
WEIGHT_DECAY = 0.05
CLIP_FRACTION = 0.6  # max_norm = CLIP_FRACTION * norm of the first gradient

# name: (input_size, channels, patch, depth, width, heads, classes, learn_sigma)
CONFIGS = {
    "grad_p4c2_sigma": (16, 2, 4, 2, 32, 2, 5, True),
    "grad_p2c1": (12, 1, 2, 3, 24, 3, 4, False),
}


def lr_at(step):
    """model/optim.h's schedule (OPTIM_LR_COSINE), steps counted from 0."""
    if step < WARMUP_STEPS:
        return LR * (step + 1) / WARMUP_STEPS
    q = min(1.0, (step - WARMUP_STEPS) / (TOTAL_STEPS - WARMUP_STEPS))
    return LR_MIN + 0.5 * (LR - LR_MIN) * (1.0 + math.cos(math.pi * q))


def param_groups(model):
    """(decay, no_decay) parameter lists, pos_embed left out (frozen)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "pos_embed":
            continue
        if p.ndim == 1 or name == "y_embedder.embedding_table.weight":
            no_decay.append(p)
        else:
            decay.append(p)
    return decay, no_decay


def make_batch(model, gen):
    s, c, nc = model.input_size, model.in_channels, model.num_classes
    x1 = torch.rand(BATCH, c, s, s, generator=gen) * 2.0 - 1.0
    x0 = torch.randn(BATCH, c, s, s, generator=gen)
    t = torch.rand(BATCH, generator=gen)
    t[0], t[-1] = 0.0, 1.0
    y = torch.randint(0, nc, (BATCH,), generator=gen)
    y[1] = nc  # the null class
    return x1, x0, t, y


def flow_loss(model, x1, x0, t, y):
    """search-reference §1: mean over all elements of (v(x_t) - (x1 - x0))^2."""
    tb = t[:, None, None, None]
    xt = tb * x1 + (1.0 - tb) * x0
    v = model(xt, t, y)
    return ((v - (x1 - x0)) ** 2).mean()


def gradients(model, x1, x0, t, y):
    """Loss and {state_dict key: gradient}, zeros for parameters without one."""
    model.zero_grad(set_to_none=True)
    loss = flow_loss(model, x1, x0, t, y)
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        grads[name] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    return loss.item(), grads


def adamw_steps(model, x1, x0, t, y):
    """STEPS clipped AdamW steps on one batch; returns (lrs, norms, max_norm)."""
    decay, no_decay = param_groups(model)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False)
    trainable = decay + no_decay
    lrs, norms, max_norm = [], [], None
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        flow_loss(model, x1, x0, t, y).backward()
        if max_norm is None:
            with torch.no_grad():
                first = math.sqrt(sum(float((p.grad ** 2).sum()) for p in trainable))
            max_norm = CLIP_FRACTION * first
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainable, max_norm)))
        lr = lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        lrs.append(lr)
        opt.step()
    return lrs, norms, max_norm


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def write_fixture(path, x1, x0, t, y, loss, grads, after, lrs, norms, max_norm):
    with h5py.File(path, "w") as f:
        f.create_dataset("x1", data=f32(x1))
        f.create_dataset("x0", data=f32(x0))
        f.create_dataset("t", data=f32(t))
        f.create_dataset("y", data=y.numpy().astype(np.int32))
        f.create_dataset("lrs", data=np.asarray(lrs, dtype=np.float64))
        f.create_dataset("grad_norms", data=np.asarray(norms, dtype=np.float64))
        g = f.create_group("grad")
        for k, v in grads.items():
            g.create_dataset(k, data=f32(v))
        a = f.create_group("after_adamw")
        for k, v in after.items():
            a.create_dataset(k, data=f32(v))
        f.attrs["loss"] = np.float64(loss)
        f.attrs["steps"] = np.int64(STEPS)
        f.attrs["lr"] = np.float64(LR)
        f.attrs["lr_min"] = np.float64(LR_MIN)
        f.attrs["warmup_steps"] = np.int64(WARMUP_STEPS)
        f.attrs["total_steps"] = np.int64(TOTAL_STEPS)
        f.attrs["beta1"] = np.float64(BETA1)
        f.attrs["beta2"] = np.float64(BETA2)
        f.attrs["eps"] = np.float64(EPS)
        f.attrs["weight_decay"] = np.float64(WEIGHT_DECAY)
        f.attrs["max_norm"] = np.float64(max_norm)


def main():
    if len(sys.argv) != 2:
        print("usage: make_grad_fixture.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    for name, (size, ch, patch, depth, width, heads, classes, sigma) in CONFIGS.items():
        model = DiT(size, patch, ch, width, depth, heads, num_classes=classes,
                    learn_sigma=sigma).init_random(gen)
        write_weights_h5(model.state_dict(), model.config(), os.path.join(outdir, name + ".weights.h5"))
        x1, x0, t, y = make_batch(model, gen)

        ref = copy.deepcopy(model).double()
        x1d, x0d, td = x1.double(), x0.double(), t.double()
        loss, grads = gradients(ref, x1d, x0d, td, y)
        lrs, norms, max_norm = adamw_steps(ref, x1d, x0d, td, y)
        after = {k: v for k, v in ref.state_dict().items()}
        write_fixture(os.path.join(outdir, name + ".fixture.h5"), x1, x0, t, y, loss, grads, after,
                      lrs, norms, max_norm)
        print(f"{name}: {size}x{size}x{ch} patch {patch} depth {depth} width {width} heads {heads} "
              f"classes {classes} learn_sigma {int(sigma)}, B={BATCH}: loss {loss:.6f}, "
              f"grad norms {', '.join(f'{n:.4g}' for n in norms)} (max_norm {max_norm:.4g}), "
              f"lrs {', '.join(f'{lr:.3g}' for lr in lrs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

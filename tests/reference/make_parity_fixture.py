#!/usr/bin/python3
"""Write the DiT forward-pass parity fixtures that the C model test reads.

Usage: /usr/bin/python3 tests/reference/make_parity_fixture.py OUTDIR

For each small random configuration NAME (see CONFIGS) it writes
  OUTDIR/NAME.weights.h5  weights through tools/convert_checkpoint.py's
                          write_weights_h5, exactly as a real checkpoint;
  OUTDIR/NAME.fixture.h5  x (B,C,H,W), t (B,), y (B,) int32, and the outputs
                          v = forward(x,t,y), v_cfg = forward_with_cfg(...)
                          computed in float64 from the float32 weights and
                          stored as float32; root attributes cfg_scale
                          (float64) and cfg_channels (int64).
t includes 0.0 and 1.0 and y includes the null class, so the edges of the
timestep embedding and the null row of the label table are exercised.
It then reads every weight file back and, only if each tensor and attribute
matches, writes OUTDIR/converter_roundtrip.ok.  Seeded: reruns are identical.
"""

import copy
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

BATCH = 5
CFG_SCALE = 3.0
SEED = 20250117

# name: (input_size, channels, patch, depth, width, heads, classes, learn_sigma, cfg_channels)
CONFIGS = {
    "p4c1": (28, 1, 4, 2, 64, 4, 10, False, 1),
    "p2c4_sigma": (16, 4, 2, 2, 96, 3, 7, True, 3),
    "p2c1": (28, 1, 2, 1, 32, 2, 10, False, 1),
    "p4c4_sigma": (32, 4, 4, 3, 48, 6, 5, True, 4),
}


def make_inputs(model, gen):
    """x ~ N(0,1); t uniform with t[0] = 0 and t[-1] = 1; y with y[1] = null."""
    s, c, nc = model.input_size, model.in_channels, model.num_classes
    x = torch.randn(BATCH, c, s, s, generator=gen)
    t = torch.rand(BATCH, generator=gen)
    t[0], t[-1] = 0.0, 1.0
    y = torch.randint(0, nc, (BATCH,), generator=gen)
    y[1] = nc
    return x, t, y


def write_fixture(path, x, t, y, v, v_cfg, cfg_channels):
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=x.numpy().astype(np.float32))
        f.create_dataset("t", data=t.numpy().astype(np.float32))
        f.create_dataset("y", data=y.numpy().astype(np.int32))
        f.create_dataset("v", data=v.numpy().astype(np.float32))
        f.create_dataset("v_cfg", data=v_cfg.numpy().astype(np.float32))
        f.attrs["cfg_scale"] = np.float64(CFG_SCALE)
        f.attrs["cfg_channels"] = np.int64(cfg_channels)


def roundtrip_ok(path, model):
    """True when the weight file holds exactly the model's tensors and config."""
    sd = model.state_dict()
    with h5py.File(path, "r") as f:
        if set(f.keys()) != set(sd):
            print(f"{path}: keys differ from the state_dict", file=sys.stderr)
            return False
        for k, t in sd.items():
            got = f[k]
            if got.dtype != np.float32 or not np.array_equal(got[()], t.numpy()):
                print(f"{path}: {k} differs from the state_dict", file=sys.stderr)
                return False
        for k, want in model.config().items():
            if f.attrs[k] != want:
                print(f"{path}: attribute {k} = {f.attrs[k]}, expected {want}",
                      file=sys.stderr)
                return False
        if f.attrs["format"] != b"noisesearch-dit" or f.attrs["format_version"] != 1:
            print(f"{path}: wrong format attributes", file=sys.stderr)
            return False
    return True


def main():
    if len(sys.argv) != 2:
        print("usage: make_parity_fixture.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    ok_path = os.path.join(outdir, "converter_roundtrip.ok")
    if os.path.exists(ok_path):
        os.unlink(ok_path)
    gen = torch.Generator().manual_seed(SEED)
    all_ok = True
    for name, (size, ch, patch, depth, width, heads, classes, sigma, cfg_ch) in CONFIGS.items():
        model = DiT(size, patch, ch, width, depth, heads, num_classes=classes,
                    learn_sigma=sigma).init_random(gen).eval()
        weights = os.path.join(outdir, name + ".weights.h5")
        write_weights_h5(model.state_dict(), model.config(), weights)
        all_ok &= roundtrip_ok(weights, model)

        x, t, y = make_inputs(model, gen)
        ref = copy.deepcopy(model).double()
        with torch.no_grad():
            v = ref(x.double(), t.double(), y)
            v_cfg = ref.forward_with_cfg(x.double(), t.double(), y, CFG_SCALE, cfg_ch)
        write_fixture(os.path.join(outdir, name + ".fixture.h5"), x, t, y, v, v_cfg, cfg_ch)
        print(f"{name}: {size}x{size}x{ch} patch {patch} depth {depth} width {width} "
              f"heads {heads} classes {classes} learn_sigma {int(sigma)} "
              f"cfg_channels {cfg_ch}: |v| max {v.abs().max():.3f}, "
              f"|v_cfg| max {v_cfg.abs().max():.3f}")
    if not all_ok:
        print("weight round trip FAILED", file=sys.stderr)
        return 1
    open(ok_path, "w").close()
    print(f"{ok_path}: weight files read back identical to the state_dicts")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Convert a PyTorch DiT/SiT checkpoint into noisesearch's HDF5 weight file.

Usage:
    /usr/bin/python3 tools/convert_checkpoint.py IN.pt OUT.h5 [--num-heads H]
                                                 [--key ema|model|none]

Example, the official SiT-XL/2 release (a raw state_dict; 16 heads inferred
from the width 1152):
    /usr/bin/python3 tools/convert_checkpoint.py SiT-XL-2-256x256.pt \\
        weights/sit_xl2_256.h5

IN.pt is whatever torch.save wrote: a state_dict, or a training checkpoint
holding one under 'ema' (preferred) or 'model'; --key forces the choice
('none' = the file is the state_dict itself).  A 'module.' prefix (DDP) is
stripped.  The file is unpickled with torch.load: convert only files you trust.

The output holds one float32 dataset per tensor at the root, named by its
state_dict key with PyTorch's shape, and the root attributes input_size,
in_channels, patch_size, depth, hidden_size, num_heads, num_classes,
learn_sigma (int64), mlp_ratio (float64), format = "noisesearch-dit" (a
fixed-length ASCII string) and format_version = 1.  Everything but num_heads
is inferred from the tensor shapes; num_heads defaults by width to the
official sizes (XL 1152 -> 16, L 1024 -> 16, B 768 -> 12, S 384 -> 6).

Exit status 2, with a one-line message, on an unreadable input, a missing
key or an inconsistent shape.  The output is written to a temporary file
next to OUT.h5 and renamed at the end, so a failure never leaves a partial
file.  Importable: write_weights_h5(state_dict, config, path) is also used by
tests/reference/make_parity_fixture.py.
"""

import argparse
import math
import os
import re
import sys
import tempfile

import h5py
import numpy as np

FORMAT = "noisesearch-dit"
FORMAT_VERSION = 1
DEFAULT_HEADS = {1152: 16, 1024: 16, 768: 12, 384: 6}
INT_ATTRS = ("input_size", "in_channels", "patch_size", "depth", "hidden_size",
             "num_heads", "num_classes", "learn_sigma")


class ConvertError(Exception):
    """An expected failure: bad input file, missing key, wrong shape."""


def fmt_shape(shape):
    return "[" + ",".join(str(int(s)) for s in shape) + "]"


def expected_shapes(cfg):
    """state_dict key -> shape, for the model described by cfg (insertion order
    is the order the tensors are written)."""
    d, p, c = cfg["hidden_size"], cfg["patch_size"], cfg["in_channels"]
    hid = round(d * cfg["mlp_ratio"])  # ratio was inferred as hid/d
    c_out = 2 * c if cfg["learn_sigma"] else c
    tokens = (cfg["input_size"] // p) ** 2
    shapes = {
        "pos_embed": (1, tokens, d),
        "x_embedder.proj.weight": (d, c, p, p),
        "x_embedder.proj.bias": (d,),
        "t_embedder.mlp.0.weight": (d, 256),
        "t_embedder.mlp.0.bias": (d,),
        "t_embedder.mlp.2.weight": (d, d),
        "t_embedder.mlp.2.bias": (d,),
        "y_embedder.embedding_table.weight": (cfg["num_classes"] + 1, d),
    }
    for i in range(cfg["depth"]):
        b = f"blocks.{i}."
        shapes.update({
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
            b + "mlp.fc1.weight": (hid, d), b + "mlp.fc1.bias": (hid,),
            b + "mlp.fc2.weight": (d, hid), b + "mlp.fc2.bias": (d,),
            b + "adaLN_modulation.1.weight": (6 * d, d),
            b + "adaLN_modulation.1.bias": (6 * d,),
        })
    shapes.update({
        "final_layer.adaLN_modulation.1.weight": (2 * d, d),
        "final_layer.adaLN_modulation.1.bias": (2 * d,),
        "final_layer.linear.weight": (p * p * c_out, d),
        "final_layer.linear.bias": (p * p * c_out,),
    })
    return shapes


def tensor_shape(sd, key):
    """Shape of sd[key]; ConvertError if it is absent or not a tensor."""
    if key not in sd:
        raise ConvertError(f"missing key {key}")
    if not hasattr(sd[key], "shape"):
        raise ConvertError(f"{key} is a {type(sd[key]).__name__}, expected a tensor")
    return tuple(sd[key].shape)


def shape_of(sd, key, ndim):
    """Shape of a tensor needed to infer the config, checked to have ndim axes."""
    shape = tensor_shape(sd, key)
    if len(shape) != ndim:
        raise ConvertError(f"{key} has shape {fmt_shape(shape)}, expected {ndim} dimensions")
    return shape


def infer_config(sd, num_heads=None):
    """Model hyper-parameters from tensor shapes; num_heads is given or looked
    up by width.  Raises ConvertError on anything inconsistent."""
    d, c, p, p2 = shape_of(sd, "x_embedder.proj.weight", 4)
    if p != p2:
        raise ConvertError(f"x_embedder.proj.weight has shape {fmt_shape((d, c, p, p2))}, "
                           "expected a square patch")
    _, tokens, _ = shape_of(sd, "pos_embed", 3)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ConvertError(f"pos_embed has {tokens} tokens, expected a square grid")
    depth = 0
    block_re = re.compile(r"blocks\.(\d+)\.")
    for k in sd:
        m = block_re.match(k)
        if m:
            depth = max(depth, int(m.group(1)) + 1)
    rows, _ = shape_of(sd, "y_embedder.embedding_table.weight", 2)
    out, _ = shape_of(sd, "final_layer.linear.weight", 2)
    if out not in (p * p * c, 2 * p * p * c):
        raise ConvertError(f"final_layer.linear.weight has shape "
                           f"{fmt_shape(sd['final_layer.linear.weight'].shape)}, "
                           f"expected [{p * p * c},{d}] or [{2 * p * p * c},{d}]")
    mlp_ratio = 4.0
    if depth > 0:
        mlp_ratio = shape_of(sd, "blocks.0.mlp.fc1.weight", 2)[0] / d
    if num_heads is None:
        if d not in DEFAULT_HEADS:
            raise ConvertError(f"hidden size {d} is not an official DiT/SiT width; "
                               "pass --num-heads")
        num_heads = DEFAULT_HEADS[d]
    if num_heads <= 0 or d % num_heads:
        raise ConvertError(f"hidden size {d} is not divisible by num_heads {num_heads}")
    return {
        "input_size": grid * p, "in_channels": c, "patch_size": p, "depth": depth,
        "hidden_size": d, "num_heads": num_heads, "num_classes": rows - 1,
        "learn_sigma": int(out == 2 * p * p * c), "mlp_ratio": mlp_ratio,
    }


def check_state_dict(sd, cfg):
    """The model's tensors in write order; warns about extra keys and raises
    ConvertError on a missing key or a wrong shape."""
    if cfg["hidden_size"] % cfg["num_heads"]:
        raise ConvertError(f"hidden size {cfg['hidden_size']} is not divisible by "
                           f"num_heads {cfg['num_heads']}")
    shapes = expected_shapes(cfg)
    extra = sorted(k for k in sd if k not in shapes)
    if extra:
        print(f"warning: ignoring {len(extra)} key(s) not in the model: {', '.join(extra)}",
              file=sys.stderr)
    tensors = {}
    for key, want in shapes.items():
        if key not in sd:
            raise ConvertError(f"missing key {key} (expected shape {fmt_shape(want)})")
        got = tensor_shape(sd, key)
        if got != want:
            raise ConvertError(f"{key} has shape {fmt_shape(got)}, expected {fmt_shape(want)}")
        tensors[key] = sd[key]
    return tensors


def to_numpy_f32(t):
    if hasattr(t, "detach"):  # torch tensor; numpy arrays pass through
        t = t.detach().cpu().float().numpy()
    return np.ascontiguousarray(t, dtype=np.float32)


def write_weights_h5(state_dict, config, path):
    """Write state_dict (torch tensors or numpy arrays) and config to path.

    Validates first (ConvertError), writes to a temporary file in path's
    directory and renames it, so path is either complete or untouched (an
    OSError from writing propagates after the temporary file is removed).
    """
    tensors = check_state_dict(state_dict, config)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, t in tensors.items():
                f.create_dataset(key, data=to_numpy_f32(t))
            for name in INT_ATTRS:
                f.attrs[name] = np.int64(config[name])
            f.attrs["mlp_ratio"] = np.float64(config["mlp_ratio"])
            f.attrs["format"] = np.bytes_(FORMAT)
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        umask = os.umask(0)  # mkstemp made the file 0600; give it the usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_state_dict(path, key):
    """The state_dict inside a torch.save file; key is 'ema', 'model', 'none'
    or None (ema if present, else model, else the file itself)."""
    import torch  # imported here so that write_weights_h5 works without torch

    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many types for a bad file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConvertError(f"cannot read checkpoint: {msg}") from e
    if not isinstance(obj, dict):
        raise ConvertError(f"expected a dict, found {type(obj).__name__}")
    if key is None:
        key = next((k for k in ("ema", "model") if k in obj), "none")
    if key != "none":
        if key not in obj:
            raise ConvertError(f"no '{key}' entry (top-level keys: "
                               f"{', '.join(map(str, list(obj)[:8]))})")
        obj = obj[key]
        if not isinstance(obj, dict):
            raise ConvertError(f"'{key}' holds a {type(obj).__name__}, expected a state_dict")
    return {k[len("module."):] if k.startswith("module.") else k: v
            for k, v in obj.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", metavar="IN.pt", help="file written by torch.save")
    ap.add_argument("output", metavar="OUT.h5", help="HDF5 weight file to write")
    ap.add_argument("--num-heads", type=int, default=None,
                    help="attention heads (default by width: 1152/1024 -> 16, "
                         "768 -> 12, 384 -> 6; required for other widths)")
    ap.add_argument("--key", choices=("ema", "model", "none"), default=None,
                    help="which entry holds the state_dict (default: 'ema' if "
                         "present, else 'model', else the file itself)")
    args = ap.parse_args(argv)
    try:
        if not os.path.isfile(args.input):
            raise ConvertError("no such file")
        sd = load_state_dict(args.input, args.key)
        cfg = infer_config(sd, args.num_heads)
        write_weights_h5(sd, cfg, args.output)
    except ConvertError as e:
        print(f"convert_checkpoint: {args.input}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"convert_checkpoint: {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    n = sum(int(np.prod(s)) for s in expected_shapes(cfg).values())
    print(f"{args.output}: depth {cfg['depth']}, width {cfg['hidden_size']}, "
          f"{cfg['num_heads']} heads, patch {cfg['patch_size']}, "
          f"{cfg['input_size']}x{cfg['input_size']}x{cfg['in_channels']}, "
          f"{cfg['num_classes']} classes, learn_sigma {cfg['learn_sigma']}, "
          f"{n / 1e6:.1f}M parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())

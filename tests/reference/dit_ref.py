"""Independent PyTorch reference of the DiT/SiT denoiser, for parity tests.

Written from docs/search-reference.md section 6, not copied from the official
DiT/SiT code; it has no timm dependency.  Its state_dict names and tensor
layouts are those of the official checkpoints, so the same HDF5 weights feed
this model, the C model and (after tools/convert_checkpoint.py) a released
SiT/DiT checkpoint.  It predicts the SiT velocity v(x_t, t, y) with t in [0, 1]
(0 = noise, 1 = data), fed to the timestep embedding unscaled.

This file is a reference, not a trainer: it has no dropout, no label dropping,
and `init_random` deliberately avoids adaLN-Zero's zero init, because a zeroed
gate or final layer would make a parity test trivially pass.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TIME_FREQS = 256  # size of the sinusoidal timestep embedding (DiT/SiT)
LN_EPS = 1e-6


def sincos_1d(dim, pos):
    """(len(pos), dim) embedding [sin(pos*w), cos(pos*w)], w_i = 1/10000^(i/(dim/2))."""
    assert dim % 2 == 0
    w = 1.0 / 10000.0 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    arg = np.outer(pos.astype(np.float64), w)
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=1)


def sincos_2d(dim, grid):
    """(grid*grid, dim) position embedding for a row-major grid of tokens.

    The first dim/2 channels encode the column index, the last dim/2 the row.
    """
    assert dim % 4 == 0, "2-D sin-cos needs the width divisible by 4"
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    return np.concatenate([sincos_1d(dim // 2, cols.ravel()),
                           sincos_1d(dim // 2, rows.ravel())], axis=1)


def timestep_embedding(t, dim=TIME_FREQS):
    """(N,) -> (N, dim): [cos(t*f), sin(t*f)], f_i = exp(-ln(1e4) i/(dim/2)).

    Cosine first, unlike the position embedding.
    """
    half = dim // 2
    f = torch.exp(-math.log(10000.0)
                  * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    arg = t[:, None] * f[None, :]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


def modulate(x, shift, scale):
    """x: (N,T,D); shift, scale: (N,D)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class PatchEmbed(nn.Module):
    """(N,C,H,W) -> (N,T,D), T = (H/p)*(W/p) tokens in row-major order."""

    def __init__(self, patch, in_ch, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    """(N,) -> (N,D): sinusoidal features, Linear, SiLU, Linear."""

    def __init__(self, dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(TIME_FREQS, dim), nn.SiLU(),
                                 nn.Linear(dim, dim))

    def forward(self, t):
        return self.mlp(timestep_embedding(t))


class LabelEmbedder(nn.Module):
    """(N,) long -> (N,D); row num_classes is the null class used by CFG."""

    def __init__(self, num_classes, dim):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y):
        return self.embedding_table(y)


class Attention(nn.Module):
    """Multi-head self-attention; qkv output columns are [q|k|v], each split
    into heads of D/H contiguous columns."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # x: (N,T,D)
        n, t, d = x.shape
        dh = d // self.heads
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (N,H,T,dh)
        att = torch.softmax((q @ k.transpose(-2, -1)) * dh ** -0.5, dim=-1)
        out = (att @ v).transpose(1, 2).reshape(n, t, d)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """adaLN block: c -> 6 chunks (shift, scale, gate) x (attention, MLP)."""

    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):  # x: (N,T,D), c: (N,D)
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.adaLN_modulation(c).chunk(6, dim=1)
        d = x.shape[-1]
        h = F.layer_norm(x, (d,), eps=LN_EPS)
        x = x + g_a[:, None, :] * self.attn(modulate(h, sh_a, sc_a))
        h = F.layer_norm(x, (d,), eps=LN_EPS)
        return x + g_m[:, None, :] * self.mlp(modulate(h, sh_m, sc_m))


class FinalLayer(nn.Module):
    """(N,T,D) -> (N,T,p*p*C_out) via LayerNorm, adaLN (shift, scale), Linear."""

    def __init__(self, dim, patch, out_ch):
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, patch * patch * out_ch)

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        h = F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)
        return self.linear(modulate(h, shift, scale))


class DiT(nn.Module):
    """Class-conditional DiT/SiT velocity model on (N,C,H,W) inputs, H = W = input_size."""

    def __init__(self, input_size, patch_size, in_channels, hidden_size, depth,
                 num_heads, mlp_ratio=4.0, num_classes=1000, learn_sigma=True):
        super().__init__()
        assert input_size % patch_size == 0
        assert hidden_size % num_heads == 0
        self.input_size = input_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.hidden_size = hidden_size
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        self.learn_sigma = learn_sigma
        grid = input_size // patch_size

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size)
        pos = torch.from_numpy(sincos_2d(hidden_size, grid)).float()[None]
        # A fixed parameter (not a buffer) so it is in the state_dict, as in
        # the official checkpoints.
        self.pos_embed = nn.Parameter(pos, requires_grad=False)  # (1,T,D)
        self.blocks = nn.ModuleList(
            [Block(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)

    @torch.no_grad()
    def init_random(self, generator=None):
        """Fill every weight except pos_embed with non-zero normal noise.

        Each Linear/Conv weight gets std gain/sqrt(fan_in) so activations stay
        O(1); the adaLN layers use a smaller gain so (1 + scale) stays near 1
        and gates stay O(0.3), which keeps the residual stream bounded while
        every path still contributes to the output.
        """
        def normal_(p, std):
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)

        for name, p in self.named_parameters():
            if name == "pos_embed":
                continue
            if name.endswith("bias"):
                normal_(p, 0.1)
            elif name == "y_embedder.embedding_table.weight":
                normal_(p, 0.5)
            else:
                fan_in = p[0].numel()
                gain = 0.5 if "adaLN_modulation" in name else 1.0
                normal_(p, gain / math.sqrt(fan_in))
        return self

    def unpatchify(self, x):
        """(N,T,p*p*C_out), per token ordered (p_row, p_col, channel) -> (N,C_out,H,W)."""
        p, c = self.patch_size, self.out_channels
        g = self.input_size // p
        x = x.reshape(x.shape[0], g, g, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, g * p, g * p)

    def forward(self, x, t, y):
        """x: (N,C,H,W), t: (N,) float in [0,1], y: (N,) long -> velocity (N,C,H,W)."""
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, c)
        out = self.unpatchify(self.final_layer(h, c))
        return out[:, :self.in_channels]  # drop the learned variance if any

    def forward_with_cfg(self, x, t, y, cfg_scale, cfg_channels):
        """Classifier-free guidance in one doubled batch.

        Channels c < cfg_channels get u + s*(cnd - u); the rest keep the
        conditional output, as the official code does with cfg_channels = 3.
        """
        n = x.shape[0]
        null = torch.full_like(y, self.num_classes)
        out = self.forward(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        cnd, unc = out[:n], out[n:]
        guided = unc + cfg_scale * (cnd - unc)
        return torch.cat([guided[:, :cfg_channels], cnd[:, cfg_channels:]], dim=1)

    def config(self):
        """Model hyper-parameters, in the form tools/convert_checkpoint.py writes."""
        return {
            "input_size": self.input_size,
            "in_channels": self.in_channels,
            "patch_size": self.patch_size,
            "depth": self.depth,
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "num_classes": self.num_classes,
            "learn_sigma": int(self.learn_sigma),
            "mlp_ratio": float(self.mlp_ratio),
        }

"""A small U-Net for C x H x W images (1 x 28 x 28 in the paper), after the DDPM/NCSN++ U-Net the paper adapts
(Appendix A.1).

Three resolution levels (H, H/2, H/4: 28, 14, 7 for MNIST), residual blocks with GroupNorm and a sinusoidal
time embedding, optional self-attention at the lowest resolution. Every layer acts on one sample at a time (no BatchNorm, nothing that
mixes the batch), so the Jacobian of one output with respect to its own input is exact and independent
of what else is in the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, *, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of continuous times.

    Args:
        t: (B,) times in [0, 1]; multiplied by `scale` so the frequencies match the discrete-step models.
        dim: embedding width (even).

    Returns:
        (B, dim) embedding.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    args = scale * t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    # The largest divisor of `channels` not above `groups`, so any width works.
    g = max(d for d in range(1, groups + 1) if channels % d == 0)
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, time embedding added, GroupNorm -> SiLU -> dropout -> conv, plus skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, *, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # start each block as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the spatial positions of one sample."""

    def __init__(self, channels: int, *, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """U-Net mapping (x_t, t) to an image-shaped output (epsilon-hat or x_0-hat, see `score.py`).

    Args:
        channels: widths at the three resolutions H, H/2, H/4 (28, 14, 7 px for MNIST; H and W multiples of 4).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention: add self-attention in the middle block (7x7 for MNIST).
        dropout: dropout rate inside residual blocks (0 keeps training deterministic given the seed).
        groups: maximum GroupNorm groups.
        in_channels: image channels C (1 for MNIST, 3 for RGB).
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 64), *, num_res_blocks: int = 1,
                 attention: bool = False, dropout: float = 0.0, groups: int = 8, in_channels: int = 1) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3:
            raise ValueError(f"channels must list 3 widths (for H, H/2, H/4 px), got {channels}")
        self.channels = channels
        c0 = channels[0]
        emb_dim = 4 * c0
        self.time_dim = c0
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)

        block = lambda ci, co: ResBlock(ci, co, emb_dim, groups=groups, dropout=dropout)  # noqa: E731
        self.down = nn.ModuleList()
        skip_channels = [c0]
        c = c0
        for level, c_level in enumerate(channels):
            for _ in range(num_res_blocks):
                self.down.append(block(c, c_level))
                c = c_level
                skip_channels.append(c)
            if level < len(channels) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # H -> H/2 -> H/4
                skip_channels.append(c)

        self.mid1 = block(c, c)
        self.mid_attn = AttnBlock(c, groups=groups) if attention else nn.Identity()
        self.mid2 = block(c, c)

        self.up = nn.ModuleList()
        for level, c_level in reversed(list(enumerate(channels))):
            for _ in range(num_res_blocks + 1):
                self.up.append(block(c + skip_channels.pop(), c_level))
                c = c_level
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(c, c, 3, padding=1)))
        self.norm_out = _norm(c, groups)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) with H, W multiples of 4, t: (B,) in [0, 1] -> (B, C, H, W)."""
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"the U-Net halves the image twice: H and W must be multiples of 4, got {tuple(x.shape[-2:])}")
        emb = self.time_mlp(timestep_embedding(t, self.time_dim).to(x.dtype))
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def build_unet(model_cfg: dict, *, in_channels: int = 1) -> UNet:
    """Build the U-Net from the `model:` section of the config for images of `in_channels` channels."""
    return UNet(tuple(model_cfg["channels"]), num_res_blocks=model_cfg["num_res_blocks"],
                attention=model_cfg["attention"], dropout=model_cfg["dropout"], groups=model_cfg["groups"],
                in_channels=in_channels)

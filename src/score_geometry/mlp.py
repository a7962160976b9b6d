"""A small residual MLP score network for low-dimensional toy data (the 2-D surface in R^3 of Fig. 1).

Same interface as the U-Net, ``model(x, t) -> out`` with ``out`` shaped like ``x``, so it trains through the
same `train.train_model` loop and turns into a score with the same `score.make_score_fn`. Smooth (SiLU)
activations and no layer that mixes the batch, so per-sample Jacobians are exact and well defined.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
import torch.nn.functional as F

from .unet import timestep_embedding


class ResidualBlock(nn.Module):
    """SiLU -> linear, time embedding added, SiLU -> linear, plus skip."""

    def __init__(self, width: int, emb_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(width, width)
        self.emb = nn.Linear(emb_dim, width)
        self.lin2 = nn.Linear(width, width)
        nn.init.zeros_(self.lin2.weight)  # start each block as the identity
        nn.init.zeros_(self.lin2.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.lin2(F.silu(self.lin1(F.silu(h)) + self.emb(emb)))


class MLPScoreNet(nn.Module):
    """Residual MLP ``(x, t) -> out`` on flat inputs.

    Args:
        dim: input and output dimension D (3 for the toy surface in R^3).
        width: hidden units per layer.
        depth: number of residual blocks (>= 1).
        emb_dim: width of the sinusoidal time embedding (even).
    """

    def __init__(self, dim: int = 3, *, width: int = 128, depth: int = 3, emb_dim: int = 64) -> None:
        super().__init__()
        if emb_dim % 2:
            raise ValueError(f"emb_dim must be even (sin and cos halves), got {emb_dim}")
        self.emb_dim = emb_dim
        self.time = nn.Sequential(nn.Linear(emb_dim, width), nn.SiLU(), nn.Linear(width, emb_dim))
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, emb_dim) for _ in range(depth))
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (B, D), t: (B,) -> (B, D)."""
        emb = F.silu(self.time(timestep_embedding(t.to(x.dtype), self.emb_dim)))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(h))


def build_mlp(model_cfg: Mapping[str, Any]) -> MLPScoreNet:
    """Build the MLP from a ``model:`` config section (keys ``dim``, ``width``, ``depth``, ``emb_dim``)."""
    return MLPScoreNet(model_cfg.get("dim", 3), width=model_cfg["width"], depth=model_cfg["depth"],
                       emb_dim=model_cfg["emb_dim"])

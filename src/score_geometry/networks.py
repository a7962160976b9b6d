"""The networks the pipeline trains, by name: ``unet`` (images) and ``mlp`` (points of the toy surface)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from .mlp import build_mlp
from .unet import build_unet

ARCHITECTURES = ("unet", "mlp")


def build_network(model_cfg: Mapping[str, Any]) -> nn.Module:
    """The network named by ``model_cfg["architecture"]``: ``unet`` (the default, MNIST) or ``mlp`` (toy data)."""
    arch = model_cfg.get("architecture", "unet")
    if arch == "unet":
        return build_unet(model_cfg)
    if arch == "mlp":
        return build_mlp(model_cfg)
    raise ValueError(f"model.architecture must be one of {ARCHITECTURES}, got {arch!r}")


def load_ema_network(checkpoint: Mapping[str, Any], *, device: Any = "cpu") -> nn.Module:
    """Rebuild the EMA network (eval mode, no grads) from a checkpoint dict written by `train.train_model`."""
    model = build_network(checkpoint["config"]["model"]).to(device)
    model.load_state_dict(checkpoint["state"]["ema"])
    return model.eval().requires_grad_(False)

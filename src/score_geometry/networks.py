"""The networks the pipeline trains, by name: ``unet`` (images) and ``mlp`` (points of the toy surface)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from .mlp import build_mlp
from .unet import build_unet

ARCHITECTURES = ("unet", "mlp")


def build_network(model_cfg: Mapping[str, Any], *, image_shape: tuple[int, ...] | None = None) -> nn.Module:
    """The network named by ``model_cfg["architecture"]``: ``unet`` (the default, images of `image_shape`
    (C, H, W), (1, 28, 28) when not given) or ``mlp`` (toy data)."""
    arch = model_cfg.get("architecture", "unet")
    if arch == "unet":
        return build_unet(model_cfg, in_channels=int(image_shape[0]) if image_shape else 1)
    if arch == "mlp":
        return build_mlp(model_cfg)
    raise ValueError(f"model.architecture must be one of {ARCHITECTURES}, got {arch!r}")


def load_ema_network(checkpoint: Mapping[str, Any], *, device: Any = "cpu") -> nn.Module:
    """Rebuild the EMA network (eval mode, no grads) from a checkpoint dict written by `train.train_model`
    (its ``image_shape``, when recorded, sets the U-Net's channels)."""
    model = build_network(checkpoint["config"]["model"], image_shape=checkpoint.get("image_shape")).to(device)
    model.load_state_dict(checkpoint["state"]["ema"])
    return model.eval().requires_grad_(False)

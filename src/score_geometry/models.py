"""The score model behind a checkpoint: the trained U-Net (EMA weights) or a closed-form oracle.

Checkpoints written by the `train_model` rule carry ``kind``: ``unet`` (trained network) or
``gaussian_oracle`` (a Gaussian on the top principal subspace of the training images, whose noisy score
and Jacobian are known exactly). Everything downstream — sampling, Jacobians, calibration — goes through
`score_fn_from_checkpoint`, so the oracle runs through the same rules as the network.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from .oracle import GaussianSubspaceOracle
from .score import ScoreFn, make_score_fn
from .sde import VPSDE
from .train import load_ema_model

KINDS = ("unet", "gaussian_oracle")


def pca_oracle_checkpoint(images: torch.Tensor, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A Gaussian fitted to the top `model.oracle_rank` principal components of the training images.

    Args:
        images: (N, 1, 28, 28) in [-1, 1].
        cfg: resolved config (``model.oracle_rank``, ``sde``).

    Returns:
        A checkpoint dict: kind, state (mu (1, 28, 28), basis (784, k), variances (k,)), config, step 0.
    """
    k = cfg["model"]["oracle_rank"]
    X = images.reshape(len(images), -1).double()
    mu = X.mean(0)
    # Principal axes of the centred data; variances are the squared singular values / (N - 1).
    _, s, Vh = torch.linalg.svd(X - mu, full_matrices=False)
    variances = s[:k] ** 2 / (len(X) - 1)
    return {"kind": "gaussian_oracle", "step": 0, "config": dict(cfg),
            "state": {"mu": mu.reshape(images.shape[1:]), "basis": Vh[:k].T.contiguous(), "variances": variances}}


def score_fn_from_checkpoint(checkpoint: Mapping[str, Any], *, device: torch.device | str = "cpu",
                             dtype: torch.dtype = torch.float32,
                             memory_format: torch.memory_format = torch.contiguous_format) -> ScoreFn:
    """g(x, t): x (B, 1, 28, 28), t (B,) -> (B, 1, 28, 28), computed in `dtype` on `device`.

    `memory_format` is the network's parameter layout (`torch.channels_last` makes CPU Jacobians faster,
    see `jacobian.preferred_memory_format`); the function computed is the same.
    """
    cfg = checkpoint["config"]
    kind = checkpoint.get("kind", "unet")
    if kind == "gaussian_oracle":
        st = checkpoint["state"]
        oracle = GaussianSubspaceOracle(st["mu"], st["basis"], st["variances"], **cfg["sde"]).to(device)
        return lambda x, t: oracle(x, t)
    if kind == "unet":
        model = load_ema_model(checkpoint, device=device).to(dtype=dtype, memory_format=memory_format)
        return make_score_fn(model, VPSDE(**cfg["sde"]), cfg["model"]["parameterisation"])
    raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")


def expected_local_dim(checkpoint: Mapping[str, Any], t: float, *, kappa: float) -> int | None:
    """For an oracle checkpoint, the exact r_t = #{i : alpha_t^2 lambda_i >= kappa sigma_t^2}; None for a network."""
    if checkpoint.get("kind", "unet") != "gaussian_oracle":
        return None
    sde = VPSDE(**checkpoint["config"]["sde"])
    tt = torch.tensor(t, dtype=torch.float64)
    lam = np.asarray(checkpoint["state"]["variances"], dtype=np.float64)
    return int(np.sum(float(sde.alpha(tt)) ** 2 * lam >= kappa * float(sde.sigma(tt)) ** 2))


def fit_score_model(images: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path, metrics_path,
                    device: torch.device | str = "cpu", threads: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the U-Net (resumably) or build the oracle, per ``model.score_model``.

    Returns:
        The final checkpoint dict and the training-options dict to dump beside it.
    """
    from . import io
    from .train import final_checkpoint, train_model, training_options

    kind = cfg["model"]["score_model"]
    if kind == "gaussian_oracle":
        ckpt = pca_oracle_checkpoint(images, cfg)
        io.append_jsonl(metrics_path, {"step": 0, "oracle_rank": cfg["model"]["oracle_rank"],
                                       "explained_variance": float(ckpt["state"]["variances"].sum())})
        return ckpt, {**dict(cfg), "score_model": kind, "final_step": 0, "device": str(device)}
    if kind == "unet":
        state = train_model(images, cfg, checkpoint_path=checkpoint_path, metrics_path=metrics_path, device=device)
        return final_checkpoint(state, cfg), training_options(state, cfg, device=device, threads=threads)
    raise ValueError(f"model.score_model must be one of {KINDS}, got {kind!r}")

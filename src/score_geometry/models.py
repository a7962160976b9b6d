"""Score models without training: the Gaussian oracle fitted to the training images, the score function of a
model reference, and the oracle's exact local dimension.

Model references (``model/model.pt``) carry ``kind``: ``unet`` (trained network, `train.fit_score_model`),
``gaussian_oracle`` (a Gaussian on the top principal subspace of the training images, whose noisy score and
Jacobian are known exactly) or an external kind (`score_models.EXTERNAL_KINDS`). Everything downstream —
sampling, Jacobians, calibration — goes through `score_models.load_score_model`, so every kind runs through the
same rules. Nothing here imports the training code.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from .score import ScoreFn
from .score_models import load_score_model
from .sde import VPSDE


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
    """g(x, t): x (B, *image_shape), t (B,) -> (B, *image_shape), computed in `dtype` on `device`
    (`score_models.load_score_model(...).score`)."""
    return load_score_model(checkpoint, device=device, dtype=dtype, memory_format=memory_format).score


def expected_local_dim(checkpoint: Mapping[str, Any], t: float, *, kappa: float) -> int | None:
    """For an oracle checkpoint, the exact r_t = #{i : alpha_t^2 lambda_i >= kappa sigma_t^2}; None for a network."""
    if checkpoint.get("kind", "unet") != "gaussian_oracle":
        return None
    sde = VPSDE(**checkpoint["config"]["sde"])
    lam = np.asarray(checkpoint["state"]["variances"], dtype=np.float64)
    alpha, sigma = sde.scales(t)
    return int(np.sum(alpha**2 * lam >= kappa * sigma**2))


# Deprecated since 0.2.0, removed in 0.3.0 (CHANGELOG.md): building the run's score model moved to `train`. The
# new place is imported only when an old name is used, so this module still imports no training code.
from ._deprecation import moved_names  # noqa: E402

__getattr__ = moved_names(__name__, {"fit_score_model": "score_geometry.train:fit_score_model",
                                     "KINDS": "score_geometry.train:KINDS"})

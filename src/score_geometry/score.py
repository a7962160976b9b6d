"""The one score function g(x, t) built from a network, and the denoising score-matching loss.

Two parameterisations of the network output (Appendix A; Song et al. 2021):
  * ``eps``: the network predicts the noise, g = -eps_hat / sigma_t (the paper's choice);
  * ``x0``:  the network predicts the clean image D(x), g = (alpha_t D(x) - x) / sigma_t^2.
With ``x0`` the -I / sigma_t^2 part of the score Jacobian is exact by construction, which is what makes
the paper's noise-floor threshold (1 + kappa) sigma_t^2 usable at a small training budget.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .sde import VPSDE

PARAMETERISATIONS = ("eps", "x0")
LOSS_SPACES = ("native", "eps", "x0")
T_SAMPLINGS = ("uniform", "log_uniform", "mixture")

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view((-1,) + (1,) * (x.dim() - 1))


def score_from_output(out: torch.Tensor, x: torch.Tensor, t: torch.Tensor, sde: VPSDE,
                      parameterisation: str) -> torch.Tensor:
    """Convert a network output to the score g(x, t).

    Args:
        out: (B, *S) network output (eps_hat or x0_hat).
        x: (B, *S) noisy input x_t.
        t: (B,) times.
        sde: the forward SDE.
        parameterisation: ``"eps"`` or ``"x0"``.

    Returns:
        (B, *S) score estimate.
    """
    alpha, sigma = _bcast(sde.alpha(t), x), _bcast(sde.sigma(t), x)
    if parameterisation == "eps":
        return -out / sigma
    if parameterisation == "x0":
        return (alpha * out - x) / sigma**2
    raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, got {parameterisation!r}")


def make_score_fn(model: nn.Module, sde: VPSDE, parameterisation: str) -> ScoreFn:
    """Wrap a network as g(x, t): x (B, *S), t (B,) -> (B, *S). Used by the sampler and the Jacobians."""
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, got {parameterisation!r}")

    def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return score_from_output(model(x, t), x, t, sde, parameterisation)

    return score_fn


def sample_t(n: int, *, t_min: float, scheme: str, generator: torch.Generator,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Training times t in [t_min, 1], shape (n,).

    ``uniform`` is the paper's choice; ``log_uniform`` puts more weight near t = 0, where the later
    analysis thresholds the Jacobian spectrum at the smallest noise levels, but starves large t (the
    sampler starts at t = 1); ``mixture`` draws each t from either with probability 1/2.
    """
    u = torch.rand(n, generator=generator, device=device)
    if scheme == "uniform":
        return t_min + (1.0 - t_min) * u
    if scheme == "log_uniform":
        return t_min * (1.0 / t_min) ** u
    if scheme == "mixture":
        use_log = torch.rand(n, generator=generator, device=device) < 0.5
        return torch.where(use_log, t_min * (1.0 / t_min) ** u, t_min + (1.0 - t_min) * u)
    raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {scheme!r}")


def dsm_loss(model: nn.Module, x0: torch.Tensor, sde: VPSDE, *, parameterisation: str, loss_space: str,
             t_min: float, t_sampling: str, generator: torch.Generator) -> torch.Tensor:
    """Denoising score-matching loss, mean over batch and pixels.

    The MSE is taken in ``loss_space``: ``eps`` (||eps_hat - eps||^2, the paper's), ``x0``
    (||x0_hat - x0||^2) or ``native`` (whatever the network predicts). The two are the same objective
    up to the weight alpha_t^2 / sigma_t^2 = eps-MSE / x0-MSE, applied analytically so no division by a
    tiny sigma_t ever reaches the gradients.

    Args:
        x0: (B, *S) clean data in [-1, 1].
    """
    if loss_space not in LOSS_SPACES:
        raise ValueError(f"loss must be one of {LOSS_SPACES}, got {loss_space!r}")
    b = x0.shape[0]
    t = sample_t(b, t_min=t_min, scheme=t_sampling, generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = sde.perturb(x0, t, eps)
    out = model(x_t, t)
    target = eps if parameterisation == "eps" else x0
    per_sample = (out - target).pow(2).flatten(1).mean(1)
    space = parameterisation if loss_space == "native" else loss_space
    if space != parameterisation:
        snr = sde.alpha(t) ** 2 / sde.sigma(t) ** 2  # eps-MSE = snr * x0-MSE
        per_sample = per_sample * (snr if space == "eps" else 1.0 / snr)
    return per_sample.mean()

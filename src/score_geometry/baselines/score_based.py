"""Score-based local-dimension estimators: the normal bundle of Stanczuk et al. (2024) and FLIPD of Kamkari et
al. (2024), from a score model at clean points."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from ..score import ScoreFn
from ..sde import VPSDE
from .registry import estimator


@torch.no_grad()
def normal_bundle_spectrum(score_fn: ScoreFn, x0: torch.Tensor, t: float, *, sde: VPSDE, n_perturbations: int,
                           generator: torch.Generator, batch_size: int = 256, center: bool = True) -> np.ndarray:
    """Singular values (descending) of the score matrix of Stanczuk et al. (2024), Algorithm 1, for one point.

    The K = `n_perturbations` columns are s(x_t^(i), t) at x_t^(i) = alpha_t x0 + sigma_t eps_i: at small t the
    scores point along the manifold's normal space, so they span it (rank D - k) and the spectrum drops after
    D - k values. K must be well above D: the (D - k) x K block of noise scores has singular values spread
    down to about (sqrt(K) - sqrt(D - k)) / sigma_t (Marchenko-Pastur), and with K near D the smallest of
    them fall to the size of the in-manifold score (the density's drift along the manifold), which then
    looks normal. K = 2D keeps them apart (tested on the Gaussian oracle).

    `center` (our deviation from Algorithm 1, on by default) subtracts the mean score over the K copies first.
    That removes the rank-one part ~ sqrt(K) s(alpha_t x0, t), which dominates when x0 lies farther than
    sigma_t from the model's manifold (held-out digits under a CPU-trained model): uncentred, the largest gap
    is after the first singular value and every digit gets D - 1 = 783 (measured on the default run).

    Args:
        x0: (1, *S) the clean point.

    Returns:
        (min(D, K),) float64.
    """
    cols = []
    for b0 in range(0, n_perturbations, batch_size):
        nb = min(batch_size, n_perturbations - b0)
        eps = torch.randn((nb, *x0.shape[1:]), generator=generator, dtype=x0.dtype, device=x0.device)
        xt = sde.perturb(x0, float(t), eps)
        cols.append(score_fn(xt, torch.full((nb,), float(t), dtype=x0.dtype, device=x0.device)).reshape(nb, -1))
    S = torch.cat(cols).double().cpu()  # (K, D); its singular values are those of the D x K score matrix
    if center:
        S = S - S.mean(0, keepdim=True)
    return torch.linalg.svdvals(S).numpy()


def normal_bundle_dim(singular_values: np.ndarray, dim: int) -> int:
    """D minus the position of the largest spectral gap: n_hat = argmax_i (s_i - s_{i+1}) + 1 normal directions,
    dimension = D - n_hat (Stanczuk et al. 2024, Algorithm 1)."""
    s = np.asarray(singular_values, dtype=np.float64)
    return int(dim - (np.argmax(s[:-1] - s[1:]) + 1))


def hutchinson_trace(score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, *, probes: int,
                     generator: torch.Generator) -> torch.Tensor:
    """Unbiased estimate of tr(d score / d x) at each point with `probes` Rademacher vectors v: mean of v^T J v.

    Rademacher probes have zero variance on the diagonal of J, and at small t the score Jacobian's large part
    -I/sigma_t^2 (off-manifold) is diagonal, so the variance comes only from the in-manifold off-diagonal
    entries: far below a Gaussian probe's.

    Args:
        x: (B, *S); t: (B,).

    Returns:
        (B,) float64.
    """
    out = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1].expand(probes, *x.shape[1:]).clone().requires_grad_(True)
        v = torch.randint(0, 2, xb.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        with torch.enable_grad():
            s = score_fn(xb, t[b:b + 1].expand(probes))
            (vjp,) = torch.autograd.grad(s, xb, grad_outputs=v)
        out.append((vjp * v).flatten(1).sum(1).double().mean())
    return torch.stack(out).cpu()


def exact_trace(score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """tr(d score / d x), (B,) float64, from the exact per-sample Jacobians (`jacobian.score_jacobian`)."""
    from ..jacobian import score_jacobian

    J = score_jacobian(score_fn, x, t)
    return torch.diagonal(J, dim1=1, dim2=2).sum(1).double().cpu()


def flipd(score_fn: ScoreFn, x0: torch.Tensor, t: float, *, sde: VPSDE, probes: int,
          generator: torch.Generator | None = None) -> np.ndarray:
    """FLIPD of Kamkari et al. (2024) at time t, for each clean point x0 (B, *S):

        FLIPD(x0, t) = D + sigma_t^2 tr(grad_x s(alpha_t x0, t)) + sigma_t^2 ||s(alpha_t x0, t)||^2,

    the VP-SDE form (psi(t) = alpha_t) of their definition D + sigma^2 [tr grad s + ||s||^2], i.e. the
    rate d log rho_delta(x0) / d log delta of the Gaussian-smoothed density plus D. The score is evaluated at
    the scaled clean point, not at a noisy one. For a Gaussian of rank k with variances lambda_i >> sigma^2 it
    tends to k; the trace part alone counts sum_i alpha^2 lambda_i / (alpha^2 lambda_i + sigma^2).

    Args:
        probes: Rademacher probes of Hutchinson's trace estimate; 0 = the exact trace from the D x D Jacobian.

    Returns:
        (B,) float64.
    """
    alpha, sigma = sde.scales(t)
    D = math.prod(x0.shape[1:])
    y = alpha * x0
    tt = torch.full((x0.shape[0],), float(t), dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        norm2 = score_fn(y, tt).flatten(1).double().pow(2).sum(1).cpu()
    if probes == 0:
        trace = exact_trace(score_fn, y, tt)
    else:
        trace = hutchinson_trace(score_fn, y, tt, probes=probes, generator=generator)
    return (D + sigma**2 * trace + sigma**2 * norm2).numpy()


# --- the registered estimators (kind "score"): fn(score_fn, x0, cfg, *, sde, generator) -> [(t, (n,)), ...] ---
@estimator("normal_bundle", label="normal bundle", kind="score", keys=("normal_bundle_times", "n_perturbations"))
def normal_bundle_local_dims(score_fn: ScoreFn, x0: torch.Tensor, cfg: Mapping[str, Any], *, sde: VPSDE,
                             generator: torch.Generator) -> list[tuple[float, np.ndarray]]:
    """The normal-bundle dimension of each point x0 (n, *S), one point at a time (a progress bar per t), at each
    of estimators.normal_bundle_times with estimators.n_perturbations noisy copies."""
    D = math.prod(x0.shape[1:])
    out = []
    for t in cfg["normal_bundle_times"]:
        spectra = [normal_bundle_spectrum(score_fn, x0[i:i + 1], t, sde=sde, n_perturbations=cfg["n_perturbations"],
                                          generator=generator)
                   for i in tqdm(range(len(x0)), desc=f"normal bundle t={t:g}", unit="point", mininterval=5)]
        dims = [normal_bundle_dim(s, D) for s in spectra]
        out.append((t, np.asarray(dims, np.float64)))
    return out


@estimator("flipd", label="FLIPD", kind="score", keys=("flipd_times", "flipd_probes"))
def flipd_local_dims(score_fn: ScoreFn, x0: torch.Tensor, cfg: Mapping[str, Any], *, sde: VPSDE,
                     generator: torch.Generator) -> list[tuple[float, np.ndarray]]:
    """FLIPD of each point x0 (n, *S), in batches of 8 (a progress bar per t), at each of estimators.flipd_times
    with estimators.flipd_probes Hutchinson probes (0: the exact trace)."""
    out = []
    for t in cfg["flipd_times"]:
        batches = tqdm(range(0, len(x0), 8), desc=f"FLIPD t={t:g}", unit="batch", mininterval=5)
        dims = np.concatenate([flipd(score_fn, x0[i:i + 8], t, sde=sde, probes=cfg["flipd_probes"], generator=generator)
                               for i in batches])
        out.append((t, dims))
    return out

"""Closed-form score models of a Gaussian supported on a linear subspace.

Data: ``x0 = mu + basis @ (sqrt(variances) * z)``, ``z ~ N(0, I_k)``, with
``basis`` a ``(D, k)`` matrix of orthonormal columns, so
``Sigma = basis diag(variances) basis^T`` has rank ``k``.  Under the linear-beta
VP-SDE the noisy marginal is ``N(alpha_t mu, alpha_t^2 Sigma + sigma_t^2 I)`` and
its score is exactly

    g(x, t) = -(alpha_t^2 Sigma + sigma_t^2 I)^{-1} (x - alpha_t mu).

Inside the subspace the precision is ``1/(alpha_t^2 lambda_i + sigma_t^2)``,
outside ``1/sigma_t^2``, so the score costs ``O(D k)`` per sample.  These
oracles have the calling convention of a trained score network,
``oracle(x, t)`` with ``x: (B, *S)`` and ``t: (B,)``, and serve as ground
truth for the Jacobian and spectral code (and as a config option).

Expected geometry at time t (``kappa`` slack of §3.2): the Jacobian is
``-(alpha^2 Sigma + sigma^2 I)^{-1}``, its inverse singular values are
``alpha^2 lambda_i + sigma^2`` (on-manifold) and ``sigma^2`` (off-manifold), so
``r_t = k`` iff ``alpha_t^2 min(lambda) >= kappa sigma_t^2``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from .sde import VPSDE

__all__ = ["GaussianSubspaceOracle", "SkewSubspaceOracle", "random_orthonormal"]

TimeLike = Union[float, torch.Tensor]


def random_orthonormal(dim: int, rank: int, *, generator: Optional[torch.Generator] = None,
                       dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A ``(dim, rank)`` matrix with orthonormal columns (QR of a Gaussian matrix)."""
    if not 0 <= rank <= dim:
        raise ValueError(f"need 0 <= rank <= dim, got rank={rank}, dim={dim}")
    g = torch.randn(dim, rank, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r))[None, :]  # unique (Haar) orientation
    return q.to(dtype)


class GaussianSubspaceOracle(nn.Module):
    """Exact noisy score of a rank-``k`` Gaussian under the linear-beta VP-SDE.

    Args:
        mu: mean, any shape ``S`` with ``D = prod(S)`` elements (e.g. ``(1, 28, 28)``
            or ``(D,)``); the shape of ``sample`` outputs.
        basis: ``(D, k)`` with orthonormal columns (checked to 1e-6).
        variances: ``(k,)`` positive variances along the basis columns.
        beta_min, beta_max: the VP-SDE schedule (``score_geometry.sde.VPSDE``).

    All buffers are stored in float64; ``score`` computes in ``x``'s dtype and
    device (move the module with ``.to(device)`` for CUDA inputs).
    """

    def __init__(self, mu, basis, variances, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        super().__init__()
        mu = torch.as_tensor(mu, dtype=torch.float64)
        basis = torch.as_tensor(basis, dtype=torch.float64)
        variances = torch.as_tensor(variances, dtype=torch.float64).reshape(-1)
        D = mu.numel()
        if basis.dim() != 2 or basis.shape[0] != D:
            raise ValueError(f"basis must be (D, k) with D = mu.numel() = {D}, got {tuple(basis.shape)}")
        k = basis.shape[1]
        if variances.shape[0] != k:
            raise ValueError(f"variances must have k = {k} entries, got {variances.shape[0]}")
        if k and not torch.all(variances > 0):
            raise ValueError("variances must be positive")
        gram_err = (basis.T @ basis - torch.eye(k, dtype=torch.float64)).abs().max().item() if k else 0.0
        if gram_err > 1e-6:
            raise ValueError(f"basis columns must be orthonormal (max |B^T B - I| = {gram_err:.3g})")
        self.sde = VPSDE(beta_min, beta_max)
        self.data_shape = tuple(mu.shape)
        self.dim = D
        self.rank = k
        self.register_buffer("mu", mu)
        self.register_buffer("basis", basis)
        self.register_buffer("variances", variances)

    # -- construction helpers -------------------------------------------------
    @classmethod
    def random(cls, dim: int, rank: int, *, variances: Union[float, Sequence[float], torch.Tensor] = 1.0,
               data_shape: Optional[Sequence[int]] = None, mean_scale: float = 0.0,
               seed: int = 0, **kwargs) -> "GaussianSubspaceOracle":
        """Random Haar subspace of dimension ``rank`` in ``R^dim``.

        ``variances`` is a scalar or ``(rank,)``; ``mean_scale`` scales a
        Gaussian random mean (0 = centred); ``data_shape`` defaults to ``(dim,)``;
        extra keyword arguments go to the constructor (e.g. ``skew`` for
        :class:`SkewSubspaceOracle`).
        """
        gen = torch.Generator().manual_seed(seed)
        basis = random_orthonormal(dim, rank, generator=gen)
        var = torch.as_tensor(variances, dtype=torch.float64)
        var = var.expand(rank).clone() if var.dim() == 0 else var
        mu = mean_scale * torch.randn(dim, generator=gen, dtype=torch.float64)
        shape = tuple(data_shape) if data_shape is not None else (dim,)
        return cls(mu.reshape(shape), basis, var, **kwargs)

    # -- schedule ---------------------------------------------------------------
    def alpha(self, t: TimeLike) -> torch.Tensor:
        return self.sde.alpha(torch.as_tensor(t, dtype=torch.float64))

    def sigma(self, t: TimeLike) -> torch.Tensor:
        return self.sde.sigma(torch.as_tensor(t, dtype=torch.float64))

    def covariance(self) -> torch.Tensor:
        """Clean-data covariance ``Sigma`` (D, D), float64."""
        return (self.basis * self.variances) @ self.basis.T

    # -- score --------------------------------------------------------------------
    def _coeffs(self, t: torch.Tensor):
        """alpha_t, 1/sigma_t^2 and in-subspace precision corrections, per sample (float64)."""
        t64 = t.to(device=self.mu.device, dtype=torch.float64)
        a = self.sde.alpha(t64)
        s2 = -torch.expm1(-self.sde.integrated_beta(t64))  # sigma_t^2, accurate near 0
        inv_s2 = 1.0 / s2
        # 1/(a^2 lam + s^2) - 1/s^2  (B, k)
        corr = 1.0 / (a[:, None] ** 2 * self.variances[None, :] + s2[:, None]) - inv_s2[:, None]
        return a, inv_s2, corr

    def _linear_part(self, y: torch.Tensor, coef_proj: torch.Tensor) -> torch.Tensor:
        """Extra in-subspace linear term added to the Gaussian score (none here)."""
        return 0.0

    def score(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """Exact noisy score at ``x`` (``(B, *S)``, ``prod(S) == D``) and ``t`` (float or ``(B,)``)."""
        B = x.shape[0]
        if math.prod(x.shape[1:]) != self.dim:
            raise ValueError(f"x must have D = {self.dim} features per sample, got shape {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=torch.float64, device=self.mu.device)
        t = t.expand(B) if t.dim() == 0 else t.reshape(-1)
        if t.shape[0] != B:
            raise ValueError(f"t must be scalar or ({B},), got {tuple(t.shape)}")
        a, inv_s2, corr = self._coeffs(t)
        dt, dev = x.dtype, x.device
        a, inv_s2, corr = a.to(dev, dt), inv_s2.to(dev, dt), corr.to(dev, dt)
        mu = self.mu.to(dev, dt).reshape(-1)
        basis = self.basis.to(dev, dt)
        y = x.reshape(B, -1) - a[:, None] * mu[None, :]
        c = y @ basis  # (B, k)
        g = -(inv_s2[:, None] * y + (c * corr) @ basis.T)
        g = g + self._linear_part(y, c)
        return g.reshape(x.shape)

    def forward(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        return self.score(x, t)

    def jacobian(self, t: TimeLike) -> torch.Tensor:
        """Exact ``(D, D)`` Jacobian ``d score / d x`` at time ``t`` (float64; constant in x)."""
        t = torch.as_tensor(t, dtype=torch.float64, device=self.mu.device).reshape(1)
        _, inv_s2, corr = self._coeffs(t)
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.mu.device)
        J = -(inv_s2[0] * eye + (self.basis * corr[0]) @ self.basis.T)
        return J + self._linear_jacobian()

    def _linear_jacobian(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float64, device=self.mu.device)

    # -- data -----------------------------------------------------------------
    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` clean samples, shape ``(n, *data_shape)``."""
        z = torch.randn(n, self.rank, generator=generator, dtype=torch.float64, device=self.mu.device)
        x0 = self.mu.reshape(1, -1) + (z * self.variances.sqrt()) @ self.basis.T
        return x0.reshape((n,) + self.data_shape).to(dtype)

    def perturb(self, x0: torch.Tensor, t: TimeLike, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw ``x_t = alpha_t x0 + sigma_t eps`` (same shape/dtype as ``x0``; ``t`` float or ``(B,)``)."""
        B = x0.shape[0]
        t = torch.as_tensor(t, dtype=torch.float64, device=x0.device)
        t = t.expand(B) if t.dim() == 0 else t.reshape(-1)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a = self.sde.alpha(t).to(x0.dtype).view(shape)
        s = self.sde.sigma(t).to(x0.dtype).view(shape)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return a * x0 + s * eps

    def local_dim(self, t: TimeLike, kappa: float = 0.1) -> int:
        """Ground-truth ``r_t`` of §3.2: number of ``lambda_i`` with ``alpha^2 lambda_i >= kappa sigma^2``."""
        a2 = float(self.alpha(t)) ** 2
        s2 = float(self.sigma(t)) ** 2
        return int(torch.sum(a2 * self.variances >= kappa * s2).item())


class SkewSubspaceOracle(GaussianSubspaceOracle):
    """Gaussian subspace score plus a known non-conservative field inside the subspace.

    ``g(x, t) = gaussian_score(x, t) + A (x - alpha_t mu)`` with
    ``A = strength * basis S basis^T`` and ``S`` a ``(k, k)`` skew-symmetric
    matrix (checked).  The Jacobian's skew part is exactly ``A`` and it lies in
    the data subspace; its symmetric part is the Gaussian Jacobian, so the
    effective density (Prop. 1) is the true noisy Gaussian.

    ``skew=None`` draws ``S = (G - G^T)/sqrt(2k)`` from a Gaussian ``G`` with
    ``seed``, so the entries of ``A`` have unit scale times ``strength``.
    """

    def __init__(self, mu, basis, variances, skew=None, strength: float = 1.0,
                 beta_min: float = 0.1, beta_max: float = 20.0, seed: int = 0) -> None:
        super().__init__(mu, basis, variances, beta_min=beta_min, beta_max=beta_max)
        k = self.rank
        if skew is None:
            gen = torch.Generator().manual_seed(seed)
            G = torch.randn(k, k, generator=gen, dtype=torch.float64)
            skew = (G - G.T) / math.sqrt(2 * max(k, 1))
        skew = torch.as_tensor(skew, dtype=torch.float64)
        if skew.shape != (k, k):
            raise ValueError(f"skew must be ({k}, {k}), got {tuple(skew.shape)}")
        scale = max(skew.abs().max().item(), 1.0)
        if (skew + skew.T).abs().max().item() > 1e-12 * scale:
            raise ValueError("skew must be skew-symmetric (S^T = -S)")
        self.strength = float(strength)
        self.register_buffer("skew", self.strength * skew)

    def _linear_part(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        S = self.skew.to(c.device, c.dtype)
        basis = self.basis.to(c.device, c.dtype)
        return (c @ S.T) @ basis.T  # rows: basis S basis^T y

    def _linear_jacobian(self) -> torch.Tensor:
        return self.basis @ self.skew @ self.basis.T

    def skew_matrix(self) -> torch.Tensor:
        """``A = basis S basis^T`` (D, D), the exact skew part of the Jacobian."""
        return self._linear_jacobian()

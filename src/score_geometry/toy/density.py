"""The density of the paper's Fig. 1 toy: a vMF mixture on a sphere in R^3, exact samples, and its exact
noisy score under the VP-SDE.

Surface and density: the sphere of radius R with a mixture of von Mises-Fisher (vMF) bumps,
p(u) = sum_k w_k C(kappa_k) exp(kappa_k mu_k . u) on unit directions u (area measure of the unit sphere),
C(kappa) = kappa / (4 pi sinh kappa); kappa = 0 is the uniform density. Data are y = R u.

Exact noisy score (no quadrature, no Monte Carlo). Because |y| = R on the whole surface, the Gaussian
kernel exp(-|x - alpha R u|^2 / 2 sigma^2) is exp(-(|x|^2 + alpha^2 R^2) / 2 sigma^2) exp(alpha R x . u / sigma^2),
so each bump convolved with the VP-SDE kernel is again a vMF integral, int exp(m . u) dA = 4 pi sinh|m| / |m|:

    p_t(x) = (2 pi sigma^2)^(-3/2) exp(-(|x|^2 + alpha^2 R^2) / 2 sigma^2) sum_k w_k S(rho_k) / S(kappa_k),
    m_k = kappa_k mu_k + alpha R x / sigma^2,  rho_k = |m_k|,  S(rho) = sinh(rho) / rho,
    grad log p_t(x) = -x / sigma^2 + (alpha R / sigma^2) sum_k pi_k(x) B(rho_k) m_k,

with pi_k the posterior bump weights (softmax of log w_k + log S(rho_k) - log S(kappa_k)) and
B(rho) = (coth rho - 1/rho) / rho (the Langevin function over rho). Everything is evaluated in float64 in log
space, so the only error is round-off (relative ~1e-12 at t >= 0.01, tested against a finite-difference
gradient of log p_t and against Gauss-Legendre quadrature over the sphere, `score_by_quadrature`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..score import ScoreFn
from ..sde import VPSDE
from ..skew import tangent_normal_basis


# --- special functions, stable in float64 ----------------------------------------------------------------

def log_sinhc(rho: torch.Tensor) -> torch.Tensor:
    """log(sinh(rho) / rho) for rho >= 0, without overflow for large rho."""
    r = rho.clamp_min(1e-6)
    big = r + torch.log(-torch.expm1(-2 * r)) - torch.log(2 * r)
    return torch.where(rho < 1e-6, rho**2 / 6, big)


def langevin_over_rho(rho: torch.Tensor) -> torch.Tensor:
    """(coth(rho) - 1/rho) / rho for rho >= 0 (= d log S / d rho / rho; 1/3 at rho = 0)."""
    r = rho.clamp_min(1e-2)
    exact = (1 / torch.tanh(r) - 1 / r) / r
    series = 1 / 3 - rho**2 / 45 + 2 * rho**4 / 945
    return torch.where(rho < 1e-2, series, exact)


# --- the density on the sphere ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SphereVMFMixture:
    """A mixture of vMF bumps on the sphere of radius `radius` in R^3.

    Args:
        radius: R > 0, the sphere's radius (data units; 1 keeps the data in [-1, 1] like the images).
        mu: (K, 3) bump centres (normalised to unit length).
        kappa: (K,) concentrations >= 0 (angular width ~ 1/sqrt(kappa) rad; 0 = uniform on the sphere).
        weight: (K,) positive relative weights (normalised to sum to 1).
    """

    radius: float
    mu: np.ndarray
    kappa: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        mu = np.atleast_2d(np.asarray(self.mu, dtype=np.float64))
        kappa = np.asarray(self.kappa, dtype=np.float64).reshape(-1)
        weight = np.asarray(self.weight, dtype=np.float64).reshape(-1)
        if not self.radius > 0:
            raise ValueError(f"toy.surface.radius must be > 0, got {self.radius}")
        if mu.shape != (len(kappa), 3) or len(weight) != len(kappa) or len(kappa) == 0:
            raise ValueError(f"need K >= 1 bumps with mu (K, 3), kappa (K,), weight (K,); got {mu.shape}, "
                             f"{kappa.shape}, {weight.shape}")
        norms = np.linalg.norm(mu, axis=1, keepdims=True)
        if np.any(norms == 0) or np.any(kappa < 0) or np.any(weight <= 0):
            raise ValueError("every toy.surface.bumps entry needs a non-zero mu, kappa >= 0 and weight > 0; "
                             f"got mu={mu.tolist()}, kappa={kappa.tolist()}, weight={weight.tolist()}")
        object.__setattr__(self, "mu", mu / norms)
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "weight", weight / weight.sum())

    @classmethod
    def from_config(cls, surface_cfg: Mapping[str, Any]) -> "SphereVMFMixture":
        """From the ``toy.surface`` config section: ``radius`` and ``bumps`` (list of {mu, kappa, weight})."""
        bumps = surface_cfg["bumps"]
        return cls(float(surface_cfg["radius"]), [b["mu"] for b in bumps], [b["kappa"] for b in bumps],
                   [b["weight"] for b in bumps])

    # Surface quantities.
    @staticmethod
    def normal(x) -> np.ndarray:
        """Unit normal (N, 3) of the surface point nearest to each x (N, 3): x / |x|."""
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def log_density(self, u) -> np.ndarray:
        """log p(u) (N,) for unit directions u (N, 3), with respect to the area of the unit sphere."""
        u = torch.as_tensor(np.asarray(u, dtype=np.float64))
        kappa, mu, w = (torch.from_numpy(a) for a in (self.kappa, self.mu, self.weight))
        terms = torch.log(w) - math.log(4 * math.pi) - log_sinhc(kappa) + kappa * (u @ mu.T)
        return torch.logsumexp(terms, dim=1).numpy()

    def sample(self, n: int, *, seed: int) -> np.ndarray:
        """n exact samples y = R u (n, 3) float64: pick a bump, then draw u from that vMF (Wood's method on S^2)."""
        rng = np.random.default_rng(seed)
        k = rng.choice(len(self.weight), size=n, p=self.weight)
        kappa = self.kappa[k]
        v = 1.0 - rng.random(n)  # (0, 1]
        # cos of the angle to mu: inverse CDF of the vMF on S^2 (uniform in [-1, 1] when kappa = 0).
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(kappa > 0, 1 + np.log(v + (1 - v) * np.exp(-2 * kappa)) / np.where(kappa > 0, kappa, 1),
                         2 * v - 1)
        w = np.clip(w, -1.0, 1.0)
        phi = rng.uniform(0, 2 * np.pi, n)
        frame = tangent_normal_basis(self.mu[k])  # columns t1, t2, mu
        s = np.sqrt(1 - w**2)
        u = (frame[:, :, 0] * (s * np.cos(phi))[:, None] + frame[:, :, 1] * (s * np.sin(phi))[:, None]
             + frame[:, :, 2] * w[:, None])
        return self.radius * u

    # Noisy marginals p_t = p * N(alpha_t R u, sigma_t^2 I), in closed form (module docstring).
    def _terms(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
        kappa = torch.as_tensor(self.kappa, dtype=x.dtype, device=x.device)
        mu = torch.as_tensor(self.mu, dtype=x.dtype, device=x.device)
        w = torch.as_tensor(self.weight, dtype=x.dtype, device=x.device)
        c = (alpha * self.radius / sigma**2)[:, None, None]  # (N, 1, 1)
        m = kappa[None, :, None] * mu[None] + c * x[:, None, :]  # (N, K, 3)
        rho = torch.linalg.vector_norm(m, dim=2)  # (N, K)
        logits = torch.log(w) - log_sinhc(kappa) + log_sinhc(rho)
        return m, rho, logits, c[:, 0, 0]

    def log_prob_t(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """log p_t(x) (N,) for x (N, 3) and per-point alpha_t, sigma_t (N,)."""
        _, _, logits, _ = self._terms(x, alpha, sigma)
        sq = (x**2).sum(1) + (alpha * self.radius) ** 2
        return -1.5 * torch.log(2 * math.pi * sigma**2) - sq / (2 * sigma**2) + torch.logsumexp(logits, dim=1)

    def score_t(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact grad_x log p_t(x) (N, 3) for x (N, 3) and per-point alpha_t, sigma_t (N,)."""
        m, rho, logits, c = self._terms(x, alpha, sigma)
        post = torch.softmax(logits, dim=1)  # (N, K)
        pull = (post * langevin_over_rho(rho))[:, :, None] * m  # (N, K, 3)
        return -x / sigma[:, None] ** 2 + c[:, None] * pull.sum(1)

    def exact_score_fn(self, sde: VPSDE) -> ScoreFn:
        """g*(x, t): x (B, 3), t (B,) -> (B, 3), the exact score of the noisy marginal (same dtype as x)."""
        return lambda x, t: self.score_t(x, sde.alpha(t.to(x.dtype)), sde.sigma(t.to(x.dtype)))

    def score_by_quadrature(self, x, alpha: float, sigma: float, *, n_cos: int = 400, n_phi: int = 800) -> np.ndarray:
        """Independent check of `score_t`: (alpha R E[u | x] - x) / sigma^2 with E[u | x] by Gauss-Legendre
        quadrature in cos(theta) times the trapezoid rule in phi (spectrally accurate for these smooth
        integrands once the grid resolves the kernel's angular width sigma / (alpha R)). x: (N, 3) -> (N, 3)."""
        x = np.asarray(x, dtype=np.float64)
        z, wz = np.polynomial.legendre.leggauss(n_cos)
        phi = np.linspace(0, 2 * np.pi, n_phi, endpoint=False)
        Z, P = np.meshgrid(z, phi, indexing="ij")
        s = np.sqrt(1 - Z**2)
        u = np.stack([s * np.cos(P), s * np.sin(P), Z], -1).reshape(-1, 3)
        log_w = np.log(np.repeat(wz, n_phi) * (2 * np.pi / n_phi)) + self.log_density(u)
        # log posterior weight of each node (the constant |x|^2 + alpha^2 R^2 term cancels).
        logits = log_w[None, :] + alpha * self.radius * (x @ u.T) / sigma**2
        logits -= logits.max(1, keepdims=True)
        post = np.exp(logits)
        post /= post.sum(1, keepdims=True)
        return (alpha * self.radius * post @ u - x) / sigma**2


def fibonacci_sphere(n: int) -> np.ndarray:
    """n nearly evenly spread unit vectors (n, 3) (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    s = np.sqrt(1 - z**2)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], 1)

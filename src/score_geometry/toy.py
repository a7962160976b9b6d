"""The toy of the paper's Fig. 1: a density on a 2-D surface in R^3, its exact noisy score, a small MLP score
model trained on it with the image model's VP-SDE, loss and training loop, and where the learned field's
non-conservative part acts (tangent to the surface or involving its normal).

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

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from .jacobian import batch_jacobian
from .score import ScoreFn, make_score_fn
from .sde import VPSDE
from .skew import curl_from_jacobian, skew_shares, tangent_normal_basis
from .spectra import analyse_jacobian

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


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


# --- training ----------------------------------------------------------------------------------------------

#: ``toy:`` keys the MLP's training depends on (the rest are analysis and figure options).
TRAINING_KEYS = ("seed", "surface", "n_train", "data_seed", "model", "train")


def training_section(toy_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the ``toy:`` section that `fit_toy_model` reads (:data:`TRAINING_KEYS`)."""
    return {k: toy_cfg[k] for k in TRAINING_KEYS}


def toy_train_config(toy_cfg: Mapping[str, Any], sde_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config `train.train_model` sees: the toy density as ``data``, the MLP as ``model``."""
    return {"seed": toy_cfg["seed"],
            "data": {"surface": dict(toy_cfg["surface"]), "n_train": toy_cfg["n_train"],
                     "data_seed": toy_cfg["data_seed"]},
            "sde": dict(sde_cfg),
            "model": {"architecture": "mlp", "dim": 3, **dict(toy_cfg["model"])},
            "train": dict(toy_cfg["train"])}


def fit_toy_model(toy_cfg: Mapping[str, Any], sde_cfg: Mapping[str, Any], *, checkpoint_path: str | Path,
                  metrics_path: str | Path, device: torch.device | str = "cpu", threads: int = 1,
                  progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw ``toy.n_train`` exact samples and train the MLP on them with the image model's loop (resumable).

    Returns:
        The final checkpoint dict (kind ``mlp``) and the training options to dump beside it.
    """
    from .train import final_checkpoint, train_model, training_options

    cfg = toy_train_config(toy_cfg, sde_cfg)
    surface = SphereVMFMixture.from_config(toy_cfg["surface"])
    data = torch.from_numpy(surface.sample(toy_cfg["n_train"], seed=toy_cfg["data_seed"])).float()
    state = train_model(data, cfg, checkpoint_path=checkpoint_path, metrics_path=metrics_path, device=device,
                        progress=progress)
    return final_checkpoint(state, cfg), training_options(state, cfg, device=device, threads=threads)


# --- analysis ------------------------------------------------------------------------------------------------

def _learned_score_fn(checkpoint: Mapping[str, Any], sde: VPSDE) -> ScoreFn:
    from .train import load_ema_model

    model = load_ema_model(checkpoint).double()
    return make_score_fn(model, sde, checkpoint["config"]["model"]["parameterisation"])


def _at_time(score_fn: ScoreFn, x: torch.Tensor, t: float) -> torch.Tensor:
    return score_fn(x, torch.full((len(x),), t, dtype=x.dtype))


def _jacobians(score_fn: ScoreFn, x: torch.Tensor, t: float) -> np.ndarray:
    return batch_jacobian(lambda z: _at_time(score_fn, z, t), x, chunk_size=3 * 64).numpy()


def analyse_toy_model(checkpoint: Mapping[str, Any], toy_cfg: Mapping[str, Any], sde_cfg: Mapping[str, Any],
                      ) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, np.ndarray], dict[str, Any]]:
    """Learned vs exact score and the location of the learned field's skew part, at each ``toy.times``.

    At each t, ``toy.n_points`` points x_t = alpha_t y + sigma_t eps with y drawn exactly from the density (so
    they lie near the noised surface, as the MNIST analysis uses points near the data). The learned score
    (EMA weights, float64) and its 3x3 Jacobian (`jacobian.batch_jacobian`) are compared with the exact ones;
    `spectra.analyse_jacobian` gives r_t and the asymmetry; `skew.skew_shares` splits ||H||_F^2 between the
    tangent plane and the normal of the nearest surface point, n = x / |x|.

    Returns:
        points: one row per (t, point); summary: one row per t; field (arrays for Fig. 1: the learned and
        exact score and curl on a Fibonacci grid of the sphere of radius alpha_t R at ``toy.field_t``, and the
        clean density on a (theta, phi) mesh); attrs of the field (t, sigma, alpha, radius).
    """
    import pandas as pd

    sde = VPSDE(**sde_cfg)
    surface = SphereVMFMixture.from_config(toy_cfg["surface"])
    g_model = _learned_score_fn(checkpoint, sde)
    g_exact = surface.exact_score_fn(sde)
    kappa = toy_cfg["kappa"]
    rng = np.random.default_rng(toy_cfg["points_seed"])
    rows = []
    for t in toy_cfg["times"]:
        tt = torch.tensor(t, dtype=torch.float64)
        alpha, sigma = float(sde.alpha(tt)), float(sde.sigma(tt))
        y = surface.sample(toy_cfg["n_points"], seed=int(rng.integers(2**31)))
        x = torch.from_numpy(alpha * y + sigma * rng.standard_normal(y.shape))
        with torch.no_grad():
            g, g_star = _at_time(g_model, x, t).numpy(), _at_time(g_exact, x, t).numpy()
        J, J_star = _jacobians(g_model, x, t), _jacobians(g_exact, x, t)
        normal = surface.normal(x.numpy())
        shares = skew_shares(J, tangent_normal_basis(normal), 2)
        exact_shares = skew_shares(J_star, tangent_normal_basis(normal), 2)
        curl = curl_from_jacobian(J)
        specs = [analyse_jacobian(Ji, sigma, kappa) for Ji in J]
        xn = x.numpy()
        for i in range(len(xn)):
            rows.append({
                "t": t, "sigma": sigma, "alpha": alpha, "point": i,
                "x": xn[i, 0], "y": xn[i, 1], "z": xn[i, 2],
                "normal_offset": (np.linalg.norm(xn[i]) - alpha * surface.radius) / sigma,
                "score_rel_err": np.linalg.norm(g[i] - g_star[i]) / np.linalg.norm(g_star[i]),
                "score_err_sq": np.sum((g[i] - g_star[i]) ** 2), "score_sq": np.sum(g_star[i] ** 2),
                "jac_rel_err": np.linalg.norm(J[i] - J_star[i]) / np.linalg.norm(J_star[i]),
                "tangent_share": shares["share_inside"][i],
                "normal_share": shares["share_cross"][i] + shares["share_outside"][i],
                "tangent_frac": shares["frac_inside"][i],
                "normal_frac": shares["frac_cross"][i] + shares["frac_outside"][i],
                "skew_norm": shares["skew_norm"][i], "jac_norm": shares["jac_norm"][i],
                "skew_sq_tangent": shares["frac_inside"][i] * shares["jac_norm"][i] ** 2,
                "curl_x": curl[i, 0], "curl_y": curl[i, 1], "curl_z": curl[i, 2],
                "curl_normal": float(curl[i] @ normal[i]),
                "asymmetry": specs[i].asymmetry, "local_dim": specs[i].local_dim,
                "svd_skew_share_inside": specs[i].skew_share_inside,
                "svd_skew_share_outside": specs[i].skew_share_outside,
                "svd_skew_share_cross": specs[i].skew_share_cross,
                "exact_asymmetry": exact_shares["skew_norm"][i] / exact_shares["jac_norm"][i],
            })
        log.info("t=%g: median score error %.3g, median tangent share %.3f", t,
                 np.median([r["score_rel_err"] for r in rows[-len(xn):]]),
                 np.nanmedian(shares["share_inside"]))
    points = pd.DataFrame(rows)
    summary = summarise_toy(points)
    field, attrs = toy_field(surface, g_model, g_exact, sde, t=toy_cfg["field_t"], n=toy_cfg["field_points"])
    return points, summary, field, attrs


def summarise_toy(points: "pd.DataFrame") -> "pd.DataFrame":
    """Per-t summary of the per-point table: score errors, skew shares (median, IQR and pooled), asymmetry, r_t.

    ``pooled_tangent_share`` = sum ||P H P||^2 / sum ||H||^2 over the points (dominated by the points with the
    largest rotation); the medians weight every point equally.
    """
    import pandas as pd

    out = []
    for t, d in points.groupby("t", sort=True):
        q = d["tangent_share"].quantile([0.25, 0.5, 0.75])
        out.append({
            "t": t, "sigma": d["sigma"].iloc[0], "n_points": len(d),
            "score_rel_err_median": d["score_rel_err"].median(),
            "score_rel_err_pooled": float(np.sqrt(d["score_err_sq"].sum() / d["score_sq"].sum())),
            "jac_rel_err_median": d["jac_rel_err"].median(),
            "tangent_share_median": q[0.5], "tangent_share_q25": q[0.25], "tangent_share_q75": q[0.75],
            "normal_share_median": d["normal_share"].median(),
            "tangent_share_mean": d["tangent_share"].mean(), "normal_share_mean": d["normal_share"].mean(),
            "pooled_tangent_share": float(d["skew_sq_tangent"].sum() / (d["skew_norm"] ** 2).sum()),
            "asymmetry_median": d["asymmetry"].median(), "exact_asymmetry_max": d["exact_asymmetry"].max(),
            "local_dim_median": d["local_dim"].median(),
        })
    return pd.DataFrame(out)


def toy_field(surface: SphereVMFMixture, g_model: ScoreFn, g_exact: ScoreFn, sde: VPSDE, *, t: float, n: int,
              n_theta: int = 60, n_phi: int = 120) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays for Fig. 1: learned/exact score, curl, asymmetry ||J - J^T||_F / ||J||_F and normals at n Fibonacci
    points on the sphere of radius alpha_t R (where the noised density concentrates), and the clean density p(u)
    on a (theta, phi) mesh."""
    tt = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = float(sde.alpha(tt)), float(sde.sigma(tt))
    u = fibonacci_sphere(n)
    x = torch.from_numpy(alpha * surface.radius * u)
    with torch.no_grad():
        g, g_star = _at_time(g_model, x, t).numpy(), _at_time(g_exact, x, t).numpy()
    J = _jacobians(g_model, x, t)
    theta = np.linspace(0, np.pi, n_theta)
    phi = np.linspace(0, 2 * np.pi, n_phi)
    T, P = np.meshgrid(theta, phi, indexing="ij")
    mesh_u = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1)
    density = np.exp(surface.log_density(mesh_u.reshape(-1, 3))).reshape(T.shape)
    asymmetry = np.linalg.norm(J - np.swapaxes(J, 1, 2), axis=(1, 2)) / np.linalg.norm(J, axis=(1, 2))
    field = {"x": x.numpy(), "normal": u, "score": g, "exact_score": g_star, "curl": curl_from_jacobian(J),
             "asymmetry": asymmetry,
             "theta": theta, "phi": phi, "density": density}
    return field, {"t": t, "sigma": sigma, "alpha": alpha, "radius": surface.radius}

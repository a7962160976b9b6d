"""The experiment of the paper's Fig. 1 on the toy density (`toy.density`): a small MLP score model trained on
exact samples with the image model's VP-SDE, loss and training loop (`train.train_model`, on the training
engine), its learned score read through the score-model seam (`score_models.load_score_model`, kind ``mlp``),
controls with a known non-conservative part, and where a field's non-conservative part acts (tangent to the
surface or involving its normal).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from ..jacobian import batch_jacobian
from ..score import ScoreFn
from ..score_models import load_score_model
from ..sde import VPSDE
from ..skew import curl_from_jacobian, skew_shares, tangent_curl, tangent_normal_basis
from ..spectra import analyse_jacobian
from .density import SphereVMFMixture, fibonacci_sphere

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


# --- training ----------------------------------------------------------------------------------------------

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
    from ..train import final_checkpoint, train_model, training_options  # training: here only, not for the analysis

    cfg = toy_train_config(toy_cfg, sde_cfg)
    surface = SphereVMFMixture.from_config(toy_cfg["surface"])
    data = torch.from_numpy(surface.sample(toy_cfg["n_train"], seed=toy_cfg["data_seed"])).float()
    state = train_model(data, cfg, checkpoint_path=checkpoint_path, metrics_path=metrics_path, device=device,
                        progress=progress)
    return final_checkpoint(state, cfg), training_options(state, cfg, device=device, threads=threads)


# --- helpers of the analysis ----------------------------------------------------------------------------------

def learned_score_fn(checkpoint: Mapping[str, Any], sde: VPSDE | None = None) -> ScoreFn:
    """The trained MLP's score g(x, t) (EMA weights, float64) from a checkpoint of `fit_toy_model`, through the
    score-model seam (`score_models.load_score_model`); x (B, 3), t (B,) -> (B, 3).

    Args:
        sde: if given, checked to be the checkpoint's (the score refers to the SDE it was trained with).
    """
    model = load_score_model(checkpoint, dtype=torch.float64)
    if sde is not None and sde != model.sde:
        raise ValueError(f"the toy checkpoint was trained with {model.sde}, not {sde}")
    return model.score


def _at_time(score_fn: ScoreFn, x: torch.Tensor, t: float) -> torch.Tensor:
    return score_fn(x, torch.full((len(x),), t, dtype=x.dtype))


def _jacobians(score_fn: ScoreFn, x: torch.Tensor, t: float) -> np.ndarray:
    return batch_jacobian(lambda z: _at_time(score_fn, z, t), x, chunk_size=3 * 64).numpy()


# --- controls: the exact score plus a known non-conservative part --------------------------------------------

#: Score fields whose skew part is known in closed form, analysed by the same code as the learned model.
CONTROLS = ("exact", "tangent_rotation", "tangent_normal_skew")


def tangent_rotation(x: torch.Tensor, axis, strength: float) -> torch.Tensor:
    """f(x) = strength (a x x) / |x|^2 (B, 3): a rotation about a, tangent to every sphere |x| = const.

    curl f = 2 strength (a . x) x / |x|^4 is parallel to n = x / |x| everywhere (a 1/r^2 vortex has no curl
    across the spheres), so the skew part of its Jacobian, (curl f / 2) x, lies in the tangent-tangent block;
    its tangent curl is n . curl f = 2 strength (a . n) / |x|^2 (`injected_curl_normal`).
    """
    a = torch.as_tensor(axis, dtype=x.dtype, device=x.device).expand_as(x)
    return strength * torch.linalg.cross(a, x, dim=1) / (x**2).sum(1, keepdim=True)


def tangent_normal_skew(x: torch.Tensor, axis, strength: float) -> torch.Tensor:
    """f(x) = strength (b . x) n (B, 3), n = x / |x|: a normal push that varies along the sphere.

    curl f = grad(strength b . x) x n = strength (b x x) / |x| is tangent (curl n = 0), so the skew part of
    its Jacobian, strength (n b^T - b n^T) / 2, lies in the tangent-normal (cross) blocks; n . curl f = 0.
    """
    b = torch.as_tensor(axis, dtype=x.dtype, device=x.device)
    return strength * (x @ b)[:, None] * x / torch.linalg.vector_norm(x, dim=1, keepdim=True)


def injected_curl_normal(kind: str, x, axis, strength: float) -> np.ndarray:
    """The closed-form tangent curl n . curl f (N,) that control `kind` adds to the (curl-free) exact score."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "tangent_rotation":
        r2 = np.sum(x**2, axis=1)
        return 2 * strength * (x @ np.asarray(axis, dtype=np.float64)) / np.sqrt(r2) / r2
    if kind in ("exact", "tangent_normal_skew"):
        return np.zeros(len(x))
    raise ValueError(f"control must be one of {CONTROLS}, got {kind!r}")


def control_score_fn(surface: SphereVMFMixture, sde: VPSDE, kind: str, *, axis=(0.3, -0.4, 0.866),
                     strength: float = 1.0) -> ScoreFn:
    """g(x, t) = exact score + the perturbation of control `kind` (:data:`CONTROLS`); ``exact`` adds nothing."""
    g_exact = surface.exact_score_fn(sde)
    if kind == "exact":
        return g_exact
    if kind == "tangent_rotation":
        return lambda x, t: g_exact(x, t) + tangent_rotation(x, axis, strength)
    if kind == "tangent_normal_skew":
        return lambda x, t: g_exact(x, t) + tangent_normal_skew(x, axis, strength)
    raise ValueError(f"control must be one of {CONTROLS}, got {kind!r}")


# --- analysis ------------------------------------------------------------------------------------------------

def analyse_toy_field(g: ScoreFn, surface: SphereVMFMixture, toy_cfg: Mapping[str, Any], sde: VPSDE
                      ) -> "pd.DataFrame":
    """Per-point table for any score field g on the toy: error against the exact score and where g's skew part
    acts, by the three measures of `score_geometry.skew` (docs/nonconservative.md), at each ``toy.times``.

    At each t, ``toy.n_points`` points x_t = alpha_t y + sigma_t eps with y drawn exactly from the density (so
    they lie near the noised surface, as the MNIST analysis uses points near the data; the same points for
    every g, from ``toy.points_seed``). The 3x3 Jacobian (`jacobian.batch_jacobian`, float64) is split between
    the tangent plane and the normal of the nearest surface point, n = x / |x|.

    Args:
        g: score function x (B, 3) float64, t (B,) -> (B, 3): the learned model or a control.

    Returns:
        One row per (t, point).
    """
    import pandas as pd

    g_exact = surface.exact_score_fn(sde)
    kappa = toy_cfg["kappa"]
    rng = np.random.default_rng(toy_cfg["points_seed"])
    rows = []
    for t in toy_cfg["times"]:
        alpha, sigma = sde.scales(t)
        y = surface.sample(toy_cfg["n_points"], seed=int(rng.integers(2**31)))
        x = sde.perturb(torch.from_numpy(y), t, torch.from_numpy(rng.standard_normal(y.shape)))
        with torch.no_grad():
            g_x, g_star = _at_time(g, x, t).numpy(), _at_time(g_exact, x, t).numpy()
        J, J_star = _jacobians(g, x, t), _jacobians(g_exact, x, t)
        normal = surface.normal(x.numpy())
        basis = tangent_normal_basis(normal)
        shares = skew_shares(J, basis, 2)
        exact_shares = skew_shares(J_star, basis, 2)
        ratio = shares["rel_ratio"]
        curl = curl_from_jacobian(J)
        tcurl = tangent_curl(J, normal)
        specs = [analyse_jacobian(Ji, sigma, kappa) for Ji in J]
        xn = x.numpy()
        for i in range(len(xn)):
            rows.append({
                "t": t, "sigma": sigma, "alpha": alpha, "point": i,
                "x": xn[i, 0], "y": xn[i, 1], "z": xn[i, 2],
                "normal_offset": (np.linalg.norm(xn[i]) - alpha * surface.radius) / sigma,
                "score_rel_err": np.linalg.norm(g_x[i] - g_star[i]) / np.linalg.norm(g_star[i]),
                "score_err_sq": np.sum((g_x[i] - g_star[i]) ** 2), "score_sq": np.sum(g_star[i] ** 2),
                "jac_rel_err": np.linalg.norm(J[i] - J_star[i]) / np.linalg.norm(J_star[i]),
                # (a) shares of ||H||^2
                "tangent_share": shares["share_inside"][i],
                "cross_share": shares["share_cross"][i], "outside_share": shares["share_outside"][i],
                "normal_share": shares["share_cross"][i] + shares["share_outside"][i],
                "tangent_frac": shares["frac_inside"][i],
                "normal_frac": shares["frac_cross"][i] + shares["frac_outside"][i],
                "skew_norm": shares["skew_norm"][i], "jac_norm": shares["jac_norm"][i],
                "skew_sq_tangent": shares["frac_inside"][i] * shares["jac_norm"][i] ** 2,
                # (b) each block's asymmetry relative to the same block of J
                "rel_tangent": shares["rel_inside"][i], "rel_cross": shares["rel_cross"][i],
                "rel_outside": shares["rel_outside"][i], "rel_ratio": ratio[i],
                # (c) the curl of the tangential part on the surface
                "curl_x": curl[i, 0], "curl_y": curl[i, 1], "curl_z": curl[i, 2],
                "curl_normal": tcurl["curl_normal"][i],
                "curl_tangent_rel_curl": tcurl["rel_curl"][i], "curl_tangent_rel_jac": tcurl["rel_jac"][i],
                "asymmetry": specs[i].asymmetry, "local_dim": specs[i].local_dim,
                "svd_skew_share_inside": specs[i].skew_share_inside,
                "svd_skew_share_outside": specs[i].skew_share_outside,
                "svd_skew_share_cross": specs[i].skew_share_cross,
                "exact_asymmetry": exact_shares["skew_norm"][i] / exact_shares["jac_norm"][i],
            })
        log.info("t=%g: median score error %.3g, median tangent share %.3f, median relative ratio %.3g", t,
                 np.median([r["score_rel_err"] for r in rows[-len(xn):]]),
                 np.nanmedian(shares["share_inside"]) if np.isfinite(shares["share_inside"]).any() else np.nan,
                 np.nanmedian(ratio) if np.isfinite(ratio).any() else np.nan)
    return pd.DataFrame(rows)


def analyse_toy_model(checkpoint: Mapping[str, Any], toy_cfg: Mapping[str, Any], sde_cfg: Mapping[str, Any],
                      ) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, np.ndarray], dict[str, Any]]:
    """Learned vs exact score and the location of the learned field's skew part, at each ``toy.times``
    (`analyse_toy_field` with the learned score: EMA weights, float64).

    Returns:
        points: one row per (t, point); summary: one row per t; field (arrays for Fig. 1: the learned and
        exact score and curl on a Fibonacci grid of the sphere of radius alpha_t R at ``toy.field_t``, and the
        clean density on a (theta, phi) mesh); attrs of the field (t, sigma, alpha, radius).
    """
    sde = VPSDE(**sde_cfg)
    surface = SphereVMFMixture.from_config(toy_cfg["surface"])
    g_model = learned_score_fn(checkpoint, sde)
    points = analyse_toy_field(g_model, surface, toy_cfg, sde)
    summary = summarise_toy(points)
    field, attrs = toy_field(surface, g_model, surface.exact_score_fn(sde), sde, t=toy_cfg["field_t"],
                             n=toy_cfg["field_points"])
    return points, summary, field, attrs


def analyse_toy_controls(toy_cfg: Mapping[str, Any], sde_cfg: Mapping[str, Any], *, axis=(0.3, -0.4, 0.866),
                         strength: float = 1.0) -> "pd.DataFrame":
    """`summarise_toy` of each of :data:`CONTROLS` through `analyse_toy_field` (the learned model's code path),
    with a ``control`` column and the largest error of the measured tangent curl against the injected one."""
    import pandas as pd

    sde = VPSDE(**sde_cfg)
    surface = SphereVMFMixture.from_config(toy_cfg["surface"])
    out = []
    for kind in CONTROLS:
        points = analyse_toy_field(control_score_fn(surface, sde, kind, axis=axis, strength=strength), surface,
                                   toy_cfg, sde)
        injected = injected_curl_normal(kind, points[["x", "y", "z"]].to_numpy(), axis, strength)
        err = (points["curl_normal"] - injected).abs().groupby(points["t"]).max()
        out.append(summarise_toy(points).assign(control=kind, curl_normal_max_err=err.to_numpy()))
    return pd.concat(out, ignore_index=True)


def summarise_toy(points: "pd.DataFrame") -> "pd.DataFrame":
    """Per-t summary of the per-point table: score errors, skew shares (median, IQR and pooled), the relative
    block asymmetries, the tangent curl, asymmetry, r_t. Medians skip NaN (undefined where H = 0).

    ``pooled_tangent_share`` = sum ||P H P||^2 / sum ||H||^2 over the points (dominated by the points with the
    largest rotation); the medians weight every point equally.
    """
    import pandas as pd

    out = []
    for t, d in points.groupby("t", sort=True):
        q = d["tangent_share"].quantile([0.25, 0.5, 0.75])
        skew_sq = (d["skew_norm"] ** 2).sum()
        out.append({
            "t": t, "sigma": d["sigma"].iloc[0], "n_points": len(d),
            "score_rel_err_median": d["score_rel_err"].median(),
            "score_rel_err_pooled": float(np.sqrt(d["score_err_sq"].sum() / d["score_sq"].sum())),
            "jac_rel_err_median": d["jac_rel_err"].median(),
            "tangent_share_median": q[0.5], "tangent_share_q25": q[0.25], "tangent_share_q75": q[0.75],
            "normal_share_median": d["normal_share"].median(), "cross_share_median": d["cross_share"].median(),
            "tangent_share_mean": d["tangent_share"].mean(), "normal_share_mean": d["normal_share"].mean(),
            "pooled_tangent_share": float(d["skew_sq_tangent"].sum() / skew_sq) if skew_sq > 0 else np.nan,
            "rel_tangent_median": d["rel_tangent"].median(), "rel_cross_median": d["rel_cross"].median(),
            "rel_ratio_median": d["rel_ratio"].median(),
            "curl_tangent_rel_curl_median": d["curl_tangent_rel_curl"].median(),
            "curl_tangent_rel_jac_median": d["curl_tangent_rel_jac"].median(),
            "asymmetry_median": d["asymmetry"].median(), "exact_asymmetry_max": d["exact_asymmetry"].max(),
            "local_dim_median": d["local_dim"].median(),
        })
    return pd.DataFrame(out)


def toy_field(surface: SphereVMFMixture, g_model: ScoreFn, g_exact: ScoreFn, sde: VPSDE, *, t: float, n: int,
              n_theta: int = 60, n_phi: int = 120) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays for Fig. 1: learned/exact score, curl, asymmetry ||J - J^T||_F / ||J||_F and normals at n Fibonacci
    points on the sphere of radius alpha_t R (where the noised density concentrates), and the clean density p(u)
    on a (theta, phi) mesh."""
    alpha, sigma = sde.scales(t)
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

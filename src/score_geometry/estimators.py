"""Local intrinsic-dimension estimators side by side: kNN (scikit-dimension MLE, TwoNN, lPCA) and score-based
(normal bundle, Stanczuk et al. 2024; FLIPD, Kamkari et al. 2024), and the comparison with the paper's
VAE numbers (Appendix B) and the score model's r_t (§3.2).

All functions take arrays and return arrays or tidy tables with the columns of `COLUMNS`
(estimator, dataset, condition, point, label, t, local_dim); `t` is NaN for estimates on clean points.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .score import ScoreFn
from .sde import VPSDE

if TYPE_CHECKING:
    from .datasets import Dataset

COLUMNS = ["estimator", "dataset", "condition", "point", "label", "t", "local_dim"]
CLASSICAL = ("mle", "twonn", "lpca")
# Appendix B: "13 +- 3" on clean MNIST; digit 1 "around 11", the other digits "around 18".
PAPER_VAE = {"mean": 13.0, "std": 3.0, "digit_1": 11.0, "other_digits": 18.0}


# --- kNN estimators (scikit-dimension) -----------------------------------------------------------------

def _neighbours(points: np.ndarray, reference: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices (N, n_neighbors) of each point's nearest reference points (Euclidean)."""
    from sklearn.neighbors import NearestNeighbors

    if n_neighbors > len(reference):
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the {len(reference)} reference points; lower it")
    return NearestNeighbors(n_neighbors=n_neighbors).fit(reference).kneighbors(points)


def knn_local_dims(points: np.ndarray, reference: np.ndarray, *, method: str, n_neighbors: int,
                   lpca_version: str = "FO", lpca_alpha: float = 0.05, twonn_discard: float = 0.1) -> np.ndarray:
    """Pointwise local dimension of `points` within the cloud `reference`, with scikit-dimension.

    The neighbourhood of a point is its `n_neighbors` nearest reference points (the point itself is not in
    `reference`, e.g. held-out digits among the training digits).

    Args:
        points: (N, D) query points.
        reference: (M, D) the data cloud the neighbourhoods come from.
        method: ``mle`` (Levina & Bickel's pointwise MLE from the neighbour distances, `skdim.id.MLE`),
            ``twonn`` (`skdim.id.TwoNN` fitted on the point and its neighbours) or ``lpca``
            (`skdim.id.lPCA` on the same neighbourhood; ``FO``: eigenvalues above `lpca_alpha` x the largest).

    Returns:
        (N,) float64 local dimensions.
    """
    import skdim

    points, reference = np.asarray(points, np.float64), np.asarray(reference, np.float64)
    dists, idx = _neighbours(points, reference, n_neighbors)
    if method == "mle":
        return skdim.id.MLE().fit(reference, precomputed_knn_arrays=(dists, idx)).dimension_pw_.astype(np.float64)
    # Global estimators on each neighbourhood, the point itself included (row M + i of the stacked cloud).
    cloud = np.concatenate([reference, points])
    hoods = np.concatenate([len(reference) + np.arange(len(points))[:, None], idx[:, :-1]], axis=1)
    if method == "twonn":
        est = skdim.id.TwoNN(discard_fraction=twonn_discard)
    elif method == "lpca":
        est = skdim.id.lPCA(ver=lpca_version, alphaFO=lpca_alpha)
    else:
        raise ValueError(f"method must be one of {CLASSICAL}, got {method!r}")
    return est.fit_pw(cloud, precomputed_knn=hoods, n_neighbors=n_neighbors).dimension_pw_.astype(np.float64)


def classical_table(points: np.ndarray, labels: np.ndarray, reference: np.ndarray, cfg: Mapping[str, Any], *,
                    dataset: str = "heldout") -> pd.DataFrame:
    """MLE, TwoNN and lPCA local dims of `points` (N, D) among `reference` (M, D) as a tidy table.

    `cfg` is the ``estimators:`` config section (mle_neighbors, twonn_neighbors, lpca_neighbors,
    lpca_version, lpca_alpha, twonn_discard).
    """
    out = []
    for method in CLASSICAL:
        dims = knn_local_dims(points, reference, method=method, n_neighbors=cfg[f"{method}_neighbors"],
                              lpca_version=cfg["lpca_version"], lpca_alpha=cfg["lpca_alpha"],
                              twonn_discard=cfg["twonn_discard"])
        out.append(_table(method, dataset, "clean", labels, np.nan, dims))
    return pd.concat(out, ignore_index=True)


# --- score-based estimators ---------------------------------------------------------------------------

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
    alpha, sigma = sde.scales(t)
    cols = []
    for b0 in range(0, n_perturbations, batch_size):
        nb = min(batch_size, n_perturbations - b0)
        eps = torch.randn((nb, *x0.shape[1:]), generator=generator, dtype=x0.dtype, device=x0.device)
        xt = alpha * x0 + sigma * eps
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
    from .jacobian import score_jacobian

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


def score_table(score_fn: ScoreFn, x0: torch.Tensor, labels: np.ndarray, cfg: Mapping[str, Any], *, sde: VPSDE,
                points: Sequence[int] | None = None, dataset: str = "heldout") -> pd.DataFrame:
    """Normal-bundle and FLIPD local dims of the clean points `x0` (N, 1, 28, 28) as a tidy table.

    `cfg` is the ``estimators:`` section: normal_bundle_times, n_perturbations, flipd_times, flipd_probes,
    seed. `points` are the indices stored in the table's ``point`` column (default 0..N-1).
    """
    gen = torch.Generator(device=x0.device).manual_seed(cfg["seed"])
    D = math.prod(x0.shape[1:])
    labels = np.asarray(labels)
    out = []
    for t in cfg["normal_bundle_times"]:
        dims = [normal_bundle_dim(normal_bundle_spectrum(score_fn, x0[i:i + 1], t, sde=sde,
                                                         n_perturbations=cfg["n_perturbations"], generator=gen), D)
                for i in range(len(x0))]
        out.append(_table("normal_bundle", dataset, f"t={t:g}", labels, t, np.asarray(dims, np.float64), points))
    for t in cfg["flipd_times"]:
        dims = np.concatenate([flipd(score_fn, x0[i:i + 8], t, sde=sde, probes=cfg["flipd_probes"], generator=gen)
                               for i in range(0, len(x0), 8)])
        out.append(_table("flipd", dataset, f"t={t:g}", labels, t, dims, points))
    return pd.concat(out, ignore_index=True)


# --- points, tables -----------------------------------------------------------------------------------

def stratified_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ceil(n / classes) points of every class, sorted, at most n in total."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    per = -(-n // len(classes))
    idx = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in classes]))
    return idx[:n]


def _table(estimator: str, dataset: str, condition: str, labels, t: float, dims, points=None) -> pd.DataFrame:
    labels = np.asarray(labels, dtype=np.int64)
    return pd.DataFrame({"estimator": estimator, "dataset": dataset, "condition": condition,
                         "point": np.arange(len(labels)) if points is None else np.asarray(points, np.int64),
                         "label": labels, "t": float(t), "local_dim": np.asarray(dims, np.float64)})[COLUMNS]


def score_model_rt(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """The score model's r_t (Fig. 3) from ``stats/diagnostics.parquet`` in the tidy layout (dataset ``samples``,
    labels = the classifier's digits)."""
    d = diagnostics
    return pd.DataFrame({"estimator": "score_model_rt", "dataset": "samples",
                         "condition": [f"t={t:g}" for t in d["t"]], "point": d["image"].astype(np.int64),
                         "label": d["label"].astype(np.int64), "t": d["t"].astype(np.float64),
                         "local_dim": d["local_dim"].astype(np.float64)})[COLUMNS]


def comparison_table(estimates: pd.DataFrame, diagnostics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (estimator, dataset, condition): n, mean, std and the per-digit means (``digit_0`` ...),
    with the paper's VAE numbers (Appendix B) first and the score model's r_t per t (if `diagnostics`) last."""
    parts = [estimates] if diagnostics is None else [estimates, score_model_rt(diagnostics)]
    df = pd.concat(parts, ignore_index=True)
    keys = ["estimator", "dataset", "condition"]
    g = df.groupby(keys, sort=False)["local_dim"]
    table = pd.concat([g.size().rename("n"), g.mean().rename("mean"), g.std(ddof=0).rename("std")], axis=1)
    digits = df.pivot_table(index=keys, columns="label", values="local_dim", aggfunc="mean", sort=False)
    digits.columns = [f"digit_{int(c)}" for c in digits.columns]
    table = table.join(digits).reset_index()
    paper = {"estimator": "paper_vae", "dataset": "mnist (paper)", "condition": "clean", "n": np.nan,
             "mean": PAPER_VAE["mean"], "std": PAPER_VAE["std"],
             **{c: PAPER_VAE["digit_1"] if c == "digit_1" else PAPER_VAE["other_digits"]
                for c in table.columns if c.startswith("digit_")}}
    return pd.concat([pd.DataFrame([paper]), table], ignore_index=True)


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison table as Markdown, mean +- std in one column (the paper's per-digit numbers are approximate)."""
    t = table.copy()
    t.insert(3, "mean ± std", [f"{m:.1f} ± {s:.1f}" for m, s in zip(t["mean"], t["std"])])
    t = t.drop(columns=["mean", "std"])
    t["n"] = t["n"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    return t.to_markdown(index=False, floatfmt=".1f") + "\n"


def estimate_heldout(dataset: "Dataset", checkpoint: Mapping[str, Any], cfg: Mapping[str, Any], *,
                     device: torch.device | str = "cpu") -> pd.DataFrame:
    """Every estimator on the held-out digits of `dataset`: MLE, TwoNN, lPCA on all of them (neighbourhoods
    among the training digits), normal bundle and FLIPD from the score model of `checkpoint` on the first
    ``n_points`` of each class (``point`` = index into the held-out split).

    Args:
        dataset: a `datasets.Dataset` (uint8 images).
        checkpoint: the score model's checkpoint (`models.score_fn_from_checkpoint`).
        cfg: the ``estimators:`` config section.
    """
    from .datasets import to_model_range
    from .models import score_fn_from_checkpoint

    train = to_model_range(dataset.train_images).flatten(1).numpy()
    heldout = to_model_range(dataset.heldout_images)
    labels = np.asarray(dataset.heldout_labels)
    classical = classical_table(heldout.flatten(1).numpy(), labels, train, cfg)
    idx = stratified_subset(labels, cfg["n_points"])
    score_fn = score_fn_from_checkpoint(checkpoint, device=device)
    sde = VPSDE(**checkpoint["config"]["sde"])
    score = score_table(score_fn, heldout[idx].to(device), labels[idx], cfg, sde=sde, points=idx)
    return pd.concat([classical, score], ignore_index=True)

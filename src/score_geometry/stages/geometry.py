"""The spectra stages: from score Jacobians to the paper's tables and claims (rules analyse_spectra,
calibrate_noise_floor, summarise_results, evaluate_claims), and the same analysis of a few images without
Snakemake (`score-geometry analyse`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis import (FEATURE_NAMES, analyse_jacobians, analyse_lowrank, analyse_shard, calibration_from_jacobians,
                        calibration_summary, summary_table)
from ..claims import RunTables, claims_markdown, claims_table
from ..report import ReportTable, report_table

if TYPE_CHECKING:
    import torch

    from ..score_models import ScoreModel

#: The per-shard tables of rule analyse_spectra, by name (their files are <name>.parquet).
SHARD_TABLES = ("spectra", "local_dims", "overlaps", "diagnostics")


def analyse_spectra(jacobians: Mapping[str, np.ndarray], predictions: pd.DataFrame, *, run: str,
                    analysis: Mapping[str, Any]) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray], dict]:
    """Rule analyse_spectra: SVD, symmetrised eigendecomposition, r_t, overlaps and diagnostics of one shard.

    Args:
        jacobians: J (n, T, D, D), or the matrix-free route's packed spectra (`geometry.lowrank.pack_spectra`),
            with images (n,), t (T,), sigma (T,), of a jacobians/shard_<k>.h5 (`analysis.analyse_shard`).
        predictions: samples/predictions.parquet (image, label: the classifier's digit of each sequence).
        analysis: the ``analysis:`` config section (kappa, kappa_sweep).

    Returns:
        The tables (`SHARD_TABLES` -> DataFrame), and the Fig. 2 features' HDF5 datasets (features (n, T, 7, D),
        images, t, sigma) and attributes (feature_names).
    """
    labels = predictions.set_index("image")["label"]
    result = analyse_shard(jacobians, labels=labels.loc[jacobians["images"]].to_numpy(), run=run,
                           kappa=analysis["kappa"], kappa_sweep=analysis["kappa_sweep"])
    features = {"features": result.features, "images": jacobians["images"], "t": jacobians["t"],
                "sigma": jacobians["sigma"]}
    return ({name: getattr(result, name) for name in SHARD_TABLES}, features,
            {"feature_names": list(FEATURE_NAMES)})


def calibrate_noise_floor(heldout: Mapping[str, np.ndarray], diagnostics: pd.DataFrame, *, run: str,
                          kappa: float) -> tuple[pd.DataFrame, ReportTable]:
    """Rule calibrate_noise_floor: is the model's off-manifold Jacobian gain 1/sigma_t^2? The noisy held-out
    digits' Jacobians (`compute_heldout_jacobians`) against the model's own x_t (the aggregated diagnostics).

    Returns:
        The per-Jacobian table and the summary per source and t (with its Markdown and HTML).
    """
    table, summary = calibration_from_jacobians(heldout, diagnostics, run=run, kappa=kappa)
    return table, report_table(summary, title="Noise-floor calibration per source and t", floatfmt=".3f")


def summarise_results(diagnostics: pd.DataFrame, overlaps: pd.DataFrame) -> ReportTable:
    """Rule summarise_results: the per-t summary numbers to check against the paper (`analysis.summary_table`)."""
    return report_table(summary_table(diagnostics, overlaps), floatfmt=".3f",
                        title="Summary per t: the numbers to check against the paper")


def evaluate_claims(*, diagnostics: pd.DataFrame, overlaps: pd.DataFrame, spectra: pd.DataFrame,
                    features: Mapping[str, np.ndarray], calibration: pd.DataFrame, x0_hat: np.ndarray,
                    toy: pd.DataFrame, vae_dims: pd.DataFrame, vae_metrics: list[dict], run: str, kappa: float,
                    parameterisation: str, local_dims: pd.DataFrame | None = None,
                    kappa_sweep: Sequence[float] = ()) -> ReportTable:
    """Rule evaluate_claims: the paper's claims as computed verdicts (`claims.claims_table`).

    Args:
        features: features (n, T, 7, D), images (n,), t (T,) of stats/features.h5.
        x0_hat: (N, ...) the final samples; their pixels above 0 are the digit's stroke.
        vae_metrics: the clean VAE's per-epoch records.
        parameterisation: what the model predicts (eps, x0, oracle), for the claims' origin.
        local_dims: stats/local_dims.parquet, for the claims' other r_t definitions (own floor, κ sweep);
        kappa_sweep: the κs they are judged at besides `kappa`.
    """
    tables = RunTables(
        diagnostics=diagnostics, overlaps=overlaps, spectra=spectra, parameterisation=parameterisation, kappa=kappa,
        calibration=calibration, features=features["features"], feature_images=features["images"],
        feature_t=features["t"], stroke=x0_hat.reshape(len(x0_hat), -1) > 0, toy=toy, vae_dims=vae_dims,
        vae_metrics=vae_metrics, local_dims=local_dims)
    table = claims_table(tables, kappa_sweep=kappa_sweep)
    return report_table(table, title=f"Claims of the paper: computed verdicts ({run})",
                        markdown=claims_markdown(table, run=run))


def analyse_images(model: "ScoreModel", images: np.ndarray, t: Sequence[float], *, seed: int = 0,
                   labels: Sequence[int] | None = None, kappa: float = 0.1,
                   kappa_sweep: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0),
                   device: "torch.device | str" = "cpu", chunk_size: int | None = None, method: str = "auto", run: str = "cli",
                   progress: bool = True, route: str = "exact", k_max: int = 1024) -> dict[str, Any]:
    """The pipeline's analysis of a handful of images, without Snakemake (`score-geometry analyse`): each image
    forward-noised at each t, the exact score Jacobians of `model`, their spectra, and the tables.

    Args:
        model: any score model (`score_models.load_score_model`).
        images: (n, *model.image_shape) clean images in the model's range ([-1, 1] for the pipeline's).
        route: ``"exact"`` (the D x D Jacobians), ``"lowrank"`` (matrix-free, `geometry.lowrank`: the computed
            ranks only, r_t at `kappa` and at the sweep's kappas >= it, up to `k_max` triplets) or ``"auto"``
            (`geometry.lowrank.choose_route`). `method` and `chunk_size` are the exact route's.

    Returns:
        dict of DataFrames: spectra, local_dims, overlaps, diagnostics (one row per Jacobian, with the
        calibration ratio), summary (one row per t, `analysis.summary_table`), calibration (per t: median
        ratio, its quartiles and whether it lies in `analysis.CALIBRATION_BAND`).
    """
    import torch

    from ..geometry.lowrank import choose_route, lowrank_at_times
    from .jacobians import jacobians_at_times, lowrank_kappas, noisy_heldout

    images = np.asarray(images, dtype=np.float32)
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        raise ValueError(f"images have shape {tuple(images.shape[1:])}, the model takes {tuple(model.image_shape)}")
    x_t = noisy_heldout(images, t, model.sde, seed=seed)
    labels = np.full(len(images), -1) if labels is None else np.asarray(labels)
    sigma = model.sde.sigma(torch.tensor(np.asarray(t), dtype=torch.float64)).numpy()
    if choose_route(route, int(np.prod(model.image_shape))) == "lowrank":
        spectra = lowrank_at_times(model.score, x_t, t, sigma, kappa, device=device, progress=progress,
                                   kappas=lowrank_kappas(kappa, kappa_sweep), k_max=k_max)
        shard = analyse_lowrank(spectra, images=range(len(images)), labels=labels, t=t, run=run)
    else:
        J = jacobians_at_times(model.score, x_t, t, device=device, chunk_size=chunk_size, method=method,
                               progress=progress)
        shard = analyse_jacobians(J, images=range(len(images)), labels=labels, t=t, sigma=sigma, run=run, kappa=kappa,
                                  kappa_sweep=kappa_sweep, progress=progress)
    res = {k: getattr(shard, k) for k in SHARD_TABLES}
    return res | {"summary": summary_table(res["diagnostics"], res["overlaps"]),
                  "calibration": calibration_summary(res["diagnostics"])}

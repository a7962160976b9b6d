"""Every registered estimator on the same points (held-out digits) as one tidy table: the kNN estimators on all
of them, the score-based ones on a stratified subset (docs/estimators.md). Each estimator logs its start and its
time (`logging`); the score-based ones show a progress bar per point (tqdm, in the rule's log)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..score import ScoreFn
from ..sde import VPSDE
from .registry import estimators, own_config
from .tables import estimates_table, stratified_subset

if TYPE_CHECKING:
    from ..datasets import Dataset

log = logging.getLogger(__name__)


def _done(name: str, start: float, results: Sequence[tuple[float, np.ndarray]]) -> None:
    """Log an estimator's time and its median finite local dim (per t where it has times)."""
    def median(d: np.ndarray) -> float:
        d = np.asarray(d, np.float64)
        return float(np.median(d[np.isfinite(d)])) if np.isfinite(d).any() else float("nan")

    medians = ", ".join(f"{median(d):.1f}" + ("" if np.isnan(t) else f" at t={t:g}") for t, d in results)
    log.info("%s done in %.1f s: median local dim %s", name, time.perf_counter() - start, medians)


def classical_table(points: np.ndarray, labels: np.ndarray, reference: np.ndarray, cfg: Mapping[str, Any], *,
                    dataset: str = "heldout") -> pd.DataFrame:
    """Every registered kNN estimator (kind "neighbours": MLE, TwoNN, lPCA) on `points` (N, D) among
    `reference` (M, D) as a tidy table (condition ``clean``), in registration order.

    `cfg` is the ``estimators:`` config section; each estimator reads its own keys.
    """
    out = []
    for e in estimators("neighbours"):
        log.info("%s: %d points among %d reference points", e.name, len(points), len(reference))
        start = time.perf_counter()
        dims = e.fn(points, reference, own_config(e, cfg))
        _done(e.name, start, [(np.nan, dims)])
        out.append(estimates_table(e.name, dataset, "clean", labels, np.nan, dims))
    return pd.concat(out, ignore_index=True)


def score_table(score_fn: ScoreFn, x0: torch.Tensor, labels: np.ndarray, cfg: Mapping[str, Any], *, sde: VPSDE,
                points: Sequence[int] | None = None, dataset: str = "heldout") -> pd.DataFrame:
    """Every registered score-based estimator (kind "score": normal bundle, FLIPD) on the clean points `x0`
    (N, *S) as a tidy table (condition ``t=<t>``), in registration order.

    `cfg` is the ``estimators:`` section: each estimator's own keys, and ``seed`` of the one generator they all
    draw from, in turn. `points` are the indices stored in the table's ``point`` column (default 0..N-1).
    """
    gen = torch.Generator(device=x0.device).manual_seed(cfg["seed"])
    out = []
    for e in estimators("score"):
        own = own_config(e, cfg)
        log.info("%s: %d points (%s)", e.name, len(x0), ", ".join(f"{k}={v}" for k, v in own.items()))
        start = time.perf_counter()
        results = e.fn(score_fn, x0, own, sde=sde, generator=gen)
        _done(e.name, start, results)
        out += [estimates_table(e.name, dataset, f"t={t:g}", labels, t, dims, points) for t, dims in results]
    return pd.concat(out, ignore_index=True)


def estimate_heldout(dataset: "Dataset", checkpoint: Mapping[str, Any], cfg: Mapping[str, Any], *,
                     device: torch.device | str = "cpu") -> pd.DataFrame:
    """Every estimator on the held-out digits of `dataset`: the kNN ones on all of them (neighbourhoods among the
    training digits), the score-based ones from the score model of `checkpoint` on the first ``n_points`` of
    each class (``point`` = index into the held-out split).

    Args:
        dataset: a `datasets.Dataset` (uint8 images).
        checkpoint: the score model's checkpoint (`models.score_fn_from_checkpoint`).
        cfg: the ``estimators:`` config section.
    """
    from ..datasets import to_model_range
    from ..models import score_fn_from_checkpoint

    train = to_model_range(dataset.train_images).flatten(1).numpy()
    heldout = to_model_range(dataset.heldout_images)
    labels = np.asarray(dataset.heldout_labels)
    classical = classical_table(heldout.flatten(1).numpy(), labels, train, cfg)
    idx = stratified_subset(labels, cfg["n_points"])
    score_fn = score_fn_from_checkpoint(checkpoint, device=device)
    sde = VPSDE(**checkpoint["config"]["sde"])
    score = score_table(score_fn, heldout[idx].to(device), labels[idx], cfg, sde=sde, points=idx)
    return pd.concat([classical, score], ignore_index=True)

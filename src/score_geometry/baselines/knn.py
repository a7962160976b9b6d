"""kNN local-dimension estimators (scikit-dimension): Levina & Bickel's pointwise MLE, TwoNN and local PCA of
each point's neighbourhood in a reference cloud (held-out digits among the training digits)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .registry import estimator

CLASSICAL = ("mle", "twonn", "lpca")


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


# --- the registered estimators (kind "neighbours"): fn(points, reference, cfg) -> (N,) --------------------------
@estimator("mle", label="MLE", kind="neighbours", keys=("mle_neighbors",))
def mle_local_dims(points: np.ndarray, reference: np.ndarray, cfg: Mapping[str, Any]) -> np.ndarray:
    """Pointwise MLE from the estimators.mle_neighbors nearest reference points."""
    return knn_local_dims(points, reference, method="mle", n_neighbors=cfg["mle_neighbors"])


@estimator("twonn", label="TwoNN", kind="neighbours", keys=("twonn_neighbors", "twonn_discard"))
def twonn_local_dims(points: np.ndarray, reference: np.ndarray, cfg: Mapping[str, Any]) -> np.ndarray:
    """TwoNN on each point and its estimators.twonn_neighbors nearest reference points."""
    return knn_local_dims(points, reference, method="twonn", n_neighbors=cfg["twonn_neighbors"],
                          twonn_discard=cfg["twonn_discard"])


@estimator("lpca", label="lPCA", kind="neighbours", keys=("lpca_neighbors", "lpca_version", "lpca_alpha"))
def lpca_local_dims(points: np.ndarray, reference: np.ndarray, cfg: Mapping[str, Any]) -> np.ndarray:
    """Local PCA of each point and its estimators.lpca_neighbors nearest reference points."""
    return knn_local_dims(points, reference, method="lpca", n_neighbors=cfg["lpca_neighbors"],
                          lpca_version=cfg["lpca_version"], lpca_alpha=cfg["lpca_alpha"])

"""kNN local-dimension estimators (scikit-dimension): Levina & Bickel's pointwise MLE, TwoNN and local PCA of
each point's neighbourhood in a reference cloud (held-out digits among the training digits)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .registry import estimator

CLASSICAL = ("mle", "twonn", "lpca")


def _self_matches(points: np.ndarray, reference: np.ndarray) -> list[np.ndarray]:
    """For each point, the indices of the reference rows equal to it (exact copies: the point itself when it is
    in the reference cloud, e.g. a training point queried among the training points)."""
    rows: dict[bytes, list[int]] = {}
    for j, row in enumerate(reference + 0.0):  # + 0.0: -0.0 and 0.0 are the same point
        rows.setdefault(row.tobytes(), []).append(j)
    return [np.asarray(rows.get(p.tobytes(), ()), dtype=np.intp) for p in points + 0.0]


def _neighbours(points: np.ndarray, reference: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices (N, n_neighbors) of each point's nearest reference points (Euclidean), the point's
    own copies in `reference` left out (a distance of 0 to itself is no neighbour: MLE would report 0)."""
    from sklearn.neighbors import NearestNeighbors

    if n_neighbors > len(reference):
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the {len(reference)} reference points; lower it")
    own = _self_matches(points, reference)
    extra = max((len(o) for o in own), default=0)
    if n_neighbors + extra > len(reference):
        i = int(np.argmax([len(o) for o in own]))
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the {len(reference) - extra} reference points left "
                         f"for query point {i} once its {extra} cop{'y' if extra == 1 else 'ies'} in the reference "
                         "set are left out; lower it")
    dists, idx = NearestNeighbors(n_neighbors=n_neighbors + extra).fit(reference).kneighbors(points)
    if extra:
        # Drop each point's own copies (they come first, at distance 0), keep the next n_neighbors in order.
        dropped = np.stack([np.isin(row, o) for row, o in zip(idx, own)]) if len(idx) else np.zeros_like(idx, bool)
        keep = np.argsort(dropped, axis=1, kind="stable")[:, :n_neighbors]
        dists, idx = np.take_along_axis(dists, keep, 1), np.take_along_axis(idx, keep, 1)
    return dists, idx


def knn_local_dims(points: np.ndarray, reference: np.ndarray, *, method: str, n_neighbors: int,
                   lpca_version: str = "FO", lpca_alpha: float = 0.05, twonn_discard: float = 0.1) -> np.ndarray:
    """Pointwise local dimension of `points` within the cloud `reference`, with scikit-dimension.

    The neighbourhood of a point is its `n_neighbors` nearest reference points, e.g. held-out digits among the
    training digits. A query point that is also in `reference` (an exact copy: the training digits queried among
    themselves) is left out of its own neighbourhood, as scikit-learn's ``kneighbors()`` leaves out a fitted
    point: its neighbours are the `n_neighbors` nearest other reference points (a neighbour at distance 0, the
    point itself, would make MLE report 0).

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

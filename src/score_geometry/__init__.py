"""score_geometry: local geometry of diffusion-model score fields (Wenliang & Moran).

The user-facing functions, importable from the package (loaded on first use, so ``import score_geometry``
and the workflow's config checks do not import torch):

    from score_geometry import load_score_model, score_jacobian, analyse_jacobian, local_dimension

* the seam: `ScoreModel`, `load_score_model` (a model reference: the pipeline's ``model/model.pt``),
  `VPSDE`, `make_score_fn` (a network predicting eps or x0 -> g(x, t));
* Jacobians: `score_jacobian`, `batch_jacobian`;
* spectra: `analyse_jacobian` (SVD, symmetrised eigendecomposition, r_t, cosines), `local_dimension`,
  `local_dim_sweep`, `subspace_overlap`, `overlaps`, `calibration_ratio`;
* the skew part: `skew_shares`;
* sampling: `euler_maruyama`, `sample_sequences`;
* other local-dimension estimators: `knn_local_dims`, `normal_bundle_spectrum`, `flipd`;
* the Gaussian oracle: `GaussianSubspaceOracle`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ScoreModel": "score_models", "load_score_model": "score_models",
    "VPSDE": "sde", "make_score_fn": "score",
    "score_jacobian": "jacobian", "batch_jacobian": "jacobian",
    "analyse_jacobian": "spectra", "local_dimension": "spectra", "local_dim_sweep": "spectra",
    "subspace_overlap": "spectra", "overlaps": "spectra", "calibration_ratio": "analysis",
    "skew_shares": "skew",
    "euler_maruyama": "sample", "sample_sequences": "sample",
    "knn_local_dims": "estimators", "normal_bundle_spectrum": "estimators", "flipd": "estimators",
    "GaussianSubspaceOracle": "oracle",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'score_geometry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

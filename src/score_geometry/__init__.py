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
from typing import Any, Callable, Mapping

__version__ = "0.2.0"

_EXPORTS = {
    "ScoreModel": "score_models", "load_score_model": "score_models", "load_external": "score_models",
    "VPSDE": "sde", "make_score_fn": "score",
    "score_jacobian": "jacobian", "batch_jacobian": "jacobian",
    "analyse_jacobian": "spectra", "local_dimension": "spectra", "local_dim_sweep": "spectra",
    "subspace_overlap": "spectra", "overlaps": "spectra", "calibration_ratio": "analysis",
    "skew_shares": "skew",
    "euler_maruyama": "sample", "sample_sequences": "sample",
    "knn_local_dims": "baselines", "normal_bundle_spectrum": "baselines", "flipd": "baselines",
    "GaussianSubspaceOracle": "oracle",
}
__all__ = sorted(_EXPORTS)


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> tuple[Callable, Callable]:
    """A package's ``__getattr__`` and ``__dir__`` for `exports` (name -> submodule, relative), each loaded on first
    use and then kept in the package's `namespace` (its ``globals()``). Used here and by the subpackages."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(f".{exports[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

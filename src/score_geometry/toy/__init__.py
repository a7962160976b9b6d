"""The toy of the paper's Fig. 1: the density on a 2-D surface in R^3 and its exact noisy score (`density`), and
the experiment on it (`experiment`: the MLP's fit, the controls, the analysis).

Everything callers import from ``score_geometry.toy`` is importable here, loaded on first use: the density alone
does not import the experiment's dependencies (Jacobians, spectra, the score-model seam).
"""

from __future__ import annotations

from .. import lazy_exports
from ..config import TOY_TRAINING_KEYS as TRAINING_KEYS  # noqa: F401 (re-exported)
from ..config import toy_training_section as training_section  # noqa: F401 (re-exported)

_EXPORTS = {
    # density
    "SphereVMFMixture": "density", "fibonacci_sphere": "density", "langevin_over_rho": "density",
    "log_sinhc": "density",
    # experiment
    "toy_train_config": "experiment", "fit_toy_model": "experiment", "learned_score_fn": "experiment",
    "CONTROLS": "experiment", "tangent_rotation": "experiment", "tangent_normal_skew": "experiment",
    "injected_curl_normal": "experiment", "control_score_fn": "experiment", "analyse_toy_field": "experiment",
    "analyse_toy_model": "experiment", "analyse_toy_controls": "experiment", "summarise_toy": "experiment",
    "toy_field": "experiment",
}
__all__ = sorted([*_EXPORTS, "TRAINING_KEYS", "training_section"])

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

"""Deprecated since 0.2.0, removed in 0.3.0: these figures moved to `score_geometry.plots.baselines` (also
exported by `score_geometry.plots`). Importing this module warns; it re-exports the names it had from there."""

from __future__ import annotations

from ._deprecation import moved_module

moved_module(__name__, "score_geometry.plots.baselines")

from .plots.baselines import (OKABE_ITO, PAPER_VAE, converged_vae, estimators_figure, plt,  # noqa: E402
                              score_model_rt, vae_convergence_figure)

__all__ = ["OKABE_ITO", "PAPER_VAE", "converged_vae", "estimators_figure", "plt", "score_model_rt",
           "vae_convergence_figure"]

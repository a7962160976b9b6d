"""Baselines: local-dimension estimators other than the paper's r_t, behind one registry (`registry.ESTIMATORS`).

    registry     Estimator (name, label, kind, config keys, function), `@estimator`, `estimator_label`
    knn          MLE, TwoNN, lPCA (scikit-dimension) of a point's neighbourhood among reference points
    score_based  the normal bundle (Stanczuk et al. 2024) and FLIPD (Kamkari et al. 2024) from a score model
    tables       the tidy estimates table, the score model's r_t in that layout, the comparison with the paper
    heldout      every registered estimator on the held-out digits (rule estimate_dims)

The VAE of Appendix B is a baseline too (registered by name and label here); its model and training live in
`score_geometry.vae`. A new estimator is one function with `@estimator(name, label=..., kind=..., keys=...)` in
`knn` or `score_based` (its signature is its kind's, `registry.KINDS`), plus its keys in the config's
``estimators:`` section; the estimates, the comparison table and the figure pick it up.
"""

from __future__ import annotations

from .registry import ESTIMATORS, KINDS, Estimator, estimator, estimator_label, estimators, external, own_config
from .tables import (COLUMNS, PAPER_VAE, clean_heldout_vae, comparison_markdown, comparison_table,
                     estimates_table, score_model_rt, stratified_subset)
from .knn import CLASSICAL, knn_local_dims  # registers the kNN estimators, before the score-based ones
from .score_based import exact_trace, flipd, hutchinson_trace, normal_bundle_dim, normal_bundle_spectrum
from .heldout import classical_table, estimate_heldout, score_table

__all__ = ["CLASSICAL", "COLUMNS", "ESTIMATORS", "Estimator", "KINDS", "PAPER_VAE", "classical_table",
           "clean_heldout_vae", "comparison_markdown", "comparison_table", "estimate_heldout", "estimates_table",
           "estimator", "estimator_label", "estimators", "exact_trace", "external", "flipd", "hutchinson_trace",
           "knn_local_dims", "normal_bundle_dim", "normal_bundle_spectrum", "own_config", "score_model_rt",
           "score_table", "stratified_subset"]

"""Deprecated since 0.2.0, removed in 0.3.0: the local-dimension estimators moved to `score_geometry.baselines`
(``knn``, ``score_based``, ``tables``, ``heldout``; one registry, `baselines.ESTIMATORS`). Importing this module
warns; it re-exports the names it had, unchanged, from there."""

from __future__ import annotations

from ._deprecation import moved_module

moved_module(__name__, "score_geometry.baselines")

from .baselines import (CLASSICAL, COLUMNS, PAPER_VAE, classical_table, comparison_markdown,  # noqa: E402
                        comparison_table, estimate_heldout, exact_trace, flipd, hutchinson_trace, knn_local_dims,
                        normal_bundle_dim, normal_bundle_spectrum, score_model_rt, score_table, stratified_subset)

__all__ = ["CLASSICAL", "COLUMNS", "PAPER_VAE", "classical_table", "comparison_markdown", "comparison_table",
           "estimate_heldout", "exact_trace", "flipd", "hutchinson_trace", "knn_local_dims", "normal_bundle_dim",
           "normal_bundle_spectrum", "score_model_rt", "score_table", "stratified_subset"]

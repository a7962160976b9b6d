"""Deprecated since 0.2.0, removed in 0.3.0: these figures moved to `score_geometry.plots.toy` (also exported
by `score_geometry.plots`). Importing this module warns; it re-exports the names it had from there."""

from __future__ import annotations

from ._deprecation import moved_module

moved_module(__name__, "score_geometry.plots.toy")

from .plots.toy import CROSS, NORMAL, OKABE_ITO, TANGENT, VIEWS, fig1_toy, plt, skew_shares_figure  # noqa: E402

__all__ = ["CROSS", "NORMAL", "OKABE_ITO", "TANGENT", "VIEWS", "fig1_toy", "plt", "skew_shares_figure"]

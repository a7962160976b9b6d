"""Figures, by kind; functions take arrays/tables and return matplotlib Figures, callers save them (`io.save_figure`).

    images       the sample grid; Fig. 2 (a sequence's x_t and feature vectors), for grey or RGB images
    spectra      Fig. 3 (cosines, inverse singular values, r_t) and Fig. 4 (subspace overlaps)
    toy          Fig. 1 measured on the toy surface; the MNIST skew shares
    baselines    the VAE's convergence; the local-dimension estimators side by side
    diagnostics  the training loss; several runs compared
    style        the backend and the palette; registry: the list of figures (`@figure`, `figure_code`)

Each figure of the workflow is a function decorated ``@figure("<name>")`` (`registry`); its rule in
workflow/rules/plots.smk names it (``figure="<name>"``) and the generic script draws it
(`score_geometry.stages.draw_figure`). Names are loaded on first use, so the workflow can read the registry
while it builds the DAG without importing matplotlib.
"""

from __future__ import annotations

from .. import lazy_exports

_EXPORTS = {
    "plt": "style", "OKABE_ITO": "style",
    "FEATURE_LABELS": "images", "sample_grid": "images", "fig2_features": "images",
    "fig3_cosines": "spectra", "fig3_spectrum": "spectra", "fig3_local_dims": "spectra", "fig4_overlaps": "spectra",
    "fig1_toy": "toy", "skew_shares_figure": "toy",
    "estimators_figure": "baselines", "vae_convergence_figure": "baselines", "converged_vae": "baselines",
    "training_loss_figure": "diagnostics", "plot_comparison": "diagnostics",
    "figure": "registry", "figure_code": "registry", "figure_index": "registry", "registered": "registry",
    "FigureSpec": "registry",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

"""One training run along its budgets (results/<trajectory>/trajectory.*): each claim's statistic against the
training steps with its threshold drawn, and the sample quality and memorisation beside them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .style import OKABE_ITO, plt

if TYPE_CHECKING:
    import pandas as pd

#: Marker colour of a claim's verdict at a budget.
VERDICT_COLOURS = {"holds": OKABE_ITO[2], "fails": OKABE_ITO[5], "not measurable here": "0.6"}
#: The measures drawn after the claims: (title, ids drawn together, reference id drawn dashed or None).
MEASURE_PANELS = (
    ("Fréchet distance (real vs real dashed)", ("frechet_distance",), "frechet_distance_real_baseline"),
    ("memorisation: NN distance ratio", ("memorisation_ratio",), None),
    ("share of near-copies (null dashed)", ("copy_share",), "copy_share_null"),
)


def _claim_panel(ax, g: "pd.DataFrame") -> None:
    steps, value = g["steps"].to_numpy(), g["value"].to_numpy(float)
    ax.plot(steps, value, "-", color="0.5", lw=1)
    for verdict, colour in VERDICT_COLOURS.items():
        sel = (g["verdict"] == verdict).to_numpy()
        ax.plot(steps[sel], value[sel], "o", color=colour, ms=4, label=verdict)
    for bound in (g["lower"].iloc[0], g["upper"].iloc[0]):
        if bound is not None and np.isfinite(bound):
            ax.axhline(float(bound), color="k", ls="--", lw=0.8)
    ax.set_title(g["id"].iloc[0], fontsize=7)


def plot_trajectory(table: "pd.DataFrame"):
    """`score_geometry.compare.trajectory_table` as a grid: one panel per claim (its statistic against the
    training steps, log axis; the threshold dashed; markers coloured by verdict), then the measures of
    `MEASURE_PANELS`."""
    claims = table[table["kind"] == "claim"]
    measures = table[table["kind"] == "measure"]
    ids = list(dict.fromkeys(claims["id"]))
    n = len(ids) + len(MEASURE_PANELS)
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), constrained_layout=True, squeeze=False)
    flat = axes.ravel()
    for ax, cid in zip(flat, ids):
        _claim_panel(ax, claims[claims["id"] == cid].sort_values("steps"))
    for ax, (title, drawn, reference) in zip(flat[len(ids):], MEASURE_PANELS):
        for k, mid in enumerate(drawn):
            m = measures[measures["id"] == mid].sort_values("steps")
            ax.plot(m["steps"], m["value"], "o-", color=OKABE_ITO[k], ms=4)
        if reference is not None:
            m = measures[measures["id"] == reference].sort_values("steps")
            ax.plot(m["steps"], m["value"], "--", color="k", lw=0.8)
        ax.set_title(title, fontsize=7)
    steps = np.unique(table["steps"].to_numpy(float))
    for ax in flat[:n]:
        ax.set_xscale("log")
        ax.set_xlim(steps.min() / 1.3, steps.max() * 1.3)  # also where a panel has nothing finite to draw
        ax.tick_params(labelsize=6)
        ax.set_xlabel("training steps", fontsize=6)
    for ax in flat[n:]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7)
    return fig

"""Figures of the spectra (Fig. 3 and 4): cosines, inverse singular values, the local dimension r_t and the
subspace overlaps Phi_n, drawn from the tidy tables of results/<run>/stats/."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .registry import figure
from .style import OKABE_ITO, plt

if TYPE_CHECKING:
    import pandas as pd


def _t_colours(ts) -> dict:
    return {t: OKABE_ITO[i % len(OKABE_ITO)] for i, t in enumerate(sorted(ts))}


@figure("fig3_cosines")
def fig3_cosines(spectra: "pd.DataFrame", *, examples: list[int], ncols: int = 3,
                 full_spectrum: bool = True) -> plt.Figure:
    """Fig. 3 top: cos(u_i, v_i) = u_i . v_i against rank, one panel per t in a grid.

    Over all images, the median (line) and interquartile range (band) of ranks 1..D-1; the example images as
    dots (lines through the scattered low ranks only tangle). The last rank D (the largest singular value) is
    drawn apart, as its median and IQR: it can be an expanding direction (a positive eigenvalue of the
    symmetrised Jacobian with gain above 1/sigma_t^2, more likely at large t), whose cosine is near +1 instead
    of -1; joined to the high-rank plateau it drew an unexplained spike. ``full_spectrum=False`` (the matrix-free
    route: ranks 1..k of each Jacobian, k its own) draws every computed rank alike, with no last rank apart.
    """
    ts = sorted(spectra["t"].unique())
    D = int(spectra["rank"].max()) + (0 if full_spectrum else 1)
    ncols = min(ncols, len(ts))
    nrows = -(-len(ts) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.55 * ncols, 2.05 * nrows + 0.15), sharex=True,
                             sharey=True, squeeze=False)
    markers = ("o", "s", "^", "v", "D", "P", "X", "*")
    for k, (ax, t) in enumerate(zip(axes.flat, ts)):
        d = spectra[spectra["t"] == t]
        q = d.groupby("rank")["cos_uv"].quantile([0.25, 0.5, 0.75]).unstack()
        bulk = q[q.index < D]
        ax.axhline(-1, color="0.6", lw=0.6, ls=":", label="$-1$: symmetric, contracting")
        ax.fill_between(bulk.index, bulk[0.25], bulk[0.75], color="0.8", lw=0, label="IQR over images")
        ax.plot(bulk.index, bulk[0.5], color="k", lw=1.2, label="median over images")
        for j, img in enumerate(examples):
            e = d[d["image"] == img]
            ax.plot(e["rank"], e["cos_uv"], ls="none", marker=markers[j % len(markers)], ms=2.2, mew=0,
                    alpha=0.75, color=OKABE_ITO[j % len(OKABE_ITO)], label=f"image {img}")
        if full_spectrum:
            last = q.loc[D]
            ax.errorbar([D], [last[0.5]], yerr=[[last[0.5] - last[0.25]], [last[0.75] - last[0.5]]], fmt="D",
                        ms=4, mfc="white", mec="k", ecolor="k", capsize=2, lw=0.8,
                        label=f"rank {D} (largest $s_i$)")
        ax.set_title(f"t = {t:g}, $\\sigma_t$ = {d['sigma'].iloc[0]:.3f}", fontsize=8)
        ax.set_xscale("log")
        ax.set_ylim(-1.1, 1.1)
        ax.set_yticks([-1, -0.5, 0, 0.5, 1])
        ax.tick_params(labelsize=7)
        if k + ncols >= len(ts):  # no panel below: this one carries the x axis
            ax.set_xlabel("rank i")
            ax.xaxis.label.set_fontsize(8)
            ax.tick_params(labelbottom=True)
        if k % ncols == 0:
            ax.set_ylabel("$\\cos(u_i, v_i) = u_i \\cdot v_i$", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    spare = list(axes.flat[len(ts):])
    for ax in spare:
        ax.set_axis_off()
    if spare:
        spare[0].legend(handles, labels, fontsize=7, loc="center", frameon=False)
        fig.tight_layout()
    else:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3, frameon=False)
        fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


@figure("fig3_spectrum")
def fig3_spectrum(spectra: "pd.DataFrame", diagnostics: "pd.DataFrame", *, examples: list[int]) -> plt.Figure:
    """Fig. 3 bottom left: 1/s_i against rank (log scale) for example images at each t (colour: t, line
    style: image), sigma_t^2 as a thick grey line under the curves and the local dimension r_t as a dot on
    each curve. The legend names all three encodings. For the matrix-free route (diagnostics' ``route`` is
    lowrank) the curves end at the computed rank k, and each image's estimated floor (its calibration ratio x
    sigma_t^2, `geometry.lowrank`'s quadrature) is drawn faint from k to D, where the spectrum was not computed."""
    from matplotlib.lines import Line2D

    ts = sorted(spectra["t"].unique())
    colours = _t_colours(ts)
    styles = ("-", "--", ":", "-.")
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    estimated = False
    for t in ts:
        d = spectra[spectra["t"] == t]
        sigma = d["sigma"].iloc[0]
        ax.axhline(sigma**2, color="0.55", lw=3, alpha=0.35, zorder=0)
        for k, img in enumerate(examples):
            e = d[d["image"] == img]
            ax.plot(e["rank"], e["inverse_singular_value"], color=colours[t], lw=0.9, ls=styles[k % len(styles)])
            row = diagnostics[(diagnostics["t"] == t) & (diagnostics["image"] == img)]
            if len(row) and "route" in row and row["route"].iloc[0] == "lowrank":
                floor = float(row["calibration_ratio"].iloc[0]) * sigma**2
                ax.plot([int(row["k"].iloc[0]), int(row["dim"].iloc[0])], [floor, floor], color=colours[t], lw=2,
                        alpha=0.4, ls=styles[k % len(styles)])
                estimated = True
            r = row["local_dim"]
            if len(r) and int(r.iloc[0]) > 0:
                ri = int(r.iloc[0])
                ax.plot([ri], e.loc[e["rank"] == ri, "inverse_singular_value"], "o", color=colours[t], ms=4,
                        mec="k", mew=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("rank i (ascending singular value)")
    ax.set_ylabel("inverse singular value $1/s_i$")
    handles = [Line2D([], [], color=colours[t], lw=1.5, label=f"t = {t:g}") for t in ts]
    handles += [Line2D([], [], color="k", lw=0.9, ls=styles[k % len(styles)], label=f"image {img}")
                for k, img in enumerate(examples)]
    handles += [Line2D([], [], color="0.55", lw=3, alpha=0.35, label="$\\sigma_t^2$ (floor)"),
                Line2D([], [], ls="none", marker="o", color="0.6", ms=4, mec="k", mew=0.5, label="$r_t$")]
    if estimated:
        handles.append(Line2D([], [], color="0.3", lw=2, alpha=0.4, label="estimated floor\n(ranks > k not computed)"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def fig3_local_dims(diagnostics: "pd.DataFrame", *, baseline: "pd.DataFrame | None" = None,
                    baseline_label: str = "baseline") -> plt.Figure:
    """Fig. 3 bottom right: distribution of r_t over images at each t (violins with the points), the paper's r_t
    and, beside it (hatched) where the table has it, r_t against each Jacobian's own floor
    (``local_dim_own_floor``), with a baseline's 5-95% range (e.g. the VAE's local dimension) shaded when given (column local_dim).

    A baseline with a ``converged`` column (`score_geometry.vae.local_dims_table`) is shaded only when every
    row is converged, labelled with its ``trained_on`` (data and epochs); otherwise a note says it is not drawn."""
    ts = sorted(diagnostics["t"].unique())
    colours = _t_colours(ts)
    fig, ax = plt.subplots(figsize=(4.0, 3.4))
    own = "local_dim_own_floor" in diagnostics
    # the paper's r_t (threshold (1 + kappa) sigma_t^2), and beside it, hatched, the own-floor r_t where analysed
    kinds = [("local_dim", 0.0, None)] + ([("local_dim_own_floor", 0.4, "//")] if own else [])
    width = 0.38 if own else 0.8
    rng = np.random.default_rng(0)
    for column, shift, hatch in kinds:
        data = [diagnostics.loc[diagnostics["t"] == t, column].to_numpy() for t in ts]
        positions = np.arange(len(ts)) - (0.2 if own else 0.0) + shift
        parts = ax.violinplot(data, positions=positions, showmedians=True, widths=width)
        for body, t in zip(parts["bodies"], ts):
            body.set_facecolor(colours[t])
            body.set_alpha(0.5)
            body.set_hatch(hatch)
        for x, t, y in zip(positions, ts, data):
            ax.plot(x + rng.uniform(-0.3, 0.3, len(y)) * width / 2, y, ".", color=colours[t], ms=3, mec="k",
                    mew=0.2)
    if own:
        ax.text(0.98, 0.98, "left: paper's threshold $(1+\\kappa)\\sigma_t^2$\nright (hatched): each "
                "Jacobian's own floor", transform=ax.transAxes, fontsize=6, va="top", ha="right", color="0.3")
    if baseline is not None and len(baseline):
        converged = "converged" not in baseline or bool(baseline["converged"].all())
        what = f" ({baseline['trained_on'].iloc[0]})" if "trained_on" in baseline else ""
        if converged:
            lo, hi = baseline["local_dim"].quantile([0.05, 0.95])
            ax.axhspan(lo, hi, color="0.85", zorder=0, label=f"{baseline_label}{what}, 5–95%")
            ax.legend(fontsize=6 if what else 7)
        else:
            ax.text(0.02, 0.98, f"{baseline_label}{what}:\nnot converged, not drawn", transform=ax.transAxes,
                    fontsize=6, va="top", color="0.35")
    ax.set_xticks(range(len(ts)), [f"{t:g}" for t in ts])
    ax.set_xlabel("t")
    ax.set_ylabel("local dimension $r_t$")
    fig.tight_layout()
    return fig


@figure("fig3_local_dims")
def draw_fig3_local_dims(diagnostics: "pd.DataFrame", vae: list["pd.DataFrame"], *, vae_baseline: bool
                         ) -> plt.Figure:
    """Fig. 3 bottom right from the run's tables, with the clean VAE's range on held-out digits shaded when
    `vae_baseline` (plots.vae_baseline) is on and its table (vae/local_dims.parquet) is given (`vae`: [] or
    [that table])."""
    from ..baselines import clean_heldout_vae

    baseline = clean_heldout_vae(vae[0]) if vae_baseline and vae else None
    return fig3_local_dims(diagnostics, baseline=baseline, baseline_label="VAE, held-out digits")


@figure("fig4_overlaps")
def fig4_overlaps(overlaps: "pd.DataFrame", diagnostics: "pd.DataFrame") -> plt.Figure:
    """Fig. 4: Phi_n for the pairs (u,v), (u,w), (v,w) against n, the median over images with the interquartile
    range (25th-75th percentile) as band, one colour per t, dotted vertical lines at the mean r_t.

    The band is the IQR, not mean +- 1 sd: an overlap lies in [0, 1] and so does every quantile of it, while
    mean +- sd of a skewed population of overlaps leaves [0, 1] (as Fig. 3 draws r_t and the cosines)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ts = sorted(overlaps["t"].unique())
    colours = _t_colours(ts)
    pairs = [("uv", "$\\Phi^{u,v}_n$"), ("uw", "$\\Phi^{u,w}_n$"), ("vw", "$\\Phi^{v,w}_n$")]
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.0), sharey=True)
    for ax, (pair, label) in zip(axes, pairs):
        for t in ts:
            d = overlaps[(overlaps["pair"] == pair) & (overlaps["t"] == t)]
            q = d.groupby("n")["Phi"].quantile([0.25, 0.5, 0.75]).unstack()
            ax.plot(q.index, q[0.5], color=colours[t], lw=1.1, label=f"t = {t:g}")
            ax.fill_between(q.index, q[0.25], q[0.75], color=colours[t], alpha=0.2, lw=0)
            r = diagnostics.loc[diagnostics["t"] == t, "local_dim"].mean()
            ax.axvline(r, color=colours[t], ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("n")
        ax.set_title(label)
    axes[0].set_ylabel("overlap $\\Phi_n$")
    handles, _ = axes[-1].get_legend_handles_labels()
    handles += [Patch(color="0.5", alpha=0.3, lw=0, label="IQR over images"),
                Line2D([], [], color="0.3", ls=":", lw=1, label="mean $r_t$")]
    axes[-1].legend(handles=handles, fontsize=7, loc="lower right", title="median over images", title_fontsize=7)
    fig.tight_layout()
    return fig

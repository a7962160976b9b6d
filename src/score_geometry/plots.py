"""Figures. Functions take arrays/tables and return matplotlib Figures; callers save them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def sample_grid(images: np.ndarray, *, labels: list[int] | None = None, ncols: int = 16,
                max_images: int = 128) -> plt.Figure:
    """Grid of generated images (N, 28, 28) in [-1, 1], optionally titled with the classifier's label."""
    images = np.clip(np.asarray(images)[:max_images], -1, 1)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.6, nrows * 0.7), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=6, pad=1)
    fig.subplots_adjust(wspace=0.05, hspace=0.3, left=0.01, right=0.99, top=0.97, bottom=0.01)
    return fig


# --- the paper's figures -------------------------------------------------------------------------
# Colour-blind-safe qualitative palette (Okabe & Ito), one colour per t.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FEATURE_LABELS = {"v_minus": "$v_-$", "u_minus": "$u_-$", "w_zero": "$w_0$", "w_plus": "$w_+$",
                  "u_plus": "$u_+$", "v_plus": "$v_+$", "w_minus": "$w_-$"}


def _t_colours(ts) -> dict:
    return {t: OKABE_ITO[i % len(OKABE_ITO)] for i, t in enumerate(sorted(ts))}


def fig2_features(x_t: np.ndarray, features: np.ndarray, t: np.ndarray, sigma: np.ndarray,
                  feature_names: list[str]) -> plt.Figure:
    """Fig. 2: one sequence; rows = times (highest noise on top), columns = x_t then the feature vectors.

    Args:
        x_t: (T, 28, 28) the sequence; features: (T, 7, 784); t, sigma: (T,).
    """
    order = np.argsort(t)[::-1]
    n_rows, n_cols = len(t), 1 + len(feature_names)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.1 * n_cols + 0.8, 1.1 * n_rows + 0.4), squeeze=False)
    for r, j in enumerate(order):
        axes[r, 0].imshow(np.clip(x_t[j], -1, 1), cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_ylabel(f"t={t[j]:g}\n$\\sigma_t$={sigma[j]:.3f}", fontsize=7)
        for c, name in enumerate(feature_names, start=1):
            f = features[j, c - 1].reshape(28, 28)
            lim = float(np.abs(f).max()) or 1.0
            axes[r, c].imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for c in range(n_cols):
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title("$x_t$" if c == 0 else FEATURE_LABELS.get(feature_names[c - 1], feature_names[c - 1]),
                                     fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.93, bottom=0.02, wspace=0.05, hspace=0.08)
    return fig


def fig3_cosines(spectra: "pd.DataFrame", *, examples: list[int]) -> plt.Figure:
    """Fig. 3 top: cos(u_i, v_i) against rank, one panel per t: examples plus median and IQR over images."""
    ts = sorted(spectra["t"].unique())
    fig, axes = plt.subplots(1, len(ts), figsize=(2.3 * len(ts), 2.4), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], ts):
        d = spectra[spectra["t"] == t]
        q = d.groupby("rank")["cos_uv"].quantile([0.25, 0.5, 0.75]).unstack()
        ax.fill_between(q.index, q[0.25], q[0.75], color="0.8", label="IQR, all images")
        ax.plot(q.index, q[0.5], color="k", lw=1.2, label="median")
        for k, img in enumerate(examples):
            e = d[d["image"] == img]
            ax.plot(e["rank"], e["cos_uv"], lw=0.6, alpha=0.8, color=OKABE_ITO[k % 8], label=f"image {img}")
        ax.set_title(f"t = {t:g} ($\\sigma_t$ = {d['sigma'].iloc[0]:.3f})", fontsize=8)
        ax.set_xlabel("rank i")
        ax.set_xscale("log")
        ax.axhline(0, color="0.5", lw=0.5)
    axes[0, 0].set_ylabel("$u_i \\cdot v_i$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def fig3_spectrum(spectra: "pd.DataFrame", diagnostics: "pd.DataFrame", *, examples: list[int]) -> plt.Figure:
    """Fig. 3 bottom left: 1/s_i against rank (log scale) for example images at each t, sigma_t^2 as a
    horizontal line and the local dimension r_t as a dot on each curve."""
    ts = sorted(spectra["t"].unique())
    colours = _t_colours(ts)
    styles = ["-", "--", ":"]
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    for t in ts:
        d = spectra[spectra["t"] == t]
        sigma = d["sigma"].iloc[0]
        ax.axhline(sigma**2, color=colours[t], lw=0.8, alpha=0.6)
        for k, img in enumerate(examples):
            e = d[d["image"] == img]
            ax.plot(e["rank"], e["inverse_singular_value"], color=colours[t], lw=0.9, ls=styles[k % 3],
                    label=f"t = {t:g}" if k == 0 else None)
            r = diagnostics[(diagnostics["t"] == t) & (diagnostics["image"] == img)]["local_dim"]
            if len(r) and int(r.iloc[0]) > 0:
                ri = int(r.iloc[0])
                ax.plot([ri], e.loc[e["rank"] == ri, "inverse_singular_value"], "o", color=colours[t], ms=4,
                        mec="k", mew=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("rank i (ascending singular value)")
    ax.set_ylabel("inverse singular value $1/s_i$")
    ax.legend(fontsize=7, title="lines: $\\sigma_t^2$; dots: $r_t$", title_fontsize=7)
    fig.tight_layout()
    return fig


def fig3_local_dims(diagnostics: "pd.DataFrame", *, baseline: "pd.DataFrame | None" = None,
                    baseline_label: str = "baseline") -> plt.Figure:
    """Fig. 3 bottom right: distribution of r_t over images at each t (violins with the points), with a
    baseline's 5-95% range (e.g. the VAE's local dimension) shaded when given (column local_dim)."""
    ts = sorted(diagnostics["t"].unique())
    colours = _t_colours(ts)
    fig, ax = plt.subplots(figsize=(4.0, 3.4))
    data = [diagnostics.loc[diagnostics["t"] == t, "local_dim"].to_numpy() for t in ts]
    parts = ax.violinplot(data, positions=range(len(ts)), showmedians=True, widths=0.8)
    for body, t in zip(parts["bodies"], ts):
        body.set_facecolor(colours[t])
        body.set_alpha(0.5)
    rng = np.random.default_rng(0)
    for i, (t, y) in enumerate(zip(ts, data)):
        ax.plot(i + rng.uniform(-0.12, 0.12, len(y)), y, ".", color=colours[t], ms=3, mec="k", mew=0.2)
    if baseline is not None and len(baseline):
        lo, hi = baseline["local_dim"].quantile([0.05, 0.95])
        ax.axhspan(lo, hi, color="0.85", zorder=0, label=f"{baseline_label}, 5–95%")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(ts)), [f"{t:g}" for t in ts])
    ax.set_xlabel("t")
    ax.set_ylabel("local dimension $r_t$")
    fig.tight_layout()
    return fig


def fig4_overlaps(overlaps: "pd.DataFrame", diagnostics: "pd.DataFrame") -> plt.Figure:
    """Fig. 4: Phi_n for the pairs (u,v), (u,w), (v,w) against n, mean over images with a +-1 sd band, one
    colour per t, dotted vertical lines at the mean r_t."""
    ts = sorted(overlaps["t"].unique())
    colours = _t_colours(ts)
    pairs = [("uv", "$\\Phi^{u,v}_n$"), ("uw", "$\\Phi^{u,w}_n$"), ("vw", "$\\Phi^{v,w}_n$")]
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.0), sharey=True)
    for ax, (pair, label) in zip(axes, pairs):
        for t in ts:
            d = overlaps[(overlaps["pair"] == pair) & (overlaps["t"] == t)]
            g = d.groupby("n")["Phi"].agg(["mean", "std"])
            ax.plot(g.index, g["mean"], color=colours[t], lw=1.1, label=f"t = {t:g}")
            ax.fill_between(g.index, g["mean"] - g["std"], g["mean"] + g["std"], color=colours[t], alpha=0.2, lw=0)
            r = diagnostics.loc[diagnostics["t"] == t, "local_dim"].mean()
            ax.axvline(r, color=colours[t], ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("n")
        ax.set_title(label)
    axes[0].set_ylabel("overlap $\\Phi_n$")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


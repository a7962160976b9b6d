"""Figures of the non-conservative part (docs/nonconservative.md): the paper's Fig. 1 measured on a toy surface,
and the MNIST skew shares against t."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .registry import figure
from .style import OKABE_ITO, plt

if TYPE_CHECKING:
    import pandas as pd

# Two views of the sphere (elevation, azimuth in degrees), roughly opposite so together they show all of it.
VIEWS = ((30.0, 20.0), (-15.0, -120.0))
TANGENT, NORMAL, CROSS = OKABE_ITO[0], OKABE_ITO[5], OKABE_ITO[2]


def _view_direction(elev: float, azim: float) -> np.ndarray:
    e, a = np.radians(elev), np.radians(azim)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def _sphere_axes(ax, radius: float, view: tuple[float, float]) -> None:
    lim = 1.05 * radius
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), zlim=(-lim, lim))
    ax.set_box_aspect((1, 1, 1), zoom=1.35)
    ax.view_init(elev=view[0], azim=view[1])
    ax.set_axis_off()


def _band(ax, d: "pd.DataFrame", column: str, colour: str, label: str, marker: str) -> None:
    q = d.groupby("t")[column].quantile([0.25, 0.5, 0.75]).unstack()
    if q.empty or not {0.25, 0.5, 0.75} <= set(q.columns):  # no defined share (a conservative field): nothing to draw
        return
    ax.fill_between(q.index, q[0.25], q[0.75], color=colour, alpha=0.2, lw=0)
    ax.plot(q.index, q[0.5], marker=marker, color=colour, lw=1.5, ms=5, label=label)


def _letter(ax, letter: str) -> None:
    """Panel letter at the top left (3-D axes place 2-D text with text2D)."""
    if hasattr(ax, "text2D"):
        ax.text2D(0.04, 0.86, letter, transform=ax.transAxes, fontsize=11, fontweight="bold", va="top")
    else:
        ax.text(-0.16, 1.08, letter, transform=ax.transAxes, fontsize=11, fontweight="bold", va="top")


def fig1_toy(field: Mapping[str, np.ndarray], attrs: Mapping[str, Any], points: "pd.DataFrame") -> plt.Figure:
    """Fig. 1 measured: the density on the sphere (two views); the learned score's tangential part at
    t = field_t (two views, arrows coloured by how non-conservative the field is there, ||J - J^T||_F / ||J||_F);
    the tangent and normal shares of ||H||_F^2 against t; and the asymmetry and error against the exact score.

    Args:
        field: arrays from `toy.toy_field` (x, normal, score, curl (M, 3), asymmetry (M,); theta, phi, density).
        attrs: t, sigma, alpha, radius of the field.
        points: the per-point table of `toy.analyse_toy_model`.
    """
    from matplotlib.colors import PowerNorm
    from matplotlib.ticker import NullFormatter

    radius, alpha, t_f = float(attrs["radius"]), float(attrs["alpha"]), float(attrs["t"])
    fig = plt.figure(figsize=(11.0, 6.4))
    gs = fig.add_gridspec(2, 5, width_ratios=(1, 1, 0.045, 0.32, 1.25), wspace=0.04, hspace=0.18,
                          left=0.0, right=0.985, top=0.94, bottom=0.08)

    # Density p(u) on the sphere (square-root colour scale so the broad bumps show beside the sharp one).
    theta, phi, dens = field["theta"], field["phi"], field["density"]
    T, P = np.meshgrid(theta, phi, indexing="ij")
    X, Y, Z = radius * np.sin(T) * np.cos(P), radius * np.sin(T) * np.sin(P), radius * np.cos(T)
    cmap = plt.get_cmap("viridis")
    norm = PowerNorm(0.5, vmin=0, vmax=float(dens.max()))
    for col, view in enumerate(VIEWS):
        ax = fig.add_subplot(gs[0, col], projection="3d")
        ax.plot_surface(X, Y, Z, facecolors=cmap(norm(dens)), rstride=1, cstride=1, linewidth=0,
                        antialiased=False, shade=False)
        _sphere_axes(ax, radius, view)
        ax.set_title(f"density on the sphere, view {col + 1}", fontsize=9, y=0.97)
        _letter(ax, "ab"[col])
    cax = fig.add_subplot(gs[0, 2])
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax).set_label("p(u) per unit area", fontsize=8)
    cax.tick_params(labelsize=7)

    # Learned field: its tangential part, coloured by the local asymmetry of its Jacobian.
    x, n, g = field["x"], field["normal"], field["score"]
    g_tan = g - np.sum(g * n, axis=1, keepdims=True) * n
    asym = field["asymmetry"]
    anorm = plt.Normalize(0, float(np.quantile(asym, 0.98)) or 1.0)
    acmap = plt.get_cmap("plasma")
    length = 0.25 * alpha * radius / float(np.quantile(np.linalg.norm(g_tan, axis=1), 0.95) or 1.0)
    sx, sy, sz = (alpha * radius * a for a in (X, Y, Z))
    for col, view in enumerate(VIEWS):
        ax = fig.add_subplot(gs[1, col], projection="3d")
        ax.plot_surface(sx, sy, sz, color="0.55", alpha=0.25, linewidth=0, shade=False)
        front = n @ _view_direction(*view) > 0.05  # 3-D quivers are not occluded: draw the visible side only
        a = g_tan[front] * length
        ax.quiver(x[front, 0], x[front, 1], x[front, 2], a[:, 0], a[:, 1], a[:, 2],
                  colors=acmap(anorm(asym[front])), linewidth=1.3, arrow_length_ratio=0.35)
        _sphere_axes(ax, alpha * radius, view)
        ax.set_title(f"learned score, tangential part, t = {t_f:g}", fontsize=9, y=0.97)
        _letter(ax, "cd"[col])
    cax = fig.add_subplot(gs[1, 2])
    fig.colorbar(plt.cm.ScalarMappable(norm=anorm, cmap=acmap), cax=cax).set_label(
        "non-conservative: $\\|J - J^\\top\\|_F / \\|J\\|_F$", fontsize=8)
    cax.tick_params(labelsize=7)

    # Where the skew part acts, against t.
    right = gs[:, 4].subgridspec(2, 1, hspace=0.35)
    ax = fig.add_subplot(right[0])
    _band(ax, points, "tangent_share", TANGENT, "tangent–tangent block", "o")
    _band(ax, points, "normal_share", NORMAL, "blocks with the normal", "s")
    ax.axhline(1 / 3, color="0.3", ls=":", lw=1)
    ax.text(points["t"].max(), 1 / 3 + 0.02, "tangent share of an isotropic rotation", fontsize=7, color="0.3",
            ha="right")
    ax.set(xscale="log", ylim=(0, 1), ylabel="share of $\\|H\\|_F^2$, $H = (J - J^\\top)/2$")
    ax.set_title("where the learned field is non-conservative", fontsize=9)
    ax.legend(fontsize=7, loc="center left", title="median, IQR over points", title_fontsize=7)
    ax.tick_params(labelsize=8)
    _letter(ax, "e")

    ax = fig.add_subplot(right[1], sharex=ax)
    _band(ax, points, "asymmetry", OKABE_ITO[7], "$\\|J - J^\\top\\|_F / \\|J\\|_F$", "o")
    _band(ax, points, "score_rel_err", OKABE_ITO[1], "$|g - \\nabla\\log p_t| \\,/\\, |\\nabla\\log p_t|$", "^")
    ax.set(xscale="log", yscale="log", ylim=(5e-3, 0.5), xlabel="t")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("asymmetry, and error against the exact score", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=8)
    _letter(ax, "f")
    return fig


@figure("skew_shares")
def skew_shares_figure(diagnostics: "pd.DataFrame", *, dim: int = 784) -> plt.Figure:
    """Where the MNIST score Jacobians' skew part lies against t: shares of ||H||_F^2 inside the span of the
    first r_t right singular vectors (on-manifold), in the cross blocks and outside (median and IQR over
    images), with the shares an isotropic H would have, (r_t/D)^2, 2 (r_t/D)(1 - r_t/D), (1 - r_t/D)^2, dashed.
    Where the diagnostics carry the measures of docs/nonconservative.md (``skew_share_w_inside``,
    ``skew_rel_ratio``, ``skew_rel_ratio_w``), the on-manifold share with the eigenvectors w is added (dotted)
    and a second panel shows the relative-asymmetry ratio rho for both subspace estimates.

    Args:
        diagnostics: the diagnostics table (t, local_dim, skew_share_inside/cross/outside per image).
        dim: D, the data dimension (784 for 28x28 digits; the rule passes the data set's).
    """
    d = diagnostics.dropna(subset=["skew_share_inside"]).copy()
    q = d["local_dim"] / dim
    d["iso_inside"], d["iso_cross"], d["iso_outside"] = q**2, 2 * q * (1 - q), (1 - q) ** 2
    relative = {"skew_share_w_inside", "skew_rel_ratio", "skew_rel_ratio_w"} <= set(d.columns)
    fig, axes = plt.subplots(1, 2 if relative else 1, figsize=(9.4 if relative else 4.6, 3.4), squeeze=False)
    ax = axes[0, 0]
    for part, colour, marker, label in (("inside", TANGENT, "o", "on-manifold block"),
                                        ("cross", CROSS, "D", "cross blocks"),
                                        ("outside", NORMAL, "s", "off-manifold block")):
        _band(ax, d, f"skew_share_{part}", colour, label, marker)
        iso = d.groupby("t")[f"iso_{part}"].median()
        ax.plot(iso.index, iso.to_numpy(), ls="--", lw=1, color=colour)
    if relative:
        w = d.groupby("t")["skew_share_w_inside"].median()
        ax.plot(w.index, w.to_numpy(), ls=":", marker="o", mfc="none", lw=1.2, color=TANGENT,
                label="on-manifold block, eigenvectors w")
    ax.plot([], [], ls="--", lw=1, color="0.4", label="isotropic $H$ (median $r_t$)")
    ax.set(xscale="log", ylim=(0, 1), xlabel="t", ylabel="share of $\\|H\\|_F^2$, $H = (J - J^\\top)/2$")
    ax.set_title(f"MNIST: skew part of the score Jacobian (n = {d['image'].nunique()} images)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    if relative:
        ax = axes[0, 1]
        for column, colour, marker, label in (("skew_rel_ratio", TANGENT, "o", "right singular vectors v"),
                                              ("skew_rel_ratio_w", OKABE_ITO[1], "^", "eigenvectors w")):
            finite = d.assign(**{column: d[column].clip(upper=1e6)})
            _band(ax, finite, column, colour, label, marker)
        ax.axhline(1.0, color="0.3", ls=":", lw=1)
        ax.axhline(2.0, color="0.3", ls="--", lw=1)
        ax.text(d["t"].max(), 2.1, "claim threshold", fontsize=7, color="0.3", ha="right")
        # a log axis needs positive medians to draw (tiny runs: r_t = 0, no on-manifold block, every ratio 0)
        med = d.groupby("t")[["skew_rel_ratio", "skew_rel_ratio_w"]].median().to_numpy(dtype=float)
        pos = med[np.isfinite(med) & (med > 0)]
        if pos.size:
            ax.set(yscale="log", ylim=(min(pos.min(), 1.0) / 3, max(min(pos.max(), 1e6), 2.0) * 3))
        else:
            ax.text(0.5, 0.5, "no positive ratio (e.g. r_t = 0: no on-manifold block)", transform=ax.transAxes,
                    ha="center", fontsize=7, color="0.3")
        ax.set(xlabel="t", ylabel="$\\rho$: block $\\|H\\|/\\|J\\|$, on-manifold / largest other")
        if len(d):  # the t range, also where no ratio is finite (r_t = D: no off-manifold block to compare with)
            ax.set(xscale="log", xlim=(d["t"].min() / 1.5, d["t"].max() * 1.5))
        ax.set_title("relative asymmetry ratio (first $r_t$ directions)", fontsize=9)
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    fig.tight_layout()
    return fig


@figure("fig1_toy")
def draw_fig1(field: tuple[Mapping[str, np.ndarray], Mapping[str, Any]], points: "pd.DataFrame") -> plt.Figure:
    """Fig. 1 from the run's files: toy/field.h5 (arrays, attributes) and toy/points.parquet."""
    arrays, attrs = field
    return fig1_toy(arrays, attrs, points)

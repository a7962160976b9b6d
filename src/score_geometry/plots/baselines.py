"""Figures of the baselines: the VAE of Appendix B (its convergence) and the local-dimension estimators side by
side (docs/estimators.md), each named by its label in the estimator registry (`score_geometry.baselines`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..baselines import PAPER_VAE, estimator_label, score_model_rt
from .registry import figure
from .style import OKABE_ITO, plt

if TYPE_CHECKING:
    import pandas as pd


def _group_label(estimator: str, dataset: str, condition: str) -> str:
    name = estimator_label(estimator)
    where = "" if dataset == "heldout" else f" ({dataset})"
    if estimator == "vae" and condition != "clean":
        return f"VAE on $x_t$, {condition}{where}"
    return f"{name}, {condition}{where}" if condition != "clean" else f"{name}{where}"


def converged_vae(vae: "pd.DataFrame") -> tuple["pd.DataFrame", list[str]]:
    """The rows of `score_geometry.vae.local_dims_table` from converged VAEs, and a note per dropped condition
    (``t=0.3: mnist5k, 4,500 images, 20 epochs``). A table without a ``converged`` column (no verdict recorded,
    e.g. a hand-made one) is returned whole."""
    if "converged" not in vae:
        return vae, []
    ok = vae["converged"].astype(bool)
    notes = [f"{c}: {g['trained_on'].iloc[0]}" for c, g in vae[~ok].groupby("condition", sort=False)]
    return vae[ok], notes


@figure("estimators")
def estimators_figure(vae: "pd.DataFrame", estimates: "pd.DataFrame", diagnostics: "pd.DataFrame") -> plt.Figure:
    """Left: VAE local dimension per digit (clean held-out digits as boxes; means of the samples and of the
    noisy VAEs as lines; the paper's ~11 / ~18 as crosses). Right: every estimator's distribution as a
    horizontal box (one row per estimator and condition, labels readable unrotated) on a symmetric log axis,
    linear below 1, so a dimension of 0 is drawn where it is; the paper's VAE 13 +- 3 shaded.

    Only converged VAEs are drawn (`converged_vae`); the others are listed in a note on the left panel, whose
    title says what the clean VAE was trained on."""
    import matplotlib
    import pandas as pd

    vae, dropped = converged_vae(vae)
    df = pd.concat([vae, estimates, score_model_rt(diagnostics)], ignore_index=True)
    df = df[~((df["estimator"] == "vae") & (df["dataset"] == "samples"))]
    groups = list(df.groupby(["estimator", "dataset", "condition"], sort=False))
    height = max(4.0, 0.2 * len(groups) + 1.3)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.5, height), gridspec_kw={"width_ratios": [1.25, 1]})
    digits = np.arange(10)
    clean = vae[(vae["condition"] == "clean") & (vae["dataset"] == "heldout")]
    ax0.boxplot([clean.loc[clean["label"] == d, "local_dim"].to_numpy() for d in digits], positions=digits,
                widths=0.6, showfliers=False, patch_artist=True,
                boxprops={"facecolor": "0.85", "edgecolor": "0.4"}, medianprops={"color": "k"})
    lines = [("samples", "clean")] + [("heldout", c) for c in vae["condition"].unique() if c != "clean"]
    for i, (dataset, cond) in enumerate(lines):
        sel = vae[(vae["dataset"] == dataset) & (vae["condition"] == cond)]
        means = sel.groupby("label")["local_dim"].mean().reindex(digits)
        ax0.plot(digits, means.to_numpy(), "o-", ms=3, lw=1, color=OKABE_ITO[i % len(OKABE_ITO)],
                 label="samples, clean VAE" if dataset == "samples" else f"VAE trained on $x_t$, {cond}")
    paper = np.where(digits == 1, PAPER_VAE["digit_1"], PAPER_VAE["other_digits"])
    ax0.plot(digits, paper, "x", color="k", ms=6, label="paper (App. B)")
    ax0.set_xticks(digits)
    ax0.set_xlabel("digit (held-out label; samples: classifier's)")
    ax0.set_ylabel("VAE local dimension")
    what = f"\n(clean: {clean['trained_on'].iloc[0]})" if len(clean) and "trained_on" in clean else ""
    ax0.set_title(f"VAE: latent dims with posterior var < threshold{what}", fontsize=9)
    if dropped:
        ax0.text(0.02, 0.02, "not converged, not drawn:\n" + "\n".join(dropped), transform=ax0.transAxes,
                 fontsize=6, va="bottom", color="0.35")
    ax0.set_ylim(0, max(110, 1.25 * np.nan_to_num(vae["local_dim"].max())))
    ax0.legend(fontsize=6, loc="upper center", ncol=2)

    data = [g["local_dim"].to_numpy() for _, g in groups]
    rows = np.arange(len(groups))[::-1]  # first group on top
    colours = {e: OKABE_ITO[i % len(OKABE_ITO)] for i, e in enumerate(df["estimator"].unique())}
    # boxplot's `vert=False` became `orientation="horizontal"` in matplotlib 3.10 (and warns there)
    mpl = tuple(int(x) for x in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if mpl >= (3, 10) else {"vert": False}
    parts = ax1.boxplot(data, positions=rows, widths=0.6, showfliers=False, patch_artist=True,
                        medianprops={"color": "k"}, **horizontal)
    for box, ((est, _, _), _) in zip(parts["boxes"], groups):
        box.set_facecolor(colours[est])
        box.set_alpha(0.6)
    ax1.axvspan(PAPER_VAE["mean"] - PAPER_VAE["std"], PAPER_VAE["mean"] + PAPER_VAE["std"], color="0.85",
                zorder=0, label="paper VAE 13 ± 3")
    ax1.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax1.set_xlim(left=min(0.0, float(df["local_dim"].min())))
    ax1.set_yticks(rows, [_group_label(*k) for k, _ in groups], fontsize=7)
    ax1.set_ylim(-0.7, len(groups) - 0.3)
    ax1.set_xlabel("local dimension (log scale above 1)")
    ax1.set_title("estimators on held-out digits; $r_t$ on samples", fontsize=9)
    ax1.legend(fontsize=7, loc="lower right")
    ax1.grid(True, axis="x", which="major", color="0.92", lw=0.5)
    fig.tight_layout()
    return fig


def vae_convergence_figure(metrics: Mapping[str, list[dict]], variances: "pd.DataFrame", *, threshold: float,
                           trained_on: Mapping[str, str] | None = None) -> plt.Figure:
    """Convergence of the Appendix B VAEs (docs/vae.md), one colour per training condition.

    Top left: gamma (solid) against sqrt(MSE) on the training batches (dashed) and on held-out digits (dotted)
    per epoch. Top right: the held-out count of latent dims with posterior variance < `threshold`, mean +- std
    per epoch. Bottom left: the clean VAE's held-out count per digit class. Bottom right: histograms of the
    posterior variances of the first condition's held-out digits (every latent dim), one line per digit class,
    the threshold dashed. Legends carry `score_geometry.claims.vae_converged`'s verdict.

    Args:
        metrics: condition (``clean``, ``t=0.3`` ...) -> per-epoch records of `score_geometry.vae.train_vae`
            with held-out metrics.
        variances: `score_geometry.vae.posterior_variance_table` (condition, label, variance).
        threshold: the count's posterior-variance threshold.
        trained_on: condition -> what it was trained on (a title line), optional.
    """
    from ..claims import vae_converged

    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7.0))
    (ax_g, ax_n), (ax_d, ax_h) = axes
    colours = {c: OKABE_ITO[i % len(OKABE_ITO)] for i, c in enumerate(metrics)}
    for cond, records in metrics.items():
        ep = np.array([r["epoch"] for r in records])
        ok, _ = vae_converged(records)
        name = f"{cond} ({'converged' if ok else 'NOT converged'})"
        col = colours[cond]
        ax_g.plot(ep, [r["gamma"] for r in records], "-", color=col, lw=1.2, label=f"{name}: γ")
        ax_g.plot(ep, np.sqrt([r["mse"] for r in records]), "--", color=col, lw=1)
        if "heldout_mse" in records[0]:
            ax_g.plot(ep, np.sqrt([r["heldout_mse"] for r in records]), ":", color=col, lw=1)
            mean = np.array([r["heldout_active_dims"] for r in records])
            std = np.array([r["heldout_active_dims_std"] for r in records])
            ax_n.plot(ep, mean, "-", color=col, lw=1.2, label=name)
            ax_n.fill_between(ep, mean - std, mean + std, color=col, alpha=0.2, lw=0)
    ax_g.plot([], [], "k--", lw=1, label="√MSE, training batches")
    ax_g.plot([], [], "k:", lw=1, label="√MSE, held-out")
    ax_g.set_yscale("log")
    ax_g.set_xlabel("epoch")
    ax_g.set_ylabel("γ and √MSE (pixels in [−1, 1])")
    ax_g.set_title("decoder scale γ against its optimum √MSE", fontsize=9)
    ax_g.legend(fontsize=6)
    ax_n.set_xlabel("epoch")
    ax_n.set_ylabel(f"latent dims with posterior var < {threshold:g}")
    ax_n.set_title("held-out count, mean ± std over digits", fontsize=9)
    ax_n.legend(fontsize=6)

    first = next(iter(metrics))
    records = metrics[first]
    if records and "heldout_active_dims_by_label" in records[0]:
        ep = [r["epoch"] for r in records]
        top = 1.0
        for i, label in enumerate(sorted(records[0]["heldout_active_dims_by_label"], key=int)):
            y = [r["heldout_active_dims_by_label"][label] for r in records]
            ax_d.plot(ep, y, lw=1, color=plt.cm.tab10(i % 10), label=f"digit {label}")
            top = max(top, *y)
        ax_d.set_ylim(0, 1.08 * top)
        ax_d.legend(fontsize=6, ncol=2, loc="lower right")
    ax_d.set_xlabel("epoch")
    ax_d.set_ylabel(f"latent dims with posterior var < {threshold:g}")
    ax_d.set_title(f"{first}:\nheld-out count per class", fontsize=9)

    v = variances[variances["condition"] == first]
    if len(v):
        lo = np.floor(np.log10(max(float(v["variance"].min()), 1e-6)))
        bins = np.logspace(lo, max(0.1, np.log10(float(v["variance"].max())) + 0.05), 50)
        for i, label in enumerate(sorted(v["label"].unique())):
            ax_h.hist(v.loc[v["label"] == label, "variance"], bins=bins, histtype="step", density=False,
                      color=plt.cm.tab10(i % 10), lw=1, label=f"digit {label}")
        ax_h.set_xscale("log")
        ax_h.legend(fontsize=6, ncol=2)
    ax_h.axvline(threshold, color="k", ls="--", lw=1)
    ax_h.set_xlabel("posterior variance $v_j(x)$ (prior: 1)")
    ax_h.set_ylabel("latent dims × held-out digits")
    ax_h.set_title(f"{first}: posterior variances\n(all latent dims, per class; threshold dashed)", fontsize=9)
    if trained_on:
        fig.suptitle("; ".join(f"{c}: {trained_on[c]}" for c in metrics if c in trained_on), fontsize=8)
    fig.tight_layout()
    return fig


@figure("vae_convergence")
def draw_vae_convergence(metrics: list[list[dict]], variances: "pd.DataFrame", local_dims: "pd.DataFrame", *,
                         threshold: float, conditions: list[str]) -> plt.Figure:
    """The VAEs' convergence from the run's files: each condition's vae/<condition>/metrics.jsonl records (in
    the order of `conditions`), vae/posterior_variances.parquet, and vae/local_dims.parquet for what each VAE was
    trained on."""
    trained_on = local_dims.groupby("condition")["trained_on"].first().to_dict()
    return vae_convergence_figure(dict(zip(conditions, metrics)), variances, threshold=threshold,
                                  trained_on=trained_on)

"""Figure of the VAE baseline (Appendix B) and of the local-dimension estimators side by side (docs/estimators.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .estimators import PAPER_VAE, score_model_rt
from .plots import OKABE_ITO, plt

if TYPE_CHECKING:
    import pandas as pd


def _group_label(estimator: str, dataset: str, condition: str) -> str:
    name = {"vae": "VAE", "mle": "MLE", "twonn": "TwoNN", "lpca": "lPCA", "normal_bundle": "normal bundle",
            "flipd": "FLIPD", "score_model_rt": "$r_t$"}.get(estimator, estimator)
    where = "" if dataset == "heldout" else f" ({dataset})"
    if estimator == "vae" and condition != "clean":
        return f"VAE on $x_t$, {condition}{where}"
    return f"{name}, {condition}{where}" if condition != "clean" else f"{name}{where}"


def estimators_figure(vae: "pd.DataFrame", estimates: "pd.DataFrame", diagnostics: "pd.DataFrame") -> plt.Figure:
    """Left: VAE local dimension per digit (clean held-out digits as boxes; means of the samples and of the
    noisy VAEs as lines; the paper's ~11 / ~18 as crosses). Right: every estimator's distribution as a
    horizontal box (one row per estimator and condition, labels readable unrotated) on a symmetric log axis,
    linear below 1, so a dimension of 0 is drawn where it is; the paper's VAE 13 +- 3 shaded."""
    import matplotlib
    import pandas as pd

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
    ax0.set_title("VAE: latent dims with posterior var < threshold", fontsize=9)
    ax0.set_ylim(0, max(110, 1.25 * vae["local_dim"].max()))
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

"""Figures of a run's health and of runs side by side: the score model's training loss, and the comparison of
several runs (workflow/compare.smk)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import figure
from .style import OKABE_ITO, plt

if TYPE_CHECKING:
    import pandas as pd


def training_loss_figure(metrics: "pd.DataFrame") -> plt.Figure:
    """The score model's training loss against step (log scale): each logged step's minibatch loss and its
    exponential moving average (the records of ``model/metrics.jsonl``: columns step, loss, ema_loss)."""
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    if "loss" not in metrics or metrics["loss"].isna().all():
        # a closed-form model (the Gaussian oracle) is built, not trained: its log has no loss
        ax.text(0.5, 0.5, "no training loss: this score model is not trained\n(closed form, e.g. the Gaussian oracle)",
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
        return fig
    metrics = metrics.dropna(subset=["loss"])
    ax.plot(metrics["step"], metrics["loss"], color="0.6", lw=0.8, marker="." if len(metrics) < 30 else None,
            label="minibatch loss at the logged step")
    ax.plot(metrics["step"], metrics["ema_loss"], color=OKABE_ITO[0], lw=1.6, label="moving average (~100 steps)")
    ax.set_yscale("log")
    # plain numbers; a loss curve often spans less than a decade, so minor ticks are labelled too (at 2 and 5
    # only when it spans more)
    low, high = metrics[["loss", "ema_loss"]].min().min(), metrics[["loss", "ema_loss"]].max().max()
    labelled = "23456789" if high < 10 * low else "25"
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in labelled else ""))
    ax.tick_params(which="both", labelsize=8)
    ax.set_xlabel("training step")
    ax.set_ylabel("denoising score-matching loss")
    ax.set_xlim(left=0)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(True, which="both", color="0.92", lw=0.5)
    fig.tight_layout()
    return fig


@figure("training_loss")
def draw_training_loss(metrics: list[dict]) -> plt.Figure:
    """The training loss from the records of model/metrics.jsonl."""
    import pandas as pd

    return training_loss_figure(pd.DataFrame(metrics))


def plot_comparison(table: "pd.DataFrame", *, band: tuple[float, float] = (0.95, 1.10)):
    """Runs side by side (results/<comparison>/comparison.*): r_t median with its IQR against t (left), the
    noise-floor calibration ratio on samples (solid) and held-out digits (dashed) against t with the band that
    makes r_t meaningful shaded (right). `table`: `score_geometry.compare.comparison_table`."""
    fig, (ax_r, ax_c) = plt.subplots(1, 2, figsize=(9.0, 3.4), constrained_layout=True)
    for k, (run, d) in enumerate(table.groupby("run", sort=False)):
        colour = f"C{k}"
        label = f"{run} ({d['parameterisation'].iloc[0]})" if d["parameterisation"].iloc[0] else run
        ax_r.plot(d["t"], d["r_t_median"], "o-", color=colour, label=label)
        ax_r.fill_between(d["t"], d["r_t_q25"], d["r_t_q75"], color=colour, alpha=0.2, lw=0)
        ax_c.plot(d["t"], d["calibration_samples"], "o-", color=colour, label=f"{run}: samples")
        ax_c.plot(d["t"], d["calibration_heldout"], "s--", color=colour, label=f"{run}: held-out")
    ax_c.axhspan(*band, color="0.85", zorder=0, label=f"band [{band[0]:g}, {band[1]:g}]")
    ax_c.axhline(1.0, color="0.4", lw=0.8)
    for ax in (ax_r, ax_c):
        ax.set_xscale("log")
        ax.set_xlabel("t")
    ax_r.set_ylabel("$r_t$ (median, IQR shaded)")
    ax_c.set_ylabel(r"calibration: median $(1/s_i)/\sigma_t^2$, top half")
    ax_r.legend(fontsize=8)
    ax_c.legend(fontsize=7, ncol=2)
    return fig

"""Figures drawn from small synthetic tables: layout, legends and labels as the captions describe them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from score_geometry import plots
from score_geometry.plots_estimators import estimators_figure
from score_geometry.report import html_table, quality_table

TIMES = (0.01, 0.03, 0.05, 0.15, 0.3)
D = 50  # ranks per Jacobian (784 for MNIST)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots.plt.close("all")


@pytest.fixture
def spectra() -> pd.DataFrame:
    """Cosines near -1 at high ranks, scattered at low ranks, and the last rank an expanding direction (+1)."""
    rng = np.random.default_rng(0)
    rows = []
    for t in TIMES:
        sigma = float(np.sqrt(1 - np.exp(-10 * t)))
        for image in range(4):
            rank = np.arange(1, D + 1)
            cos = np.where(rank < 10, rng.uniform(-1, 1, D), -1 + 0.01 * rng.random(D))
            cos[-1] = 0.9
            inv = sigma**2 * (1 + 50 / rank)
            rows.append(pd.DataFrame({"t": t, "sigma": sigma, "image": image, "rank": rank, "cos_uv": cos,
                                      "inverse_singular_value": inv}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture
def diagnostics() -> pd.DataFrame:
    return pd.DataFrame([{"t": t, "image": i, "label": i % 10, "local_dim": 5 + i} for t in TIMES for i in range(4)])


def test_fig3_cosines_grid_with_the_last_rank_apart(spectra):
    fig = plots.fig3_cosines(spectra, examples=[1, 2])
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == len(TIMES) and len(fig.axes) == 6  # 2 x 3: the sixth slot holds the legend
    assert {round(ax.get_position().height, 2) for ax in panels} == {round(panels[0].get_position().height, 2)}
    # panels are not wide and short any more
    width, height = panels[0].get_position().width * fig.get_figwidth(), panels[0].get_position().height * \
        fig.get_figheight()
    assert width < 2 * height
    ax = panels[0]
    median = next(line for line in ax.get_lines() if line.get_label() == "median over images")
    assert median.get_xdata().max() == D - 1  # the band and median stop before the last rank
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert f"rank {D} (largest $s_i$)" in legend and "image 1" in legend and "image 2" in legend
    # examples are dots, not lines through the scattered low ranks
    examples = [line for line in ax.get_lines() if line.get_label().startswith("image")]
    assert examples and all(line.get_linestyle() == "None" for line in examples)
    # one y-label says what is drawn: the cosine, which is the dot product of unit vectors
    assert ax.get_ylabel() == "$\\cos(u_i, v_i) = u_i \\cdot v_i$"
    assert panels[-1].get_xlabel() == "rank i"


def test_fig3_cosines_legend_below_when_the_grid_is_full(spectra):
    fig = plots.fig3_cosines(spectra[spectra["t"] <= 0.05], examples=[1])
    assert len(fig.axes) == 3 and fig.legends


def test_fig3_spectrum_legend_names_colours_styles_and_the_floor(spectra, diagnostics):
    fig = plots.fig3_spectrum(spectra, diagnostics, examples=[1, 2])
    ax = fig.axes[0]
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:len(TIMES)] == [f"t = {t:g}" for t in TIMES]
    assert "image 1" in texts and "image 2" in texts
    assert "$\\sigma_t^2$ (floor)" in texts and "$r_t$" in texts
    styles = {t.get_text(): h.get_linestyle() for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert styles["image 1"] != styles["image 2"]
    # the sigma_t^2 lines are grey, never the colour of a curve
    floors = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1 and line.get_linewidth() == 3]
    assert len(floors) == len(TIMES)
    curve_colours = {to_rgba(line.get_color()) for line in ax.get_lines() if line.get_linewidth() == 0.9}
    assert all(to_rgba(line.get_color()) not in curve_colours for line in floors)


def _estimates() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    vae = pd.DataFrame([{"estimator": "vae", "dataset": ds, "condition": cond, "point": i, "label": i % 10,
                         "t": np.nan if cond == "clean" else 0.3, "local_dim": float(rng.integers(0, 20))}
                        for ds, cond in (("heldout", "clean"), ("samples", "clean"), ("heldout", "t=0.3"))
                        for i in range(40)])
    other = pd.DataFrame([{"estimator": e, "dataset": "heldout", "condition": c, "point": i, "label": i % 10,
                           "t": np.nan, "local_dim": float(rng.uniform(0, 30))}
                          for e, c in (("mle", "clean"), ("twonn", "clean"), ("flipd", "t=0.01")) for i in range(20)])
    return vae, other


def test_estimators_figure_reads_without_rotated_ticks(diagnostics):
    vae, other = _estimates()
    fig = estimators_figure(vae, other, diagnostics)
    ax = fig.axes[1]
    labels = ax.get_yticklabels()
    assert len(labels) == 2 + 3 + len(TIMES)  # VAE clean and noisy, three estimators, r_t per t: one row each
    assert all(label.get_rotation() == 0 for label in labels + ax.get_xticklabels())
    assert max(labels, key=lambda label: label.get_position()[1]).get_text() == "VAE"  # the first group on top
    assert ax.get_xscale() == "symlog"  # 0 is a value on the axis: nothing clipped
    assert "clipped" not in ax.get_xlabel() + ax.get_ylabel()


def test_training_loss_figure():
    metrics = pd.DataFrame({"step": [50, 100, 150, 200], "loss": [1.0, 0.3, 0.1, 0.05],
                            "ema_loss": [1.0, 0.6, 0.3, 0.15]})
    fig = plots.training_loss_figure(metrics)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    drawn = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert len(drawn) == 2 and any(np.array_equal(y, metrics["ema_loss"]) for y in drawn.values())


def test_training_loss_figure_of_a_model_that_was_not_trained():
    """The Gaussian oracle's metrics log has one record and no loss (it is built, not trained)."""
    fig = plots.training_loss_figure(pd.DataFrame([{"step": 0, "oracle_rank": 16, "explained_variance": 126.5}]))
    ax = fig.axes[0]
    assert not ax.get_lines() and "not trained" in ax.texts[0].get_text()


def test_quality_table_orders_and_formats():
    quality = {"frechet_distance": 12.345678, "n_samples": 128, "class_histogram": [1, 2, 3], "extra": "x",
               "heldout_accuracy": 0.98765}
    table = quality_table(quality)
    assert table["quantity"].tolist() == ["n_samples", "heldout_accuracy", "class_histogram", "frechet_distance",
                                          "extra"]
    assert table["value"].tolist() == ["128", "0.988", "1 2 3", "12.3", "x"]
    assert table["meaning"].iloc[-1] == "" and all(table["meaning"].iloc[:-1])
    page = html_table(table, title="quality")
    assert "th:nth-child(3),td:nth-child(3){text-align:left}" in page  # text columns read left-aligned

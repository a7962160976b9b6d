"""Figures drawn from small synthetic tables: layout, legends and labels as the captions describe them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from conftest import ROOT
from score_geometry import plots
from score_geometry.plots import estimators_figure
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


def test_markdown_tables_print_integers_as_integers():
    """summary.md printed n_images as 2.000 (issue 24): a count stays an integer next to formatted floats."""
    from score_geometry.report import markdown_table
    from score_geometry.stages import summarise_results

    diagnostics = pd.DataFrame([{"t": t, "sigma": 0.1 * (k + 1), "image": i, "local_dim": 3 + i,
                                 "cos_uv_mean_first_r": 0.5, "cos_uv_mean_top_half": -0.99,
                                 "high_rank_floor_share": 0.9, "asymmetry": 0.1, "skew_share_inside": 0.2,
                                 "calibration_ratio": 1.01} for k, t in enumerate(TIMES[:2]) for i in range(2)])
    overlaps = pd.DataFrame([{"t": t, "image": i, "pair": p, "n": n, "Phi": 0.75}
                             for t in TIMES[:2] for i in range(2) for p in ("uv", "uw", "vw") for n in (1, 4, 8)])
    lines = summarise_results(diagnostics, overlaps).markdown.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    col = dict(zip(header, zip(*rows)))
    assert col["n_images"] == ("2", "2") and col["t"] == ("0.010", "0.030"), lines
    assert col["r_t_median"] == ("3.500", "3.500") and col["Phi_uv_at_mean_r"] == ("0.750", "0.750"), lines
    table = pd.DataFrame({"n": [1, 20], "x": [0.5, 2.0], "name": ["a", "b"], "flag": [True, False]})
    assert markdown_table(table, floatfmt=".1f").splitlines()[2:] == ["|   1 | 0.5 | a      | True   |",
                                                                     "|  20 | 2.0 | b      | False  |"]


def test_fig4_band_is_the_iqr_and_stays_within_0_1(diagnostics):
    """Fig. 4's band is the interquartile range over images, not mean +- 1 sd (which left [0, 1] for overlaps
    such as 0, 0, 0.05, 1); the line is the median, and the legend says so."""
    values = [0.0, 0.0, 0.05, 1.0]
    overlaps = pd.DataFrame([{"t": t, "image": i, "pair": p, "n": n, "Phi": v}
                             for t in TIMES[:1] for i, v in enumerate(values) for p in ("uv", "uw", "vw")
                             for n in (1, 10, 50)])
    fig = plots.fig4_overlaps(overlaps, diagnostics[diagnostics["t"] == TIMES[0]])
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    assert np.mean(values) - np.std(values, ddof=1) < 0  # what the old band drew
    for ax in fig.axes:
        (band,) = ax.collections
        y = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
        assert 0 <= y.min() and y.max() <= 1
        np.testing.assert_allclose(sorted(set(np.round(y, 12))), [q25, q75])
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [q50] * 3)
    legend = fig.axes[-1].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert "IQR over images" in texts and legend.get_title().get_text() == "median over images", texts


@pytest.mark.parametrize("n, shape", [(6, (1, 6)), (1, (1, 1)), (16, (1, 16)), (17, (2, 9)), (20, (2, 10)),
                                      (128, (8, 16))])
def test_sample_grid_is_sized_to_the_samples(n, shape):
    """6 samples drew a 1440 x 105 px grid of 16 columns, 60 % blank (issue 24): the grid has as few rows as 16
    columns allow and spreads the samples evenly over them, so no more than one row is partly blank."""
    images = np.zeros((n, 28, 28), dtype=np.float32)
    fig = plots.sample_grid(images, labels=list(range(n)))
    rows, cols = shape
    assert len(fig.axes) == rows * cols and len(_drawn(fig)) == n
    assert tuple(fig.axes[0].get_subplotspec().get_gridspec().get_geometry()) == shape
    np.testing.assert_allclose(fig.get_size_inches(), (cols * 0.6, rows * 0.7))
    with pytest.raises(ValueError, match="no images"):
        plots.sample_grid(images[:0])


# --- images of any shape: grey (C = 1, drawn as before) and RGB (C = 3) ---------------------------------------

def _drawn(fig) -> list[np.ndarray]:
    """The arrays of every image drawn, panel by panel."""
    return [np.asarray(im.get_array()) for ax in fig.axes for im in ax.get_images()]


def test_sample_grid_draws_grey_images_as_before_whatever_their_layout():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1.5, 1.5, (5, 28, 28)).astype(np.float32)
    for layout in (images, images[:, None]):  # (N, H, W), the pipeline's files, and (N, 1, H, W)
        fig = plots.sample_grid(layout, labels=[3, 1, 4, 1, 5], ncols=4)
        drawn = [im for ax in fig.axes for im in ax.get_images()]
        assert len(drawn) == 5 and all(im.get_cmap().name == "gray" and im.get_clim() == (-1, 1) for im in drawn)
        np.testing.assert_array_equal(_drawn(fig), np.clip(images, -1, 1))
        assert [ax.get_title() for ax in fig.axes[:5]] == ["3", "1", "4", "1", "5"]


def test_sample_grid_and_fig2_draw_rgb_images():
    """3 x 16 x 16 images and their D = 768 feature vectors: RGB panels of the image's shape."""
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (3, 3, 16, 16))
    fig = plots.sample_grid(images, ncols=3)
    drawn = _drawn(fig)
    assert len(drawn) == 3 and all(a.shape == (16, 16, 3) for a in drawn)
    np.testing.assert_allclose(drawn[0], (np.moveaxis(images[0], 0, -1) + 1) / 2)

    T, names = 2, ["v_minus", "u_minus"]
    x_t, features = rng.uniform(-1, 1, (T, 3, 16, 16)), rng.normal(size=(T, 2, 3 * 16 * 16))
    fig = plots.fig2_features(x_t, features, np.array([0.01, 0.3]), np.array([0.1, 0.8]), names, title="rgb")
    drawn = _drawn(fig)
    assert len(drawn) == T * 3 and all(a.shape == (16, 16, 3) for a in drawn)
    assert all(0 <= a.min() and a.max() <= 1 for a in drawn)
    # the top row is the highest t (row 1 of x_t); a feature panel is 0.5 + 0.5 f / max|f|, grey = 0
    f = features[1, 0].reshape(3, 16, 16)
    np.testing.assert_allclose(drawn[1], np.moveaxis(0.5 + 0.5 * f / np.abs(f).max(), 0, -1))
    assert any("RGB" in t.get_text() for t in fig.texts)
    with pytest.raises(ValueError, match="feature vectors have 700 entries, images of shape \\(3, 16, 16\\)"):
        plots.fig2_features(x_t, features[..., :700], np.array([0.01, 0.3]), np.array([0.1, 0.8]), names)
    with pytest.raises(ValueError, match="C = 1 \\(grey\\) or 3 \\(RGB\\); got shape \\(2, 16, 16\\)"):
        plots.sample_grid(images[:, :2])


def test_fig2_of_grey_digits_draws_as_before():
    """(T, 28, 28) and (T, 1, 28, 28) sequences: x_t on the grey scale, each feature red-blue scaled by its max."""
    rng = np.random.default_rng(2)
    x_t, features = rng.uniform(-1.2, 1.2, (3, 28, 28)), rng.normal(size=(3, 7, 784))
    t, sigma = np.array([0.01, 0.05, 0.3]), np.array([0.1, 0.3, 0.8])
    names = ["v_minus", "u_minus", "w_zero", "w_plus", "u_plus", "v_plus", "w_minus"]
    for layout in (x_t, x_t[:, None]):
        fig = plots.fig2_features(layout, features, t, sigma, names)
        panels = [ax for ax in fig.axes if ax.get_images()]
        assert len(panels) == 3 * 8 and panels[0].get_title() == "$x_t$" and panels[1].get_title() == "$v_-$"
        np.testing.assert_array_equal(panels[0].get_images()[0].get_array(), np.clip(x_t[2], -1, 1))
        f = features[2, 0].reshape(28, 28)
        feature = panels[1].get_images()[0]
        np.testing.assert_array_equal(feature.get_array(), f / np.abs(f).max())
        assert feature.get_cmap().name == "RdBu_r" and feature.get_clim() == (-1, 1)
        assert len(fig.axes) == 3 * 8 + 1  # and the colour bar
        plots.plt.close(fig)


# --- the list of figures: registry, rules, captions ------------------------------------------------------------

def _plot_rules() -> dict[str, str]:
    """Plot rule -> the figure it names, from every rule file (plot rules live in plots.smk alone)."""
    import re

    rules = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for name, body in re.findall(r"^rule (\w+):\n((?:(?:    .*)?\n)*)", smk.read_text(), re.M):
            figure = re.search(r'^        figure="(\w+)",$', body, re.M)
            if name.startswith("plot_") or figure:
                assert smk.name == "plots.smk", (name, smk.name)
                assert name.startswith("plot_") and figure, name  # `make figures` forces the plot_* rules
                assert f'code=figure_code("{figure.group(1)}")' in body, name  # its own code's fingerprint
                assert "localrule: True" in body and 'script:\n        "../scripts/plot_figure.py"' in body, name
                rules[name] = figure.group(1)
    return rules


def test_every_registered_figure_has_one_plot_rule_and_its_report_caption():
    from score_geometry.plots.registry import figure_index

    rules = _plot_rules()
    assert sorted(rules.values()) == sorted(figure_index()), rules
    text = (ROOT / "workflow" / "rules" / "plots.smk").read_text()
    for caption in __import__("re").findall(r'caption="\.\./report/(\w+\.rst)"', text):
        assert (ROOT / "workflow" / "report" / caption).is_file(), caption
    assert text.count("caption=") == len(rules)


def test_the_parsed_registry_is_what_the_modules_register():
    """The workflow reads the registry by parsing (no import while it builds the DAG); importing gives the same."""
    from score_geometry.plots.registry import figure_code, figure_index, registered

    index = figure_index()
    assert len(index) == 11
    for name, (module, function) in index.items():
        spec = registered(name)
        assert spec.name == name and spec.draw.__module__ == f"score_geometry.plots.{module}"
        assert spec.draw.__name__ == function
    codes = {figure_code(name) for name in index}
    assert len(codes) == len(index) and all(len(c) == 16 for c in codes)
    with pytest.raises(KeyError, match="no figure named no_such_figure; registered: estimators, fig1_toy"):
        figure_code("no_such_figure")


def test_figure_code_follows_what_a_module_imports_from_its_siblings(tmp_path, monkeypatch):
    """A fingerprint changes with its function, its module's helpers it uses, and the names its module imports
    from another module of the package (the palette in style), and not with another figure's code."""
    import shutil

    import score_geometry.plots.registry as registry

    copy = tmp_path / "plots"
    shutil.copytree(ROOT / "src" / "score_geometry" / "plots", copy, ignore=shutil.ignore_patterns("__pycache__"))

    def codes() -> dict[str, str]:
        registry.figure_index.cache_clear()
        monkeypatch.setattr(registry, "_HERE", copy)
        return {name: registry.figure_code(name) for name in registry.figure_index()}

    def edit(module: str, old: str, new: str) -> dict[str, str]:
        path = copy / f"{module}.py"
        assert path.read_text().count(old) == 1, old
        path.write_text(path.read_text().replace(old, new))
        return codes()

    try:
        base = codes()
        changed = edit("spectra", 'ax.set_xlabel("rank i")', 'ax.set_xlabel("rank  i")')
        assert {n for n in base if changed[n] != base[n]} == {"fig3_cosines"}
        base = changed
        changed = edit("images", "def _show(ax, x: np.ndarray, **kwargs: Any):\n",
                       "def _show(ax, x: np.ndarray, **kwargs: Any):\n    x = np.asarray(x)\n")
        assert {n for n in base if changed[n] != base[n]} == {"samples_grid", "fig2_features"}
        base = changed
        changed = edit("style", '"#0072B2", ', '"#0072B3", ')
        assert all(changed[n] != base[n] for n in base)  # every module draws with the palette or style's set-up
    finally:
        registry.figure_index.cache_clear()


def test_draw_figure_names_a_mismatch_between_rule_and_function(diagnostics):
    from score_geometry.stages import draw_figure

    overlaps = pd.DataFrame([{"t": t, "image": 0, "pair": p, "n": n, "Phi": 0.5}
                             for t in TIMES for p in ("uv", "uw", "vw") for n in (1, 10, 50)])
    fig = draw_figure("fig4_overlaps", {"overlaps": overlaps, "diagnostics": diagnostics}, {})
    assert len(fig.axes) == 3
    with pytest.raises(TypeError, match="figure 'fig4_overlaps': its rule gives inputs \\['overlaps'\\] and options "
                                        "\\['examples'\\].*takes inputs \\['overlaps', 'diagnostics'\\]"):
        draw_figure("fig4_overlaps", {"overlaps": overlaps}, {"examples": [1]})
    with pytest.raises(KeyError, match="no figure named fig5;"):
        draw_figure("fig5", {}, {})

"""The Fig. 1 toy: exact sampler and noisy score, the MLP trained by the image model's loop (on the training
engine) and read through the score-model seam, the analysis, the figures, and the toy rules run end-to-end
through Snakemake."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, run_snakemake
from score_geometry import io
from score_geometry.jacobian import batch_jacobian
from score_geometry.mlp import MLPScoreNet
from score_geometry.score import make_score_fn
from score_geometry.score_models import load_score_model
from score_geometry.sde import VPSDE
from score_geometry.skew import skew_shares, tangent_normal_basis
from score_geometry.toy import (CONTROLS, SphereVMFMixture, analyse_toy_controls, analyse_toy_field,
                                analyse_toy_model, control_score_fn, fit_toy_model, injected_curl_normal,
                                learned_score_fn, toy_train_config, training_section)
from score_geometry.train import build_model, load_ema_model

TOY = yaml.safe_load((ROOT / "config.yaml").read_text())["toy"]
SDE = {"beta_min": 0.1, "beta_max": 20.0}


def small_toy(**train):
    cfg = copy.deepcopy(TOY)
    cfg.update(n_train=2000, n_points=16, field_points=30, times=[0.05, 0.3])
    cfg["model"].update(width=16, depth=1, emb_dim=8)
    cfg["train"].update({"steps": 20, "batch_size": 64, "warmup_steps": 5, "checkpoint_every": 10, "log_every": 5,
                         **train})
    return cfg


@pytest.fixture(scope="module")
def surface():
    return SphereVMFMixture.from_config(TOY["surface"])


def _noisy(surface, t, n=40, seed=1):
    sde = VPSDE(**SDE)
    alpha, sigma = (torch.tensor(s, dtype=torch.float64) for s in sde.scales(t))
    noise = np.random.default_rng(seed).standard_normal((n, 3))
    x = sde.perturb(torch.from_numpy(surface.sample(n, seed=seed)), t, torch.from_numpy(noise))
    return x, alpha.expand(n), sigma.expand(n)


# --- density, sampler and exact score ---------------------------------------------------------------------

def test_sampler_is_exact():
    one = SphereVMFMixture(2.0, [[0.0, 3.0, 4.0]], [6.0], [1.0])
    y = one.sample(40_000, seed=0)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 2.0, rtol=1e-12)
    # E[u . mu] = coth(kappa) - 1/kappa for a vMF on S^2; the MC error of the mean is ~0.001.
    cos = y @ np.array([0.0, 0.6, 0.8]) / 2.0
    assert cos.mean() == pytest.approx(1 / np.tanh(6.0) - 1 / 6.0, abs=0.005)
    uniform = SphereVMFMixture(1.0, [[1.0, 0.0, 0.0]], [0.0], [1.0]).sample(40_000, seed=1)
    np.testing.assert_allclose(uniform.mean(0), 0.0, atol=0.015)
    # Seeded: the same draw twice.
    np.testing.assert_array_equal(one.sample(10, seed=3), one.sample(10, seed=3))


def test_density_integrates_to_one(surface):
    z, wz = np.polynomial.legendre.leggauss(200)
    phi = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    Z, P = np.meshgrid(z, phi, indexing="ij")
    u = np.stack([np.sqrt(1 - Z**2) * np.cos(P), np.sqrt(1 - Z**2) * np.sin(P), Z], -1).reshape(-1, 3)
    total = np.sum(np.repeat(wz, 400) * (2 * np.pi / 400) * np.exp(surface.log_density(u)))
    assert total == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("t", [0.01, 0.05, 0.3])
def test_exact_score_matches_finite_differences_of_log_density(surface, t):
    x, alpha, sigma = _noisy(surface, t)
    g = surface.score_t(x, alpha, sigma)
    h = 1e-5 * float(sigma[0])
    fd = torch.stack([(surface.log_prob_t(x + h * e, alpha, sigma) - surface.log_prob_t(x - h * e, alpha, sigma))
                      / (2 * h) for e in torch.eye(3, dtype=torch.float64)], dim=1)
    np.testing.assert_allclose(fd.numpy(), g.numpy(), rtol=1e-6, atol=1e-6 * float(g.abs().max()))


@pytest.mark.parametrize("t", [0.05, 0.3])
def test_exact_score_matches_quadrature_over_the_surface(surface, t):
    x, alpha, sigma = _noisy(surface, t, n=20)
    g = surface.score_t(x, alpha, sigma).numpy()
    quad = surface.score_by_quadrature(x.numpy(), float(alpha[0]), float(sigma[0]), n_cos=200, n_phi=400)
    np.testing.assert_allclose(quad, g, rtol=1e-9, atol=1e-9 * np.abs(g).max())


def test_exact_score_field_is_conservative(surface):
    x, _, _ = _noisy(surface, 0.03)
    g_star = surface.exact_score_fn(VPSDE(**SDE))
    J = batch_jacobian(lambda z: g_star(z, torch.full((len(z),), 0.03, dtype=z.dtype)), x)
    out = skew_shares(J, tangent_normal_basis(x.numpy()), 2)
    assert np.all(out["skew_norm"] <= 1e-12 * out["jac_norm"])


def test_bad_density_config_names_the_key():
    with pytest.raises(ValueError, match="toy.surface.bumps"):
        SphereVMFMixture(1.0, [[0.0, 0.0, 0.0]], [1.0], [1.0])
    with pytest.raises(ValueError, match="radius"):
        SphereVMFMixture(0.0, [[0.0, 0.0, 1.0]], [1.0], [1.0])


# --- the MLP through the image model's training loop ------------------------------------------------------

def test_build_model_dispatches_on_architecture():
    assert isinstance(build_model({"architecture": "mlp", "width": 8, "depth": 1, "emb_dim": 4}), MLPScoreNet)
    with pytest.raises(ValueError, match="architecture"):
        build_model({"architecture": "transformer"})
    net = MLPScoreNet(width=8, depth=2, emb_dim=4)
    x, t = torch.randn(5, 3), torch.rand(5)
    assert net(x, t).shape == (5, 3)
    # No layer mixes the batch: a sample's output does not depend on the others.
    torch.testing.assert_close(net(x[:2], t[:2]), net(x, t)[:2])


def test_mlp_trains_through_train_model_and_resumes_bit_identically(tmp_path):
    cfg = small_toy()
    full, _ = fit_toy_model(cfg, SDE, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                            progress=False)
    half = training_section(small_toy(steps=10))  # what the train_toy rule receives: training keys only
    assert not {"times", "field_t", "field_points", "kappa", "n_points"} & set(half)
    fit_toy_model(half, SDE, checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl", progress=False)
    assert io.load_checkpoint(tmp_path / "b.pt")["state"]["step"] == 10
    resumed, options = fit_toy_model(cfg, SDE, checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl",
                                     progress=False)
    assert full["kind"] == "mlp" and full["step"] == 20 and options["final_step"] == 20
    for part in ("model", "ema"):
        for k, v in full["state"][part].items():
            assert torch.equal(v, resumed["state"][part][k]), (part, k)
    assert [r["step"] for r in io.read_jsonl(tmp_path / "b.jsonl")] == [5, 10, 15, 20]
    assert isinstance(load_ema_model(full), MLPScoreNet)
    assert full["config"] == toy_train_config(cfg, SDE)


def test_learned_score_goes_through_the_score_model_seam(tmp_path):
    ckpt, _ = fit_toy_model(small_toy(steps=5), SDE, checkpoint_path=tmp_path / "a.pt",
                            metrics_path=tmp_path / "a.jsonl", progress=False)
    model = load_score_model(ckpt, dtype=torch.float64)
    assert (model.kind, model.image_shape, model.sde) == ("mlp", (3,), VPSDE(**SDE))
    x, t = torch.randn(6, 3, dtype=torch.float64), torch.full((6,), 0.05, dtype=torch.float64)
    # The EMA network in float64 read per its parameterisation, whichever way the toy asks for it.
    net = load_ema_model(ckpt).double()
    expected = make_score_fn(net, VPSDE(**SDE), ckpt["config"]["model"]["parameterisation"])(x, t)
    assert torch.equal(learned_score_fn(ckpt, VPSDE(**SDE))(x, t), expected)
    assert torch.equal(model.score(x, t), expected)
    with pytest.raises(ValueError, match="trained with"):
        learned_score_fn(ckpt, VPSDE(beta_min=0.1, beta_max=10.0))


def test_training_learns_the_score(tmp_path):
    cfg = small_toy(steps=1000, batch_size=256, checkpoint_every=1000, log_every=500)
    cfg["model"].update(width=64)
    ckpt, _ = fit_toy_model(cfg, SDE, checkpoint_path=tmp_path / "c.pt", metrics_path=tmp_path / "c.jsonl",
                            progress=False)
    untrained = copy.deepcopy(ckpt)
    untrained["state"]["ema"] = MLPScoreNet(width=64, depth=1, emb_dim=8).state_dict()
    err = {name: analyse_toy_model(c, cfg, SDE)[1].set_index("t")["score_rel_err_median"]
           for name, c in (("trained", ckpt), ("untrained", untrained))}
    assert err["trained"][0.3] < 0.1 and (err["trained"] < 0.5 * err["untrained"]).all(), err


def test_analysis_tables_and_field(tmp_path):
    cfg = small_toy()
    ckpt, _ = fit_toy_model(cfg, SDE, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                            progress=False)
    points, summary, field, attrs = analyse_toy_model(ckpt, cfg, SDE)
    assert len(points) == 2 * 16 and summary["t"].tolist() == [0.05, 0.3]
    shares = points[["tangent_share", "normal_share"]].to_numpy()
    np.testing.assert_allclose(shares.sum(1), 1.0, atol=1e-12)
    assert ((shares >= 0) & (shares <= 1)).all()
    assert (points["exact_asymmetry"] < 1e-10).all()
    # In R^3 the tangent share is the normal component of the curl: (curl . n)^2 / |curl|^2.
    curl = points[["curl_x", "curl_y", "curl_z"]].to_numpy()
    np.testing.assert_allclose(points["tangent_share"], points["curl_normal"] ** 2 / np.sum(curl**2, 1), atol=1e-9)
    assert field["x"].shape == field["score"].shape == field["curl"].shape == (30, 3)
    np.testing.assert_allclose(np.linalg.norm(field["x"], axis=1), attrs["alpha"] * attrs["radius"])
    assert field["density"].shape == (field["theta"].size, field["phi"].size)


# --- controls: the exact score plus a known skew part, through the learned model's analysis --------------------

AXIS, STRENGTH = (0.48, -0.6, 0.64), 0.8


@pytest.fixture(scope="module")
def controls(surface):
    cfg, sde = small_toy(), VPSDE(**SDE)
    return {kind: analyse_toy_field(control_score_fn(surface, sde, kind, axis=AXIS, strength=STRENGTH), surface,
                                    cfg, sde) for kind in CONTROLS}


def test_control_exact_score_has_every_skew_measure_zero_or_undefined(controls):
    d = controls["exact"]
    tiny = 1e-10 * d["jac_norm"]
    # (a) shares of ||H||^2 are undefined (NaN) where H = 0; the fractions of ||J||^2 are 0.
    assert d[["tangent_share", "cross_share", "normal_share"]].isna().all().all()
    assert (d["tangent_frac"] < 1e-20).all() and (d["normal_frac"] < 1e-20).all()
    # (b) every block is symmetric: relative asymmetry 0, their ratio undefined.
    assert (d[["rel_tangent", "rel_cross", "rel_outside"]].max(axis=1) < 1e-10).all()
    assert d["rel_ratio"].isna().all()
    # (c) no curl at all.
    assert (d["curl_normal"].abs() <= tiny).all() and d["curl_tangent_rel_curl"].isna().all()
    assert (d["curl_tangent_rel_jac"] < 1e-10).all()
    assert (d["score_rel_err"] == 0).all()


def test_control_rotation_within_the_tangent_plane(controls):
    d = controls["tangent_rotation"]
    # (a) all of ||H||^2 in the tangent-tangent block.
    np.testing.assert_allclose(d["tangent_share"], 1.0, atol=1e-9)
    np.testing.assert_allclose(d["cross_share"], 0.0, atol=1e-9)
    # (b) the blocks with the normal stay symmetric (to round-off); the tangent block does not.
    assert (d["rel_cross"] < 1e-9).all() and (d["rel_outside"] < 1e-12).all()
    assert (d["rel_tangent"] > 1e-4).all()
    assert (d["rel_ratio"] > 1e5).all()
    # (c) the tangent curl is the injected 2 c (a . n) / |x|^2, all of the curl.
    injected = injected_curl_normal("tangent_rotation", d[["x", "y", "z"]].to_numpy(), AXIS, STRENGTH)
    np.testing.assert_allclose(d["curl_normal"], injected, rtol=1e-8, atol=1e-10 * d["jac_norm"].max())
    np.testing.assert_allclose(d["curl_tangent_rel_curl"], 1.0, atol=1e-9)
    np.testing.assert_allclose(d["curl_tangent_rel_jac"], np.abs(injected) / d["jac_norm"], rtol=1e-8)


def test_control_tangent_normal_skew(controls):
    d = controls["tangent_normal_skew"]
    # (a) all of ||H||^2 in the cross blocks.
    np.testing.assert_allclose(d["cross_share"], 1.0, atol=1e-9)
    np.testing.assert_allclose(d["tangent_share"], 0.0, atol=1e-9)
    # (b) the tangent block is symmetric, the cross blocks are not: ratio 0.
    assert (d["rel_tangent"] < 1e-9).all() and (d["rel_cross"] > 1e-4).all()
    np.testing.assert_allclose(d["rel_ratio"], 0.0, atol=1e-8)
    # (c) the curl lies in the tangent plane: no rotation of the tangential flow.
    np.testing.assert_allclose(d["curl_normal"], 0.0, atol=1e-10 * d["jac_norm"].max())
    np.testing.assert_allclose(d["curl_tangent_rel_curl"], 0.0, atol=1e-9)


def test_control_summaries(surface):
    cfg = small_toy()
    summary = analyse_toy_controls(cfg, SDE, axis=AXIS, strength=STRENGTH).set_index(["control", "t"])
    assert sorted(summary.index.get_level_values(0).unique()) == sorted(CONTROLS)
    assert (summary["curl_normal_max_err"] < 1e-8).all()
    assert summary.loc["tangent_rotation", "tangent_share_median"].to_numpy() == pytest.approx(1.0)
    assert summary.loc["tangent_normal_skew", "cross_share_median"].to_numpy() == pytest.approx(1.0)
    assert summary.loc["exact", "tangent_share_median"].isna().all()
    with pytest.raises(ValueError, match="control must be one of"):
        control_score_fn(surface, VPSDE(**SDE), "vortex")


# --- figures --------------------------------------------------------------------------------------------

def test_figures_draw(tmp_path):
    from score_geometry.plots.toy import fig1_toy, skew_shares_figure

    cfg = small_toy()
    ckpt, _ = fit_toy_model(cfg, SDE, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                            progress=False)
    points, _, field, attrs = analyse_toy_model(ckpt, cfg, SDE)
    io.save_figure(fig1_toy(field, attrs, points), [tmp_path / "fig1.png"], dpi=50)
    rng = np.random.default_rng(0)
    diag = pd.DataFrame({"image": np.tile(np.arange(4), 3), "t": np.repeat([0.01, 0.05, 0.3], 4),
                         "local_dim": rng.integers(10, 200, 12)})
    raw = rng.random((12, 3))
    diag[["skew_share_inside", "skew_share_cross", "skew_share_outside"]] = raw / raw.sum(1, keepdims=True)
    diag.loc[0, ["skew_share_inside", "skew_share_cross", "skew_share_outside"]] = np.nan  # a symmetric J
    io.save_figure(skew_shares_figure(diag), [tmp_path / "skew.png"], dpi=50)
    assert (tmp_path / "fig1.png").stat().st_size > 1000 and (tmp_path / "skew.png").stat().st_size > 1000


def test_skew_shares_figure_draws_the_relative_measures(tmp_path):
    from score_geometry.plots.toy import skew_shares_figure

    rng = np.random.default_rng(1)
    diag = pd.DataFrame({"image": np.tile(np.arange(4), 3), "t": np.repeat([0.01, 0.05, 0.3], 4),
                         "local_dim": rng.integers(10, 200, 12)})
    raw = rng.random((12, 3))
    diag[["skew_share_inside", "skew_share_cross", "skew_share_outside"]] = raw / raw.sum(1, keepdims=True)
    diag["skew_share_w_inside"] = rng.random(12)
    diag["skew_rel_ratio"], diag["skew_rel_ratio_w"] = rng.random(12) * 5, rng.random(12) * 5
    diag.loc[1, "skew_rel_ratio"] = np.inf  # only the on-manifold block asymmetric
    fig = skew_shares_figure(diag)
    assert len(fig.axes) == 2
    io.save_figure(fig, [tmp_path / "skew.png"], dpi=50)
    assert (tmp_path / "skew.png").stat().st_size > 1000
    # runs whose median ratio is 0 at every t (tiny runs: r_t = 0, no on-manifold block), with or without a few
    # positive values, still draw, on a linear axis
    diag[["skew_rel_ratio", "skew_rel_ratio_w"]] = 0.0
    for positive in ([], [0, 5]):
        diag.loc[positive, "skew_rel_ratio"] = 3.0
        fig = skew_shares_figure(diag)
        assert fig.axes[1].get_yscale() == "linear"
        io.save_figure(fig, [tmp_path / "skew0.png"], dpi=50)
    # r_t = D everywhere (an untrained tiny model): no off-manifold block, every ratio NaN
    diag["local_dim"], diag[["skew_rel_ratio", "skew_rel_ratio_w"]] = 784, np.nan
    io.save_figure(skew_shares_figure(diag), [tmp_path / "skew_nan.png"], dpi=50)


# --- the toy rules end-to-end -----------------------------------------------------------------------------

@pytest.mark.slow
def test_toy_rules_end_to_end(workflow_dir):
    target = "results/tiny/figures/fig1_toy.png"
    proc = run_snakemake(workflow_dir, "--cores", "1", "--configfile", "presets/tiny.yaml", "--", target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = workflow_dir / "results" / "tiny"
    for rule in ("train_toy", "analyse_toy"):
        assert (out / "benchmarks" / f"{rule}.tsv").exists()
    for rule in ("train_toy", "analyse_toy", "plot_fig1"):
        assert (workflow_dir / "logs" / rule / "tiny.log").exists()
    assert not (out / "model").exists()  # the toy chain needs nothing of the image chain
    summary = pd.read_csv(out / "toy" / "summary.csv")
    assert summary["t"].tolist() == TOY["times"] and (summary["n_points"] == 16).all()
    points = pd.read_parquet(out / "toy" / "points.parquet")
    assert len(points) == 16 * len(TOY["times"])
    assert len(io.read_jsonl(out / "toy" / "metrics.jsonl")) == 3
    for ext in ("pdf", "png"):
        assert (out / "figures" / f"fig1_toy.{ext}").stat().st_size > 1000
    again = run_snakemake(workflow_dir, "-n", "--cores", "1", "--configfile", "presets/tiny.yaml", "--", target)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

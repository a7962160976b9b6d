"""Local-dimension estimators on synthetic data of known dimension: kNN estimators (scikit-dimension) on
linear subspaces and spheres in R^784, score-based ones (normal bundle, FLIPD) with the exact Gaussian oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from score_geometry import baselines as est
from score_geometry.oracle import GaussianSubspaceOracle, random_orthonormal
from score_geometry.sde import VPSDE

D = 784


def linear_points(k: int, n: int, *, seed: int, noise: float = 1e-3) -> np.ndarray:
    """N(0, I_k) on a random k-dim subspace of R^784 plus isotropic noise of std `noise`."""
    rng = np.random.default_rng(seed)
    B = random_orthonormal(D, k, generator=torch.Generator().manual_seed(seed)).numpy()
    return rng.standard_normal((n, k)) @ B.T + noise * rng.standard_normal((n, D))


def sphere_points(k: int, n: int, *, seed: int, noise: float = 1e-3) -> np.ndarray:
    """Uniform on the unit k-sphere (a k-dim manifold in a random (k+1)-dim subspace of R^784) plus noise."""
    rng = np.random.default_rng(seed)
    B = random_orthonormal(D, k + 1, generator=torch.Generator().manual_seed(seed)).numpy()
    z = rng.standard_normal((n, k + 1))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return z @ B.T + noise * rng.standard_normal((n, D))


# Tolerance on the mean over 100 query points: |mean - k| <= max(1, 0.2 k). kNN estimators are known to
# underestimate as k grows at fixed sample size (TwoNN gives ~10 for k = 12 with 2,000 points), and lPCA
# counts the sphere's curvature direction as one more dimension.
@pytest.mark.parametrize("shape", ["linear", "sphere"])
@pytest.mark.parametrize("k", [5, 12])
@pytest.mark.parametrize("method,n_neighbors", [("mle", 20), ("twonn", 100), ("lpca", 100)])
def test_knn_estimators_recover_k(shape, k, method, n_neighbors):
    X = (linear_points if shape == "linear" else sphere_points)(k, 2100, seed=k)
    dims = est.knn_local_dims(X[:100], X[100:], method=method, n_neighbors=n_neighbors)
    assert dims.shape == (100,) and np.isfinite(dims).all()
    assert abs(dims.mean() - k) <= max(1.0, 0.2 * k), (shape, k, method, dims.mean())


def test_knn_rejects_unknown_method_and_too_many_neighbours():
    X = linear_points(3, 60, seed=0)
    with pytest.raises(ValueError, match="method must be one of"):
        est.knn_local_dims(X[:5], X[5:], method="danco", n_neighbors=10)
    with pytest.raises(ValueError, match="exceeds the 55 reference points"):
        est.knn_local_dims(X[:5], X[5:], method="mle", n_neighbors=100)


@pytest.mark.parametrize("method,n_neighbors", [("mle", 20), ("twonn", 50), ("lpca", 50)])
def test_knn_query_points_in_the_reference_set_are_left_out_of_their_own_neighbourhood(method, n_neighbors):
    # Before: a query point that is also a reference point was its own nearest neighbour, at distance 0, and
    # MLE reported a local dimension of 0 (or near it). Now each point's neighbours are the other points.
    X = linear_points(5, 600, seed=1)
    inside = est.knn_local_dims(X[:20], X, method=method, n_neighbors=n_neighbors)
    for i in (0, 7, 19):  # exactly the estimate with the point taken out of the reference set
        alone = est.knn_local_dims(X[i:i + 1], np.delete(X, i, axis=0), method=method, n_neighbors=n_neighbors)
        assert inside[i] == pytest.approx(alone[0], rel=1e-12), i
    assert np.all(inside > 2.5) and abs(inside.mean() - 5) <= 1.0, inside
    # A point present twice in the reference set (a duplicated sample): both copies are left out.
    doubled = np.concatenate([X, X[:3]])
    np.testing.assert_allclose(est.knn_local_dims(X[:3], doubled, method=method, n_neighbors=n_neighbors),
                               inside[:3], rtol=1e-12)


def test_knn_refuses_too_few_reference_points_once_self_matches_are_left_out():
    X = linear_points(3, 30, seed=2)
    est.knn_local_dims(X[:2], X, method="mle", n_neighbors=29)  # 29 others are left for each point
    with pytest.raises(ValueError, match="exceeds the 29 reference points left for query point 0"):
        est.knn_local_dims(X[:2], X, method="mle", n_neighbors=30)


@pytest.fixture(params=[5, 12])
def oracle(request):
    return GaussianSubspaceOracle.random(D, request.param, variances=1.0, data_shape=(1, 28, 28), seed=request.param)


def test_normal_bundle_recovers_k_with_oracle(oracle):
    sde = VPSDE()
    x0 = oracle.sample(3, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    for i in range(3):
        s = est.normal_bundle_spectrum(oracle, x0[i:i + 1], 0.01, sde=sde, n_perturbations=2 * D, generator=gen)
        assert s.shape == (D,) and np.all(np.diff(s) <= 1e-9)
        assert est.normal_bundle_dim(s, D) == oracle.rank


def test_flipd_matches_closed_form_with_oracle(oracle):
    """FLIPD = D + sigma^2 tr J + sigma^2 ||s||^2 at alpha x0; for the Gaussian oracle J is known exactly, so
    the exact-trace FLIPD equals the closed form and is within 0.1 of k at t = 0.01. Hutchinson with m
    Rademacher probes has std sigma^2 sqrt(2 sum_{i != j} J_ij^2 / m) ~ sqrt(2k/m); allow 4 of them."""
    sde, t = VPSDE(), 0.01
    x0 = oracle.sample(4, generator=torch.Generator().manual_seed(0))
    exact = est.flipd(oracle, x0, t, sde=sde, probes=0)
    alpha, sigma = float(oracle.alpha(t)), float(oracle.sigma(t))
    tr = torch.trace(oracle.jacobian(t)).item()
    s = oracle(alpha * x0, torch.full((4,), t, dtype=torch.float64)).flatten(1)
    closed = D + sigma**2 * tr + sigma**2 * s.pow(2).sum(1).numpy()
    np.testing.assert_allclose(exact, closed, rtol=0, atol=1e-6)
    assert np.all(np.abs(exact - oracle.rank) < 0.1), exact
    hutch = est.flipd(oracle, x0, t, sde=sde, probes=64, generator=torch.Generator().manual_seed(2))
    assert np.all(np.abs(hutch - exact) < 4 * np.sqrt(2 * oracle.rank / 64)), (hutch, exact)


def test_score_table_layout(oracle):
    x0 = oracle.sample(4, generator=torch.Generator().manual_seed(0))
    cfg = {"normal_bundle_times": [0.01], "n_perturbations": 2 * D, "flipd_times": [0.01, 0.05], "flipd_probes": 8,
           "seed": 0}
    table = est.score_table(oracle, x0, np.array([0, 1, 1, 2]), cfg, sde=VPSDE(), points=[3, 5, 7, 9])
    assert list(table.columns) == est.COLUMNS and len(table) == 12
    assert set(table["condition"]) == {"t=0.01", "t=0.05"}
    assert table.loc[table["estimator"] == "normal_bundle", "local_dim"].tolist() == [oracle.rank] * 4
    assert table["point"].tolist()[:4] == [3, 5, 7, 9]


def test_stratified_subset():
    labels = np.repeat(np.arange(10), 50)
    idx = est.stratified_subset(labels, 20)
    assert len(idx) == 20 and np.bincount(labels[idx]).tolist() == [2] * 10


def test_comparison_table_has_paper_row_and_rt():
    rng = np.random.default_rng(0)
    estimates = pd.DataFrame({"estimator": "mle", "dataset": "heldout", "condition": "clean", "point": range(20),
                              "label": np.repeat(np.arange(10), 2), "t": np.nan,
                              "local_dim": rng.uniform(5, 15, 20)})
    diagnostics = pd.DataFrame({"image": [0, 1, 0, 1], "label": [1, 7, 1, 7], "t": [0.01, 0.01, 0.3, 0.3],
                                "local_dim": [100, 120, 40, 60]})
    table = est.comparison_table(estimates, diagnostics)
    assert table["estimator"].tolist() == ["paper_vae", "mle", "score_model_rt", "score_model_rt"]
    paper = table.iloc[0]
    assert paper["mean"] == 13 and paper["std"] == 3 and paper["digit_1"] == 11 and paper["digit_0"] == 18
    rt = table[table["estimator"] == "score_model_rt"].set_index("condition")
    assert rt.loc["t=0.01", "mean"] == 110 and rt.loc["t=0.3", "digit_7"] == 60
    assert np.isclose(table.iloc[1]["mean"], estimates["local_dim"].mean())
    assert "13.0 ± 3.0" in est.comparison_markdown(table)


# --- the registry: name -> function, config keys, label ---------------------------------------------------------

def test_registry_lists_every_estimator_with_its_config_keys_and_label():
    """Each estimator reads only its own keys of the `estimators:` section; with the subset's size and the
    shared seed they are exactly the section's keys in the schema and in config.yaml (a new estimator's keys go
    there), and tables and figures name each by its label."""
    from score_geometry.io import read_yaml

    assert list(est.ESTIMATORS) == ["vae", "score_model_rt", "mle", "twonn", "lpca", "normal_bundle", "flipd"]
    assert [e.name for e in est.estimators("neighbours")] == ["mle", "twonn", "lpca"]
    assert [e.name for e in est.estimators("score")] == ["normal_bundle", "flipd"]  # this order: one generator
    keys = [k for e in est.ESTIMATORS.values() for k in e.keys]
    assert len(keys) == len(set(keys))
    schema = read_yaml(ROOT / "workflow" / "schemas" / "config.schema.yaml")["properties"]["estimators"]["properties"]
    assert set(schema) == set(keys) | {"n_points", "seed"}
    assert set(read_yaml(ROOT / "config.yaml")["estimators"]) == set(schema)
    assert [est.estimator_label(n) for n in ("vae", "mle", "lpca", "normal_bundle", "score_model_rt", "new")] == \
        ["VAE", "MLE", "lPCA", "normal bundle", "$r_t$", "new"]
    with pytest.raises(ValueError, match="estimator 'flipd' reads estimators.flipd_probes, which the config does not"):
        est.own_config(est.ESTIMATORS["flipd"], {"flipd_times": [0.1]})


def test_a_registered_estimator_joins_the_tables(monkeypatch):
    """Adding an estimator is one registered function (and its config keys): the held-out table, the comparison
    table and the figure's labels pick it up."""
    from score_geometry.baselines import registry

    monkeypatch.setattr(registry, "ESTIMATORS", dict(registry.ESTIMATORS))
    calls = []

    @est.estimator("norm", label="norm ÷ 10", kind="neighbours", keys=("norm_scale",))
    def norm_dims(points, reference, cfg):
        calls.append(cfg)
        return np.linalg.norm(points, axis=1) / cfg["norm_scale"]

    X = linear_points(3, 80, seed=0)
    cfg = {"mle_neighbors": 10, "twonn_neighbors": 20, "lpca_neighbors": 20, "lpca_version": "FO",
           "lpca_alpha": 0.05, "twonn_discard": 0.1, "norm_scale": 10.0}
    table = est.classical_table(X[:6], np.arange(6) % 2, X[6:], cfg)
    assert table["estimator"].unique().tolist() == ["mle", "twonn", "lpca", "norm"] and calls == [{"norm_scale": 10.0}]
    np.testing.assert_allclose(table.loc[table["estimator"] == "norm", "local_dim"], np.linalg.norm(X[:6], axis=1) / 10)
    comparison = est.comparison_table(table)
    assert comparison["estimator"].tolist() == ["paper_vae", "mle", "twonn", "lpca", "norm"]
    assert est.estimator_label("norm") == "norm ÷ 10"
    with pytest.raises(ValueError, match="kind must be one of"):
        est.estimator("bad", label="bad", kind="pixels")(norm_dims)

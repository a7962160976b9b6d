"""Closed-form subspace oracles and the geometry the paper predicts for them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from score_geometry.jacobian import score_jacobian
from score_geometry.oracle import GaussianSubspaceOracle, SkewSubspaceOracle, random_orthonormal
from score_geometry.sde import VPSDE
from score_geometry.spectra import analyse_jacobian, overlaps

D, K = 48, 5
KAPPA = 0.1


@pytest.fixture(scope="module")
def gauss():
    return GaussianSubspaceOracle.random(D, K, variances=torch.linspace(1.0, 4.0, K), mean_scale=0.5, seed=0)


def _dense_score(orc, x, t):
    a = orc.alpha(t)
    s2 = orc.sigma(t) ** 2
    C = a**2 * orc.covariance() + s2 * torch.eye(orc.dim, dtype=torch.float64)
    y = x.reshape(x.shape[0], -1) - a * orc.mu.reshape(1, -1)
    return -torch.linalg.solve(C, y.T).T


def test_schedule_matches_vpsde(gauss):
    t = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    sde = VPSDE(0.1, 20.0)
    torch.testing.assert_close(gauss.alpha(t), sde.alpha(t))
    torch.testing.assert_close(gauss.sigma(t), sde.sigma(t))
    ib = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(gauss.alpha(t), torch.exp(-0.5 * ib))


def test_score_and_jacobian_match_dense_formula(gauss):
    x = torch.randn(6, D, dtype=torch.float64)
    for t in (0.05, 0.3, 0.9):
        torch.testing.assert_close(gauss.score(x, t), _dense_score(gauss, x, t), rtol=1e-10, atol=1e-10)
        a = gauss.alpha(t)
        C = a**2 * gauss.covariance() + gauss.sigma(t) ** 2 * torch.eye(D, dtype=torch.float64)
        torch.testing.assert_close(gauss.jacobian(t), -torch.linalg.inv(C), rtol=1e-10, atol=1e-10)
    # per-sample times, module call convention, image-shaped inputs, dtype follows x
    ts = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=torch.float64)
    g = gauss(x, ts)
    for b in range(6):
        torch.testing.assert_close(g[b : b + 1], _dense_score(gauss, x[b : b + 1], ts[b]), rtol=1e-10, atol=1e-10)
    img = GaussianSubspaceOracle.random(784, 3, data_shape=(1, 28, 28), seed=1)
    xi = torch.randn(2, 1, 28, 28)
    out = img(xi, torch.tensor([0.2, 0.4]))
    assert out.shape == xi.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), img(xi.double(), torch.tensor([0.2, 0.4])), rtol=1e-4, atol=1e-4)


def test_sampling_and_marginal():
    orc = GaussianSubspaceOracle.random(8, 3, variances=torch.tensor([0.5, 1.0, 2.0]), mean_scale=1.0, seed=2)
    gen = torch.Generator().manual_seed(0)
    x0 = orc.sample(20000, gen)
    assert x0.shape == (20000, 8) and x0.dtype == torch.float64
    P_out = torch.eye(8, dtype=torch.float64) - orc.basis @ orc.basis.T
    assert ((x0 - orc.mu) @ P_out).abs().max() < 1e-12  # supported on the affine subspace
    torch.testing.assert_close(x0.mean(0), orc.mu, rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(x0.T), orc.covariance(), rtol=0, atol=0.08)
    t = 0.4
    xt = orc.perturb(x0, t, gen)
    a, s2 = orc.alpha(t), orc.sigma(t) ** 2
    torch.testing.assert_close(torch.cov(xt.T), a**2 * orc.covariance() + s2 * torch.eye(8, dtype=torch.float64),
                               rtol=0, atol=0.05)
    # score of the marginal: E[g(x_t)] = 0 and E[g g^T] = C^{-1} (Fisher information)
    g = orc.score(xt, t)
    C = a**2 * orc.covariance() + s2 * torch.eye(8, dtype=torch.float64)
    torch.testing.assert_close((g.T @ g) / g.shape[0], torch.linalg.inv(C), rtol=0.05, atol=0.05)


def test_validation():
    basis = random_orthonormal(10, 3)
    with pytest.raises(ValueError, match="orthonormal"):
        GaussianSubspaceOracle(torch.zeros(10), 2 * basis, torch.ones(3))
    with pytest.raises(ValueError):
        GaussianSubspaceOracle(torch.zeros(10), basis, torch.ones(4))
    with pytest.raises(ValueError):
        GaussianSubspaceOracle(torch.zeros(10), basis, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="skew"):
        SkewSubspaceOracle(torch.zeros(10), basis, torch.ones(3), skew=torch.eye(3))
    orc = GaussianSubspaceOracle(torch.zeros(10), basis, torch.ones(3))
    with pytest.raises(ValueError):
        orc.score(torch.zeros(2, 11), 0.5)


# ----------------------------------------------------------------------------- paper geometry


def test_gaussian_geometry_when_subspace_resolved(gauss):
    t = 0.3
    a2, s2 = float(gauss.alpha(t)) ** 2, float(gauss.sigma(t)) ** 2
    assert a2 * float(gauss.variances.min()) >= KAPPA * s2  # condition for r_t = k
    x = torch.randn(1, D, dtype=torch.float64)
    J = score_jacobian(gauss, x, t)[0]
    spec = analyse_jacobian(J, sigma=float(gauss.sigma(t)), kappa=KAPPA)
    assert spec.local_dim == K == gauss.local_dim(t, KAPPA)
    # inverse singular values: alpha^2 lambda + sigma^2 on-manifold, sigma^2 off-manifold
    inv = 1.0 / spec.singular_values
    expected = np.sort(np.r_[a2 * gauss.variances.numpy() + s2, np.full(D - K, s2)])[::-1]
    np.testing.assert_allclose(inv, expected, rtol=1e-10)
    np.testing.assert_allclose(spec.cos_uv, -1.0, atol=1e-10)  # Gaussian: opposite signs at every rank
    np.testing.assert_allclose(overlaps(spec)["uv"], 1.0, atol=1e-10)
    ov = overlaps(spec)
    np.testing.assert_allclose(ov["uw"][:K], 1.0, atol=1e-10)  # leading k features span the data subspace
    np.testing.assert_allclose(ov["vw"][[K - 1, D - 1]], 1.0, atol=1e-10)
    assert np.all(spec.eigvals < 0)
    assert spec.trace_diff < 1e-10 * abs(spec.trace)
    assert spec.asymmetry < 1e-14
    assert np.isnan(spec.skew_share_inside)  # no skew part: shares undefined
    assert np.all(spec.denoiser_eigvals >= -1e-9) and np.all(spec.denoiser_eigvals <= 1 + 1e-9)
    assert spec.denoiser_min == pytest.approx(0.0, abs=1e-9)  # off-manifold: exactly the edge
    assert spec.denoiser_frac_negative == 0.0 and spec.denoiser_frac_above_one == 0.0
    # on-manifold right singular vectors span the data subspace
    V = spec.v[:, :K]
    np.testing.assert_allclose(V @ V.T, (gauss.basis @ gauss.basis.T).numpy(), atol=1e-10)


def test_gaussian_local_dim_drops_when_condition_violated():
    orc = GaussianSubspaceOracle.random(D, K, variances=torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0]), seed=3)
    t = 0.5
    a2, s2 = float(orc.alpha(t)) ** 2, float(orc.sigma(t)) ** 2
    assert a2 * 0.01 < KAPPA * s2  # the r_t = k condition fails for the small variances ...
    spec = analyse_jacobian(orc.jacobian(t), sigma=float(orc.sigma(t)), kappa=KAPPA)
    assert spec.local_dim == orc.local_dim(t, KAPPA) == 2 < K  # ... so the estimate misses them
    # lowering the slack recovers more (and kappa -> 0 recovers all k ranks)
    assert list(spec.local_dim_sweep([KAPPA, 0.01, 1e-4])) == [2, 3, K]


def test_skew_oracle_geometry():
    orc = SkewSubspaceOracle.random(D, K, variances=torch.linspace(1.0, 4.0, K), mean_scale=0.5, seed=4,
                                    strength=0.2)
    t = 0.3
    sigma = float(orc.sigma(t))
    x = torch.randn(3, D, dtype=torch.float64)
    # the field is affine: g(x) = J (x - alpha mu)
    J_exact = orc.jacobian(t)
    y = x - orc.alpha(t) * orc.mu
    torch.testing.assert_close(orc.score(x, t), y @ J_exact.T, rtol=1e-10, atol=1e-10)
    J = score_jacobian(orc, x, t)
    torch.testing.assert_close(J, J_exact.expand(3, D, D), rtol=1e-12, atol=1e-10)
    A = orc.skew_matrix()
    torch.testing.assert_close(0.5 * (J_exact - J_exact.T), A, rtol=0, atol=1e-12)  # skew part is exactly A
    gauss = GaussianSubspaceOracle(orc.mu, orc.basis, orc.variances)
    torch.testing.assert_close(0.5 * (J_exact + J_exact.T), gauss.jacobian(t), rtol=0, atol=1e-12)

    spec = analyse_jacobian(J[0], sigma=sigma, kappa=KAPPA)
    assert spec.local_dim == K
    assert spec.asymmetry > 0.01
    assert spec.skew_share_inside == pytest.approx(1.0, abs=1e-10)
    assert spec.skew_share_outside == pytest.approx(0.0, abs=1e-10)
    assert spec.skew_share_cross == pytest.approx(0.0, abs=1e-10)
    assert spec.trace_diff < 1e-10 * abs(spec.trace)
    # non-conservative inside: u and v misaligned on-manifold, still opposite off-manifold
    assert np.max(spec.cos_uv[:K]) > -0.999
    np.testing.assert_allclose(spec.cos_uv[K:], -1.0, atol=1e-10)
    # ... but the left and right on-manifold subspaces coincide (Eq. 2 at n = k)
    assert overlaps(spec)["uv"][K - 1] == pytest.approx(1.0, abs=1e-10)
    # the effective density (Prop. 1) is the Gaussian one
    np.testing.assert_allclose(spec.eigvals, analyse_jacobian(gauss.jacobian(t), sigma).eigvals, atol=1e-10)

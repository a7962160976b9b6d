"""Spectral features, local dimension and Eq. 2 overlaps (score_geometry.spectra)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from score_geometry.spectra import (
    Spectrum,
    analyse_jacobian,
    local_dim_sweep,
    local_dimension,
    overlaps,
    subspace_overlap,
)


def _orth(rng, D, n=None):
    q, r = np.linalg.qr(rng.standard_normal((D, n or D)))
    return q * np.sign(np.diag(r))


def _phi_literal(a, b):
    """Eq. 2 verbatim: explicit reconstructions, loop over n and j."""
    N = min(a.shape[1], b.shape[1])
    out = np.empty(N)
    for n in range(1, N + 1):
        acc = 0.0
        for j in range(n):
            aj = a[:, j]
            ahat = sum((b[:, k] @ aj) * b[:, k] for k in range(n))
            acc += np.sum((ahat - aj) ** 2) / np.sum(aj**2)
        out[n - 1] = 1.0 - acc / n
    return out


# ----------------------------------------------------------------------------- local dimension


def test_local_dimension_handcrafted():
    sigma = 0.5  # thr = 1.1 * 0.25 = 0.275 -> on-manifold iff s <= 1/0.275 = 3.636...
    # all inverse values below threshold -> 0
    assert local_dimension(np.array([4.0, 5.0, 10.0]), sigma) == 0
    # all above -> D
    assert local_dimension(np.array([0.1, 1.0, 3.0]), sigma) == 3
    # typical ascending spectrum: 2 on-manifold ranks
    assert local_dimension(np.array([0.5, 2.0, 4.0, 4.0, 4.0]), sigma) == 2
    # non-monotone inverse values: the last on-manifold rank counts
    assert local_dimension(np.array([0.5, 5.0, 1.0, 4.0, 6.0]), sigma) == 3
    # zero singular values (1/s = inf) are on-manifold
    assert local_dimension(np.array([0.0, 0.0, 4.0]), sigma) == 2
    assert local_dimension(np.array([0.0, 0.0, 0.0]), sigma) == 3
    # kappa changes the threshold: s = 3.8 has 1/s = 0.263 >= (1+k) 0.25 only for k <= 0.0526
    assert local_dimension(np.array([1.0, 3.8]), sigma, kappa=0.1) == 1
    assert local_dimension(np.array([1.0, 3.8]), sigma, kappa=0.05) == 2
    # boundary: 1/s == (1+k) sigma^2 exactly counts as on-manifold (the rule needs strict < above r)
    assert local_dimension(np.array([1.0, 4.0]), 0.5, kappa=0.0) == 2
    # torch input and batched input
    assert local_dimension(torch.tensor([0.5, 2.0, 4.0]), sigma) == 2
    batched = local_dimension(np.array([[0.5, 2.0, 4.0], [4.0, 4.0, 4.0]]), sigma)
    np.testing.assert_array_equal(batched, [2, 0])
    np.testing.assert_array_equal(local_dim_sweep(np.array([1.0, 3.8]), sigma, [0.0, 0.1, 1.0]), [2, 1, 1])
    with pytest.raises(ValueError):
        local_dimension(np.array([1.0, np.nan]), sigma)
    with pytest.raises(ValueError):
        local_dimension(np.array([1.0, 2.0]), 0.0)


# ----------------------------------------------------------------------------- Eq. 2


@pytest.mark.parametrize("orthonormal_a", [True, False])
def test_subspace_overlap_matches_literal_eq2(orthonormal_a):
    rng = np.random.default_rng(0)
    D = 12
    b = _orth(rng, D)
    a = _orth(rng, D) if orthonormal_a else rng.standard_normal((D, D)) * rng.uniform(0.1, 5, D)
    np.testing.assert_allclose(subspace_overlap(a, b), _phi_literal(a, b), rtol=1e-12, atol=1e-12)
    # rectangular inputs: first N = min columns
    np.testing.assert_allclose(subspace_overlap(a[:, :7], b), _phi_literal(a[:, :7], b[:, :7]), atol=1e-12)


def test_subspace_overlap_properties():
    rng = np.random.default_rng(1)
    D = 64
    a = _orth(rng, D)
    b = _orth(rng, D)
    np.testing.assert_allclose(subspace_overlap(a, a), np.ones(D), atol=1e-12)
    # same subspaces, different bases within each leading block -> 1 at the block ends, < 1 inside a block
    # (the degenerate off-manifold block of a Jacobian has no preferred basis; Phi must not penalise that there)
    ends = [5, 20, D]
    rotated = a.copy()
    for lo, hi in zip([0] + ends[:-1], ends):
        rotated[:, lo:hi] = a[:, lo:hi] @ _orth(rng, hi - lo)
    phi_rot = subspace_overlap(rotated, a)
    np.testing.assert_allclose(phi_rot[np.array(ends) - 1], 1.0, atol=1e-12)
    assert phi_rot[2] < 1 - 1e-3 and phi_rot[12] < 1 - 1e-3
    phi = subspace_overlap(a, b)
    assert phi.shape == (D,)
    assert abs(phi[-1] - 1.0) < 1e-12  # full space always reconstructs
    assert np.all(phi >= -1e-12) and np.all(phi <= 1 + 1e-12)
    # random subspaces: E[Phi_n] = n / D
    n = np.arange(1, D + 1)
    assert np.max(np.abs(phi - n / D)) < 0.15
    mean_phi = np.mean([subspace_overlap(_orth(rng, D), _orth(rng, D)) for _ in range(5)], axis=0)
    assert np.max(np.abs(mean_phi - n / D)[8:-8]) < 0.06
    # sign flips of columns do not matter
    np.testing.assert_allclose(subspace_overlap(a, -a), np.ones(D), atol=1e-12)


def test_subspace_overlap_requires_orthonormal_b():
    rng = np.random.default_rng(2)
    a = _orth(rng, 8)
    with pytest.raises(ValueError, match="orthonormal"):
        subspace_overlap(a, rng.standard_normal((8, 8)))
    # unchecked: it is the orthonormal closed form, which differs from Eq. 2
    b = rng.standard_normal((8, 8))
    assert not np.allclose(subspace_overlap(a, b, check_orthonormal=False), _phi_literal(a, b))
    with pytest.raises(ValueError):
        subspace_overlap(a, _orth(rng, 7))  # different D


def test_subspace_overlap_zero_column_is_nan():
    rng = np.random.default_rng(3)
    a = _orth(rng, 6)
    a[:, 3] = 0
    phi = subspace_overlap(a, _orth(rng, 6))
    assert np.all(np.isfinite(phi[:3])) and np.all(np.isnan(phi[3:]))


# ----------------------------------------------------------------------------- analyse_jacobian


def test_analyse_random_jacobian_structure():
    rng = np.random.default_rng(4)
    D = 32
    J = rng.standard_normal((D, D))
    spec = analyse_jacobian(torch.from_numpy(J).float(), sigma=0.3)
    assert isinstance(spec, Spectrum)
    s = spec.singular_values
    assert s.dtype == np.float64 and s.shape == (D,)
    assert np.all(np.diff(s) >= 0)
    J32 = torch.from_numpy(J).float().double().numpy()
    np.testing.assert_allclose(spec.u @ np.diag(s) @ spec.v.T, J32, atol=1e-10)
    np.testing.assert_allclose(spec.u.T @ spec.u, np.eye(D), atol=1e-12)
    np.testing.assert_allclose(spec.v.T @ spec.v, np.eye(D), atol=1e-12)
    np.testing.assert_allclose(spec.cos_uv, np.sum(spec.u * spec.v, axis=0))
    # symmetrised part
    Js = 0.5 * (J32 + J32.T)
    assert np.all(np.diff(np.abs(spec.eigvals)) >= 0)
    np.testing.assert_allclose(Js @ spec.w, spec.w * spec.eigvals, atol=1e-10)
    np.testing.assert_allclose(spec.w.T @ spec.w, np.eye(D), atol=1e-12)
    assert spec.trace_diff < 1e-10
    assert spec.trace == pytest.approx(np.trace(J32))
    assert spec.asymmetry == pytest.approx(np.linalg.norm(J32 - J32.T) / np.linalg.norm(J32))
    # named features
    np.testing.assert_array_equal(spec.u_minus, spec.u[:, 0])
    np.testing.assert_array_equal(spec.v_plus, spec.v[:, -1])
    assert spec.w_minus @ Js @ spec.w_minus == pytest.approx(spec.eigvals.min())
    assert spec.w_plus @ Js @ spec.w_plus == pytest.approx(spec.eigvals.max())
    assert abs(spec.w_zero @ Js @ spec.w_zero) == pytest.approx(np.abs(spec.eigvals).min())
    # skew shares partition ||H||^2
    total = spec.skew_share_inside + spec.skew_share_outside + spec.skew_share_cross
    assert total == pytest.approx(1.0, abs=1e-12)
    # local dim and sweep
    assert spec.local_dim == local_dimension(s, 0.3, 0.1)
    sweep = spec.local_dim_sweep([0.0, 0.1, 1.0, 10.0])
    assert sweep.dtype.kind == "i" and np.all(np.diff(sweep) <= 0)
    # denoiser eigenvalues
    np.testing.assert_allclose(spec.denoiser_eigvals, 1 + 0.09 * spec.eigvals)
    assert spec.denoiser_min == pytest.approx(spec.denoiser_eigvals.min())
    assert spec.denoiser_frac_negative == pytest.approx(np.mean(spec.denoiser_eigvals < -0.1))
    assert spec.denoiser_frac_above_one == pytest.approx(np.mean(spec.denoiser_eigvals > 1.1))
    # frozen, read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.local_dim = 3
    with pytest.raises(ValueError):
        spec.singular_values[0] = 1.0
    ov = overlaps(spec)
    assert set(ov) == {"uv", "uw", "vw"} and all(v.shape == (D,) for v in ov.values())
    np.testing.assert_allclose(ov["uw"], subspace_overlap(spec.u, spec.w))


def test_skew_shares_are_nan_for_symmetric_jacobian():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((10, 10))
    spec = analyse_jacobian(A + A.T, sigma=1.0)
    assert spec.asymmetry == 0.0
    assert np.isnan(spec.skew_share_inside) and np.isnan(spec.skew_share_outside)
    assert np.isnan(spec.skew_share_cross)
    np.testing.assert_allclose(np.abs(spec.cos_uv), 1.0, atol=1e-8)  # normal matrix: u_i = +-v_i


def test_skew_shares_located_by_construction():
    """A skew part living in the span of the smallest-singular-value right vectors is 'inside'."""
    rng = np.random.default_rng(6)
    D, k, sigma = 20, 4, 0.5
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    # symmetric negative definite part: k on-manifold directions with 1/s = 2, the rest 1/s = sigma^2
    lam = np.r_[np.full(k, -0.5), np.full(D - k, -1 / sigma**2)]
    Sym = (Q * lam) @ Q.T
    S = rng.standard_normal((k, k))
    S = 0.05 * (S - S.T)
    for where, field in [("inside", Q[:, :k] @ S @ Q[:, :k].T),
                         ("outside", Q[:, -k:] @ S @ Q[:, -k:].T)]:
        spec = analyse_jacobian(Sym + field, sigma)
        assert spec.local_dim == k
        assert getattr(spec, f"skew_share_{where}") == pytest.approx(1.0, abs=1e-8)
        assert spec.skew_share_cross == pytest.approx(0.0, abs=1e-8)
    # skew part coupling the two subspaces is 'cross'
    C = 0.05 * rng.standard_normal((k, D - k))
    Hc = Q[:, :k] @ C @ Q[:, k:].T
    spec = analyse_jacobian(Sym + Hc - Hc.T, sigma)
    assert spec.local_dim == k
    assert spec.skew_share_cross > 0.99


def test_zero_jacobian_edge_case():
    spec = analyse_jacobian(np.zeros((5, 5)), sigma=0.1)
    assert spec.local_dim == 5  # 1/s = inf: everything on-manifold
    assert spec.asymmetry == 0.0 and np.isnan(spec.skew_share_inside)
    assert spec.denoiser_min == 1.0
    assert spec.denoiser_frac_negative == 0.0 and spec.denoiser_frac_above_one == 0.0


def test_denoiser_eigenvalues_counted_with_the_kappa_slack():
    """I + sigma^2 J~ with known eigenvalues: below -kappa and above 1 + kappa are counted, the slack is not."""
    rng = np.random.default_rng(8)
    sigma, kappa = 0.5, 0.1
    den = np.array([-0.5, -0.05, 0.0, 0.5, 1.05, 1.5])  # -0.05 and 1.05 lie within the slack
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    S = rng.standard_normal((6, 6))
    J = (Q * ((den - 1) / sigma**2)) @ Q.T + 0.3 * (S - S.T)  # a skew part does not change J~
    spec = analyse_jacobian(J, sigma, kappa)
    np.testing.assert_allclose(np.sort(spec.denoiser_eigvals), den, atol=1e-12)
    assert spec.denoiser_min == pytest.approx(-0.5)
    assert spec.denoiser_frac_negative == pytest.approx(1 / 6)
    assert spec.denoiser_frac_above_one == pytest.approx(1 / 6)
    assert analyse_jacobian(J, sigma, kappa=0.01).denoiser_frac_negative == pytest.approx(2 / 6)


def test_input_validation():
    with pytest.raises(ValueError):
        analyse_jacobian(np.zeros((3, 4)), sigma=0.1)
    with pytest.raises(ValueError):
        analyse_jacobian(np.full((3, 3), np.nan), sigma=0.1)
    with pytest.raises(ValueError):
        analyse_jacobian(np.eye(3), sigma=0.0)

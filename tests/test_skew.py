"""Tangent/normal split of a Jacobian's skew part, and the curl, on fields whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from score_geometry.jacobian import batch_jacobian
from score_geometry.skew import curl_from_jacobian, skew_shares, tangent_normal_basis
from score_geometry.spectra import analyse_jacobian


def grad_potential(x: torch.Tensor) -> torch.Tensor:
    """Gradient of phi(x) = -|x|^2 / 2 + 0.3 x1^2 x2 + sin(x3) x1 + 0.1 x2^4 (a conservative field), (B, 3)."""
    x1, x2, x3 = x.unbind(1)
    return torch.stack([-x1 + 0.6 * x1 * x2 + torch.sin(x3),
                        -x2 + 0.3 * x1**2 + 0.4 * x2**3,
                        -x3 + torch.cos(x3) * x1], dim=1)


def rotation_about(axis, x: torch.Tensor, rate: float = 1.5) -> torch.Tensor:
    """rate * (axis x x): a rigid rotation about `axis`, curl = 2 rate axis."""
    return rate * torch.linalg.cross(torch.as_tensor(axis, dtype=x.dtype).expand_as(x), x, dim=1)


def _points(n=64, seed=0):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _sphere_basis(x):
    return tangent_normal_basis(x.numpy())


def test_conservative_field_has_no_skew_part():
    x = _points()
    J = batch_jacobian(grad_potential, x)
    out = skew_shares(J, _sphere_basis(x), 2)
    assert np.all(out["skew_norm"] <= 1e-14 * out["jac_norm"])
    for key in ("frac_inside", "frac_cross", "frac_outside"):
        np.testing.assert_allclose(out[key], 0.0, atol=1e-28)
    # ||H|| = 0: the shares of ||H||^2 are undefined, NaN like spectra.analyse_jacobian's.
    assert np.all(np.isnan(out["share_inside"]))
    np.testing.assert_allclose(curl_from_jacobian(J), 0.0, atol=1e-14)


def test_rotation_within_the_tangent_plane_has_tangent_share_one():
    # The plane z = 0 (normal e_z everywhere) plus a rotation about e_z: acts only tangentially.
    x = _points()
    J = batch_jacobian(lambda z: grad_potential(z) + rotation_about([0.0, 0.0, 1.0], z), x)
    basis = tangent_normal_basis(np.tile([0.0, 0.0, 1.0], (len(x), 1)))
    out = skew_shares(J, basis, 2)
    np.testing.assert_allclose(out["share_inside"], 1.0, atol=1e-12)
    np.testing.assert_allclose(out["share_cross"], 0.0, atol=1e-12)
    np.testing.assert_allclose(out["skew_norm"], 1.5 * np.sqrt(2), rtol=1e-12)  # ||rate [e_z]_x||_F
    np.testing.assert_allclose(curl_from_jacobian(J), np.tile([0.0, 0.0, 3.0], (len(x), 1)), atol=1e-12)
    # A rotation about e_x tilts the plane: all of it involves the normal.
    J = batch_jacobian(lambda z: grad_potential(z) + rotation_about([1.0, 0.0, 0.0], z), x)
    out = skew_shares(J, basis, 2)
    np.testing.assert_allclose(out["share_inside"], 0.0, atol=1e-12)
    np.testing.assert_allclose(out["share_cross"], 1.0, atol=1e-12)


def test_sphere_tangent_share_is_the_normal_part_of_the_curl():
    # On the sphere, a rotation about e_z is tangent only at the poles; in general the tangent share is
    # (curl . n)^2 / |curl|^2.
    x = _points()
    x[0] = torch.tensor([0.0, 0.0, 1.3])
    x[1] = torch.tensor([0.8, -0.6, 0.0])
    J = batch_jacobian(lambda z: grad_potential(z) + rotation_about([0.3, -0.2, 1.0], z), x)
    out = skew_shares(J, _sphere_basis(x), 2)
    curl = curl_from_jacobian(J)
    n = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(out["share_inside"], np.sum(curl * n, 1) ** 2 / np.sum(curl**2, 1), atol=1e-12)
    np.testing.assert_allclose(out["share_inside"] + out["share_cross"] + out["share_outside"], 1.0, atol=1e-12)
    np.testing.assert_allclose(out["share_outside"], 0.0, atol=1e-12)  # a 1-D normal block has no skew part
    only_z = skew_shares(batch_jacobian(lambda z: rotation_about([0.0, 0.0, 1.0], z), x), _sphere_basis(x), 2)
    assert only_z["share_inside"][0] == pytest.approx(1.0, abs=1e-12)
    assert only_z["share_inside"][1] == pytest.approx(0.0, abs=1e-12)


def test_general_dimension_agrees_with_spectra():
    # In D dimensions with the right-singular basis and k = r_t, the split is analyse_jacobian's.
    rng = np.random.default_rng(0)
    D = 12
    J = rng.standard_normal((D, D)) @ np.diag(np.geomspace(0.1, 100, D)) @ rng.standard_normal((D, D)) / D
    spec = analyse_jacobian(J, sigma=0.3, kappa=0.1)
    out = skew_shares(J[None], spec.v, spec.local_dim)
    assert 0 < spec.local_dim < D
    assert out["share_inside"][0] == pytest.approx(spec.skew_share_inside, abs=1e-12)
    assert out["share_cross"][0] == pytest.approx(spec.skew_share_cross, abs=1e-12)
    assert out["share_outside"][0] == pytest.approx(spec.skew_share_outside, abs=1e-12)


def test_tangent_basis_is_orthonormal_and_ends_with_the_normal():
    n = np.vstack([_points(32).numpy(), [[1.0, 0, 0], [0, 0, -2.0]]])
    B = tangent_normal_basis(n)
    np.testing.assert_allclose(np.swapaxes(B, 1, 2) @ B, np.broadcast_to(np.eye(3), B.shape), atol=1e-12)
    np.testing.assert_allclose(B[:, :, 2], n / np.linalg.norm(n, axis=1, keepdims=True), atol=1e-15)


def test_bad_inputs_raise_with_the_fix():
    J = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="orthonormal"):
        skew_shares(J, 2 * np.eye(3), 2)
    with pytest.raises(ValueError, match="k must be"):
        skew_shares(J, np.eye(3), 4)
    with pytest.raises(ValueError, match=r"\(N, D, D\)"):
        skew_shares(np.zeros((3, 3)), np.eye(3), 2)
    with pytest.raises(ValueError, match="non-zero"):
        tangent_normal_basis(np.zeros((1, 3)))

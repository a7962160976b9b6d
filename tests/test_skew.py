"""Tangent/normal split of a Jacobian's skew part, and the curl, on fields whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from score_geometry.jacobian import batch_jacobian
from score_geometry.skew import (block_ratio, curl_from_jacobian, isotropic_shares, skew_shares, skew_tolerance,
                                 tangent_curl, tangent_normal_basis)
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


# --- measures (b) and (c), and the controls of docs/nonconservative.md ----------------------------------------

def normal_push(x: torch.Tensor, axis=(0.2, 0.9, -0.4), rate: float = 0.7) -> torch.Tensor:
    """rate (b . x) x / |x|: a normal push varying along the spheres; its curl, rate (b x x) / |x|, is tangent."""
    b = torch.as_tensor(axis, dtype=x.dtype)
    return rate * (x @ b)[:, None] * x / torch.linalg.vector_norm(x, dim=1, keepdim=True)


def test_relative_block_asymmetry_of_a_conservative_field_is_zero():
    x = _points()
    out = skew_shares(batch_jacobian(grad_potential, x), _sphere_basis(x), 2)
    for key in ("rel_inside", "rel_cross", "rel_outside"):
        np.testing.assert_allclose(out[key], 0.0, atol=1e-14)
    assert np.all(np.isnan(out["rel_ratio"]))  # no asymmetric block: undefined, like the shares
    tc = tangent_curl(batch_jacobian(grad_potential, x), x.numpy())
    np.testing.assert_allclose(tc["rel_jac"], 0.0, atol=1e-14)
    assert np.all(np.isnan(tc["rel_curl"]))


def test_relative_block_asymmetry_closed_form():
    # Plane z = 0, J = diag(lam) + rotation about e_z: the tangent block is [[l1, -c], [c, l2]], so
    # ||PHP|| / ||PJP|| = sqrt(2) c / sqrt(l1^2 + l2^2 + 2 c^2); the cross blocks are zero in J: NaN.
    lam, c = np.array([-0.5, -2.0, -100.0]), 1.5
    J = np.diag(lam)[None] + np.array([[0.0, -c, 0.0], [c, 0.0, 0.0], [0.0, 0.0, 0.0]])[None]
    out = skew_shares(J, np.eye(3), 2)
    assert out["rel_inside"][0] == pytest.approx(np.sqrt(2) * c / np.sqrt(0.25 + 4 + 2 * c**2), rel=1e-12)
    assert np.isnan(out["rel_cross"][0]) and out["rel_outside"][0] == 0.0
    assert out["rel_ratio"][0] == np.inf  # only the tangent block is asymmetric
    # The absolute share is 1 and the fraction of ||J||^2 tiny: the normal block's 1/sigma^2 dominates ||J||.
    assert out["share_inside"][0] == pytest.approx(1.0) and out["frac_inside"][0] < 1e-3
    # A purely skew block has relative asymmetry 1.
    assert skew_shares(np.array([[[0.0, -1.0, 0], [1.0, 0, 0], [0, 0, -5.0]]]), np.eye(3), 2)["rel_inside"][0] == 1


def test_block_ratio_edge_cases():
    r = block_ratio([1.0, 0.0, 1.0, np.nan, 2.0], [0.0, 0.0, np.nan, 1.0, 1.0], [0.0, 0.0, np.nan, 1.0, np.nan])
    assert r[0] == np.inf and np.isnan(r[1]) and np.isnan(r[2]) and np.isnan(r[3]) and r[4] == 2.0


def test_isotropic_shares_count_entries():
    assert isotropic_shares(2, 3) == pytest.approx({"inside": 1 / 3, "cross": 2 / 3, "outside": 0.0})
    iso = isotropic_shares(40, 784)
    assert sum(iso.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="0 <= k <= D"):
        isotropic_shares(5, 3)


def _fd_tangent_curl(g, x: torch.Tensor, h: float = 1e-5) -> np.ndarray:
    """n . curl(P g) by central differences of the projected field P(x) g(x), P = I - n n^T, n = x / |x| (N,)."""
    def projected(z):
        n = z / torch.linalg.vector_norm(z, dim=1, keepdim=True)
        gz = g(z)
        return gz - (gz * n).sum(1, keepdim=True) * n

    D = torch.stack([(projected(x + h * e) - projected(x - h * e)) / (2 * h)
                     for e in torch.eye(3, dtype=x.dtype)], dim=2)  # D[:, i, j] = d(Pg)_i / dx_j
    curl = torch.stack([D[:, 2, 1] - D[:, 1, 2], D[:, 0, 2] - D[:, 2, 0], D[:, 1, 0] - D[:, 0, 1]], dim=1)
    n = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return (curl * n).sum(1).numpy()


def test_tangent_curl_is_the_curl_of_the_projected_field():
    # A generic non-conservative field: both a tangential and a cross part on the spheres.
    def g(z):
        return grad_potential(z) + rotation_about([0.3, -0.2, 1.0], z) + normal_push(z)

    x = _points() + torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64)
    J = batch_jacobian(g, x)
    out = tangent_curl(J, x.numpy())
    np.testing.assert_allclose(out["curl_normal"], _fd_tangent_curl(g, x), atol=1e-7)
    # In R^3 (c) is a function of (a)'s tangent block: |n.curl| / |curl| = sqrt(tangent share), and
    # |n.curl| / ||J|| = sqrt(2 x tangent fraction of ||J||^2).
    shares = skew_shares(J, _sphere_basis(x), 2)
    np.testing.assert_allclose(out["rel_curl"] ** 2, shares["share_inside"], atol=1e-12)
    np.testing.assert_allclose(out["rel_jac"] ** 2, 2 * shares["frac_inside"], atol=1e-12)
    # The normal push alone rotates only across the spheres: no tangent curl, all of H in the cross blocks.
    J = batch_jacobian(lambda z: grad_potential(z) + normal_push(z), x)
    np.testing.assert_allclose(tangent_curl(J, x.numpy())["curl_normal"], 0.0, atol=1e-13)
    cross = skew_shares(J, _sphere_basis(x), 2)
    np.testing.assert_allclose(cross["share_cross"], 1.0, atol=1e-12)
    np.testing.assert_allclose(cross["rel_inside"], 0.0, atol=1e-13)
    np.testing.assert_allclose(cross["rel_ratio"], 0.0, atol=1e-12)


# --- the MNIST-dimension control: random 784 x 784 Jacobians with a known on-manifold subspace ------------------

D_MNIST, K_ON, SIGMA = 784, 40, 0.1


@pytest.fixture(scope="module")
def known_subspace():
    """A symmetric 'score Jacobian' U diag(lam) U^T with a known k-dim on-manifold subspace P = U[:, :k]
    (|lam| in [0.5, 5], far above the (1 + kappa) sigma^2 threshold's 1/s) and -1/sigma^2 off it."""
    rng = np.random.default_rng(7)
    U, _ = np.linalg.qr(rng.standard_normal((D_MNIST, D_MNIST)))
    lam = np.concatenate([-rng.uniform(0.5, 5.0, K_ON), np.full(D_MNIST - K_ON, -1 / SIGMA**2)])
    return rng, U, U @ np.diag(lam) @ U.T, lam


def test_mnist_dimension_skew_inside_the_known_subspace(known_subspace):
    rng, U, sym, lam = known_subspace
    P = U[:, :K_ON]
    G = rng.standard_normal((K_ON, K_ON))
    S = (G - G.T) / np.sqrt(2 * K_ON)
    J = sym + P @ S @ P.T
    known = skew_shares(J[None], U, K_ON)
    assert known["share_inside"][0] == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(known["rel_cross"][0])  # J has no cross blocks (to round-off): undefined, not 0/0 noise
    assert known["rel_outside"][0] == pytest.approx(0.0, abs=1e-12)
    assert known["rel_ratio"][0] > 1e10  # only round-off in the off-manifold block
    # ||P^T J P||^2 = ||diag(lam_P)||^2 + ||S||^2 (a symmetric and a skew matrix are orthogonal)
    expected = np.linalg.norm(S) / np.sqrt(np.sum(lam[:K_ON] ** 2) + np.linalg.norm(S) ** 2)
    assert known["rel_inside"][0] == pytest.approx(expected, rel=1e-10)
    # The estimated subspaces (right singular vectors v and eigenvectors w of J~) are exactly P here.
    spec = analyse_jacobian(J, SIGMA, 0.1)
    assert spec.local_dim == K_ON
    assert spec.skew_share_inside == pytest.approx(1.0, abs=1e-9)
    assert spec.skew_share_w_inside == pytest.approx(1.0, abs=1e-9)
    assert spec.skew_rel_inside == pytest.approx(expected, rel=1e-8)
    assert spec.skew_rel_w_inside == pytest.approx(expected, rel=1e-8)
    assert spec.skew_rel_ratio > 1e6 and spec.skew_rel_ratio_w > 1e6
    assert set(spec.skew_fields) >= {"skew_share_inside", "skew_rel_ratio", "skew_share_w_cross", "skew_rel_w_outside"}


def test_mnist_dimension_skew_across_the_known_subspace(known_subspace):
    rng, U, sym, _ = known_subspace
    P, Q = U[:, :K_ON], U[:, K_ON:]
    C = 0.05 * rng.standard_normal((K_ON, D_MNIST - K_ON)) / np.sqrt(D_MNIST)
    J = sym + P @ C @ Q.T - Q @ C.T @ P.T
    known = skew_shares(J[None], U, K_ON)
    assert known["share_cross"][0] == pytest.approx(1.0, abs=1e-12)
    assert known["rel_inside"][0] == pytest.approx(0.0, abs=1e-12) and known["rel_ratio"][0] == pytest.approx(0.0)
    # the cross blocks of J are purely skew; the symmetric part (entries ~1/sigma^2 = 100) leaves float64 round-off
    # in them against a skew part of ~2e-3, so the ratio is exact to ~1e-10, not 1e-12 (a fresh clone's run gave
    # 1 - 1.7e-12); 1e-9 as for the w split below
    assert known["rel_cross"][0] == pytest.approx(1.0, abs=1e-9)
    spec = analyse_jacobian(J, SIGMA, 0.1)
    assert spec.local_dim == K_ON
    # w: J~ is the symmetric part exactly, so its first r_t eigenvectors are P and the split is exact.
    assert spec.skew_share_w_cross == pytest.approx(1.0, abs=1e-9)
    assert spec.skew_rel_ratio_w == pytest.approx(0.0, abs=1e-9)
    # v: the skew part tilts the singular subspace by O(||C|| / gap); the split is close.
    assert spec.skew_share_cross == pytest.approx(1.0, abs=1e-3)
    assert spec.skew_rel_ratio < 0.05


def test_mnist_dimension_isotropic_skew(known_subspace):
    rng, U, sym, _ = known_subspace
    G = rng.standard_normal((D_MNIST, D_MNIST))
    out = skew_shares((sym + 0.01 * (G - G.T))[None], U, K_ON)
    iso = isotropic_shares(K_ON, D_MNIST)
    for block, rtol in (("inside", 0.2), ("cross", 0.03), ("outside", 0.01)):
        assert out[f"share_{block}"][0] == pytest.approx(iso[block], rel=rtol), block


# --- the library's edges: the basis's shape, and what counts as no skew part in float32 -------------------------

def test_a_basis_of_the_subspace_alone_is_refused_with_what_is_expected():
    rng = np.random.default_rng(3)
    D, k = 12, 4
    J = rng.standard_normal((2, D, D))
    U, _ = np.linalg.qr(rng.standard_normal((D, D)))
    with pytest.raises(ValueError, match=r"\(D, D\) = \(12, 12\).*\(N, D, D\) = \(2, 12, 12\).*got shape \(12, 4\)"
                                         r".*mode='complete'"):
        skew_shares(J, U[:, :k], k)
    with pytest.raises(ValueError, match=r"3 bases for 2 Jacobians"):
        skew_shares(J, np.stack([U] * 3), k)
    with pytest.raises(ValueError, match=r"got shape \(12,\)"):
        skew_shares(J, U[:, 0], k)
    # The advice works: the completed basis gives the shares of the full one (the split depends on the span only).
    completed = np.linalg.qr(U[:, :k], mode="complete")[0]
    for key in ("share_inside", "share_cross", "share_outside", "rel_inside", "rel_cross", "rel_outside"):
        np.testing.assert_allclose(skew_shares(J, completed, k)[key], skew_shares(J, U, k)[key], atol=1e-12)


def _potential_hessians(dtype: torch.dtype, D: int = 16, n: int = 8) -> torch.Tensor:
    """Jacobians (n, D, D) of g = grad(phi), phi a random two-layer tanh potential minus |x|^2 / 2: exactly
    symmetric, computed in `dtype` (so in float32 symmetric only to round-off)."""
    gen = torch.Generator().manual_seed(11)
    W1 = torch.randn(64, D, generator=gen, dtype=torch.float64) / D**0.5
    W2 = torch.randn(64, 64, generator=gen, dtype=torch.float64) / 8
    w3 = torch.randn(64, generator=gen, dtype=torch.float64) / 8
    W1, W2, w3 = W1.to(dtype), W2.to(dtype), w3.to(dtype)
    x = torch.randn(n, D, generator=gen, dtype=torch.float64).to(dtype)

    def g(z):  # (B, D) -> grad phi (B, D); phi of each row depends on that row only
        with torch.enable_grad():
            z = z if z.requires_grad else z.requires_grad_()
            phi = torch.tanh(torch.tanh(z @ W1.T) @ W2.T) @ w3 - 0.5 * (z * z).sum(1)
            return torch.autograd.grad(phi.sum(), z, create_graph=True)[0]

    return batch_jacobian(g, x)


def test_float32_jacobian_of_a_conservative_field_has_no_skew_share():
    # In float32 the Hessian of a potential is symmetric to round-off only: the skew part is ~eps32 ||J||, and
    # its "shares" are noise (before: 0.2 / 0.5 / 0.3-like numbers). They are NaN, and the skew part counts as 0.
    J32 = _potential_hessians(torch.float32)
    Jn = J32.double().numpy()
    rel = np.linalg.norm(Jn - np.swapaxes(Jn, 1, 2), axis=(1, 2)) / 2 / np.linalg.norm(Jn, axis=(1, 2))
    assert np.all(rel > 0) and np.all(rel < 2 * np.finfo(np.float32).eps)  # round-off, not exactly symmetric
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))[0]
    for J in (J32, J32.numpy()):  # a tensor or an array: the dtype sets the tolerance
        out = skew_shares(J, basis, 5)
        for key in ("share_inside", "share_cross", "share_outside", "rel_ratio"):
            assert np.all(np.isnan(out[key])), key
        for key in ("frac_inside", "frac_cross", "frac_outside", "rel_inside", "rel_cross", "rel_outside"):
            assert np.all(out[key] == 0.0), key
        np.testing.assert_allclose(out["skew_norm"], rel * out["jac_norm"], rtol=1e-6)  # still the measured size
    # The same field in float64 is symmetric to float64 round-off: no share either, with the float64 tolerance.
    out64 = skew_shares(_potential_hessians(torch.float64), basis, 5)
    assert np.all(np.isnan(out64["share_inside"]))
    # An explicit tolerance still rules: 1e-12 (the float64 one) on float32 input gives the round-off shares.
    assert np.all(np.isfinite(skew_shares(J32, basis, 5, skew_tol=1e-12)["share_inside"]))
    with pytest.raises(ValueError, match="skew_tol must be >= 0"):
        skew_shares(J32, basis, 5, skew_tol=-1.0)


def test_symmetric_matrix_cast_to_float32_and_the_tolerance_by_dtype():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3, 10, 10))
    S = (A + np.swapaxes(A, 1, 2)).astype(np.float32)
    out = skew_shares(S, np.eye(10), 3)
    assert np.all(np.isnan(out["share_inside"])) and np.all(out["rel_inside"] == 0.0)
    eps32 = np.finfo(np.float32).eps
    assert skew_tolerance(S) == pytest.approx(32 * eps32) == skew_tolerance(torch.from_numpy(S))
    assert skew_tolerance(S.astype(np.float64)) == skew_tolerance(torch.zeros(1, dtype=torch.float64)) == 1e-12
    assert skew_tolerance(np.zeros(3, dtype=np.int64)) == 1e-12  # exact input: the analysis's own floor
    assert skew_tolerance(torch.zeros(1, dtype=torch.float16)) == pytest.approx(32 * 2.0**-10)


@pytest.mark.parametrize("size", [1e-4, 1e-2])
def test_float32_skew_above_round_off_is_reported(size):
    # A genuine skew part of relative size 1e-4 (26x the float32 tolerance) or 1e-2, inside a known 3-dim
    # subspace of R^10: its shares are reported, and correct to float32 accuracy.
    rng = np.random.default_rng(6)
    U, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    sym = U @ np.diag(-np.geomspace(0.5, 50, 10)) @ U.T
    G = rng.standard_normal((3, 3))
    skew = U[:, :3] @ (G - G.T) @ U[:, :3].T
    J = sym + size * np.linalg.norm(sym) / np.linalg.norm(skew) * skew
    out = skew_shares(J[None].astype(np.float32), U, 3)
    assert out["skew_norm"][0] / out["jac_norm"][0] == pytest.approx(size, rel=1e-3)
    assert out["share_inside"][0] == pytest.approx(1.0, abs=1e-4)
    assert out["share_cross"][0] == pytest.approx(0.0, abs=1e-4)


def test_float32_injected_skew_control_recovers_its_known_share(known_subspace):
    # The MNIST-dimension control of above, stored as the pipeline stores Jacobians (float32).
    rng, U, sym, lam = known_subspace
    P = U[:, :K_ON]
    G = np.random.default_rng(8).standard_normal((K_ON, K_ON))
    S = (G - G.T) / np.sqrt(2 * K_ON)
    J32 = (sym + P @ S @ P.T)[None].astype(np.float32)
    known = skew_shares(J32, U, K_ON)
    assert known["share_inside"][0] == pytest.approx(1.0, abs=1e-6)
    expected = np.linalg.norm(S) / np.sqrt(np.sum(lam[:K_ON] ** 2) + np.linalg.norm(S) ** 2)
    assert known["rel_inside"][0] == pytest.approx(expected, rel=1e-4)
    assert np.isnan(known["rel_cross"][0])  # the cross blocks of J are float32 round-off: empty
    # Without the skew part the same float32 control reports no share.
    assert np.isnan(skew_shares(sym[None].astype(np.float32) + 0, U, K_ON)["share_inside"][0])


def test_tangent_curl_tolerance_follows_the_dtype():
    # A conservative field in R^3 in float32: its curl is round-off (non-zero), so no ratio is reported.
    J = _potential_hessians(torch.float32, D=3, n=32)
    normal = _points(32).numpy()
    out = tangent_curl(J, normal)
    assert np.all(out["curl_norm"] > 0)
    assert np.all(np.isnan(out["rel_curl"])) and np.all(out["rel_jac"] == 0.0)
    # A genuine rotation in float32 is reported.
    x = _points().float()
    J = batch_jacobian(lambda z: grad_potential(z) + rotation_about([0.0, 0.0, 1.0], z), x)
    assert np.all(np.isfinite(tangent_curl(J, x.numpy())["rel_curl"]))

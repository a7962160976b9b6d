"""The matrix-free route (geometry.lowrank) against the exact one and against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from score_geometry.geometry.lowrank import JacobianProducts, lowrank_spectrum, slq_quantile, smallest_eigenpairs
from score_geometry.jacobian import score_jacobian
from score_geometry.oracle import GaussianSubspaceOracle, SkewSubspaceOracle
from score_geometry.spectra import analyse_jacobian, local_dimension, overlaps

T = 0.05


class LinearField(torch.nn.Module):
    """g(x, t) = J x: a score field whose Jacobian is a given (D, D) matrix at every point."""

    def __init__(self, J: np.ndarray, shape) -> None:
        super().__init__()
        self.register_buffer("J", torch.as_tensor(J))
        self.shape = tuple(shape)

    def forward(self, x, t):
        return (x.reshape(x.shape[0], -1) @ self.J.T).reshape(x.shape)


class Scaled(torch.nn.Module):
    """A deliberately mis-scaled score: the model's off-manifold floor is c sigma^2 instead of sigma^2."""

    def __init__(self, model, c: float) -> None:
        super().__init__()
        self.model, self.c = model, c

    def forward(self, x, t):
        return self.model(x, t) / self.c


def manifold_like_jacobian(D: int, rank: int, sigma: float, seed: int = 0) -> np.ndarray:
    """-U diag(s) V^T with rank on-manifold singular values (1/s from 3 sigma^2 to 40 sigma^2), a floor that
    slopes (1/s from 0.9 sigma^2 to 1.04 sigma^2, as learned floors do) and U != V (a skew part)."""
    rng = np.random.default_rng(seed)
    inv = np.concatenate([np.geomspace(40, 3, rank), np.sort(rng.uniform(0.9, 1.04, D - rank))[::-1]]) * sigma**2
    V = np.linalg.qr(rng.standard_normal((D, D)))[0]
    R = np.linalg.qr(rng.standard_normal((D, D)) * 0.15 + np.eye(D))[0]  # a rotation near the identity
    return -(V @ R) @ np.diag(1.0 / inv) @ V.T


def test_lowrank_matches_the_exact_route_on_a_field_with_a_sloped_floor():
    """D = 784: every r_t (both floors, the kappa sweep), the computed singular values, cos(u_i, v_i), Phi_n, the
    floor (within 1 % and its error bar) and the skew share inside (within its error bar) are the exact route's."""
    D, rank, sigma = 784, 40, 0.3
    J = manifold_like_jacobian(D, rank, sigma)
    field = LinearField(J, (1, 28, 28))
    x = torch.zeros(1, 28, 28, dtype=torch.float64)
    low = lowrank_spectrum(field, x, T, sigma, 0.1, kappas=[0.05, 0.2], seed=1)
    ex = analyse_jacobian(J, sigma, 0.1)
    assert not low.capped and rank < low.rank < D // 2
    assert low.local_dim == ex.local_dim == rank
    # the own floor is estimated (SLQ), so its r_t is exact up to the ranks inside the floor's error bar
    c_lo, c_hi = low.floor_ratio - 2 * low.floor_ratio_se, low.floor_ratio + 2 * low.floor_ratio_se
    for kappa in (0.05, 0.1, 0.2):
        ex_k = analyse_jacobian(J, sigma, kappa)
        paper, own = low.sweep[kappa]
        assert paper == ex_k.local_dim
        band = sorted(local_dimension(ex.singular_values, sigma * math.sqrt(c), kappa) for c in (c_lo, c_hi))
        # (the own floor's threshold sits in the dense bulk, so the floor's ~0.3 % error moves it by several ranks:
        # what is checked is that the error bar says so, not that the ranks agree; the paper's r_t must)
        assert band[0] <= own <= band[1] and band[0] <= ex_k.local_dim_own_floor <= band[1], (kappa, own, band)
    assert low.floor_ratio_se < 0.005
    assert low.asymmetry == pytest.approx(ex.asymmetry, rel=0.15) and ex.asymmetry > 0.1  # (Hutchinson, 64 probes)
    assert low.converged
    k = low.rank
    np.testing.assert_allclose(low.singular_values, ex.singular_values[:k], rtol=1e-9)
    np.testing.assert_allclose(low.cos_uv[:rank], ex.cos_uv[:rank], atol=1e-6)
    phi_low, phi_ex = low.overlaps(), overlaps(ex)
    for key in ("uv", "uw", "vw"):
        np.testing.assert_allclose(phi_low[key][:rank], phi_ex[key][:rank], atol=1e-6)
    assert low.residual_uv.max() < 1e-8 and low.residual_w.max() < 1e-6
    assert abs(low.floor_ratio / ex.floor_ratio - 1) < 0.01
    assert abs(low.floor_ratio - ex.floor_ratio) <= 4 * low.floor_ratio_se + 1e-3
    assert abs(low.skew_share_inside - ex.skew_share_inside) <= 4 * low.skew_share_inside_se
    assert low.eig_min == pytest.approx(ex.eigvals.min(), rel=1e-3)
    assert low.eig_max == pytest.approx(ex.eigvals.max(), rel=1e-3, abs=1e-6)
    # k = 338 = 0.43 D here (the own floor at kappa = 0.05 reaches into the sloped bulk): where half the spectrum
    # is asked for, the matrix-free route costs ~19 D network passes (a regression guard, not a goal)
    assert low.n_products < 24 * D


def test_own_floor_returns_the_true_rank_of_a_mis_scaled_oracle_where_the_papers_r_t_does_not():
    """The control of issue 22 through the matrix-free route: a score 1/1.3 of the true one has its floor at
    1.3 sigma^2; the own-floor r_t is the data's rank, the paper's is capped (every off-manifold rank counts)."""
    D, K = 3 * 32 * 32, 12
    orc = GaussianSubspaceOracle.random(D, K, variances=torch.linspace(0.5, 2.0, K), data_shape=(3, 32, 32), seed=3)
    sigma = float(orc.sigma(T))
    x = orc.perturb(orc.sample(1, generator=torch.Generator().manual_seed(0)), T)[0]
    low = lowrank_spectrum(Scaled(orc, 1.3), x, T, sigma, 0.1, k_max=48, seed=0)
    assert low.floor_ratio == pytest.approx(1.3, rel=1e-6)
    assert low.local_dim_own_floor == orc.local_dim(T) == K
    assert low.capped and low.local_dim == low.rank == 48  # a lower bound, flagged: not the rank
    exact = lowrank_spectrum(orc, x, T, sigma, 0.1, seed=0)
    assert not exact.capped and exact.local_dim == exact.local_dim_own_floor == K


@pytest.mark.parametrize("shape", [(3, 64, 64)])
def test_gaussian_oracle_at_d_12288_is_recovered_exactly(shape):
    """r_t exact, singular values in closed form, and the on-manifold subspace within 1e-3 rad, at D = 12,288."""
    D, K = math.prod(shape), 16
    orc = GaussianSubspaceOracle.random(D, K, variances=torch.logspace(math.log10(0.2), math.log10(4.0), K), data_shape=shape, seed=5)
    sigma, alpha = float(orc.sigma(T)), float(orc.alpha(T))
    x = orc.perturb(orc.sample(1, generator=torch.Generator().manual_seed(1)), T)[0]
    low = lowrank_spectrum(orc, x, T, sigma, 0.1, seed=0)
    assert low.local_dim == orc.local_dim(T) == K and not low.capped
    expected = np.sort(1.0 / (alpha**2 * orc.variances.numpy() + sigma**2))
    np.testing.assert_allclose(low.singular_values[:K], expected, rtol=1e-8)
    cosines = np.linalg.svd(orc.basis.numpy().T @ low.v[:, :K], compute_uv=False)
    assert np.arccos(np.clip(cosines.min(), -1, 1)) < 1e-3
    assert low.floor_ratio == pytest.approx(1.0, rel=1e-6)


def test_the_skew_share_of_a_field_skew_only_inside_its_subspace_is_one():
    D, K = 3 * 16 * 16, 10
    orc = SkewSubspaceOracle.random(D, K, variances=torch.linspace(0.5, 2.0, K), data_shape=(3, 16, 16),
                                    strength=2.0, seed=2)
    sigma = float(orc.sigma(T))
    x = orc.perturb(orc.sample(1, generator=torch.Generator().manual_seed(2)), T)[0]
    low = lowrank_spectrum(orc, x, T, sigma, 0.1, seed=0)
    assert low.local_dim == K
    assert abs(low.skew_share_inside - 1.0) <= 4 * low.skew_share_inside_se and low.skew_share_inside_se < 0.12
    exact = analyse_jacobian(orc.jacobian(T), sigma, 0.1)
    assert exact.skew_share_inside == pytest.approx(1.0, abs=1e-9)
    assert low.asymmetry == pytest.approx(exact.asymmetry, rel=0.25)
    sym = lowrank_spectrum(GaussianSubspaceOracle.random(D, K, data_shape=(3, 16, 16), seed=2), x, T, sigma)
    assert math.isnan(sym.skew_share_inside)  # symmetric to round-off: undefined, not 0


def _small_unet():
    from score_geometry.unet import UNet

    torch.manual_seed(0)
    net = UNet((8, 16, 16), num_res_blocks=1, in_channels=1).eval()
    with torch.no_grad():
        for p in net.parameters():  # the zero-initialised output convolutions get weights, so J is not trivial
            if p.abs().max() == 0:
                p.normal_(0.0, 0.05)
    return net


def test_products_of_a_network_match_its_exact_jacobian_in_both_modes():
    net = _small_unet()
    x = torch.randn(1, 12, 12, generator=torch.Generator().manual_seed(0))
    J = score_jacobian(net, x[None], T)[0].double().numpy()
    V = np.random.default_rng(0).standard_normal((144, 5))
    for mode in ("forward", "double_backward", "auto"):
        ops = JacobianProducts(net, x, T, batch=3, products=mode)
        np.testing.assert_allclose(ops.jv(V), J @ V, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ops.jtu(V), J.T @ V, rtol=1e-4, atol=1e-5)
        assert ops.n_products == 10
    with pytest.raises(ValueError, match="products must be one of"):
        JacobianProducts(net, x, T, products="central")


def test_lowrank_on_a_network_finds_the_exact_routes_small_end():
    """A float32 U-Net at D = 144, sigma put between its 10th and 11th singular values: r_t = 10 both ways."""
    net = _small_unet()
    x = torch.randn(1, 12, 12, generator=torch.Generator().manual_seed(1))
    J = score_jacobian(net, x[None], T)[0]
    s = np.linalg.svd(J.double().numpy(), compute_uv=False)[::-1]
    sigma = 1.0 / math.sqrt(1.1 * math.sqrt(s[9] * s[10]))
    ex = analyse_jacobian(J, sigma, 0.1)
    low = lowrank_spectrum(net, x, T, sigma, 0.1, tol=1e-5, seed=0)
    assert ex.local_dim == low.local_dim == 10
    np.testing.assert_allclose(low.singular_values[:10], ex.singular_values[:10], rtol=1e-4)
    np.testing.assert_allclose(overlaps(ex)["uv"][:10], low.overlaps()["uv"][:10], atol=1e-3)


def test_the_eigensolver_and_the_quadrature_on_a_known_operator():
    rng = np.random.default_rng(0)
    D = 300
    lam = np.sort(rng.uniform(1.0, 2.0, D))
    lam[:7] = np.linspace(0.01, 0.3, 7)
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    M = Q @ np.diag(lam) @ Q.T
    got, V, res, capped, converged = smallest_eigenpairs(lambda B: M @ B, D, lambda l: int(np.sum(l < 0.5)) + 1, k0=4)
    assert converged and not capped and got.shape == (8,) and res.max() <= 1e-6
    np.testing.assert_allclose(got, lam[:8], rtol=1e-8)
    assert smallest_eigenpairs(lambda B: M @ B, D, lambda l: 50, k0=4, k_max=20).capped
    with pytest.warns(RuntimeWarning, match="not converged after 1 cycles"):
        assert not smallest_eigenpairs(lambda B: M @ B, D, lambda l: 8, k0=4, depth=1, max_restarts=1).converged
    # a witness just above the threshold (0.3 + 5e-4 against 0.3) is certified there: its residual must be below
    # the margin, far tighter than witness_tol alone asks
    lam2 = lam.copy()
    lam2[6] = 0.3005
    M2 = Q @ np.diag(np.sort(lam2)) @ Q.T
    out = smallest_eigenpairs(lambda B: M2 @ B, D, lambda l: (int(np.sum(l <= 0.3)) + 1, 0.3), k0=4,
                              witness_tol=0.05)
    assert out.values.shape == (7,) and out.values[-1] - out.residual[-1] * 2.0 * 1.01 > 0.3  # (c <= 1.01 max lam)
    assert out.values[-1] == pytest.approx(0.3005, abs=2e-4)
    q, se = slq_quantile(lambda B: M @ B, D, 0.75, probes=32)
    assert abs(q - np.quantile(lam, 0.75)) <= max(4 * se, 0.01)


def _oracle_spectra(n_img=2, times=(0.05, 0.3), kappas=(0.2,), skew=False):
    """Matrix-free spectra of a 3 x 16 x 16 oracle at n_img points x times, with the oracle."""
    D, K = 3 * 16 * 16, 6
    cls = SkewSubspaceOracle if skew else GaussianSubspaceOracle
    kw = {"strength": 2.0} if skew else {}
    orc = cls.random(D, K, variances=torch.linspace(0.5, 2.0, K), data_shape=(3, 16, 16), seed=4, **kw)
    x0 = orc.sample(n_img, generator=torch.Generator().manual_seed(0))
    spectra = []
    for i in range(n_img):
        row = []
        for t in times:
            x = orc.perturb(x0[i:i + 1], t)[0]
            row.append(lowrank_spectrum(orc, x, t, float(orc.sigma(t)), 0.1, kappas=kappas, k0=8, probes=4,
                                        slq_steps=20, skew_probes=16, seed=i))
        spectra.append(row)
    return orc, spectra


def test_packed_spectra_read_back_to_the_same_tables():
    """What the Jacobian stage stores on the matrix-free route (k triplets and eigenpairs per point, padded to the
    block's largest k) gives the tables of the spectra it came from, through the stage's dispatch
    (`analyse_shard`)."""
    from score_geometry.analysis import analyse_lowrank, analyse_shard
    from score_geometry.geometry.lowrank import is_packed, pack_spectra, unpack_spectra

    orc, spectra = _oracle_spectra(skew=True)
    packed = pack_spectra(spectra)
    assert is_packed(packed) and not is_packed({"J": None})
    assert packed["u"].dtype == np.float32 and packed["u"].shape[:3] == (2, 2, 768)
    back = unpack_spectra(packed)
    for row, row_back in zip(spectra, back):
        for s, b in zip(row, row_back):
            assert b.rank == s.rank and b.sweep == s.sweep and b.capped == s.capped
            np.testing.assert_array_equal(b.singular_values, s.singular_values)
            np.testing.assert_allclose(b.u, s.u, atol=1e-7)
            assert b.skew_share_inside_at(b.local_dim) == pytest.approx(s.skew_share_inside, rel=1e-6)
    meta = {"images": np.array([3, 5]), "t": np.array([0.05, 0.3]), "sigma": np.array([s.sigma for s in spectra[0]])}
    via_stage = analyse_shard(packed | meta, labels=[1, 2], run="r", kappa=0.1, kappa_sweep=[0.0, 0.1, 0.2])
    direct = analyse_lowrank(spectra, images=[3, 5], labels=[1, 2], t=[0.05, 0.3], run="r")
    for name in ("spectra", "local_dims", "overlaps", "diagnostics"):
        got, want = getattr(via_stage, name), getattr(direct, name)
        numeric = want.select_dtypes("number").columns
        np.testing.assert_allclose(got[numeric].to_numpy(float), want[numeric].to_numpy(float), rtol=1e-6,
                                   atol=1e-6, equal_nan=True, err_msg=name)
    d = via_stage.diagnostics
    assert (d["route"] == "lowrank").all() and (d["dim"] == 768).all()
    exact = {t: analyse_jacobian(orc.jacobian(t), float(orc.sigma(t)), 0.1).local_dim for t in (0.05, 0.3)}
    assert d["local_dim"].tolist() == [exact[t] for t in d["t"]] and exact[0.05] == 6
    assert sorted(via_stage.local_dims["kappa"].unique()) == [0.1, 0.2]  # the kappas the stage computed
    # the skew share is there at every r of every definition, not only the headline one
    assert via_stage.local_dims["skew_share_inside_own_floor"].notna().all()
    assert via_stage.features.shape == (2, 2, 7, 768) and np.isfinite(via_stage.features).all()
    for kappa, sweep in ((0.05, []), (0.2, []), (0.1, [0.5])):  # not computed at that kappa, or not that sweep
        with pytest.raises(ValueError, match="recompute them"):
            analyse_shard(packed | meta, labels=[1, 2], run="r", kappa=kappa, kappa_sweep=sweep)
    assert spectra[0][0].skew_share_inside_at(0) == 0.0  # r_t = 0: no share inside, as the exact route's


def test_claims_that_need_the_full_spectrum_are_not_measurable_on_the_matrix_free_route():
    """A run analysed matrix-free: the claims that read every rank (or the top of the spectrum, or the skew splits
    of the full bases) say so instead of failing on NaN; the rest are judged; r_t capped at k_max is noted."""
    from score_geometry.analysis import analyse_lowrank
    from score_geometry.claims import CLAIMS, NEEDS_FULL_SPECTRUM, NOT_MEASURABLE, RunTables, claims_table

    orc, spectra = _oracle_spectra(times=(0.05, 0.1, 0.3))
    for s in (s for row in spectra for s in row):  # u_+, v_+ (Fig. 2) in the off-manifold cluster at 1/sigma^2
        assert s.s_max == pytest.approx(1.0 / s.sigma**2, rel=1e-6)
        assert np.linalg.norm(orc.basis.numpy().T @ s.v_plus) < 1e-3 and abs(s.u_plus @ s.v_plus) > 1 - 1e-6
    shard = analyse_lowrank(spectra, images=[0, 1], labels=[0, 0], t=[0.05, 0.1, 0.3], run="r")
    r = RunTables(diagnostics=shard.diagnostics, overlaps=shard.overlaps, spectra=shard.spectra,
                  parameterisation="oracle", local_dims=shard.local_dims, features=shard.features,
                  feature_images=np.array([0, 1]), feature_t=np.array([0.05, 0.1, 0.3]))
    table = claims_table(r, kappa_sweep=[0.1, 0.2]).set_index("id")
    full = {c.id for c in CLAIMS if c.full_spectrum}
    assert full == {"floor_lower_bound", "cos_minus_one_high_ranks", "misalignment_rank", "non_conservative_within_w",
                    "non_conservative_within_relative", "non_conservative_within_relative_w"}
    assert (table.loc[sorted(full), "verdict"] == NOT_MEASURABLE).all()
    assert (table.loc[sorted(full), "detail"] == NEEDS_FULL_SPECTRUM).all()
    # measured on the computed part: the oracle's calibrated floor, its PSD denoiser, a symmetric J's u = v
    assert table.loc["calibration", "verdict"] == "holds" and table.loc["denoiser_psd", "verdict"] == "holds"
    assert table.loc["uv_misaligned_low_ranks", "verdict"] == "fails"  # cos(u_i, v_i) = 1 for a symmetric J
    assert table.loc["w_misaligned", "verdict"] == "fails" and table.loc["off_manifold_background", "verdict"] == (
        NOT_MEASURABLE)  # (no samples' strokes here)
    capped = shard.diagnostics.assign(capped=True)
    note = claims_table(RunTables(diagnostics=capped, overlaps=shard.overlaps, spectra=shard.spectra,
                                  parameterisation="oracle")).set_index("id").loc["r_t_grows", "note"]
    assert "capped at jacobian.k_max" in note and "on 6 of 6 Jacobians" in note


def test_eigenpairs_of_a_field_with_as_many_expanding_as_contracting_directions():
    """J~ with half its eigenvalues positive (an untrained net's kind): the smallest |lambda| are not among a few
    largest algebraic ones, so they come from J~^2; they are the exact route's."""
    D, rank, sigma = 400, 8, 0.3
    rng = np.random.default_rng(3)
    inv = np.concatenate([np.geomspace(40, 3, rank), rng.uniform(0.9, 1.04, D - rank)]) * sigma**2
    lam = rng.choice([-1.0, 1.0], D) / inv
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    J = Q @ np.diag(lam) @ Q.T
    low = lowrank_spectrum(LinearField(J, (1, 20, 20)), torch.zeros(1, 20, 20, dtype=torch.float64), T, sigma, 0.1,
                           seed=0)
    ex = analyse_jacobian(J, sigma, 0.1)
    assert low.local_dim == ex.local_dim == rank and low.converged
    np.testing.assert_allclose(low.eigvals[:rank], ex.eigvals[:rank], rtol=1e-8)
    np.testing.assert_allclose(low.overlaps()["uw"][:rank], overlaps(ex)["uw"][:rank], atol=1e-6)

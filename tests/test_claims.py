"""The claims table on controls whose verdicts are known in closed form (score_geometry.claims)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from score_geometry.analysis import analyse_jacobians, calibration_tables
from score_geometry.claims import (CLAIMS, FAILS, HOLDS, NOT_MEASURABLE, RunTables, claims_markdown, claims_table,
                                   vae_converged)
from score_geometry.oracle import GaussianSubspaceOracle, SkewSubspaceOracle

T = [0.01, 0.05, 0.3]
# variances spread over three decades, so the oracle's r_t (alpha^2 lambda >= kappa sigma^2) falls with t
VARIANCES = [4.0, 1.0, 0.1, 0.01, 0.001]


def _tables(oracle, *, gain: float = 1.0, n: int = 3, parameterisation: str = "oracle") -> RunTables:
    """Analyse the oracle's exact Jacobians (constant in x) for `n` images, the model's gain scaled by `gain`."""
    J = np.stack([np.stack([gain * oracle.jacobian(t).numpy() for t in T])] * n)  # (n, T, D, D)
    sigma = [float(oracle.sigma(t)) for t in T]
    res = analyse_jacobians(J, images=list(range(n)), labels=[0] * n, t=T, sigma=sigma, run="r", kappa=0.1,
                            kappa_sweep=[0.1], progress=False)
    cal = calibration_tables(model=res.diagnostics.assign(source="model_samples"),
                             heldout=res.diagnostics.assign(source="heldout_noisy"))[1]
    return RunTables(diagnostics=res.diagnostics, overlaps=res.overlaps, spectra=res.spectra,
                     parameterisation=parameterisation, calibration=cal, features=res.features,
                     feature_images=np.arange(n), feature_t=np.asarray(T))


def _verdicts(r: RunTables) -> dict[str, str]:
    return claims_table(r).set_index("id")["verdict"].to_dict()


@pytest.fixture(scope="module")
def gaussian():
    return GaussianSubspaceOracle.random(64, 5, variances=VARIANCES, data_shape=(1, 8, 8), seed=1)


def test_gaussian_oracle_verdicts_are_the_closed_forms(gaussian):
    r = _tables(gaussian)
    table = claims_table(r)
    assert len(table) == len(CLAIMS) >= 10 and table["id"].is_unique
    v = table.set_index("id")["verdict"].to_dict()
    # r_t = #{alpha_t^2 lambda_i >= kappa sigma_t^2}: falls with t here, the same for every image (no spread)
    expected_r = [gaussian.local_dim(t, 0.1) for t in T]
    assert expected_r[0] > expected_r[-1] and sorted(expected_r, reverse=True) == expected_r
    assert (r.diagnostics.groupby("t")["local_dim"].median().to_numpy() == expected_r).all()
    assert v["calibration"] == HOLDS  # every off-manifold 1/s_i is sigma_t^2 exactly
    assert v["r_t_grows"] == HOLDS
    assert v["r_t_spreads"] == FAILS  # the Jacobian is constant in x: IQR 0 at every t
    assert v["floor_lower_bound"] == HOLDS  # 1/s_i = alpha^2 lambda_i + sigma^2 >= sigma^2
    assert v["cos_minus_one_high_ranks"] == HOLDS  # J symmetric negative definite: u_i = -v_i at every rank
    assert v["uv_misaligned_low_ranks"] == FAILS and v["misalignment_rank"] == FAILS
    assert v["overlap_uv"] == v["overlap_uw"] == v["overlap_vw"] == HOLDS  # Phi = 1: the same subspace
    assert v["w_misaligned"] == FAILS  # eigenvectors are the singular vectors
    assert v["denoiser_psd"] == HOLDS  # I + sigma^2 J = (alpha^2/sigma^2) Cov[x0|x_t]
    assert v["non_conservative_within"] == FAILS  # H = 0
    for absent in ("off_manifold_background", "toy_tangent_skew", "vae_below_r_t"):
        assert v[absent] == NOT_MEASURABLE
    assert (table["origin"] == "closed form (oracle)").all()
    vals = table.set_index("id")["value"]
    assert vals["calibration"] == pytest.approx(1.0) and vals["overlap_uv"] == pytest.approx(1.0, abs=1e-6)
    assert vals["cos_minus_one_high_ranks"] == pytest.approx(-1.0, abs=1e-6)
    assert vals["misalignment_rank"] == 1


def test_skew_inside_the_manifold_is_found():
    """The Gaussian score plus a rotation inside its 5-dim subspace (variances large enough that r_t = 5 at every
    t): all of H lies within the first r_t directions."""
    skew = SkewSubspaceOracle.random(64, 5, variances=[4.0, 3.0, 2.0, 1.5, 1.0], strength=0.3, seed=4)
    r = _tables(skew)
    assert (r.diagnostics["local_dim"] == 5).all()
    v = _verdicts(r)
    assert v["non_conservative_within"] == HOLDS  # all of H = A lies in the data subspace
    assert v["calibration"] == HOLDS and v["cos_minus_one_high_ranks"] == HOLDS and v["floor_lower_bound"] == HOLDS


def test_miscalibrated_gain_makes_r_t_claims_unmeasurable(gaussian):
    """A gain 20 % low puts every off-manifold 1/s_i at 1.2 sigma_t^2, above the (1 + kappa) threshold: r_t then
    counts training error, so every claim that uses r_t is 'not measurable here', the others still judged."""
    table = claims_table(_tables(gaussian, gain=1 / 1.2)).set_index("id")
    assert table.loc["calibration", "verdict"] == FAILS
    assert table.loc["calibration", "value"] == pytest.approx(1.2)
    uses_r = {c.id for c in CLAIMS if c.uses_r_t}
    assert {"r_t_grows", "overlap_uv", "uv_misaligned_low_ranks"} <= uses_r
    assert (table.loc[sorted(uses_r), "verdict"] == NOT_MEASURABLE).all()
    assert table.loc["r_t_grows", "note"].startswith("calibration outside")
    assert table.loc["floor_lower_bound", "verdict"] == HOLDS and table.loc["denoiser_psd", "verdict"] == HOLDS


def test_origin_says_what_x0_builds_in(gaussian):
    table = claims_table(_tables(gaussian, parameterisation="x0")).set_index("id")
    assert table.loc["floor_lower_bound", "origin"] == "structural under x₀"
    assert table.loc["overlap_uv", "origin"] == "learned"
    assert (claims_table(_tables(gaussian, parameterisation="eps"))["origin"] == "learned").all()


def test_off_manifold_background_share(gaussian):
    """u+ and v+ all on the background pixels -> ratio 1/f_bg >= 0.9; all on the stroke -> 0."""
    r = _tables(gaussian)
    D = r.features.shape[-1]
    stroke = np.zeros((3, D), dtype=bool)
    stroke[:, :16] = True
    feats = r.features.copy()
    feats[..., 4, :] = 0  # u_plus, v_plus: FEATURE_NAMES indices 4 and 5
    feats[..., 5, :] = 0
    feats[..., 4, 20] = feats[..., 5, 30] = 1.0  # off the stroke
    off = claims_table(RunTables(**{**r.__dict__, "features": feats, "stroke": stroke})).set_index("id")
    assert off.loc["off_manifold_background", "verdict"] == HOLDS
    assert off.loc["off_manifold_background", "value"] == pytest.approx(D / (D - 16))
    feats[..., 4, :] = feats[..., 5, :] = 0
    feats[..., 4, 3] = feats[..., 5, 5] = 1.0  # on the stroke
    on = claims_table(RunTables(**{**r.__dict__, "features": feats, "stroke": stroke})).set_index("id")
    assert on.loc["off_manifold_background", "verdict"] == FAILS and on.loc["off_manifold_background", "value"] == 0


def _epochs(n, *, gamma, mse, dims):
    return [{"gamma": gamma, "mse": mse, "active_dims": dims(k)} for k in range(n)]


def test_vae_row_needs_a_converged_vae(gaussian):
    r = _tables(gaussian)
    dims = pd.DataFrame({"condition": "clean", "dataset": "heldout", "local_dim": [1.0, 2.0, 1.0]})

    def verdict(records):
        row = claims_table(RunTables(**{**r.__dict__, "vae_dims": dims, "vae_metrics": records})).set_index("id")
        return row.loc["vae_below_r_t", "verdict"], row.loc["vae_below_r_t", "detail"]

    steady = lambda k: 12.0  # noqa: E731
    # an untrained VAE: gamma = 1 and MSE ~ 1 agree, but one epoch proves nothing
    assert verdict(_epochs(1, gamma=1.0, mse=0.99, dims=steady))[0] == NOT_MEASURABLE
    # gamma lagging sqrt(MSE) (what 20 epochs of Adam at lr 1e-3 give)
    v, detail = verdict(_epochs(20, gamma=0.26, mse=0.085**2, dims=steady))
    assert v == NOT_MEASURABLE and "not within 10%" in detail
    # the count still growing
    v, detail = verdict(_epochs(20, gamma=0.085, mse=0.085**2, dims=lambda k: 10.0 + 3 * k))
    assert v == NOT_MEASURABLE and "still moving" in detail
    assert verdict(_epochs(20, gamma=0.085, mse=0.085**2, dims=steady))[0] == HOLDS  # 1 <= 0.5 x r_t(0.01) = 2.5
    assert vae_converged(_epochs(20, gamma=0.085, mse=0.085**2, dims=steady))[0]


def test_markdown_counts_the_verdicts(gaussian):
    md = claims_markdown(claims_table(_tables(gaussian)), run="oracle")
    assert md.startswith("# Claims of the paper, run `oracle`") and "| id " in md
    assert "8 holds, 5 fails, 3 not measurable here" in md


def test_misalignment_rank_tolerates_a_stray_top_rank(gaussian):
    """A misaligned block of 10 low ranks, then anti-aligned ranks except an expanding direction at the top rank
    (cos +1): k_t = 11, and the verdict holds; with no misaligned block k_t = 1 and it fails."""
    r = _tables(gaussian)
    D = int(r.spectra["rank"].max())
    cos = np.where(r.spectra["rank"] <= 10, 0.1, -1.0)
    cos[r.spectra["rank"].to_numpy() == D] = 1.0
    row = claims_table(RunTables(**{**r.__dict__, "spectra": r.spectra.assign(cos_uv=cos)})).set_index("id")
    assert row.loc["misalignment_rank", "value"] == 11 and row.loc["misalignment_rank", "verdict"] == HOLDS
    aligned = np.where(r.spectra["rank"].to_numpy() == D, 1.0, -1.0)
    row = claims_table(RunTables(**{**r.__dict__, "spectra": r.spectra.assign(cos_uv=aligned)})).set_index("id")
    assert row.loc["misalignment_rank", "value"] == 1 and row.loc["misalignment_rank", "verdict"] == FAILS

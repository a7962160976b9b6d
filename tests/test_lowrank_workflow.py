"""The matrix-free route through the workflow (jacobian.route: lowrank): the tiny chain on 3 x 64 x 64 blobs
(D = 12,288) with the closed-form Gaussian oracle as the score model, so what the Jacobian stages store and what
the tables, claims and figures say can be checked against the oracle's own numbers."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import copy_workflow, run_snakemake
from score_geometry.claims import CLAIMS, NEEDS_FULL_SPECTRUM, NOT_MEASURABLE
from score_geometry.models import expected_local_dim
from score_geometry.sde import VPSDE

pytestmark = pytest.mark.slow

RUN, D = "tiny_lowrank", 3 * 64 * 64
PRESETS = ("--configfile", "presets/tiny.yaml", "presets/tiny_lowrank.yaml")


#: What the route changes, and what reads it: the Jacobian stages, the tables, the calibration, the claims and the
#: spectra's figures (the estimators, the toy's and the VAE's own figures do not read the Jacobians).
TARGETS = tuple(f"results/{RUN}/{name}" for name in (
    "stats/summary.csv", "stats/calibration_summary.csv", "stats/claims.csv", "figures/fig2_features.png",
    "figures/fig3_spectrum.png", "figures/fig3_cosines.png", "figures/fig4_overlaps.png"))


@pytest.fixture(scope="module")
def lowrank_run(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("lowrank_run"))
    proc = run_snakemake(wd, "--cores", "2", *TARGETS, *PRESETS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return wd


def test_the_jacobian_stages_store_k_triplets_not_d_by_d_matrices(lowrank_run):
    out = lowrank_run / "results" / RUN
    k_max = yaml.safe_load((lowrank_run / "presets/tiny_lowrank.yaml").read_text())["jacobian"]["k_max"]
    for name in ("shard_0.h5", "heldout.h5"):
        path = out / "jacobians" / name
        with h5py.File(path) as f:
            assert "J" not in f and f.attrs["route"] == "lowrank"
            n, T, dim, k = f["u"].shape
            assert dim == D and k <= k_max and f["v"].shape == f["w"].shape == f["u"].shape
            assert f["u_plus"].shape == (n, T, D) and f["lowrank_k"][()].max() == k
        # O(k D) per point: a 12,288 x 12,288 float32 Jacobian alone would be 604 MB
        assert path.stat().st_size < 3 * k * D * 4 * n * T + 1_000_000


def test_the_tables_give_the_oracles_closed_form(lowrank_run):
    out = lowrank_run / "results" / RUN
    checkpoint = torch.load(out / "model/model.pt", weights_only=False)
    d = pd.read_parquet(out / "stats/diagnostics.parquet")
    assert (d["route"] == "lowrank").all() and (d["dim"] == D).all() and len(d) == 2 * 2
    assert not d["capped"].any() and d["converged"].all()
    expected = d["t"].map(lambda t: expected_local_dim(checkpoint, t, kappa=0.1))
    assert (d["local_dim"] == expected).all() and (expected == 8).all()
    assert (d["local_dim_own_floor"] == expected).all()
    np.testing.assert_allclose(d["calibration_ratio"], 1.0, rtol=1e-6)  # the oracle's floor is sigma_t^2 exactly
    # the computed singular values: 1 / (alpha^2 lambda_i + sigma^2) on the oracle's subspace
    sde, lam = VPSDE(**checkpoint["config"]["sde"]), np.asarray(checkpoint["state"]["variances"], dtype=float)
    spectra = pd.read_parquet(out / "stats/spectra.parquet")
    assert spectra["rank"].max() < D // 100  # the computed ranks only
    for (image, t), s in spectra.groupby(["image", "t"]):
        alpha, sigma = sde.scales(t)
        want = np.sort(1.0 / (alpha**2 * lam + sigma**2))
        np.testing.assert_allclose(s.sort_values("rank")["singular_value"].to_numpy()[:8], want, rtol=1e-6)
    calibration = pd.read_csv(out / "stats/calibration_summary.csv")
    assert set(calibration["source"]) == {"heldout_noisy", "model_samples"}
    np.testing.assert_allclose(calibration["calibration_ratio"], 1.0, rtol=1e-6)


def test_claims_and_figures_read_the_matrix_free_route(lowrank_run):
    out = lowrank_run / "results" / RUN
    claims = pd.read_csv(out / "stats/claims.csv").set_index("id")
    full = sorted(c.id for c in CLAIMS if c.full_spectrum)
    assert (claims.loc[full, "verdict"] == NOT_MEASURABLE).all() and (claims.loc[full, "detail"] == NEEDS_FULL_SPECTRUM).all()
    assert claims.loc["calibration", "verdict"] == "holds" and claims.loc["denoiser_psd", "verdict"] == "holds"
    for pair in ("uv", "uw", "vw"):  # a symmetric J: its singular and eigen-subspaces coincide
        assert claims.loc[f"overlap_{pair}", "verdict"] == "holds"
    for name in ("fig2_features", "fig3_spectrum", "fig3_cosines", "fig4_overlaps"):
        assert (out / f"figures/{name}.png").stat().st_size > 0


def test_the_route_decides_which_config_keys_recompute_the_jacobians(lowrank_run, tiny_run):
    """kappa is a parameter of the matrix-free stage (it grows k until r_t at kappa is crossed), not of the exact
    route's Jacobians; k_max only of the matrix-free one; the exact route's params do not name the route (a run
    made before it existed, or with route exact instead of auto, recomputes nothing)."""
    def jobs(proc):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return set(re.findall(r"^rule (compute_\w*jacobians):", proc.stdout, re.M))

    (lowrank_run / "kappa.yaml").write_text(yaml.safe_dump({"analysis": {"kappa": 0.2}}))
    assert jobs(run_snakemake(lowrank_run, "-n", "--cores", "1", *PRESETS, "kappa.yaml")) == {
        "compute_jacobians", "compute_heldout_jacobians"}
    overlays = (({"analysis": {"kappa": 0.2}}, True), ({"jacobian": {"k_max": 64}}, False),
                ({"jacobian": {"route": "exact"}}, False))  # exact, as auto picks at D = 784: the same params
    for overlay, reruns_analysis in overlays:
        (tiny_run / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        proc = run_snakemake(tiny_run, "-n", "--cores", "1", "--configfile", "presets/tiny.yaml", "overlay.yaml")
        assert not jobs(proc), (overlay, proc.stdout)  # the exact route's Jacobians stay
        assert bool(re.search(r"^rule analyse_spectra:", proc.stdout, re.M)) == reruns_analysis, (overlay, proc.stdout)

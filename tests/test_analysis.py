"""From Jacobians to tables: closed-form checks with the Gaussian oracles, and the stage helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from score_geometry.analysis import (FEATURE_NAMES, analyse_jacobians, calibration_ratio, calibration_tables,
                                     high_rank_floor_share)
from score_geometry.models import expected_local_dim, pca_oracle_checkpoint, score_fn_from_checkpoint
from score_geometry.oracle import GaussianSubspaceOracle, SkewSubspaceOracle
from score_geometry.stages import jacobians_at_times, memory_format, model_jacobians, noisy_heldout, shard_images
from score_geometry.sde import VPSDE

T = [0.01, 0.3]


def _oracle_jacobians(oracle, n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x0 = oracle.sample(n, generator=gen)
    x_t = np.stack([oracle.perturb(x0, t, generator=gen).numpy() for t in T], axis=1)  # (n, T, *S)
    return jacobians_at_times(lambda x, t: oracle(x, t), x_t, T, dtype=torch.float64, progress=False)


def _five_dim_oracle():
    """A rank-5 Gaussian oracle in R^64 and the analysis of two of its noisy samples at each t in T."""
    oracle = GaussianSubspaceOracle.random(64, 5, variances=[4.0, 3.0, 2.0, 1.5, 1.0], data_shape=(1, 8, 8), seed=1)
    sigma = [float(oracle.sigma(t)) for t in T]
    res = analyse_jacobians(_oracle_jacobians(oracle), images=[10, 11], labels=[3, 4], t=T, sigma=sigma, run="r",
                            kappa=0.1, kappa_sweep=[0.0, 0.1, 1e6], progress=False)
    return oracle, sigma, res


def test_gaussian_oracle_tables():
    k = 5
    oracle, sigma, res = _five_dim_oracle()
    d = res.diagnostics
    assert len(d) == 4 and set(d["image"]) == {10, 11} and set(d["label"]) == {3, 4}
    assert (d["local_dim"] == k).all()  # alpha^2 lambda_min >= kappa sigma^2 at both t
    assert np.allclose(d["calibration_ratio"], 1.0) and np.allclose(d["high_rank_floor_share"], 1.0)
    assert np.allclose(d["asymmetry"], 0, atol=1e-12) and d["skew_share_inside"].isna().all()
    assert np.allclose(d["denoiser_min"], 0, atol=1e-6) and np.allclose(d["trace_diff"], 0, atol=1e-8)
    assert (d["denoiser_frac_negative"] == 0).all() and (d["denoiser_frac_above_one"] == 0).all()
    assert np.allclose(res.spectra["cos_uv"], -1.0, atol=1e-6)
    assert np.allclose(res.overlaps.loc[res.overlaps.pair == "uv", "Phi"], 1.0, atol=1e-6)
    assert len(res.spectra) == 4 * 64 and len(res.overlaps) == 4 * 64 * 3
    ld = res.local_dims.pivot_table(index=["image", "t"], columns="kappa", values="local_dim")
    assert (ld[1e6] == 0).all() and (ld[0.1] == k).all()
    assert res.features.shape == (2, 2, len(FEATURE_NAMES), 64)
    # The table's inverse singular values equal alpha^2 lambda + sigma^2 on-manifold, sigma^2 off it.
    row = res.spectra[(res.spectra.image == 10) & (res.spectra.t == 0.3)]
    expected = np.sort(np.r_[float(oracle.alpha(0.3)) ** 2 * oracle.variances.numpy() + sigma[1] ** 2,
                             np.full(64 - k, sigma[1] ** 2)])[::-1]
    assert np.allclose(row["inverse_singular_value"].to_numpy(), expected, rtol=1e-6)  # J is stored as float32


def test_skew_oracle_skew_lies_inside():
    oracle = SkewSubspaceOracle.random(48, 4, variances=2.0, strength=0.3, seed=2)
    J = _oracle_jacobians(oracle, n=1)
    sigma = [float(oracle.sigma(t)) for t in T]
    d = analyse_jacobians(J, images=[0], labels=[0], t=T, sigma=sigma, run="r", kappa=0.1, kappa_sweep=[0.1],
                          progress=False).diagnostics
    assert (d["local_dim"] == 4).all()
    assert np.allclose(d["skew_share_inside"], 1.0, atol=1e-8)
    assert np.allclose(d["skew_share_outside"], 0.0, atol=1e-8) and np.allclose(d["skew_share_cross"], 0, atol=1e-8)
    assert (d["asymmetry"] > 1e-5).all()  # relative to ||J||, dominated by 1/sigma^2 at small t


def test_calibration_ratio_detects_miscalibration():
    sigma = 0.1
    s = np.r_[np.full(10, 1.0), np.full(90, 1 / sigma**2)]
    assert calibration_ratio(s, sigma) == pytest.approx(1.0)
    assert calibration_ratio(s / 1.2, sigma) == pytest.approx(1.2)  # gain 20% low -> 1/s 20% above the floor
    assert high_rank_floor_share(s / 1.2, sigma) == 0.0 and high_rank_floor_share(s, sigma) == 1.0


@pytest.mark.parametrize("D", [100, 101])
def test_calibration_ratio_uses_exactly_the_top_half_when_half_the_ranks_are_on_the_manifold(D):
    """Half of the ranks on the manifold (1/s_i far above the floor): only the top half (the floor) may enter.
    Taking the bottom half, or every rank, moves the median off the floor; a mean instead of the median is
    pulled by the skewed floor."""
    sigma = 0.2
    n_floor = D - D // 2  # the largest singular values: ranks D//2 .. D-1
    rng = np.random.default_rng(0)
    floor_ratio = np.r_[np.full(n_floor - 5, 1.03), np.full(5, 1.9)]  # median 1.03, mean well above
    inv_s = np.r_[np.linspace(2.0, 60.0, D - n_floor), rng.permutation(floor_ratio)] * sigma**2
    s = np.sort(1.0 / inv_s)  # ascending
    assert calibration_ratio(s, sigma) == pytest.approx(1.03)
    assert high_rank_floor_share(s, sigma) == pytest.approx((n_floor - 5) / n_floor)


def test_calibration_tables():
    rows = lambda src_t: pd.DataFrame({"run": "r", "image": [0, 1], "label": [1, 2], "t": src_t, "sigma": 0.1,  # noqa: E731
                                       "calibration_ratio": [1.0, 1.2], "high_rank_floor_share": 1.0,
                                       "local_dim": [3, 5]})
    table, summary = calibration_tables(model=rows(0.01), heldout=rows(0.01))
    assert set(table["source"]) == {"model_samples", "heldout_noisy"} and len(table) == 4
    assert summary["calibration_ratio"].tolist() == pytest.approx([1.1, 1.1])
    assert summary["local_dim_median"].tolist() == [4, 4]


def test_shard_images_partition():
    parts = [shard_images(10, 3, s) for s in range(3)]
    assert np.concatenate(parts).tolist() == list(range(10)) and [len(p) for p in parts] == [4, 3, 3]
    with pytest.raises(ValueError, match="shard 3"):
        shard_images(10, 3, 3)


def test_model_jacobians_same_for_every_method_and_layout():
    """The `jacobian` config's method/memory_format change speed only: a small random U-Net checkpoint gives the
    same Jacobians (float64) for each, and they match central finite differences of the score."""
    from score_geometry.train import build_model

    torch.manual_seed(0)
    cfg = {"sde": {"beta_min": 0.1, "beta_max": 20.0},
           "model": {"parameterisation": "x0", "channels": [8, 8, 8], "num_res_blocks": 1, "attention": False,
                     "dropout": 0.0, "groups": 4}}
    net = build_model(cfg["model"])
    with torch.no_grad():  # the U-Net zero-initialises its output layers; make the Jacobian non-trivial
        for q in net.parameters():
            q.add_(0.05 * torch.randn_like(q))
    ckpt = {"kind": "unet", "state": {"ema": net.state_dict()}, "config": cfg}
    x_t = np.random.default_rng(0).standard_normal((1, 2, 28, 28)).astype(np.float32)
    t = [0.05, 0.5]
    Js = {(m, f): model_jacobians(ckpt, x_t, t, device="cpu", jacobian={"dtype": "float64", "chunk_size": None,
                                                                          "method": m, "memory_format": f})
          for m, f in (("auto", "auto"), ("vmap", "contiguous"), ("retain", "channels_last"), ("vmap", "channels_last"),
                       ("retain", "contiguous"))}
    ref = Js[("vmap", "contiguous")]
    for J in Js.values():
        np.testing.assert_allclose(J, ref, rtol=0, atol=1e-5 * np.abs(ref).max())  # stored as float32
    score = score_fn_from_checkpoint(ckpt, dtype=torch.float64)
    x = torch.as_tensor(x_t[0, 1], dtype=torch.float64).reshape(1, 1, 28, 28)
    tt = torch.full((1,), 0.5, dtype=torch.float64)
    for j in (0, 300, 783):  # three columns by central differences
        e = torch.zeros(784, dtype=torch.float64)
        e[j] = 1e-6
        col = (score(x + e.view_as(x), tt) - score(x - e.view_as(x), tt)).reshape(-1) / 2e-6
        np.testing.assert_allclose(ref[0, 1][:, j], col.numpy(), rtol=0, atol=1e-6)  # |col| ~ 1
    assert memory_format("auto", "cpu") == torch.channels_last
    assert memory_format("contiguous", "cpu") == torch.contiguous_format
    assert memory_format("auto", "cuda") == torch.contiguous_format
    with pytest.raises(ValueError, match="jacobian.memory_format"):
        memory_format("nhwc", "cpu")


def test_pca_oracle_checkpoint_matches_expected_local_dim():
    gen = torch.Generator().manual_seed(0)
    images = torch.tanh(torch.randn(200, 1, 28, 28, generator=gen) @ torch.randn(28, 28, generator=gen) * 0.1)
    cfg = {"sde": {"beta_min": 0.1, "beta_max": 20.0}, "model": {"oracle_rank": 6}}
    ckpt = pca_oracle_checkpoint(images, cfg)
    assert ckpt["state"]["basis"].shape == (784, 6)
    score = score_fn_from_checkpoint(ckpt, dtype=torch.float64)
    x_t = noisy_heldout(images[:1].numpy(), [0.05], VPSDE(), seed=0)
    J = jacobians_at_times(score, x_t, [0.05], dtype=torch.float64, progress=False)
    d = analyse_jacobians(J, images=[0], labels=[0], t=[0.05], sigma=[float(VPSDE().sigma(torch.tensor(0.05)))],
                          run="r", kappa=0.1, kappa_sweep=[0.1], progress=False).diagnostics
    assert d["local_dim"].item() == expected_local_dim(ckpt, 0.05, kappa=0.1)
    assert 0 < expected_local_dim(ckpt, 0.05, kappa=0.1) <= 6


def test_summary_table_on_the_oracle():
    from score_geometry.analysis import summary_table

    k = 5
    _, _, res = _five_dim_oracle()
    s = summary_table(res.diagnostics, res.overlaps)
    assert s["t"].tolist() == T and (s["n_images"] == 2).all()
    assert (s["r_t_median"] == k).all() and (s["r_t_mean"] == k).all()
    assert np.allclose(s[["Phi_uv_at_mean_r", "Phi_uw_at_mean_r", "Phi_vw_at_mean_r"]], 1.0, atol=1e-6)
    assert np.allclose(s["cos_uv_first_r"], -1, atol=1e-6) and np.allclose(s["calibration_ratio"], 1.0)

"""`score-geometry analyse`: the pipeline's tables for a handful of images, without Snakemake."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import E2E_TIMEOUT
from score_geometry import io
from score_geometry.models import expected_local_dim, pca_oracle_checkpoint

EXE = str(Path(sys.executable).with_name("score-geometry"))
SDE = {"beta_min": 0.1, "beta_max": 20.0}


def _run(*args, cwd=None):
    return subprocess.run([EXE, "analyse", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=E2E_TIMEOUT)


def test_oracle_reference_gives_its_closed_form_local_dimension_and_a_calibrated_floor(tmp_path):
    images = torch.randn(60, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    ckpt = pca_oracle_checkpoint(images, {"sde": SDE, "model": {"oracle_rank": 12}})
    io.save_checkpoint(tmp_path / "oracle.pt", ckpt)
    np.save(tmp_path / "x.npy", images[:2].numpy())
    proc = _run("--model", str(tmp_path / "oracle.pt"), "--images", str(tmp_path / "x.npy"), "--times", "0.05",
                "0.3", "--out", str(tmp_path / "out"), "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    diag = pd.read_parquet(tmp_path / "out/diagnostics.parquet")
    assert len(diag) == 4
    for t, d in diag.groupby("t"):
        assert (d["local_dim"] == expected_local_dim(ckpt, t, kappa=0.1)).all()
    cal = pd.read_csv(tmp_path / "out/calibration.csv")
    np.testing.assert_allclose(cal["calibration_ratio"], 1.0, atol=1e-3)
    assert cal["in_band"].all()
    assert {"spectra", "local_dims", "overlaps"} <= {p.stem for p in (tmp_path / "out").glob("*.parquet")}
    assert "calibration_ratio" in proc.stdout


def test_a_callable_on_rgb_images_of_any_size(tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        import torch
        class Net(torch.nn.Module):  # eps_hat = x * 0.5: a linear, symmetric field
            def forward(self, x, t):
                return 0.5 * x
        def build():
            return Net()
        """))
    np.save(tmp_path / "rgb.npy", np.zeros((1, 3, 8, 8), dtype=np.float32))
    proc = _run("--source", "callable", "--path", f"{tmp_path / 'mine.py'}:build", "--images",
                str(tmp_path / "rgb.npy"), "--times", "0.3", "--out", str(tmp_path / "out"), "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spectra = pd.read_parquet(tmp_path / "out/spectra.parquet")
    assert len(spectra) == 3 * 8 * 8  # D = C H W
    # g = -0.5 x / sigma_t: J = -0.5/sigma_t I, every 1/s_i = 2 sigma_t
    sigma = spectra["sigma"].iloc[0]
    np.testing.assert_allclose(spectra["inverse_singular_value"], 2 * sigma, rtol=1e-5)


def test_exactly_one_model_and_one_image_source(tmp_path):
    for args, message in ((["--images", "x.npy"], "exactly one of --model and --source"),
                          (["--model", "m.pt"], "exactly one of --images and --dataset"),
                          (["--model", "m.pt", "--images", "x.npy"], "no such file m.pt")):
        proc = _run(*args, "--out", str(tmp_path))
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_diffusers_unet_only_directory_runs_with_the_default_schedule_stated_and_no_warning(tmp_path):
    """A directory that `unet.save_pretrained` alone wrote: read with the default DDPM schedule, which stderr
    states; the loader prints none of diffusers' warnings (float32 casting, low_cpu_mem_usage)."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                          norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                          up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(tmp_path / "unet_only")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), dtype=np.float32))
    proc = _run("--source", "diffusers", "--path", str(tmp_path / "unet_only"), "--images", str(tmp_path / "x.npy"),
                "--times", "0.3", "--out", str(tmp_path / "out"), "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "has no scheduler" in proc.stderr and "default linear DDPM schedule, beta 1e-4 to 0.02 over 1000 steps" \
        in proc.stderr
    assert "float32" not in proc.stderr and "accelerate" not in proc.stderr, proc.stderr
    assert len(pd.read_parquet(tmp_path / "out/spectra.parquet")) == 64


def test_the_lowrank_method_on_a_callable_writes_the_exact_routes_tables(tmp_path):
    """--method lowrank on a --source callable (an eps network built on a closed-form Gaussian of rank 6 in
    3 x 8 x 8): the same r_t, floor and leading spectrum as --method exact, only the computed ranks."""
    (tmp_path / "gauss.py").write_text(textwrap.dedent("""
        import torch
        from score_geometry.oracle import GaussianSubspaceOracle
        class Eps(torch.nn.Module):  # eps_hat = -sigma_t g(x, t) of the exact score g
            def __init__(self):
                super().__init__()
                self.orc = GaussianSubspaceOracle.random(192, 6, variances=torch.linspace(0.5, 2.0, 6),
                                                         data_shape=(3, 8, 8), seed=0)
            def forward(self, x, t):
                return -(self.orc.sigma(t).to(x.dtype).reshape(-1, 1, 1, 1) * self.orc(x, t))
        def build():
            return Eps()
        """))
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), dtype=np.float32))
    tables = {}
    for method in ("exact", "lowrank"):
        proc = _run("--source", "callable", "--path", f"{tmp_path / 'gauss.py'}:build", "--images",
                    str(tmp_path / "x.npy"), "--times", "0.05", "0.3", "--method", method, "--out",
                    str(tmp_path / method), "--device", "cpu")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        tables[method] = {name: pd.read_parquet(tmp_path / method / f"{name}.parquet")
                          for name in ("spectra", "diagnostics", "local_dims")}
    ex, low = tables["exact"], tables["lowrank"]
    assert (low["diagnostics"]["local_dim"] == 6).all() and (ex["diagnostics"]["local_dim"] == 6).all()
    assert (low["diagnostics"]["route"] == "lowrank").all() and not low["diagnostics"]["capped"].any()
    np.testing.assert_allclose(low["diagnostics"]["calibration_ratio"], ex["diagnostics"]["calibration_ratio"],
                               rtol=1e-4)
    k = low["spectra"].groupby(["image", "t"]).size()
    assert (k >= 7).all() and (k < 192).all()  # the computed ranks only
    merged = low["spectra"].merge(ex["spectra"], on=["image", "t", "rank"], suffixes=("_low", "_ex"))
    np.testing.assert_allclose(merged["singular_value_low"], merged["singular_value_ex"], rtol=1e-4)
    at = low["local_dims"].merge(ex["local_dims"], on=["image", "t", "kappa"], suffixes=("_low", "_ex"))
    assert len(at) == 2 * 2 * 4  # kappa 0.1 and the sweep's 0.2, 0.5, 1.0
    assert (at["local_dim_low"] == at["local_dim_ex"]).all()
    bad = _run("--source", "callable", "--path", f"{tmp_path / 'gauss.py'}:build", "--images", str(tmp_path / "x.npy"),
               "--method", "lowrank", "--k-max", "0", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--k-max" in bad.stderr and "Traceback" not in bad.stderr

"""Any image shape (C, H, W) through the whole chain: 3x16x16 RGB blobs end to end (the 1x28x28 chain is the
tiny run of test_workflow.py), checked against what the shape implies (D = 768)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_snakemake
from score_geometry import io

pytestmark = pytest.mark.slow

RUN = "tiny_rgb"
SHAPE = (3, 16, 16)
D = 3 * 16 * 16


@pytest.fixture(scope="module")
def rgb_run(tiny_run):
    """The tiny preset on 3x16x16 RGB blobs, every target (`all`), in the tiny run's directory (results/tiny_rgb;
    results/tiny is not touched)."""
    proc = run_snakemake(tiny_run, "--cores", "2", "--configfile", "presets/tiny.yaml", "presets/tiny_rgb.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tiny_run / "results" / RUN


def test_every_stage_keeps_the_image_shape(rgb_run):
    data = io.read_dataset(rgb_run / "data/dataset.h5")
    assert data.name == "blobs" and data.image_shape == SHAPE
    model = torch.load(rgb_run / "model/model.pt", weights_only=False)
    assert model["image_shape"] == list(SHAPE)  # the U-Net was built for 3 channels
    seq, attrs = io.read_h5(rgb_run / "samples/sequences.h5")
    assert attrs["image_shape"] == list(SHAPE)
    assert seq["x_t"].shape == (6, 5, *SHAPE) and seq["x0_hat"].shape == (6, *SHAPE)
    spectra = pd.read_parquet(rgb_run / "stats/spectra.parquet")
    assert spectra["rank"].max() == D  # one singular value per dimension of a 768 x 768 Jacobian
    diagnostics = pd.read_parquet(rgb_run / "stats/diagnostics.parquet")
    assert diagnostics["local_dim"].between(0, D).all() and len(diagnostics) == 4 * 5
    calibration = pd.read_csv(rgb_run / "stats/calibration_summary.csv")
    assert set(calibration["source"]) == {"heldout_noisy", "model_samples"}


def test_classifier_vae_and_estimators_run_on_rgb(rgb_run):
    quality = json.loads((rgb_run / "samples/quality.json").read_text())
    assert quality["n_samples"] == 6
    vae = pd.read_parquet(rgb_run / "vae/local_dims.parquet")
    assert vae["local_dim"].between(0, 8).all()  # tiny preset: 8 latent dimensions
    comparison = pd.read_csv(rgb_run / "estimators/comparison.csv")
    assert len(comparison) and (rgb_run / "estimators/comparison.md").stat().st_size > 0
    claims = pd.read_csv(rgb_run / "stats/claims.csv")
    assert len(claims) and claims["verdict"].notna().all()


def test_figures_draw_rgb_images(rgb_run):
    from PIL import Image

    for name in ("fig2_features", "fig3_spectrum", "fig4_overlaps", "skew_shares"):
        assert (rgb_run / f"figures/{name}.png").stat().st_size > 0
    grid = np.asarray(Image.open(rgb_run / "samples/samples_grid.png").convert("RGB"), dtype=float)
    # RGB samples are drawn in colour: some pixels' channels differ (a grey drawing has R = G = B everywhere)
    assert np.abs(grid[..., 0] - grid[..., 1]).max() > 50 or np.abs(grid[..., 1] - grid[..., 2]).max() > 50

"""End-to-end: the tiny preset through the whole Snakemake chain, then nothing left to do; lint passes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from score_geometry import io
from score_geometry.sde import VPSDE

pytestmark = pytest.mark.slow


def _planned_jobs(dry_run_output: str) -> set[str]:
    """Rule names in the job-stats table of `snakemake -n`."""
    import re

    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", dry_run_output, re.M)} - {"total", "all"}


def test_lint(workflow_dir):
    proc = run_snakemake(workflow_dir, "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_tiny_run_end_to_end(workflow_dir):
    proc = run_snakemake(workflow_dir, "--cores", "2", "--configfile", "presets/tiny.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = workflow_dir / "results" / "tiny"

    data, attrs = io.read_h5(out / "samples" / "sequences.h5")
    times = [0.01, 0.03, 0.05, 0.15, 0.3]
    assert data["x_t"].shape == (6, 5, 28, 28) and data["x_t"].dtype == np.float32
    assert data["t"].tolist() == times
    sde = VPSDE()
    import torch
    assert np.allclose(data["sigma"], sde.sigma(torch.tensor(times, dtype=torch.float64)).numpy())
    assert np.allclose(data["sigma"] ** 2 + data["alpha"] ** 2, 1)
    assert data["x0_hat"].shape == (6, 28, 28) and np.isfinite(data["x_t"]).all()
    assert attrs["seed"] == 1 and attrs["sampler"]["n_steps"] == 20 and len(attrs["config_hash"]) == 16
    # Samples differ between images and along the path.
    assert not np.allclose(data["x_t"][0], data["x_t"][1])

    quality = json.loads((out / "samples" / "quality.json").read_text())
    assert {"heldout_accuracy", "class_histogram", "mean_max_softmax", "frechet_distance"} <= quality.keys()
    assert sum(quality["class_histogram"]) == 6
    preds = pd.read_parquet(out / "samples" / "predictions.parquet")
    assert list(preds.columns) == ["image", "label", "max_softmax"] and len(preds) == 6

    options = json.loads((out / "model" / "training_options.json").read_text())
    assert options["train"]["steps"] == 20 and options["final_step"] == 20
    assert len(io.read_jsonl(out / "model" / "metrics.jsonl")) == 4
    for rule in ("prepare_data", "train_model", "train_classifier", "sample_sequences"):
        assert (out / "benchmarks" / f"{rule}.tsv").exists()
        assert (workflow_dir / "logs" / rule / "tiny.log").exists()
    assert (out / "samples" / "samples_grid.png").stat().st_size > 1000
    summary = pd.read_csv(out / "stats" / "summary.csv")
    assert summary["t"].tolist() == times and (summary["n_images"] == 4).all()

    again = run_snakemake(workflow_dir, "-n", "--cores", "2", "--configfile", "presets/tiny.yaml")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    # Changing only an analysis option reruns the analysis, never the Jacobians, sampling or training.
    (workflow_dir / "kappa.yaml").write_text("analysis:\n  kappa: 0.2\n")
    plan = run_snakemake(workflow_dir, "-n", "--cores", "2", "--configfile", "presets/tiny.yaml", "kappa.yaml")
    jobs = _planned_jobs(plan.stdout + plan.stderr)
    assert {"analyse_spectra", "aggregate_spectra", "calibrate_noise_floor"} <= jobs, jobs
    assert not jobs & {"train_model", "sample_sequences", "compute_jacobians", "compute_heldout_jacobians"}, jobs

    # Every figure exists as PDF and PNG; a plot option reruns only its own figure.
    for fig in ("fig2_features", "fig3_cosines", "fig3_spectrum", "fig3_local_dims", "fig4_overlaps"):
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"{fig}.{ext}").stat().st_size > 1000, (fig, ext)
    (workflow_dir / "fig2.yaml").write_text("plots:\n  fig2_image: 1\n")
    plan = run_snakemake(workflow_dir, "-n", "--cores", "2", "--configfile", "presets/tiny.yaml", "fig2.yaml")
    assert _planned_jobs(plan.stdout + plan.stderr) == {"plot_fig2"}, plan.stdout

    # Determinism: a second run of the same config from scratch gives identical sequences.
    import shutil
    shutil.rmtree(workflow_dir / "results")
    rerun = run_snakemake(workflow_dir, "--cores", "2", "--configfile", "presets/tiny.yaml")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    data2, _ = io.read_h5(out / "samples" / "sequences.h5")
    np.testing.assert_array_equal(data["x_t"], data2["x_t"])


def test_oracle_through_the_same_rules(workflow_dir):
    """The closed-form Gaussian oracle, run through the workflow, gives exactly the known geometry."""
    proc = run_snakemake(workflow_dir, "--cores", "2", "--configfile", "presets/oracle.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = workflow_dir / "results" / "oracle"
    assert "train_model" in proc.stdout + proc.stderr  # the same rule builds the oracle checkpoint
    ckpt = io.load_checkpoint(out / "model" / "model.pt")
    assert ckpt["kind"] == "gaussian_oracle"
    from score_geometry.models import expected_local_dim

    diag = pd.read_parquet(out / "stats" / "diagnostics.parquet")
    assert len(diag) == 4 * 5 and sorted(diag["image"].unique()) == [0, 1, 2, 3]
    for t, group in diag.groupby("t"):
        assert (group["local_dim"] == expected_local_dim(ckpt, t, kappa=0.1)).all(), t
    assert np.allclose(diag["calibration_ratio"], 1.0, atol=1e-4)
    spectra = pd.read_parquet(out / "stats" / "spectra.parquet")
    assert np.allclose(spectra["cos_uv"], -1.0, atol=1e-3)
    overlaps = pd.read_parquet(out / "stats" / "overlaps.parquet")
    assert np.allclose(overlaps.loc[overlaps.pair == "uv", "Phi"], 1.0, atol=1e-3)
    # u/w and v/w agree wherever the eigenvalues are distinct (the 16 on-manifold ranks) and over the whole
    # space; inside the degenerate off-manifold block any basis is an eigenbasis, so Phi there is arbitrary.
    distinct = overlaps[(overlaps.pair != "uv") & ((overlaps.n <= 16) | (overlaps.n == 784))]
    assert np.allclose(distinct["Phi"], 1.0, atol=1e-3)
    calib = pd.read_csv(out / "stats" / "calibration_summary.csv")
    assert set(calib["source"]) == {"model_samples", "heldout_noisy"}
    assert np.allclose(calib["calibration_ratio"], 1.0, atol=1e-4)
    feats, fattrs = io.read_h5(out / "stats" / "features.h5")
    assert feats["features"].shape == (4, 5, 7, 784) and feats["images"].tolist() == [0, 1, 2, 3]

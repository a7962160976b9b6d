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

    again = run_snakemake(workflow_dir, "-n", "--cores", "2", "--configfile", "presets/tiny.yaml")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    # Determinism: a second run of the same config from scratch gives identical sequences.
    import shutil
    shutil.rmtree(workflow_dir / "results")
    rerun = run_snakemake(workflow_dir, "--cores", "2", "--configfile", "presets/tiny.yaml")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    data2, _ = io.read_h5(out / "samples" / "sequences.h5")
    np.testing.assert_array_equal(data["x_t"], data2["x_t"])

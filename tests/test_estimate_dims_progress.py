"""Rule estimate_dims reports progress (issue 24): each estimator logs its start and its time through `logging`,
and the score-based ones draw a progress bar (tqdm, on stderr: the rule's log file)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from score_geometry import baselines as est
from score_geometry.oracle import GaussianSubspaceOracle
from score_geometry.sde import VPSDE

CFG = {"mle_neighbors": 5, "twonn_neighbors": 10, "lpca_neighbors": 10, "lpca_version": "FO", "lpca_alpha": 0.05,
       "twonn_discard": 0.1, "normal_bundle_times": [0.01], "n_perturbations": 128, "flipd_times": [0.01, 0.05],
       "flipd_probes": 2, "seed": 0}


def test_every_estimator_logs_its_start_and_time_and_the_score_based_show_progress(caplog, capsys):
    oracle = GaussianSubspaceOracle.random(64, 3, variances=1.0, data_shape=(1, 8, 8), seed=0)
    x0 = oracle.sample(40, generator=torch.Generator().manual_seed(0))
    labels = np.arange(40) % 2
    flat = x0.flatten(1).numpy()
    with caplog.at_level(logging.INFO, logger="score_geometry.baselines"):
        est.classical_table(flat[:4], labels[:4], flat[4:], CFG)
        est.score_table(oracle, x0[:4], labels[:4], CFG, sde=VPSDE())
    messages = [r.getMessage() for r in caplog.records]
    for name in ("mle", "twonn", "lpca", "normal_bundle", "flipd"):
        assert any(m.startswith(f"{name}: 4 points") for m in messages), (name, messages)
        assert any(m.startswith(f"{name} done in ") and " s: median local dim " in m for m in messages), name
    assert any("at t=0.01" in m and "at t=0.05" in m for m in messages if m.startswith("flipd done")), messages
    err = capsys.readouterr().err
    assert "normal bundle t=0.01" in err and "FLIPD t=0.01" in err and "FLIPD t=0.05" in err, err

"""Sample-quality metrics: the Fréchet distance against its closed form, and the classifier pipeline."""

import numpy as np
import pytest
import scipy.linalg
import torch

from score_geometry.quality import Classifier, evaluate_samples, frechet_distance


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * np.real(scipy.linalg.sqrtm(ca @ cb)))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Fewer samples than features (singular covariances) stays finite and non-negative.
    assert 0 <= frechet_distance(rng.normal(size=(10, 50)), rng.normal(size=(12, 50))) < np.inf


def test_evaluate_samples_outputs():
    torch.manual_seed(0)
    clf = Classifier(width=4).eval()
    real = torch.rand(60, 1, 28, 28) * 2 - 1
    summary, per_image = evaluate_samples(clf, real[:10], real, torch.randint(0, 10, (60,)), seed=0)
    assert summary["n_samples"] == 10 and sum(summary["class_histogram"]) == 10
    assert 0.1 <= summary["mean_max_softmax"] <= 1 and 0 <= summary["heldout_accuracy"] <= 1
    assert np.isfinite(summary["frechet_distance"]) and np.isfinite(summary["frechet_distance_real_baseline"])
    assert list(per_image.columns) == ["image", "label", "max_softmax"] and len(per_image) == 10

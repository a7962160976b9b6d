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


class _Fixed(Classifier):
    """A 'classifier' whose logits are set by the mean pixel: images with mean > 0 are a 7, else a 1."""

    def __init__(self):
        super().__init__(width=4)

    def features(self, x):
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)

    def head(self, f):
        return torch.cat([torch.zeros(len(f), 1), -10 * f, torch.zeros(len(f), 5), 10 * f, torch.zeros(len(f), 2)], 1)


def test_labels_along_sequences_and_the_class_change_example():
    from score_geometry.quality import class_change_example, labels_along_sequences

    t = [0.01, 0.3]
    x = np.full((3, 2, 1, 28, 28), 0.5, dtype=np.float32)  # every image a 7 at both times ...
    x[1, 1] = -0.2  # ... but sequence 1 looks like a 1 at t = 0.3 (weakly)
    x[2, 1] = -0.8  # and sequence 2 strongly; it is not analysed below when n_analysed = 2
    table = labels_along_sequences(_Fixed().eval(), x, t, final_labels=[7, 7, 7])
    assert len(table) == 6 and list(table.columns) == ["image", "t", "final_label", "label", "p_final", "changed"]
    at = table.set_index(["image", "t"])
    assert at.loc[(0, 0.3), "label"] == 7 and not at.loc[(0, 0.3), "changed"]
    assert at.loc[(1, 0.3), "label"] == 1 and at.loc[(1, 0.3), "changed"]
    assert at.loc[(2, 0.3), "p_final"] < at.loc[(1, 0.3), "p_final"] < 0.5 < at.loc[(0, 0.3), "p_final"]
    assert class_change_example(table, n_analysed=3)[0] == 2
    image, why = class_change_example(table, n_analysed=2)
    assert image == 1 and why.startswith("sequence 1: final label 7, at t=0.3 classified 1")


def test_denoised_at_times_is_tweedie_on_the_oracle():
    """For the Gaussian oracle the posterior mean is known: alpha_t x0_hat = x_t + sigma_t^2 g(x_t)."""
    from score_geometry.models import pca_oracle_checkpoint
    from score_geometry.sde import VPSDE
    from score_geometry.stages import denoised_at_times

    gen = torch.Generator().manual_seed(0)
    images = torch.tanh(torch.randn(50, 1, 28, 28, generator=gen))
    ckpt = pca_oracle_checkpoint(images, {"sde": {"beta_min": 0.1, "beta_max": 20.0}, "model": {"oracle_rank": 3}})
    sde = VPSDE()
    x_t = torch.randn(2, 2, 1, 28, 28, generator=gen).numpy()
    out = denoised_at_times(ckpt, x_t, [0.05, 0.3], sde)
    basis, mu = ckpt["state"]["basis"].double(), ckpt["state"]["mu"].double().reshape(-1)
    lam = ckpt["state"]["variances"].double()
    for j, tj in enumerate([0.05, 0.3]):
        a, s = float(sde.alpha(torch.tensor(tj))), float(sde.sigma(torch.tensor(tj)))
        y = torch.as_tensor(x_t[:, j], dtype=torch.float64).reshape(2, -1) - a * mu
        # E[x0 | x_t] = mu + basis diag(a lam / (a^2 lam + s^2)) basis^T (x_t - a mu)
        expected = mu + ((y @ basis) * (a * lam / (a**2 * lam + s**2))) @ basis.T
        np.testing.assert_allclose(out[:, j].reshape(2, -1), expected.numpy(), atol=2e-4)


def test_train_classifier_on_the_engine_equals_the_plain_loop():
    """The classifier's training moved onto the training engine without changing a bit: the same weights as the
    plain Adam loop it replaced (seeded model, one generator for the batches and the shifts)."""
    import torch.nn.functional as F

    from score_geometry.quality import train_classifier

    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 1, 28, 28, generator=gen) * 2 - 1, torch.randint(0, 10, (40,), generator=gen)
    cfg = {"steps": 6, "batch_size": 8, "lr": 1e-3, "width": 4}
    model = train_classifier(images, labels, cfg, seed=3, progress=False)
    assert not model.training and not any(p.requires_grad for p in model.parameters())

    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    ref = Classifier(width=4)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    for _ in range(6):
        idx = torch.randint(40, (8,), generator=g)
        dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
        loss = F.cross_entropy(ref(torch.roll(images[idx], shifts=(dx, dy), dims=(2, 3))), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for (name, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), name


def test_classifier_serves_rgb_images_and_its_checkpoint_remembers_the_shape():
    from score_geometry.quality import classifier_checkpoint, load_classifier, predict, train_classifier

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 16, 16, generator=gen) * 2 - 1
    labels = torch.randint(0, 6, (40,), generator=gen)
    model = train_classifier(images, labels, {"steps": 2, "batch_size": 8, "lr": 1e-3, "width": 4}, seed=0,
                             progress=False)
    probs, feats = predict(model, images[:5])
    assert probs.shape == (5, 10) and feats.shape == (5, 128)
    again = load_classifier(classifier_checkpoint(model, {"width": 4}))
    assert torch.equal(predict(again, images[:5])[0], probs)
    with pytest.raises(ValueError, match="10 classes"):
        train_classifier(images, labels + 10, {"steps": 1, "batch_size": 8, "lr": 1e-3, "width": 4}, seed=0)

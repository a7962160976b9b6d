"""Euler–Maruyama sampler: exact record times, correctness on a Gaussian with a known score, determinism."""

import numpy as np
import pytest
import torch

from score_geometry.arrays import as_images
from score_geometry.sample import euler_maruyama, sample_sequences, sequences_to_h5, time_grid
from score_geometry.sde import VPSDE

SDE = VPSDE()
TIMES = [0.01, 0.03, 0.05, 0.15, 0.3]


@pytest.mark.parametrize("n_steps", [7, 100, 1000])
def test_time_grid_lands_exactly_on_record_times(n_steps):
    grid, idx = time_grid(n_steps, t_end=1e-3, record_times=TIMES)
    assert grid[0] == 1.0 and grid[-1] == 1e-3
    assert np.all(np.diff(grid) < 0)
    assert [grid[i] for i in idx] == TIMES  # exact equality, not nearest grid point
    assert len(grid) >= n_steps + 1


def test_time_grid_rejects_times_outside_range():
    with pytest.raises(ValueError, match="record times"):
        time_grid(10, t_end=0.02, record_times=[0.01, 0.5])


def _gaussian_score(mu, s2):
    def score(x, t):
        a, sig = SDE.alpha(t).view(-1, 1), SDE.sigma(t).view(-1, 1)
        return -(x - a * mu) / (a**2 * s2 + sig**2)
    return score


def test_sampler_reproduces_gaussian_marginals():
    """With the exact score of N(mu, s2) data, recorded x_t must follow N(alpha mu, alpha^2 s2 + sigma^2)."""
    mu = torch.tensor([1.5, -0.5])
    s2 = torch.tensor([0.25, 0.04])
    gen = torch.Generator().manual_seed(0)
    res = euler_maruyama(_gaussian_score(mu, s2), SDE, (8000, 2), n_steps=1000, t_end=1e-3, record_times=TIMES,
                         generator=gen)
    assert res.x_t.shape == (8000, len(TIMES), 2)
    for j, t in enumerate(TIMES):
        tt = torch.tensor([t])
        a, sig = SDE.alpha(tt), SDE.sigma(tt)
        mean, std = a * mu, torch.sqrt(a**2 * s2 + sig**2)
        xj = res.x_t[:, j]
        assert torch.allclose(xj.mean(0), mean, atol=0.03), (t, xj.mean(0), mean)
        assert torch.allclose(xj.std(0), std, rtol=0.05), (t, xj.std(0), std)
    # The Tweedie-denoised end point has the data mean and (slightly shrunk) data spread.
    assert torch.allclose(res.x0_hat.mean(0), mu, atol=0.03)
    assert torch.allclose(res.x0_hat.std(0), s2.sqrt(), rtol=0.06)


def test_sample_sequences_is_deterministic_given_seed():
    score = _gaussian_score(torch.zeros(3), torch.ones(3))
    kw = dict(batch_size=3, n_steps=20, t_end=1e-3, record_times=TIMES, image_shape=(3,), progress=False)
    a = sample_sequences(score, SDE, 5, seed=7, **kw)
    b = sample_sequences(score, SDE, 5, seed=7, **kw)
    c = sample_sequences(score, SDE, 5, seed=8, **kw)
    assert torch.equal(a.x_t, b.x_t) and torch.equal(a.x0_hat, b.x0_hat)
    assert not torch.equal(a.x_t, c.x_t)
    assert a.x_t.shape == (5, len(TIMES), 3)


def test_sequences_to_h5_layout():
    score = _gaussian_score(torch.zeros(784), torch.ones(784))

    def image_score(x, t):
        return score(x.flatten(1), t).view_as(x)

    res = sample_sequences(image_score, SDE, 3, batch_size=2, n_steps=5, t_end=1e-3, record_times=TIMES,
                           seed=0, progress=False)
    t = torch.tensor(TIMES, dtype=torch.float64)
    info = {"t": t.numpy(), "sigma": SDE.sigma(t).numpy(), "alpha": SDE.alpha(t).numpy(), "seed": 0,
            "sampler": {}, "parameterisation": "x0", "train_step": 1, "config_hash": "abc"}
    data, attrs = sequences_to_h5(res, info)
    assert data["x_t"].shape == (3, 5, 28, 28) and data["x_t"].dtype == np.float32
    assert data["x0_hat"].shape == (3, 28, 28) and data["x_end"].shape == (3, 28, 28)
    assert attrs["config_hash"] == "abc" and attrs["image_shape"] == [1, 28, 28]
    np.testing.assert_array_equal(as_images(data["x_t"], attrs["image_shape"]), res.x_t.numpy())


def test_sequences_to_h5_keeps_the_channels_of_rgb_images():
    score = _gaussian_score(torch.zeros(3 * 16 * 16), torch.ones(3 * 16 * 16))

    def image_score(x, t):
        return score(x.flatten(1), t).view_as(x)

    res = sample_sequences(image_score, SDE, 3, batch_size=2, n_steps=5, t_end=1e-3, record_times=TIMES,
                           seed=0, image_shape=(3, 16, 16), progress=False)
    t = torch.tensor(TIMES, dtype=torch.float64)
    info = {"t": t.numpy(), "sigma": SDE.sigma(t).numpy(), "alpha": SDE.alpha(t).numpy()}
    data, attrs = sequences_to_h5(res, info)
    assert data["x_t"].shape == (3, 5, 3, 16, 16) and data["x0_hat"].shape == (3, 3, 16, 16)
    assert attrs["image_shape"] == [3, 16, 16]
    np.testing.assert_array_equal(as_images(data["x0_hat"], attrs["image_shape"]), res.x0_hat.numpy())


def test_as_images_without_a_recorded_shape_reads_grey_images():
    a = np.arange(2 * 5 * 28 * 28, dtype=np.float32).reshape(2, 5, 28, 28)
    assert as_images(a).shape == (2, 5, 1, 28, 28)
    with pytest.raises(ValueError, match="stored image shape"):
        as_images(a, (3, 28, 28))

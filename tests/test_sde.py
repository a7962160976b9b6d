"""VP-SDE marginals and the score conversions against closed forms."""

import math

import numpy as np
import pytest
import torch

from score_geometry.score import dsm_loss, make_score_fn, score_from_output
from score_geometry.sde import VPSDE

SDE = VPSDE(0.1, 20.0)


def test_alpha_sigma_closed_form():
    t = torch.tensor([1e-5, 0.01, 0.03, 0.05, 0.15, 0.3, 1.0], dtype=torch.float64)
    integral = 0.1 * t + 0.5 * (20.0 - 0.1) * t**2
    assert torch.allclose(SDE.alpha(t), torch.exp(-0.5 * integral), rtol=1e-12)
    assert torch.allclose(SDE.sigma(t) ** 2 + SDE.alpha(t) ** 2, torch.ones_like(t), rtol=1e-12)
    # sigma_t at the paper's five times (docs/sde.md explains the differences to the paper's quoted values).
    expected = [0.04463, 0.10900, 0.17155, 0.46094, 0.77699]
    got = SDE.sigma(t[1:6]).tolist()
    assert got == pytest.approx(expected, abs=5e-5)


def test_sigma_accurate_near_zero():
    t = torch.tensor([1e-7], dtype=torch.float64)
    # sigma^2 ~ beta_min t for small t; a naive sqrt(1 - alpha^2) in float32 would return 0.
    assert SDE.sigma(t.float()).item() == pytest.approx(math.sqrt(0.1 * 1e-7), rel=1e-3)


def test_forward_sde_simulation_matches_marginal():
    """Simulate dx = -beta/2 x dt + sqrt(beta) dw by fine Euler–Maruyama steps; compare with marginal_prob."""
    gen = torch.Generator().manual_seed(0)
    n, steps, t_final = 20000, 400, 0.3
    x0 = torch.full((n, 1), 2.0, dtype=torch.float64)
    x = x0.clone()
    dt = t_final / steps
    for i in range(steps):
        t = torch.full((n,), i * dt, dtype=torch.float64)
        drift, diffusion = SDE.sde(x, t)
        x = x + drift * dt + diffusion[:, None] * math.sqrt(dt) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    mean, std = SDE.marginal_prob(x0, torch.full((n,), t_final, dtype=torch.float64))
    assert x.mean().item() == pytest.approx(mean[0, 0].item(), abs=0.02)
    assert x.std().item() == pytest.approx(std[0, 0].item(), rel=0.02)


def _gaussian_posterior(x, t, mu, s2):
    """Exact E[x0 | x_t] and E[eps | x_t] for x0 ~ N(mu, diag(s2)) under the VP forward process."""
    a, sig = SDE.alpha(t)[:, None], SDE.sigma(t)[:, None]
    var = a**2 * s2 + sig**2
    x0_mean = mu + a * s2 / var * (x - a * mu)
    eps_mean = sig / var * (x - a * mu)
    return x0_mean, eps_mean, -(x - a * mu) / var


@pytest.mark.parametrize("t_value", [0.01, 0.05, 0.3, 0.9])
def test_score_of_gaussian_data_both_parameterisations(t_value):
    torch.manual_seed(0)
    d = 6
    mu, s2 = torch.randn(d, dtype=torch.float64), torch.rand(d, dtype=torch.float64) + 0.1
    x = torch.randn(5, d, dtype=torch.float64)
    t = torch.full((5,), t_value, dtype=torch.float64)
    x0_mean, eps_mean, analytic = _gaussian_posterior(x, t, mu, s2)
    assert torch.allclose(score_from_output(x0_mean, x, t, SDE, "x0"), analytic, rtol=1e-10)
    assert torch.allclose(score_from_output(eps_mean, x, t, SDE, "eps"), analytic, rtol=1e-10)
    # make_score_fn wraps a network the same way.
    net = lambda x_, t_: _gaussian_posterior(x_, t_, mu, s2)[0]  # noqa: E731
    assert torch.allclose(make_score_fn(net, SDE, "x0")(x, t), analytic, rtol=1e-10)
    with pytest.raises(ValueError, match="parameterisation"):
        make_score_fn(net, SDE, "v")


@pytest.mark.parametrize("parameterisation", ["x0", "eps"])
@pytest.mark.parametrize("loss_space", ["native", "eps", "x0"])
def test_dsm_loss_is_minimised_by_the_exact_posterior_mean(parameterisation, loss_space):
    """The Bayes-optimal predictor has lower DSM loss than a slightly perturbed one, in every loss space."""
    d = 4
    mu, s2 = torch.zeros(d, dtype=torch.float64), torch.full((d,), 0.5, dtype=torch.float64)
    x0 = mu + s2.sqrt() * torch.randn(4096, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def net(scale):
        def f(x, t):
            x0_mean, eps_mean, _ = _gaussian_posterior(x, t, mu, s2)
            return scale * (x0_mean if parameterisation == "x0" else eps_mean)
        return f

    losses = [dsm_loss(net(scale), x0, SDE, parameterisation=parameterisation, loss_space=loss_space,
                       t_min=0.05, t_sampling="uniform", generator=torch.Generator().manual_seed(2)).item()
              for scale in (1.0, 0.9, 1.1)]
    assert losses[0] < min(losses[1:])


@pytest.mark.parametrize("loss_space", ["eps", "x0"])
def test_dsm_loss_is_the_same_objective_in_either_parameterisation(loss_space):
    """An x0-network and the eps-network it implies, eps_hat = (x_t - alpha x0_hat) / sigma, have the same loss
    in a common loss space: this pins the weight alpha^2/sigma^2 (a swapped or missing weight fails here, while
    the minimiser test above holds under any positive weight)."""
    x0 = torch.randn(256, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def f_x0(x, t):  # an arbitrary, non-optimal predictor of x0
        return 0.7 * x + 0.2 * torch.sin(3 * x) * t[:, None]

    def f_eps(x, t):
        mean_coef, sigma = SDE.alpha(t)[:, None], SDE.sigma(t)[:, None]
        return (x - mean_coef * f_x0(x, t)) / sigma

    kw = dict(loss_space=loss_space, t_min=0.01, t_sampling="uniform")
    a = dsm_loss(f_x0, x0, SDE, parameterisation="x0", generator=torch.Generator().manual_seed(4), **kw)
    b = dsm_loss(f_eps, x0, SDE, parameterisation="eps", generator=torch.Generator().manual_seed(4), **kw)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)  # t is drawn in float32
    native = dsm_loss(f_x0, x0, SDE, parameterisation="x0", loss_space="native", t_min=0.01,
                      t_sampling="uniform", generator=torch.Generator().manual_seed(4))
    assert (native.item() == pytest.approx(a.item(), rel=1e-12)) == (loss_space == "x0")


def test_log_uniform_t_sampling_favours_small_t():
    gen = torch.Generator().manual_seed(0)
    from score_geometry.score import sample_t
    u = sample_t(20000, t_min=1e-5, scheme="uniform", generator=gen)
    lu = sample_t(20000, t_min=1e-5, scheme="log_uniform", generator=gen)
    assert u.min() >= 1e-5 and lu.min() >= 1e-5 and u.max() <= 1 and lu.max() <= 1
    assert (u < 0.05).float().mean() == pytest.approx(0.05, abs=0.01)
    assert (lu < 0.05).float().mean() > 0.5
    with pytest.raises(ValueError, match="t_sampling"):
        sample_t(3, t_min=1e-5, scheme="cosine", generator=gen)


def test_mixture_t_sampling_is_half_uniform_half_log_uniform():
    from score_geometry.score import sample_t
    t = sample_t(40000, t_min=1e-5, scheme="mixture", generator=torch.Generator().manual_seed(0))
    assert t.min() >= 1e-5 and t.max() <= 1
    p_log = math.log(0.05 / 1e-5) / math.log(1e5)  # P(t < 0.05) under log-uniform
    assert (t < 0.05).float().mean() == pytest.approx(0.5 * 0.05 + 0.5 * p_log, abs=0.01)
    assert (t > 0.5).float().mean() == pytest.approx(0.5 * 0.5 + 0.5 * math.log(2) / math.log(1e5), abs=0.01)


def test_vpsde_rejects_bad_betas():
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(20.0, 0.1)
    assert np.isfinite(SDE.sigma(torch.tensor(1.0)).item())


def test_scales_at_one_time_are_the_float64_alpha_and_sigma():
    sde = VPSDE(beta_min=0.1, beta_max=20.0)
    for t in (1e-5, 0.01, 0.3, 1.0):
        alpha, sigma = sde.scales(t)
        tt = torch.tensor(t, dtype=torch.float64)
        assert (alpha, sigma) == (float(sde.alpha(tt)), float(sde.sigma(tt)))
        assert alpha**2 + sigma**2 == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (4, 3)])
def test_perturb_is_alpha_x0_plus_sigma_noise(shape):
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    # Per-row times (B,): the marginal's mean plus std times the noise, broadcast over the data dims.
    t = torch.tensor([1e-5, 0.05, 0.3, 1.0])
    x_t = SDE.perturb(x0, t, noise)
    mean, std = SDE.marginal_prob(x0, t)
    assert x_t.shape == x0.shape and torch.equal(x_t, mean + std * noise)
    for i in range(4):
        torch.testing.assert_close(x_t[i], SDE.alpha(t[i]) * x0[i] + SDE.sigma(t[i]) * noise[i])
    # One Python float for the batch: the float64 scales of `scales`, whatever the data's dtype.
    alpha, sigma = SDE.scales(0.3)
    assert torch.equal(SDE.perturb(x0, 0.3, noise), alpha * x0 + sigma * noise)
    assert SDE.perturb(x0.double(), 0.3, noise.double()).dtype == torch.float64
    # At t = 1 the signal is nearly gone (alpha_1 ~ 0.0066): x_t is the noise up to ~1% of x0.
    torch.testing.assert_close(SDE.perturb(x0, 1.0, noise), noise, atol=0.01 * float(x0.abs().max()), rtol=0)


def test_perturb_draws_the_marginal():
    """x_t of many draws from one x0 has the marginal's mean alpha_t x0 and std sigma_t."""
    x0 = torch.full((20000, 1), 2.0, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_t = SDE.perturb(x0, 0.1, noise)
    alpha, sigma = SDE.scales(0.1)
    assert x_t.mean().item() == pytest.approx(2.0 * alpha, abs=4 * sigma / 20000**0.5)
    assert x_t.std().item() == pytest.approx(sigma, rel=0.02)

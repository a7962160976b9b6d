"""The variance-preserving SDE with a linear beta(t) (Song et al. 2021; the paper's Appendix A.2).

Forward process: dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw, t in [0, 1], with
beta(t) = beta_min + t (beta_max - beta_min). Its marginal given x_0 is
x_t = alpha_t x_0 + sigma_t eps with alpha_t = exp(-1/2 int_0^t beta) and sigma_t^2 = 1 - alpha_t^2.
`VPSDE.scales` (alpha_t, sigma_t at one t) and `VPSDE.perturb` (x_t from x_0 and eps) are the one place
for noising data: use them rather than writing alpha_t x_0 + sigma_t eps out again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VPSDE:
    """Linear-beta VP-SDE.

    Args:
        beta_min: beta(0), in 1/time units; the paper (and Song et al.) use 0.1.
        beta_max: beta(1); the paper uses 20.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        if not 0 < self.beta_min < self.beta_max:
            raise ValueError(
                f"need 0 < beta_min < beta_max, got beta_min={self.beta_min}, beta_max={self.beta_max}"
            )

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t), same shape as t."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: torch.Tensor) -> torch.Tensor:
        """int_0^t beta(s) ds, same shape as t."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Signal scale alpha_t = exp(-1/2 int_0^t beta), same shape as t."""
        return torch.exp(-0.5 * self.integrated_beta(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise std sigma_t = sqrt(1 - alpha_t^2), computed with expm1 so it stays accurate near t = 0."""
        return torch.sqrt(-torch.expm1(-self.integrated_beta(t)))

    def scales(self, t: float) -> tuple[float, float]:
        """(alpha_t, sigma_t) at one time `t` as Python floats, computed in float64."""
        tt = torch.tensor(float(t), dtype=torch.float64)
        return float(self.alpha(tt)), float(self.sigma(tt))

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of q(x_t | x_0).

        Args:
            x0: (B, *S) clean data.
            t: (B,) times.

        Returns:
            mean (B, *S) = alpha_t x0 and std (B, 1, ..., 1) = sigma_t, broadcastable against x0.
        """
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return self.alpha(t).view(shape) * x0, self.sigma(t).view(shape)

    def perturb(self, x0: torch.Tensor, t: float | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The forward process at t: x_t = alpha_t x0 + sigma_t noise.

        Args:
            x0: (B, *S) clean data.
            t: one time for the whole batch, a Python float (alpha_t, sigma_t computed in float64 by `scales`),
                or (B,) times, one per row of x0 (computed in t's dtype, as `marginal_prob`).
            noise: (B, *S) standard normal draws, shape of x0.

        Returns:
            x_t: (B, *S).
        """
        if isinstance(t, torch.Tensor):
            mean, std = self.marginal_prob(x0, t)
            return mean + std * noise
        alpha, sigma = self.scales(t)
        return alpha * x0 + sigma * noise

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward drift f(x, t) = -1/2 beta x, shape of x; diffusion g(t) = sqrt(beta), shape (B,)."""
        beta = self.beta(t)
        shape = (-1,) + (1,) * (x.dim() - 1)
        return -0.5 * beta.view(shape) * x, torch.sqrt(beta)

    def prior_sampling(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw x_1 ~ N(0, I), the (very nearly exact) marginal at t = 1."""
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

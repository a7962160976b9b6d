"""Analyse your own score model: any `score(x, t)` callable -> the paper's tables.

    python examples/analyse_own_model.py [OUT_DIR]

Replace `my_score` with your model. It must map x: (B, 1, 28, 28) and t: (B,) to the score
grad_x log q_t(x), shape (B, 1, 28, 28), each output row depending only on its own input row. For a
network trained with this package, `score_geometry.models.score_fn_from_checkpoint(ckpt)` gives it; for an
eps-prediction network of your own, `score_geometry.score.make_score_fn(net, VPSDE(), "eps")`.
"""

import sys
from pathlib import Path

import torch

from score_geometry.analysis import analyse_jacobians
from score_geometry.oracle import GaussianSubspaceOracle
from score_geometry.sde import VPSDE
from score_geometry.stages import jacobians_at_times

sde = VPSDE(beta_min=0.1, beta_max=20.0)

# A stand-in "model" with a known answer: the exact score of a Gaussian on a random 12-dim subspace.
oracle = GaussianSubspaceOracle.random(784, 12, variances=torch.linspace(2.0, 0.5, 12), data_shape=(1, 28, 28),
                                       seed=0)


def my_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return oracle(x, t)


# Points to analyse: x_t at each time, here noised samples of the stand-in's data (use your own sequences).
t = [0.01, 0.05, 0.3]
x0 = oracle.sample(3, generator=torch.Generator().manual_seed(1)).float()  # (3, 1, 28, 28)
x_t = torch.stack([sde.marginal_prob(x0, torch.full((3,), tj))[0] + sde.sigma(torch.tensor(tj)) * torch.randn_like(x0)
                   for tj in t], dim=1)[:, :, 0].numpy()  # (n_images, n_times, 28, 28)

J = jacobians_at_times(my_score, x_t, t)  # (3, 3, 784, 784), exact (reverse-mode autodiff)
sigma = sde.sigma(torch.tensor(t, dtype=torch.float64)).numpy()
result = analyse_jacobians(J, images=range(3), labels=[-1] * 3, t=t, sigma=sigma, run="example", kappa=0.1,
                           kappa_sweep=[0.0, 0.1, 0.5])

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example_out")
out.mkdir(parents=True, exist_ok=True)
for name in ("spectra", "local_dims", "overlaps", "diagnostics"):
    getattr(result, name).to_parquet(out / f"{name}.parquet", index=False)
summary = result.diagnostics.groupby("t")[["local_dim", "calibration_ratio", "cos_uv_mean_top_half"]].mean()
print(summary.to_string())
print(f"tables written to {out}/")

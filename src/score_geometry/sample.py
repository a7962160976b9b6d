"""Euler–Maruyama sampling of the reverse VP-SDE, recording x_t at chosen times (Appendix A.2).

Reverse SDE: dx = [-1/2 beta(t) x - beta(t) g(x, t)] dt + sqrt(beta(t)) dw_bar, integrated from t = 1 down
to a small t_end. The time grid is uniform with the record times inserted, so every recorded x_t is
exactly at its requested t, not at the nearest grid point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .arrays import stored_image_shape
from .score import ScoreFn
from .sde import VPSDE


def time_grid(n_steps: int, *, t_end: float, record_times: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending grid from 1 to `t_end` with `record_times` inserted exactly.

    Args:
        n_steps: number of uniform steps before insertion.
        t_end: last time (> 0; the score is singular at 0).
        record_times: increasing times in [t_end, 1].

    Returns:
        grid: (M,) float64, strictly decreasing, grid[0] = 1, grid[-1] = t_end.
        record_index: (len(record_times),) index into grid of each record time, same order as given.
    """
    record_times = np.asarray(record_times, dtype=np.float64)
    if np.any(record_times < t_end) or np.any(record_times > 1):
        raise ValueError(f"record times {record_times.tolist()} must lie in [t_end={t_end}, 1]")
    grid = np.linspace(1.0, t_end, n_steps + 1)
    # Drop grid points that would make a step tiny next to an inserted time, then insert exactly.
    h = (1.0 - t_end) / n_steps
    keep = np.all(np.abs(grid[:, None] - record_times[None, :]) > 1e-3 * h, axis=1)
    keep[[0, -1]] = True
    grid = np.unique(np.concatenate([grid[keep], record_times]))[::-1].copy()
    record_index = np.array([int(np.flatnonzero(grid == t)[0]) for t in record_times])
    return grid, record_index


@dataclass(frozen=True)
class SampleResult:
    """x_t: (B, T, *S) at the record times; x_end: (B, *S) at t_end; x0_hat: (B, *S) Tweedie denoised x_end."""

    x_t: torch.Tensor
    x_end: torch.Tensor
    x0_hat: torch.Tensor


@torch.no_grad()
def euler_maruyama(score_fn: ScoreFn, sde: VPSDE, shape: tuple[int, ...], *, n_steps: int, t_end: float,
                   record_times: list[float] | np.ndarray, generator: torch.Generator,
                   device: torch.device | str = "cpu", progress: bool = False) -> SampleResult:
    """Sample one batch of paths.

    Args:
        score_fn: g(x, t), x (B, *S), t (B,) -> (B, *S).
        shape: (B, *S) batch shape.
        generator: source of all noise (prior and increments), so results are deterministic.

    Returns:
        SampleResult; x0_hat = (x_end + sigma^2 g(x_end)) / alpha at t_end (the posterior mean, no noise added).
    """
    grid, record_index = time_grid(n_steps, t_end=t_end, record_times=record_times)
    x = sde.prior_sampling(shape, generator=generator, device=device)
    b = shape[0]
    wanted = set(int(j) for j in record_index)
    records: dict[int, torch.Tensor] = {}
    for i in tqdm(range(len(grid) - 1), desc="sample", disable=not progress, mininterval=5):
        t_now, t_next = grid[i], grid[i + 1]
        h = t_now - t_next
        t = torch.full((b,), t_now, device=device, dtype=torch.float32)
        beta = float(sde.beta(torch.tensor(t_now, dtype=torch.float64)))
        # Euler–Maruyama step of the reverse SDE, backwards in time by h.
        drift = 0.5 * beta * x + beta * score_fn(x, t)
        z = torch.randn(shape, generator=generator, device=device)
        x = x + h * drift + np.sqrt(beta * h) * z
        if i + 1 in wanted:
            records[i + 1] = x
    x_t = torch.stack([records[int(j)] for j in record_index], dim=1)
    t_last = torch.full((b,), grid[-1], device=device, dtype=torch.float32)
    alpha, sigma = float(sde.alpha(torch.tensor(grid[-1]))), float(sde.sigma(torch.tensor(grid[-1])))
    x0_hat = (x + sigma**2 * score_fn(x, t_last)) / alpha
    return SampleResult(x_t=x_t, x_end=x, x0_hat=x0_hat)


def sample_sequences(score_fn: ScoreFn, sde: VPSDE, n_images: int, *, batch_size: int, n_steps: int,
                     t_end: float, record_times: list[float], seed: int, image_shape: tuple[int, ...] = (1, 28, 28),
                     device: torch.device | str = "cpu", progress: bool = True) -> SampleResult:
    """Sample `n_images` paths in batches from one seeded generator (deterministic given seed and batch_size).

    Returns:
        SampleResult with x_t (n_images, T, *image_shape) etc., on the CPU.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    parts = []
    batches = range(0, n_images, batch_size)
    for start in tqdm(batches, desc="batches", disable=not progress):
        b = min(batch_size, n_images - start)
        r = euler_maruyama(score_fn, sde, (b, *image_shape), n_steps=n_steps, t_end=t_end,
                           record_times=record_times, generator=generator, device=device, progress=progress)
        parts.append(SampleResult(r.x_t.cpu(), r.x_end.cpu(), r.x0_hat.cpu()))
    return SampleResult(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x_t", "x_end", "x0_hat")))


def sample_from_checkpoint(checkpoint: dict, sample_cfg: dict, *, device: torch.device | str = "cpu",
                           progress: bool = True) -> tuple[SampleResult, dict]:
    """Sample sequences from a model reference's score model (`score_models.load_score_model`: the EMA
    network, the oracle or an external model) with the ``sample:`` config.

    Returns:
        The SampleResult and a dict of metadata (times, sigma, alpha, settings, config hash) for the HDF5 file.
    """
    from . import io
    from .score_models import load_score_model

    cfg = checkpoint["config"]
    model = load_score_model(checkpoint, device=device)
    sde = model.sde
    result = sample_sequences(model.score, sde, sample_cfg["n_images"], batch_size=sample_cfg["batch_size"],
                              n_steps=sample_cfg["n_steps"], t_end=sample_cfg["t_end"],
                              record_times=sample_cfg["times"], seed=sample_cfg["seed"], device=device,
                              image_shape=model.image_shape, progress=progress)
    t = torch.tensor(sample_cfg["times"], dtype=torch.float64)
    info = {"t": t.numpy(), "sigma": sde.sigma(t).numpy(), "alpha": sde.alpha(t).numpy(),
            "seed": sample_cfg["seed"], "sampler": {"method": "euler_maruyama", **sample_cfg},
            "parameterisation": model.parameterisation or "none", "train_step": checkpoint["step"],
            "score_model": checkpoint.get("kind", "unet"),
            "config_hash": io.config_hash({**cfg, "sample": sample_cfg})}
    return result, info


def sequences_to_h5(result: SampleResult, info: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Arrange sampled sequences as named arrays and attributes for `io.write_h5`.

    Datasets: x_t (n_images, n_times, *S), t / sigma / alpha (n_times,), x_end and x0_hat (n_images, *S), with
    S = `arrays.stored_image_shape` of the images (H, W) for grey images ((128, 5, 28, 28) for MNIST), else
    (C, H, W); the attribute ``image_shape`` is (C, H, W) (`arrays.as_images` restores it).
    """
    image_shape = tuple(result.x_end.shape[1:])
    stored = stored_image_shape(image_shape)

    def store(a: torch.Tensor) -> np.ndarray:
        return a.numpy().astype(np.float32).reshape(*a.shape[: a.dim() - len(image_shape)], *stored)

    datasets = {"x_t": store(result.x_t), "t": info["t"], "sigma": info["sigma"], "alpha": info["alpha"],
                "x_end": store(result.x_end), "x0_hat": store(result.x0_hat)}
    attrs = {k: info[k] for k in ("seed", "sampler", "parameterisation", "score_model", "train_step", "config_hash")
             if k in info}
    return datasets, {**attrs, "image_shape": list(image_shape)}

"""The Jacobian stages (rules compute_jacobians, compute_heldout_jacobians): the score Jacobians of a
checkpoint's model at the sampled sequences or at forward-noised held-out digits, as D x D matrices (the exact
route) or as their matrix-free spectra (`geometry.lowrank`, by ``jacobian.route``)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..jacobian import no_tf32, preferred_memory_format, score_jacobian
from ..models import score_fn_from_checkpoint
from ..score import ScoreFn
from ..sde import VPSDE


DTYPES = {"float32": torch.float32, "float64": torch.float64}
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def memory_format(name: str, device: torch.device | str) -> torch.memory_format:
    """`jacobian.memory_format` as a torch memory format; "auto" is `jacobian.preferred_memory_format(device)`."""
    if name == "auto":
        return preferred_memory_format(device)
    if name not in MEMORY_FORMATS:
        raise ValueError(f"jacobian.memory_format must be one of auto, {', '.join(MEMORY_FORMATS)}; got {name!r}")
    return MEMORY_FORMATS[name]


def shard_images(n_images: int, shards: int, shard: int) -> np.ndarray:
    """Global indices of the images in `shard` (contiguous, sizes differ by at most one)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    return np.array_split(np.arange(n_images), shards)[shard]


def jacobians_at_times(score_fn: ScoreFn, x_t: np.ndarray, t: Sequence[float], *, device: torch.device | str = "cpu",
                       dtype: torch.dtype = torch.float32, chunk_size: int | None = None,
                       method: str = "auto", progress: bool = True) -> np.ndarray:
    """Exact score Jacobians of every (image, t).

    Args:
        x_t: (n, T, *S) inputs, x_t[:, j] at time t[j]; S = (C, H, W), or (H, W) for one channel (the
            layout of the pipeline's HDF5 files).
        t: (T,) times.

    Returns:
        J: (n, T, D, D) float32 with D = prod(S) (computed in `dtype`, TF32 disabled).
    """
    n, n_t = x_t.shape[:2]
    shape = (1, *x_t.shape[2:]) if x_t.ndim == 4 else tuple(x_t.shape[2:])
    D = int(np.prod(x_t.shape[2:]))
    J = np.empty((n, n_t, D, D), dtype=np.float32)
    with no_tf32(), tqdm(total=n * n_t, desc="jacobians", disable=not progress, mininterval=5) as bar:
        for i in range(n):
            for j in range(n_t):
                x = torch.as_tensor(x_t[i, j], dtype=dtype, device=device).reshape(1, *shape)
                J[i, j] = score_jacobian(score_fn, x, float(t[j]), chunk_size=chunk_size,
                                         method=method)[0].cpu().numpy()
                bar.update(1)
    return J


def model_jacobians(checkpoint: Mapping[str, Any], x_t: np.ndarray, t: Sequence[float], *,
                    device: torch.device | str, jacobian: Mapping[str, Any]) -> np.ndarray:
    """Exact score Jacobians of a checkpoint's score model at every (image, t), per the `jacobian` config
    section (dtype, chunk_size, method, memory_format).

    Args:
        x_t: (n, T, *S), x_t[:, j] at time t[j] (see `jacobians_at_times`).

    Returns:
        J: (n, T, D, D) float32 (D = 784 for MNIST).
    """
    dtype = DTYPES[jacobian["dtype"]]
    score_fn = score_fn_from_checkpoint(checkpoint, device=device, dtype=dtype,
                                        memory_format=memory_format(jacobian["memory_format"], device))
    return jacobians_at_times(score_fn, x_t, t, device=device, dtype=dtype, chunk_size=jacobian["chunk_size"],
                              method=jacobian["method"])


def lowrank_kappas(kappa: float, kappa_sweep: Sequence[float] = ()) -> list[float]:
    """The slacks the matrix-free route computes r_t at: `kappa` and the sweep's kappas at or above it (a smaller
    kappa moves the threshold into the dense off-manifold bulk, where k would have to grow towards D/2)."""
    return sorted({float(kappa), *(float(k) for k in kappa_sweep if k >= kappa)})


def model_spectra(checkpoint: Mapping[str, Any], x_t: np.ndarray, t: Sequence[float], sigma: Sequence[float], *,
                  device: torch.device | str, jacobian: Mapping[str, Any], kappa: float = 0.1,
                  kappa_sweep: Sequence[float] = (), progress: bool = True) -> dict[str, np.ndarray]:
    """What the Jacobian stage stores of every (image, t), by the `jacobian` config section's route
    (`geometry.lowrank.choose_route` of ``jacobian.route`` and D): ``{"J": (n, T, D, D)}`` for the exact route
    (`model_jacobians`), or the matrix-free spectra packed as arrays (`geometry.lowrank.pack_spectra`: the k
    triplets and eigenpairs, O(k D) per point), computed at `lowrank_kappas` with ``jacobian.k_max`` and the
    options of ``jacobian.lowrank``.

    Args:
        x_t: (n, T, *S), x_t[:, j] at time t[j] (see `jacobians_at_times`); sigma: (T,).
    """
    from ..geometry.lowrank import choose_route, lowrank_at_times, pack_spectra

    D = int(np.prod(x_t.shape[2:]))
    if choose_route(jacobian.get("route", "exact"), D) == "exact":
        return {"J": model_jacobians(checkpoint, x_t, t, device=device, jacobian=jacobian)}
    dtype = DTYPES[jacobian["dtype"]]
    score_fn = score_fn_from_checkpoint(checkpoint, device=device, dtype=dtype,
                                        memory_format=memory_format(jacobian["memory_format"], device))
    spectra = lowrank_at_times(score_fn, x_t, t, sigma, kappa, device=device, dtype=dtype, progress=progress,
                               kappas=lowrank_kappas(kappa, kappa_sweep), k_max=jacobian["k_max"],
                               **jacobian.get("lowrank", {}))
    return pack_spectra(spectra)


def noisy_heldout(images: np.ndarray, t: Sequence[float], sde: VPSDE, *, seed: int) -> np.ndarray:
    """Forward-noised real images: x_t = alpha_t x_0 + sigma_t eps for each image and t.

    Args:
        images: (n, C, H, W) in [-1, 1].

    Returns:
        (n, T, H, W) float32 for one channel (the pipeline's layout), else (n, T, C, H, W).
    """
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.as_tensor(images, dtype=torch.float64)
    x0 = x0[:, 0] if x0.ndim == 4 and x0.shape[1] == 1 else x0
    out = []
    for tj in t:
        eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        out.append(sde.perturb(x0, float(tj), eps))
    return torch.stack(out, dim=1).float().numpy()


def heldout_jacobians(checkpoint: Mapping[str, Any], dataset: Any, t: Sequence[float], *,
                      device: torch.device | str, jacobian: Mapping[str, Any],
                      calibration: Mapping[str, Any], kappa: float = 0.1) -> dict[str, np.ndarray]:
    """The model's score Jacobians on forward-noised held-out real digits, for the noise-floor calibration.

    `calibration.n_images` held-out digits are chosen with `calibration.seed`, round-robin over labels so a
    handful still covers many classes, and noised at each t (x_t = alpha_t x_0 + sigma_t eps).

    Returns:
        J (n, T, D, D) float32 (or the matrix-free route's packed spectra at `kappa`, `model_spectra`), images (n,)
        held-out indices, labels (n,), t (T,), sigma (T,).
    """
    from ..datasets import to_model_range

    rng = np.random.default_rng(calibration["seed"])
    labels = dataset.heldout_labels
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = [idx[k] for k in range(max(map(len, per_class))) for idx in per_class if k < len(idx)]
    chosen = np.array(order[: calibration["n_images"]])
    sde = VPSDE(**checkpoint["config"]["sde"])
    x_t = noisy_heldout(to_model_range(dataset.heldout_images[chosen]).numpy(), t, sde, seed=calibration["seed"])
    sigma = sde.sigma(torch.tensor(np.asarray(t), dtype=torch.float64)).numpy()
    out = model_spectra(checkpoint, x_t, t, sigma, device=device, jacobian=jacobian, kappa=kappa)
    return out | {"images": chosen, "labels": labels[chosen], "t": np.asarray(t, dtype=np.float64), "sigma": sigma}


def compute_jacobians(checkpoint: Mapping[str, Any], sequences: Mapping[str, np.ndarray], *, shard: int,
                      device: torch.device | str, jacobian: Mapping[str, Any], config_hash: str,
                      kappa: float = 0.1, kappa_sweep: Sequence[float] = ()) -> tuple[dict[str, np.ndarray],
                                                                                     dict[str, Any]]:
    """Rule compute_jacobians: the Jacobians of one shard of the first `jacobian.n_images` sequences, by the
    configured route (`model_spectra`; `kappa`, `kappa_sweep`: the matrix-free route's r_t).

    Args:
        sequences: x_t (n, T, ...), t (T,), sigma (T,) of samples/sequences.h5.
        shard: which of `jacobian.shards` (`shard_images`).
        config_hash: the sequences' config hash, carried to the output.

    Returns:
        The shard's HDF5 datasets (J (n_shard, T, D, D) or the packed spectra; images, t, sigma) and attributes.
    """
    images = shard_images(jacobian["n_images"], jacobian["shards"], shard)
    out = model_spectra(checkpoint, sequences["x_t"][images], sequences["t"], sequences["sigma"], device=device,
                        jacobian=jacobian, kappa=kappa, kappa_sweep=kappa_sweep)
    return (out | {"images": images, "t": sequences["t"], "sigma": sequences["sigma"]},
            {"config_hash": config_hash, "jacobian": dict(jacobian), "device": str(device),
             "route": "lowrank" if "J" not in out else "exact"})


def compute_heldout_jacobians(checkpoint: Mapping[str, Any], dataset: Any, t: Sequence[float], *,
                              device: torch.device | str, jacobian: Mapping[str, Any],
                              calibration: Mapping[str, Any], kappa: float = 0.1
                              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Rule compute_heldout_jacobians: `heldout_jacobians` as HDF5 datasets and attributes."""
    out = heldout_jacobians(checkpoint, dataset, t, device=device, jacobian=jacobian, calibration=calibration,
                            kappa=kappa)
    return out, {"calibration": dict(calibration), "device": str(device),
                 "route": "lowrank" if "J" not in out else "exact"}


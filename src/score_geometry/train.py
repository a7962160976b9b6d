"""Training of the score network by denoising score matching (the `train_model` rule), on the training engine.

This module supplies the step (a batch, t and noise from the state's generator, `score.dsm_loss`, the
learning-rate warm-up, gradient clipping, the EMA) and the config glue; `training.engine` does the rest
(exact resume, atomic checkpoints, metrics). The toy's MLP trains through the same `train_model`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from . import io
from .models import pca_oracle_checkpoint
from .networks import build_network, load_ema_network
from .score import dsm_loss
from .score_models import LOADERS, check_score_model, external_reference, load_score_model
from .sde import VPSDE
from .training import engine
from .training.engine import TrainState, update_ema  # noqa: F401 (re-exported)

build_model = build_network  # the trained network, by model.architecture (networks.py)
load_ema_model = load_ema_network

#: What ``model.score_model`` may name (`fit_score_model`).
KINDS = tuple(LOADERS)


def init_state(model_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any], *, seed: int,
               device: torch.device | str = "cpu", image_shape: tuple[int, ...] | None = None) -> TrainState:
    """Fresh model (for data of `image_shape`, see `networks.build_network`), EMA copy, Adam and generator, all
    seeded from `seed`."""
    return engine.init_state(lambda: build_model(model_cfg, image_shape=image_shape),
                             lambda model: torch.optim.Adam(model.parameters(), lr=train_cfg["lr"]),
                             seed=seed, device=device, ema=True)


def learning_rate(step: int, train_cfg: Mapping[str, Any]) -> float:
    """Linear warm-up over `warmup_steps`, then constant."""
    warm = train_cfg["warmup_steps"]
    return train_cfg["lr"] * min(1.0, (step + 1) / warm) if warm > 0 else train_cfg["lr"]


def train_step(state: TrainState, images: torch.Tensor, sde: VPSDE, train_cfg: Mapping[str, Any],
               *, parameterisation: str) -> float:
    """One optimiser step on a random batch of `images` (N, *S): (N, 1, 28, 28) digits or (N, 3) toy points;
    returns the loss.

    Raises:
        FloatingPointError: on a NaN/inf loss, before any weight is touched.
    """
    idx = torch.randint(images.shape[0], (train_cfg["batch_size"],), generator=state.generator,
                        device=state.generator.device)
    x0 = images[idx.to(images.device)]
    state.model.train()
    loss = dsm_loss(state.model, x0, sde, parameterisation=parameterisation, loss_space=train_cfg["loss"],
                    t_min=train_cfg["t_min"], t_sampling=train_cfg["t_sampling"], generator=state.generator)
    return engine.optimizer_step(state, loss, lr=learning_rate(state.step, train_cfg),
                                 grad_clip=train_cfg["grad_clip"], ema_decay=train_cfg["ema_decay"])


def resume_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of everything a resumed run must share with the checkpoint. Step counts and logging cadence are
    left out, so raising ``train.steps`` continues the same run instead of starting over."""
    train = {k: v for k, v in cfg["train"].items() if k not in ("steps", "checkpoint_every", "log_every")}
    from .datasets import data_identity

    return io.config_hash({"seed": cfg["seed"], "data": data_identity(cfg["data"]), "sde": cfg["sde"],
                           "model": cfg["model"],
                           "train": train})


def train_model(images: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path: str | Path,
                metrics_path: str | Path, device: torch.device | str = "cpu", progress: bool = True) -> TrainState:
    """Train (or resume training) the score network to `cfg["train"]["steps"]`.

    Args:
        images: (N, *S) training data: (N, 1, 28, 28) images in [-1, 1], or (N, 3) points of the toy surface.
        cfg: resolved config with sections ``seed``, ``sde``, ``model``, ``train``. Its hash is stored in
            every checkpoint; a checkpoint made with a different config is never resumed from.
        checkpoint_path: the rolling training-state checkpoint, rewritten atomically every
            ``train.checkpoint_every`` steps and at the end.
        metrics_path: JSONL file; one record per ``train.log_every`` steps (step, loss, ema_loss, lr, steps/s).

    Returns:
        The final TrainState (its `ema` is what sampling and analysis use).

    Raises:
        FloatingPointError: on a non-finite loss; the last good checkpoint is left in place.
    """
    train_cfg, sde = cfg["train"], VPSDE(**cfg["sde"])
    parameterisation = cfg["model"]["parameterisation"]
    state = init_state(cfg["model"], train_cfg, seed=cfg["seed"], device=device, image_shape=tuple(images.shape[1:]))
    images = images.to(device)

    def step(state: TrainState) -> dict[str, float]:
        loss = train_step(state, images, sde, train_cfg, parameterisation=parameterisation)
        # The smoothed loss of the metrics log (~100 steps).
        state.ema_loss = loss if state.ema_loss is None else 0.99 * state.ema_loss + 0.01 * loss
        return {"loss": loss, "ema_loss": state.ema_loss, "lr": learning_rate(state.step - 1, train_cfg)}

    run = engine.Run(Path(checkpoint_path), Path(metrics_path), cfg, resume_hash(cfg))
    return engine.fit(state, step, total=train_cfg["steps"], run=run, log_every=train_cfg["log_every"],
                      checkpoint_every=train_cfg["checkpoint_every"], device=device, progress=progress)


def final_checkpoint(state: TrainState, cfg: Mapping[str, Any], *,
                     image_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """What sampling and analysis need: model and EMA weights, the step, the resolved config and, for images,
    the (C, H, W) the network was built for."""
    shape = {} if image_shape is None else {"image_shape": [int(s) for s in image_shape]}
    return {"kind": cfg["model"].get("architecture", "unet"),
            "state": {"model": state.model.state_dict(), "ema": state.ema.state_dict()},
            "step": state.step, "config": dict(cfg), **shape}


def training_options(state: TrainState, cfg: Mapping[str, Any], *, device: torch.device | str,
                     threads: int) -> dict[str, Any]:
    """The resolved config plus facts about the run, dumped next to the model (like EDM's training_options)."""
    return {**dict(cfg), "n_parameters": sum(p.numel() for p in state.model.parameters()), "final_step": state.step,
            "device": str(device), "threads": threads, "torch_version": torch.__version__}


def fit_score_model(images: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path: str | Path,
                    metrics_path: str | Path, device: torch.device | str = "cpu",
                    threads: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `train_model` rule: train the U-Net (resumably) or build the oracle, per ``model.score_model``; or,
    when ``model.source`` is not ``train``, write the reference to the external model (checked to load and to
    serve this data).

    Returns:
        The final checkpoint (model reference) dict and the training-options dict to dump beside it.
    """
    if cfg["model"].get("source", "train") != "train":
        ref = external_reference(cfg, tuple(images.shape[1:]))
        model = load_score_model(ref, device=device)
        checks = check_score_model(model, tuple(images.shape[1:]), device=device)
        io.append_jsonl(metrics_path, {"step": 0, "source": ref["kind"], **checks})
        return ref, {**dict(cfg), "score_model": ref["kind"], "final_step": 0, "device": str(device),
                     "parameterisation_read": model.parameterisation, **checks}
    kind = cfg["model"]["score_model"]
    if kind == "gaussian_oracle":
        ckpt = pca_oracle_checkpoint(images, cfg)
        io.append_jsonl(metrics_path, {"step": 0, "oracle_rank": cfg["model"]["oracle_rank"],
                                       "explained_variance": float(ckpt["state"]["variances"].sum())})
        return ckpt, {**dict(cfg), "score_model": kind, "final_step": 0, "device": str(device)}
    if kind == "unet":
        state = train_model(images, cfg, checkpoint_path=checkpoint_path, metrics_path=metrics_path, device=device)
        return (final_checkpoint(state, cfg, image_shape=tuple(images.shape[1:])),
                training_options(state, cfg, device=device, threads=threads))
    raise ValueError(f"model.score_model must be one of {KINDS}, got {kind!r}")


# --- deprecated since 0.2.0, removed in 0.3.0 (CHANGELOG.md) ----------------------------------------------------
def _resume_from(checkpoint_path: str | Path, state: Any, chash: str, *, metrics_path: str | Path,
                 device: torch.device | str) -> None:
    """0.1's ``train.resume_from(checkpoint_path, state, chash, *, metrics_path, device)`` on
    `training.engine.resume`, which reads the same checkpoints: load `state` from a rolling checkpoint of the
    same config hash, else keep it fresh; drop metrics records past the resumed step. Like 0.1, no budget check
    (`engine.resume`'s ``total`` does that)."""
    engine.resume(state, engine.Run(Path(checkpoint_path), Path(metrics_path), {}, chash), device=device)


def _save_state(checkpoint_path: str | Path, state: Any, cfg: Mapping[str, Any], chash: str) -> None:
    """0.1's ``train.save_state(checkpoint_path, state, cfg, chash)`` on `training.engine.save`: the same atomic
    checkpoint (state, resolved config, its hash). The run's metrics log is not touched by a save."""
    engine.save(state, engine.Run(Path(checkpoint_path), Path(os.devnull), cfg, chash))


from ._deprecation import moved_names  # noqa: E402

_RUN = "training.engine.Run(checkpoint_path, metrics_path, cfg, chash)"
__getattr__ = moved_names(__name__, {
    "resume_from": f"score_geometry.train:_resume_from | score_geometry.training.engine.resume(state, {_RUN}, "
                   "device=device)",
    "save_state": f"score_geometry.train:_save_state | score_geometry.training.engine.save(state, {_RUN})",
    "ARCHITECTURES": "score_geometry.networks:ARCHITECTURES",
})

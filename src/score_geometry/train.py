"""Training of the score network by denoising score matching, with EMA and exactly resumable checkpoints.

Every random number the loop draws (batch indices, t, noise) comes from one `torch.Generator` whose
state is checkpointed together with the model, EMA, optimiser, the global torch RNG and the step, so on
the CPU a run that is killed and resumed ends with bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from . import io
from .networks import ARCHITECTURES, build_network, load_ema_network
from .score import dsm_loss
from .sde import VPSDE

log = logging.getLogger(__name__)

build_model = build_network  # the trained network, by model.architecture (networks.py)
load_ema_model = load_ema_network


@dataclass
class TrainState:
    """Everything that changes during training."""

    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    ema_loss: float | None = None  # the smoothed loss of the metrics log; checkpointed so a resumed log matches

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "ema_loss": self.ema_loss,
        }

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        self.model.load_state_dict(d["model"])
        self.ema.load_state_dict(d["ema"])
        self.optimizer.load_state_dict(d["optimizer"])
        self.generator.set_state(d["generator"])
        torch.set_rng_state(d["torch_rng"])
        self.step = int(d["step"])
        # States saved before ema_loss was checkpointed restart it from the next loss.
        self.ema_loss = d.get("ema_loss")


def init_state(model_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any], *, seed: int,
               device: torch.device | str = "cpu") -> TrainState:
    """Fresh model, EMA copy, Adam and generator, all seeded from `seed`."""
    torch.manual_seed(seed)
    model = build_model(model_cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg["lr"])
    generator = torch.Generator(device=device).manual_seed(seed)
    return TrainState(model, ema, optimizer, generator)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, *, decay: float, step: int) -> None:
    """ema <- d ema + (1 - d) model, with d = min(decay, (1 + step) / (10 + step)) warming up early."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


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
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite training loss {value} at step {state.step + 1}")
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate(state.step, train_cfg)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if train_cfg["grad_clip"] > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), train_cfg["grad_clip"])
    state.optimizer.step()
    state.step += 1
    update_ema(state.ema, state.model, decay=train_cfg["ema_decay"], step=state.step)
    return value


def resume_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of everything a resumed run must share with the checkpoint. Step counts and logging cadence are
    left out, so raising ``train.steps`` continues the same run instead of starting over."""
    train = {k: v for k, v in cfg["train"].items() if k not in ("steps", "checkpoint_every", "log_every")}
    from .datasets import data_identity

    return io.config_hash({"seed": cfg["seed"], "data": data_identity(cfg["data"]), "sde": cfg["sde"],
                           "model": cfg["model"],
                           "train": train})


def resume_from(checkpoint_path: Path, state: Any, chash: str, *, metrics_path: str | Path,
                device: torch.device | str) -> None:
    """Load `state` (anything with ``load_state_dict`` and ``step``) from a rolling training checkpoint made
    with the same config hash; a checkpoint of another config is ignored with a warning, a corrupt one is set
    aside (see `io.load_resume_state`) and training starts fresh. Metrics records beyond the resumed step are
    dropped, so a resumed run's log matches an uninterrupted one."""
    ckpt = io.load_resume_state(checkpoint_path, map_location=device)
    if ckpt is not None:
        if ckpt.get("config_hash") == chash:
            state.load_state_dict(ckpt["state"])
            log.info("resumed from %s at step %d", checkpoint_path, state.step)
        else:
            log.warning("ignoring %s: it was made with a different config", checkpoint_path)
    io.truncate_jsonl(metrics_path, max_step=state.step)


def save_state(checkpoint_path: Path, state: Any, cfg: Mapping[str, Any], chash: str) -> None:
    """Write the rolling training checkpoint (atomically): state, resolved config and its hash."""
    io.save_checkpoint(checkpoint_path, {"state": state.state_dict(), "config": dict(cfg), "config_hash": chash})


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
    chash = resume_hash(cfg)
    state = init_state(cfg["model"], train_cfg, seed=cfg["seed"], device=device)
    checkpoint_path = Path(checkpoint_path)
    resume_from(checkpoint_path, state, chash, metrics_path=metrics_path, device=device)

    def save() -> None:
        save_state(checkpoint_path, state, cfg, chash)

    images = images.to(device)
    t0, steps_since = time.perf_counter(), 0
    bar = tqdm(total=train_cfg["steps"], initial=state.step, desc="train", disable=not progress, mininterval=5)
    while state.step < train_cfg["steps"]:
        try:
            loss = train_step(state, images, sde, train_cfg, parameterisation=parameterisation)
        except FloatingPointError as e:
            raise FloatingPointError(f"{e}; the last good checkpoint is kept at {checkpoint_path}") from None
        state.ema_loss = loss if state.ema_loss is None else 0.99 * state.ema_loss + 0.01 * loss
        steps_since += 1
        bar.update(1)
        if state.step % train_cfg["log_every"] == 0 or state.step == train_cfg["steps"]:
            rate = steps_since / (time.perf_counter() - t0)
            io.append_jsonl(metrics_path, {"step": state.step, "loss": loss, "ema_loss": state.ema_loss,
                                           "lr": learning_rate(state.step - 1, train_cfg), "steps_per_s": rate})
            bar.set_postfix(loss=f"{state.ema_loss:.4f}")
            t0, steps_since = time.perf_counter(), 0
        if state.step % train_cfg["checkpoint_every"] == 0:
            save()
    bar.close()
    save()
    return state


def final_checkpoint(state: TrainState, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What sampling and analysis need: model and EMA weights, the step and the resolved config."""
    return {"kind": cfg["model"].get("architecture", "unet"),
            "state": {"model": state.model.state_dict(), "ema": state.ema.state_dict()},
            "step": state.step, "config": dict(cfg)}


def training_options(state: TrainState, cfg: Mapping[str, Any], *, device: torch.device | str,
                     threads: int) -> dict[str, Any]:
    """The resolved config plus facts about the run, dumped next to the model (like EDM's training_options)."""
    return {**dict(cfg), "n_parameters": sum(p.numel() for p in state.model.parameters()), "final_step": state.step,
            "device": str(device), "threads": threads, "torch_version": torch.__version__}

"""The one training engine: state, exact resume, atomic checkpoints, EMA, JSONL metrics and a progress bar.

A trainer builds a `TrainState` (`init_state`) and hands `fit` its step: a function that advances the state by
one unit, one optimiser step (through `optimizer_step`) or one epoch, and returns that unit's metrics. `fit`
resumes from the rolling checkpoint of a `Run` made with the same config hash, runs the steps, appends the
metrics to the run's JSONL log, saves the state atomically every few units and at the end.

Exact resume: every random number a step draws comes from `TrainState.generator` (batches, t, noise) or the
global torch RNG (dropout), and both are checkpointed with the model, EMA, optimiser and counters, so on the CPU
a run that is killed and resumed ends bit-identical to an uninterrupted one, metrics log included.

The EMA is hand-written, not `torch.optim.swa_utils.AveragedModel`: `get_ema_multi_avg_fn` has a constant
decay, so without this warm-up it gives other weights, and an `AveragedModel` with the warm-up as its
`avg_fn`, though bit-identical (checked), renames the EMA's state-dict keys (``module.`` prefix, ``n_averaged``)
that every model checkpoint already written stores, and leaves buffers stale instead of copying them.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import io

log = logging.getLogger(__name__)

UNITS = ("step", "epoch")

#: A trainer's step: advances the state by one unit and returns that unit's metrics (JSON-able values).
Step = Callable[["TrainState"], Mapping[str, Any]]


@dataclass
class TrainState:
    """Everything that changes during training; `state_dict` is what the rolling checkpoint stores.

    Attributes:
        model: the network being trained.
        optimizer: its optimiser.
        generator: draws every random number of the steps (batch indices, t, noise), on the model's device.
        ema: exponential moving average of `model`'s weights (`update_ema`), or None for a trainer without one.
        step: optimiser steps taken.
        epoch: passes over the data completed (epoch-based trainers; stays 0 for the others).
        ema_loss: the smoothed loss of a metrics log that has one (None before the first step).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    ema: nn.Module | None = None
    step: int = 0
    epoch: int = 0
    ema_loss: float | None = None

    def state_dict(self) -> dict[str, Any]:
        out = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
               "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(), "step": self.step,
               "epoch": self.epoch, "ema_loss": self.ema_loss}
        if self.ema is not None:
            out["ema"] = self.ema.state_dict()
        return out

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        self.model.load_state_dict(d["model"])
        if self.ema is not None:
            self.ema.load_state_dict(d["ema"])
        self.optimizer.load_state_dict(d["optimizer"])
        self.generator.set_state(d["generator"])
        torch.set_rng_state(d["torch_rng"])
        self.step = int(d["step"])
        # States written by the older per-trainer loops lack one of these: a score net's had no epoch, a VAE's
        # no ema_loss, and the earliest no ema_loss (it then restarts from the next loss).
        self.epoch = int(d.get("epoch", 0))
        self.ema_loss = d.get("ema_loss")


def init_state(build: Callable[[], nn.Module], make_optimizer: Callable[[nn.Module], torch.optim.Optimizer], *,
               seed: int, device: torch.device | str = "cpu", ema: bool = False) -> TrainState:
    """A fresh state, all seeded from `seed`: the global torch RNG (before `build` initialises the weights) and
    the step generator.

    Args:
        build: makes the untrained network (on the CPU; moved to `device` here).
        make_optimizer: the optimiser over the network's parameters.
        ema: keep an EMA copy of the weights, starting at the initial weights.
    """
    torch.manual_seed(seed)
    model = build().to(device)
    averaged = copy.deepcopy(model).requires_grad_(False) if ema else None
    return TrainState(model, make_optimizer(model), torch.Generator(device=device).manual_seed(seed), averaged)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, *, decay: float, step: int) -> None:
    """ema <- d ema + (1 - d) model, with d = min(decay, (1 + step) / (10 + step)) warming up early; buffers
    are copied."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def optimizer_step(state: TrainState, loss: torch.Tensor, *, lr: float | None = None, grad_clip: float = 0.0,
                   ema_decay: float | None = None) -> float:
    """Take one optimiser step down `loss` and count it (``state.step += 1``); then update the EMA, if any.

    Args:
        loss: scalar loss of the batch, still attached to the graph.
        lr: learning rate for every parameter group at this step (a schedule); None leaves the groups' own.
        grad_clip: clip the gradients' global norm to this; 0 does not clip.
        ema_decay: the EMA's decay (`update_ema`); required when the state has an EMA.

    Returns:
        The loss as a float.

    Raises:
        FloatingPointError: on a NaN/inf loss, before any weight is touched.
    """
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite training loss {value} at step {state.step + 1}")
    if state.ema is not None and ema_decay is None:
        raise ValueError("this training state keeps an EMA: pass ema_decay to optimizer_step")
    if lr is not None:
        for group in state.optimizer.param_groups:
            group["lr"] = lr
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), grad_clip)
    state.optimizer.step()
    state.step += 1
    if state.ema is not None:
        update_ema(state.ema, state.model, decay=ema_decay, step=state.step)
    return value


@dataclass(frozen=True)
class Run:
    """Where a resumable run keeps its rolling state and metrics log, and the config that identifies it.

    Attributes:
        checkpoint_path: the rolling training state, rewritten atomically.
        metrics_path: the JSONL metrics log.
        config: the resolved config, stored in every checkpoint.
        config_hash: what a checkpoint must carry to be resumed from: a hash of everything a resumed run must
            share with it (the trainer's ``resume_hash``; not the step count, so raising it continues the run).
    """

    checkpoint_path: Path
    metrics_path: Path
    config: Mapping[str, Any]
    config_hash: str


def resume(state: TrainState, run: Run, *, device: torch.device | str = "cpu", total: int | None = None,
           unit: str = "step") -> None:
    """Load `state` from the run's rolling checkpoint if it was made with the same config hash and has not gone
    past `total` units; one of another config, or one trained past `total` (a budget lowered after a longer
    run: resuming it would ship the longer-trained model as the shorter one), is ignored with a warning, a
    corrupt one set aside (`io.load_resume_state`), and training starts fresh. Metrics records beyond the
    resumed step are dropped, so a resumed log matches an uninterrupted one."""
    ckpt = io.load_resume_state(run.checkpoint_path, map_location=device)
    if ckpt is not None:
        done = int(ckpt["state"].get(unit, 0)) if isinstance(ckpt.get("state"), Mapping) else 0
        if ckpt.get("config_hash") != run.config_hash:
            log.warning("ignoring %s: it was made with a different config", run.checkpoint_path)
        elif total is not None and done > total:
            log.warning("ignoring %s: it is at %s %d, past the requested %d; training %d %ss from the start",
                        run.checkpoint_path, unit, done, total, total, unit)
        else:
            state.load_state_dict(ckpt["state"])
            log.info("resumed from %s at step %d", run.checkpoint_path, state.step)
    io.truncate_jsonl(run.metrics_path, max_step=state.step)


def discard(run: Run) -> None:
    """Remove the run's rolling checkpoint once its final outputs are written, so a later rerun of the job
    (``--forcerun``, a changed input) trains anew instead of re-emitting the finished state."""
    run.checkpoint_path.unlink(missing_ok=True)


def save(state: TrainState, run: Run) -> None:
    """Write the rolling checkpoint atomically: the state, the resolved config and its hash."""
    io.save_checkpoint(run.checkpoint_path, {"state": state.state_dict(), "config": dict(run.config),
                                             "config_hash": run.config_hash})


def fit(state: TrainState, step: Step, *, total: int, unit: str = "step", run: Run | None = None,
        log_every: int = 1, checkpoint_every: int = 1, device: torch.device | str = "cpu", progress: bool = True,
        desc: str = "train") -> TrainState:
    """Train (or resume training) until the state's `unit` counter reaches `total`.

    Args:
        state: a fresh state (`init_state`); loaded from the run's checkpoint when one of the same config exists.
        step: the trainer's step. It advances `state` by one `unit`: one optimiser step (calling
            `optimizer_step`, which counts it) or one epoch (counting it itself, ``state.epoch += 1``), and
            returns that unit's metrics.
        total: where the counter stops (``train.steps``, ``vae.epochs``).
        unit: ``step`` or ``epoch``: the counter that `total`, `log_every` and `checkpoint_every` count.
        run: the rolling checkpoint and metrics log; None trains in memory (no resume, no log, no checkpoint).
        log_every: one metrics record every this many units and at the last: ``epoch`` (for unit epoch),
            ``step``, the step's metrics and ``steps_per_s`` (optimiser steps per second since the last record).
        checkpoint_every: the rolling state is saved every this many units, and at the end.
        device: where the checkpoint's tensors are loaded to.
        progress: show a progress bar (stderr; with the smoothed loss, or the loss, of the last record).

    Returns:
        The final state.

    Raises:
        FloatingPointError: a step's non-finite loss; the last good checkpoint is kept.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if run is not None:
        resume(state, run, device=device, total=total, unit=unit)
    bar = tqdm(total=total, initial=getattr(state, unit), desc=desc, unit=unit, disable=not progress, mininterval=5)
    t0, step0 = time.perf_counter(), state.step
    while getattr(state, unit) < total:
        before = getattr(state, unit)
        try:
            metrics = step(state)
        except FloatingPointError as e:
            where = f" in epoch {state.epoch + 1}" if unit == "epoch" else ""
            kept = f"; the last good checkpoint is kept at {run.checkpoint_path}" if run is not None else ""
            raise FloatingPointError(f"{e}{where}{kept}") from None
        n = getattr(state, unit)
        if n != before + 1:
            raise RuntimeError(f"a training step must advance state.{unit} by one, it went from {before} to {n}")
        bar.update(1)
        if n % log_every == 0 or n == total:
            record = {**({"epoch": state.epoch} if unit == "epoch" else {}), "step": state.step, **metrics,
                      "steps_per_s": (state.step - step0) / (time.perf_counter() - t0)}
            if run is not None:
                io.append_jsonl(run.metrics_path, record)
            shown = record.get("ema_loss", record.get("loss"))
            if isinstance(shown, float):
                bar.set_postfix(loss=f"{shown:.4f}")
            t0, step0 = time.perf_counter(), state.step
        if run is not None and n % checkpoint_every == 0:
            save(state, run)
    bar.close()
    if run is not None:
        save(state, run)
    return state

"""The training stages: the score model (rule train_model), the classifier that measures sample quality
(train_classifier), the toy MLP (train_toy) and the Appendix B VAEs (train_vae), each on
`score_geometry.training.engine` (all but the classifier resumably, from a work folder). Only these stages
load the training code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

if TYPE_CHECKING:
    from ..datasets import Dataset

#: (checkpoint, training options, the run's metrics.jsonl in its work folder) of one trained model.
Trained = tuple[dict[str, Any], dict[str, Any], Path]


def train_model(dataset: "Dataset", cfg: Mapping[str, Any], *, workdir: str | Path, device: torch.device | str,
                threads: int) -> Trained:
    """Rule train_model: train (or resume) the score network on the training split, build the closed-form
    oracle, or reference an external model (`train.fit_score_model`); `workdir` keeps the resumable state and
    metrics.jsonl while it runs; once trained, the resume state is removed (`finish_training`), so a rerun of the
    rule trains anew and a lowered ``train.steps`` is never served by a longer-trained state.

    Args:
        cfg: ``seed``, ``data``, ``sde``, ``model``, ``train`` sections.
    """
    checkpoint, options, metrics = _train_model(dataset, cfg, workdir=workdir, device=device, threads=threads)
    finish_training(workdir)
    return checkpoint, options, metrics


def _train_model(dataset: "Dataset", cfg: Mapping[str, Any], *, workdir: str | Path, device: torch.device | str,
                 threads: int) -> Trained:
    """`train_model` without removing the finished resume state."""
    from ..datasets import to_model_range
    from ..train import fit_score_model

    work = Path(workdir)
    checkpoint, options = fit_score_model(to_model_range(dataset.train_images), cfg,
                                          checkpoint_path=work / "train_state.pt", metrics_path=work / "metrics.jsonl",
                                          device=device, threads=threads)
    return checkpoint, options, work / "metrics.jsonl"


def train_segment(dataset: "Dataset", cfg: Mapping[str, Any], *, previous: tuple[Path, Path] | None,
                  workdir: str | Path, device: torch.device | str, threads: int) -> tuple[Trained, dict[str, Any]]:
    """Rule train_segment (workflow/trajectory.smk): one budget of one training run, continued from the
    previous budget's full training state (model, EMA, optimiser, RNGs) to ``cfg["train"]["steps"]``; the
    engine's exact resume makes the chain of segments bit-identical to one uninterrupted run of the largest
    budget, so every budget's model is a checkpoint of the same run, never a retrained or over-trained one.

    Args:
        previous: (train_state.pt, metrics.jsonl) of the previous budget, or None for the first.
        workdir: this segment's work folder (its rolling state while it runs: a killed segment resumes).

    Returns:
        `train_model`'s (checkpoint, options, metrics.jsonl) at this budget, and the full training state (the
        rolling checkpoint's contents) to continue the next budget from.
    """
    from .. import io

    work = Path(workdir)
    state = work / "train_state.pt"
    if previous is not None:
        prev_state, prev_metrics = map(Path, previous)
        behind = not state.exists() or (int(io.load_checkpoint(state)["state"]["step"])
                                        < int(io.load_checkpoint(prev_state)["state"]["step"]))
        if behind:  # start from the previous budget (a killed run of this segment is further on: keep it)
            io.copy_file(prev_state, state)
            io.copy_file(prev_metrics, work / "metrics.jsonl")
    trained = _train_model(dataset, cfg, workdir=work, device=device, threads=threads)
    final = io.load_checkpoint(state)
    finish_training(work)
    return trained, final


def finish_training(workdir: str | Path) -> None:
    """Once a training stage has its final models in memory: remove the rolling resume states under `workdir`
    (one per trained model), so a rerun of the job (``--forcerun``, a changed budget or input) trains anew,
    never re-emitting or resuming past a finished state. A job killed while training keeps its state; one
    killed in the moment between this and its outputs being written trains again (the same model: training
    is deterministic), never ships a wrong one."""
    for state in sorted(Path(workdir).rglob("train_state.pt")):
        state.unlink()


def train_classifier(dataset: "Dataset", classifier: Mapping[str, Any], *, seed: int
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rule train_classifier: the classifier that measures sample quality, trained on the training split
    (``classifier:`` section), and its accuracy on the held-out split.

    Returns:
        Its checkpoint (`quality.classifier_checkpoint`) and metrics (heldout_accuracy, n_heldout, dataset, config).
    """
    from ..datasets import to_model_range
    from ..quality import classifier_checkpoint, predict
    from ..quality import train_classifier as fit

    model = fit(to_model_range(dataset.train_images), torch.as_tensor(dataset.train_labels), dict(classifier),
                seed=seed)
    probs, _ = predict(model, to_model_range(dataset.heldout_images))
    accuracy = float((probs.argmax(1).numpy() == dataset.heldout_labels).mean())
    metrics = {"heldout_accuracy": accuracy, "n_heldout": len(dataset.heldout_labels), "dataset": dataset.name,
               "config": dict(classifier)}
    return classifier_checkpoint(model, classifier), metrics


def train_toy(toy: Mapping[str, Any], sde: Mapping[str, Any], *, workdir: str | Path, device: torch.device | str,
              threads: int) -> Trained:
    """Rule train_toy: draw the toy density's exact samples and train (or resume) the MLP score model on them
    (`toy.fit_toy_model`, the ``toy:`` training keys)."""
    from ..toy import fit_toy_model

    work = Path(workdir)
    checkpoint, options = fit_toy_model(dict(toy), dict(sde), checkpoint_path=work / "train_state.pt",
                                        metrics_path=work / "metrics.jsonl", device=device, threads=threads)
    finish_training(work)
    return checkpoint, options, work / "metrics.jsonl"


def train_vae(dataset: "Dataset", vae: Mapping[str, Any], *, data: Mapping[str, Any], sde: Mapping[str, Any],
              workdir: str | Path, device: torch.device | str, threads: int) -> list[Trained]:
    """Rule train_vae: the Appendix B VAE trained (resumably) on clean training images and on noisy ones at each
    of ``vae.times``, with per-epoch convergence metrics on the held-out split; `workdir`/<condition> keeps each
    condition's state and metrics.jsonl.

    Returns:
        (checkpoint, options, metrics.jsonl) per condition, in the order clean, then ``vae.times``.
    """
    from ..datasets import to_model_range
    from ..vae import condition_name, conditions, fit_vae

    images = to_model_range(dataset.train_images)
    heldout = (to_model_range(dataset.heldout_images), dataset.heldout_labels)
    trained = []
    for t in conditions(vae):
        cfg = {"seed": vae["seed"], "data": dict(data), "sde": dict(sde), "vae": dict(vae), "t": t}
        work = Path(workdir) / condition_name(t)
        checkpoint, options = fit_vae(images, cfg, checkpoint_path=work / "train_state.pt",
                                      metrics_path=work / "metrics.jsonl", device=device, threads=threads,
                                      heldout=heldout)
        trained.append((checkpoint, options, work / "metrics.jsonl"))
    finish_training(workdir)  # only once every condition is trained: a killed job resumes the unfinished one
    return trained


"""The data and sample stages: the data set (rule prepare_data), sampling (sample_sequences) and the quality
of the samples (evaluate_samples, summarise_quality; the classifier is trained in `stages.training`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..arrays import as_images
from ..report import ReportTable, quality_table, report_table

if TYPE_CHECKING:  # torch is imported by the stages that use it: prepare_data and summarise_quality need none
    import torch

    from ..datasets import Dataset
    from ..sde import VPSDE

log = logging.getLogger(__name__)


def prepare_data(data: Mapping[str, Any]) -> "Dataset":
    """Rule prepare_data: the configured data set (``data:`` section), train and held-out splits (uint8)."""
    from ..datasets import load_dataset

    ds = load_dataset(dict(data))
    log.info("%s: %d train / %d held-out images", ds.name, len(ds.train_labels), len(ds.heldout_labels))
    return ds


def sample_sequences(checkpoint: Mapping[str, Any], sample: Mapping[str, Any], *,
                     device: torch.device | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Rule sample_sequences: Euler–Maruyama paths from the checkpoint's (EMA) model with x_t saved at
    ``sample.times``, as the HDF5 datasets and attributes of samples/sequences.h5."""
    from ..sample import sample_from_checkpoint, sequences_to_h5

    result, info = sample_from_checkpoint(checkpoint, dict(sample), device=device)
    return sequences_to_h5(result, info)


def evaluate_samples(classifier: Mapping[str, Any], sequences: Mapping[str, np.ndarray], dataset: "Dataset",
                     model: Mapping[str, Any], *, seed: int, sde: Mapping[str, Any]
                     ) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Rule evaluate_samples: the classifier's verdict on the final samples, and its label of the model's
    denoised estimate at each recorded t (class changes along a sequence).

    Args:
        classifier: the classifier's checkpoint; model: the score model's.
        sequences: x0_hat (n, *S), x_t (n, T, *S), t (T,) of samples/sequences.h5, S the stored image shape
            (`arrays.stored_image_shape`) of the data set's images.
        seed: of the real-data baseline's subset (`quality.evaluate_samples`); sde: the ``sde:`` section.

    Returns:
        The quality summary (samples/quality.json, with `quality.memorisation`'s distances to the training
        images), the per-image predictions and the labels along the sequences.
    """
    import torch

    from ..datasets import to_model_range
    from ..quality import evaluate_samples as quality_of, labels_along_sequences, load_classifier, memorisation
    from ..sde import VPSDE

    net = load_classifier(classifier)
    samples = torch.as_tensor(as_images(sequences["x0_hat"], dataset.image_shape))
    quality, per_image = quality_of(net, samples, to_model_range(dataset.heldout_images),
                                    torch.as_tensor(dataset.heldout_labels), seed=seed)
    quality |= memorisation(samples, to_model_range(dataset.train_images), to_model_range(dataset.heldout_images))
    x0_hat_t = denoised_at_times(model, as_images(sequences["x_t"], dataset.image_shape), sequences["t"], VPSDE(**sde))
    labels_t = labels_along_sequences(net, x0_hat_t, sequences["t"], per_image["label"].to_numpy())
    return quality, per_image, labels_t


def summarise_quality(quality: Mapping[str, Any]) -> ReportTable:
    """Rule summarise_quality: the sample-quality numbers (samples/quality.json) as a table for the report."""
    return report_table(quality_table(quality), title="Sample quality: is the model worth analysing?")


def denoised_at_times(checkpoint: Mapping[str, Any], x_t: np.ndarray, t: Sequence[float], sde: "VPSDE", *,
                      batch_size: int = 256) -> np.ndarray:
    """The model's posterior mean (Tweedie) x0_hat = (x_t + sigma_t^2 g(x_t, t)) / alpha_t at each recorded t:
    what the model takes each noisy sample to be an image of.

    Args:
        x_t: (n, T, C, H, W) sequences; t: (T,).
    Returns:
        (n, T, C, H, W) float32.
    """
    import torch

    from ..models import score_fn_from_checkpoint

    score = score_fn_from_checkpoint(checkpoint)
    x = torch.as_tensor(x_t, dtype=torch.float32)
    out = torch.empty_like(x)
    with torch.no_grad():
        for j, tj in enumerate(t):
            alpha, sigma = sde.scales(tj)
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size, j]
                g = score(xb, torch.full((len(xb),), float(tj)))
                out[i:i + batch_size, j] = (xb + sigma**2 * g) / alpha
    return out.numpy()

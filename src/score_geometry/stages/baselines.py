"""The baseline stages: the local-dimension estimators on held-out digits (rule estimate_dims), the VAEs' local
dimension (vae_local_dims) and the comparison of them all with the paper and r_t (compare_estimators)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd
import torch

from ..arrays import as_images
from ..baselines import comparison_markdown, comparison_table, estimate_heldout
from ..report import ReportTable, report_table

if TYPE_CHECKING:
    from ..datasets import Dataset


def estimate_dims(dataset: "Dataset", checkpoint: Mapping[str, Any], estimators: Mapping[str, Any], *,
                  device: torch.device | str) -> pd.DataFrame:
    """Rule estimate_dims: every registered estimator on the held-out digits (`baselines.estimate_heldout`;
    `estimators` is the ``estimators:`` config section)."""
    return estimate_heldout(dataset, checkpoint, estimators, device=device)


def compare_estimators(vae: pd.DataFrame, estimates: pd.DataFrame, diagnostics: pd.DataFrame) -> ReportTable:
    """Rule compare_estimators: per estimator mean +- std and per-digit means (the VAE's, vae/local_dims.parquet,
    and the others', estimators/estimates.parquet), beside the paper's VAE and the score model's r_t."""
    table = comparison_table(pd.concat([vae, estimates], ignore_index=True), diagnostics)
    return report_table(table, title="Local dimension by estimator, next to the paper and r_t",
                        markdown=comparison_markdown(table))


def vae_local_dims(dataset: "Dataset", sequences: Mapping[str, Any], predictions: pd.DataFrame,
                   checkpoints: Sequence[Mapping[str, Any]], metrics: Sequence[list[dict]], *,
                   vae: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule vae_local_dims: the VAEs' local dimension on held-out digits and on the score model's samples at the
    smallest recorded t, with each VAE's convergence verdict; every latent dim's posterior variance on held-out
    digits.

    Args:
        sequences: x_t (n, T, *S) of samples/sequences.h5 (times in increasing order; S the stored image shape,
            `arrays.stored_image_shape`, of the data set's images).
        predictions: the classifier's label of each sample (image, label).
        checkpoints, metrics: one per training condition, clean first then each of ``vae.times``.
        vae: the ``vae:`` config section (times, threshold, seed).

    Returns:
        vae/local_dims.parquet and vae/posterior_variances.parquet.
    """
    from ..datasets import to_model_range
    from ..vae import condition_name, conditions as vae_conditions, local_dims_table, posterior_variance_table

    labels = predictions.sort_values("image")["label"].to_numpy()
    samples = torch.as_tensor(as_images(sequences["x_t"][:, 0], dataset.image_shape)).float()
    conditions = [condition_name(t) for t in vae_conditions(vae)]
    by_condition = dict(zip(conditions, checkpoints))
    heldout = (to_model_range(dataset.heldout_images), dataset.heldout_labels)
    table = local_dims_table(by_condition, {"heldout": heldout, "samples": (samples, labels)},
                             threshold=vae["threshold"], seed=vae["seed"] + 1, metrics=dict(zip(conditions, metrics)))
    return table, posterior_variance_table(by_condition, *heldout, seed=vae["seed"] + 1)

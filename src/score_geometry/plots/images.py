"""Figures made of images: the grid of generated samples, and Fig. 2 (one sequence's x_t and its feature vectors).

Images are (H, W) or (C, H, W) in [-1, 1] with C = 1 (grey, drawn on a fixed grey scale) or C = 3 (RGB, drawn
as (x + 1) / 2); a feature vector has D = C·H·W entries and is drawn as an image of that shape.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .registry import figure
from .style import plt

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FEATURE_LABELS = {"v_minus": "$v_-$", "u_minus": "$u_-$", "w_zero": "$w_0$", "w_plus": "$w_+$",
                  "u_plus": "$u_+$", "v_plus": "$v_+$", "w_minus": "$w_-$"}


def _channels_first(x: np.ndarray) -> np.ndarray:
    """One image (H, W) or (C, H, W) as (C, H, W), checking C is 1 (grey) or 3 (RGB)."""
    x = np.asarray(x)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"an image must be (H, W) or (C, H, W) with C = 1 (grey) or 3 (RGB); got shape {x.shape}")
    return x


def _show(ax, x: np.ndarray, **kwargs: Any):
    """Draw one image (H, W) or (C, H, W) in [-1, 1] (clipped): grey on the fixed scale -1..1, RGB as
    (x + 1) / 2. Returns the AxesImage."""
    x = _channels_first(np.clip(x, -1, 1))
    if x.shape[0] == 1:
        return ax.imshow(x[0], cmap="gray", vmin=-1, vmax=1, **kwargs)
    return ax.imshow(np.moveaxis((x + 1) / 2, 0, -1), **kwargs)


def sample_grid(images: np.ndarray, *, labels: list[int] | None = None, ncols: int = 16,
                max_images: int = 128) -> plt.Figure:
    """Grid of generated images, optionally titled with the classifier's label.

    The grid is sized to the images: as few rows as `ncols` columns allow, and the images spread evenly over
    them (6 samples are one row of 6, not a row of 16 with 10 blank; 20 are two rows of 10).

    Args:
        images: (N, H, W) grey or (N, C, H, W) with C = 1 or 3, in [-1, 1] (clipped).
        labels: (N,) the title of each image, optional.
        ncols: the most columns.
    """
    images = np.asarray(images)[:max_images]
    n = len(images)
    if n == 0:
        raise ValueError("sample_grid: no images to draw")
    nrows = -(-n // ncols)
    ncols = -(-n // nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.6, nrows * 0.7), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            _show(ax, images[i], interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=6, pad=1)
    fig.subplots_adjust(wspace=0.05, hspace=0.3, left=0.01, right=0.99, top=0.97, bottom=0.01)
    return fig


def fig2_features(x_t: np.ndarray, features: np.ndarray, t: np.ndarray, sigma: np.ndarray,
                  feature_names: list[str], *, title: str = "") -> plt.Figure:
    """Fig. 2: one sequence; rows = times (highest noise on top), columns = x_t then the feature vectors.

    Each feature panel is scaled by its own largest |value| over all channels (a singular or eigenvector's sign
    and overall scale are arbitrary). Grey data: drawn red-blue, -1 to 1 of that maximum, as the colour bar
    shows. RGB data: drawn as the colour 0.5 + 0.5 · feature / max |feature| per channel, so mid-grey is 0 and
    the channels keep their relative size.

    Args:
        x_t: (T, H, W) or (T, C, H, W) the sequence, C = 1 or 3.
        features: (T, F, D) with D = C·H·W (e.g. (T, 7, 784) for MNIST); t, sigma: (T,).
        feature_names: (F,) names (`FEATURE_LABELS` gives the paper's symbols).
        title: e.g. which sequence and why it was chosen (its class change along the sequence).
    """
    x_t = np.asarray(x_t)
    shape = _channels_first(x_t[0]).shape
    if features.shape[-1] != int(np.prod(shape)):
        raise ValueError(f"feature vectors have {features.shape[-1]} entries, images of shape {shape} have "
                         f"{int(np.prod(shape))}; pass the features of this sequence")
    order = np.argsort(t)[::-1]
    n_rows, n_cols = len(t), 1 + len(feature_names)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.1 * n_cols + 1.3, 1.1 * n_rows + 0.6), squeeze=False)
    for r, j in enumerate(order):
        _show(axes[r, 0], x_t[j])
        axes[r, 0].set_ylabel(f"t={t[j]:g}\n$\\sigma_t$={sigma[j]:.3f}", fontsize=7)
        for c, name in enumerate(feature_names, start=1):
            f = features[j, c - 1].reshape(shape)
            scaled = f / (float(np.abs(f).max()) or 1.0)
            if shape[0] == 1:
                image = axes[r, c].imshow(scaled[0], cmap="RdBu_r", vmin=-1, vmax=1)
            else:
                axes[r, c].imshow(np.moveaxis(0.5 + 0.5 * scaled, 0, -1))
        for c in range(n_cols):
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                name = "$x_t$" if c == 0 else FEATURE_LABELS.get(feature_names[c - 1], feature_names[c - 1])
                axes[r, c].set_title(name, fontsize=9)
    top = 0.90 if title else 0.93
    fig.subplots_adjust(left=0.1, right=0.9, top=top, bottom=0.02, wspace=0.05, hspace=0.08)
    if shape[0] == 1:
        bar = fig.colorbar(image, ax=axes[:, 1:], fraction=0.025, pad=0.02)
        bar.set_label("feature / max |feature| (per panel)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    else:
        fig.text(0.5, 0.005, "RGB = 0.5 + 0.5 · feature / max |feature| (per panel; grey = 0)", ha="center",
                 va="bottom", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


# --- the workflow's figures: the rules' files -> the drawing functions above -------------------------------
@figure("samples_grid")
def draw_samples_grid(sequences: tuple[Mapping[str, np.ndarray], Mapping], predictions: "pd.DataFrame"
                      ) -> plt.Figure:
    """The final samples (``x0_hat`` of samples/sequences.h5) titled with the classifier's label
    (samples/predictions.parquet, in image order)."""
    data, _ = sequences
    return sample_grid(data["x0_hat"], labels=predictions["label"].tolist())


@figure("fig2_features")
def draw_fig2(sequences: tuple[Mapping[str, np.ndarray], Mapping], features: tuple[Mapping[str, np.ndarray], Mapping],
              labels_t: "pd.DataFrame", *, image: int | str, n_analysed: int) -> plt.Figure:
    """Fig. 2 of one sequence: `image` (plots.fig2_image), or with ``auto`` the analysed sequence whose label
    changes most along it (`quality.class_change_example` on samples/labels_along_sequences.parquet).

    Args:
        sequences: samples/sequences.h5 (x_t (n, T, ...)); features: stats/features.h5 (features, images, t,
            sigma; attribute feature_names); labels_t: the classifier's labels along the sequences.
        n_analysed: jacobian.n_images (the sequences that have features).
    """
    from ..quality import class_change_example

    if image == "auto":
        image, title = class_change_example(labels_t, n_analysed=n_analysed)
    else:
        image = int(image)
        final = labels_t[labels_t["image"] == image]["final_label"].iloc[0]
        title = f"sequence {image} (plots.fig2_image): final label {final}"
    log.info("Fig. 2 shows %s", title)
    feats, attrs = features
    row = int(np.flatnonzero(feats["images"] == image)[0])
    return fig2_features(sequences[0]["x_t"][image], feats["features"][row], feats["t"], feats["sigma"],
                         list(attrs["feature_names"]), title=title)

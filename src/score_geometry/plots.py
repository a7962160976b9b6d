"""Figures. Functions take arrays/tables and return matplotlib Figures; callers save them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def sample_grid(images: np.ndarray, *, labels: list[int] | None = None, ncols: int = 16,
                max_images: int = 128) -> plt.Figure:
    """Grid of generated images (N, 28, 28) in [-1, 1], optionally titled with the classifier's label."""
    images = np.clip(np.asarray(images)[:max_images], -1, 1)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.6, nrows * 0.7), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=6, pad=1)
    fig.subplots_adjust(wspace=0.05, hspace=0.3, left=0.01, right=0.99, top=0.97, bottom=0.01)
    return fig

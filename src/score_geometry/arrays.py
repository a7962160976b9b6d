"""Array conversion shared by the numpy-side analysis modules (no torch import)."""

from __future__ import annotations

import numpy as np


def to_numpy64(a) -> np.ndarray:
    """Tensor (any device/dtype) or array-like -> float64 numpy array."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor without importing torch
        a = a.detach().cpu()
        if a.is_floating_point() and str(a.dtype) != "torch.float64":
            a = a.double()
        a = a.numpy()
    return np.asarray(a, dtype=np.float64)


def stored_image_shape(image_shape) -> tuple[int, ...]:
    """How one image is stored in the pipeline's HDF5 files: (H, W) for grey (1, H, W) images (the layout of
    every MNIST run), else the image shape itself, e.g. (3, 16, 16)."""
    image_shape = tuple(int(s) for s in image_shape)
    return image_shape[1:] if len(image_shape) == 3 and image_shape[0] == 1 else image_shape


def as_images(a, image_shape=None):
    """Images as stored (…, *stored_image_shape(S)) -> (…, *S), S = (C, H, W); without `image_shape` (files
    written before it was recorded), grey images (…, H, W) -> (…, 1, H, W). Works on arrays and tensors."""
    if image_shape is None:
        return a.reshape(*a.shape[:-2], 1, *a.shape[-2:])
    image_shape = tuple(int(s) for s in image_shape)
    stored = stored_image_shape(image_shape)
    if tuple(a.shape[a.ndim - len(stored):]) != stored:
        raise ValueError(f"array of shape {tuple(a.shape)} does not end in the stored image shape {stored} of "
                         f"images {image_shape}")
    return a.reshape(*a.shape[: a.ndim - len(stored)], *image_shape)

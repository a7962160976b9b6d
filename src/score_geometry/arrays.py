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

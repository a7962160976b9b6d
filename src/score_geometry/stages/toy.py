"""The toy stage (rule analyse_toy): the learned against the exact toy score, where its skew part acts, for the
model and the controls whose answers are known, and Fig. 1's arrays (docs/nonconservative.md)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import io


def analyse_toy(checkpoint: Mapping[str, Any], *, toy: Mapping[str, Any], sde: Mapping[str, Any]
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """Rule analyse_toy (`toy.analyse_toy_model`, `toy.analyse_toy_controls`).

    Returns:
        The per-point table, its summary, the controls' summary, and Fig. 1's field as HDF5 datasets and
        attributes (t, sigma, alpha, radius and the config hash of `toy` and `sde`).
    """
    from ..toy import analyse_toy_controls, analyse_toy_model

    points, summary, field, attrs = analyse_toy_model(checkpoint, dict(toy), dict(sde))
    controls = analyse_toy_controls(dict(toy), dict(sde))
    return points, summary, controls, field, {**attrs, "config_hash": io.config_hash({"toy": toy, "sde": sde})}

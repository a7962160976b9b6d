"""Tidy tables of local-dimension estimates and their comparison with the paper's VAE numbers (Appendix B) and
the score model's r_t (§3.2).

Estimates have the columns of `COLUMNS` (estimator, dataset, condition, point, label, t, local_dim); `t` is NaN
for estimates on clean points.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .registry import external

COLUMNS = ["estimator", "dataset", "condition", "point", "label", "t", "local_dim"]
# Appendix B: "13 +- 3" on clean MNIST; digit 1 "around 11", the other digits "around 18".
PAPER_VAE = {"mean": 13.0, "std": 3.0, "digit_1": 11.0, "other_digits": 18.0}

# Estimates other rules compute: the VAE's (rule vae_local_dims, `score_geometry.vae.local_dims_table`) and the
# score model's r_t (the spectra's diagnostics table, `score_model_rt`).
external("vae", label="VAE")
external("score_model_rt", label="$r_t$")


def stratified_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ceil(n / classes) points of every class, sorted, at most n in total."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    per = -(-n // len(classes))
    idx = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in classes]))
    return idx[:n]


def estimates_table(estimator: str, dataset: str, condition: str, labels: Sequence[int], t: float,
                    dims: Sequence[float], points: Sequence[int] | None = None) -> pd.DataFrame:
    """One estimator's local dims of N points as a tidy table (`COLUMNS`).

    Args:
        labels, dims: (N,); t: the estimator's time (NaN on clean points).
        points: (N,) the indices stored in the ``point`` column (default 0..N-1).
    """
    labels = np.asarray(labels, dtype=np.int64)
    return pd.DataFrame({"estimator": estimator, "dataset": dataset, "condition": condition,
                         "point": np.arange(len(labels)) if points is None else np.asarray(points, np.int64),
                         "label": labels, "t": float(t), "local_dim": np.asarray(dims, np.float64)})[COLUMNS]


def score_model_rt(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """The score model's r_t (Fig. 3) from ``stats/diagnostics.parquet`` in the tidy layout (dataset ``samples``,
    labels = the classifier's digits)."""
    d = diagnostics
    return pd.DataFrame({"estimator": "score_model_rt", "dataset": "samples",
                         "condition": [f"t={t:g}" for t in d["t"]], "point": d["image"].astype(np.int64),
                         "label": d["label"].astype(np.int64), "t": d["t"].astype(np.float64),
                         "local_dim": d["local_dim"].astype(np.float64)})[COLUMNS]


def clean_heldout_vae(table: pd.DataFrame) -> pd.DataFrame:
    """The clean VAE's local dims on held-out digits from a table of `score_geometry.vae.local_dims_table` (with
    its converged, epochs and trained_on columns): Fig. 3's baseline (`plots.fig3_local_dims`)."""
    sel = (table["estimator"] == "vae") & (table["condition"] == "clean") & (table["dataset"] == "heldout")
    return table.loc[sel].reset_index(drop=True)


def comparison_table(estimates: pd.DataFrame, diagnostics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (estimator, dataset, condition): n, mean, std and the per-digit means (``digit_0`` ...),
    with the paper's VAE numbers (Appendix B) first and the score model's r_t per t (if `diagnostics`) last."""
    parts = [estimates] if diagnostics is None else [estimates, score_model_rt(diagnostics)]
    df = pd.concat(parts, ignore_index=True)
    keys = ["estimator", "dataset", "condition"]
    g = df.groupby(keys, sort=False)["local_dim"]
    table = pd.concat([g.size().rename("n"), g.mean().rename("mean"), g.std(ddof=0).rename("std")], axis=1)
    digits = df.pivot_table(index=keys, columns="label", values="local_dim", aggfunc="mean", sort=False)
    digits.columns = [f"digit_{int(c)}" for c in digits.columns]
    table = table.join(digits).reset_index()
    paper = {"estimator": "paper_vae", "dataset": "mnist (paper)", "condition": "clean", "n": np.nan,
             "mean": PAPER_VAE["mean"], "std": PAPER_VAE["std"],
             **{c: PAPER_VAE["digit_1"] if c == "digit_1" else PAPER_VAE["other_digits"]
                for c in table.columns if c.startswith("digit_")}}
    return pd.concat([pd.DataFrame([paper]), table], ignore_index=True)


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison table as Markdown, mean +- std in one column (the paper's per-digit numbers are approximate)."""
    t = table.copy()
    t.insert(3, "mean ± std", [f"{m:.1f} ± {s:.1f}" for m, s in zip(t["mean"], t["std"])])
    t = t.drop(columns=["mean", "std"])
    t["n"] = t["n"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    return t.to_markdown(index=False, floatfmt=".1f") + "\n"

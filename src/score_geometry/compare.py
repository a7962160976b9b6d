"""Several runs side by side: each run's config (the default config with presets merged over it, as Snakemake
merges --configfile), and the cross-run comparison tables. No torch: the comparison workflow imports it while
it builds the DAG.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["deep_merge", "run_config", "comparison_table"]


def deep_merge(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each overlay merged over it in turn: mappings merge key by key, anything else (lists
    included) is replaced — what Snakemake does with several --configfile."""
    out = copy.deepcopy(dict(base))
    for overlay in overlays:
        for key, value in overlay.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def run_config(base: Mapping[str, Any], overlays: Sequence[Mapping[str, Any]], *, run: str) -> dict[str, Any]:
    """One run of a comparison: `base` with `overlays` merged over it and `run` (its results/<run>/) set last,
    so presets that name their own run cannot make two runs write to the same place.

    The result equals, key order included, the config Snakemake builds for `snakemake --configfile <overlays>`
    (it starts from the command-line files, updates with the Snakefile's configfile, then re-applies the
    command line): rule params are compared by their text, so the same values in another key order would
    rerun every job of a run that `make run` (or a preset run) has already computed.
    """
    command_line = deep_merge({}, *overlays, {"run": run})
    return deep_merge(command_line, base, command_line)


def comparison_table(per_run: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per (run, t): r_t median and IQR, calibration ratio (median, both sources), sample quality.

    Args:
        per_run: run name -> {"diagnostics": stats/diagnostics.parquet, "calibration": stats/calibration_summary,
            "quality": a one-row frame of samples/quality.json's scalars, "claims": stats/claims.csv}.
    Returns:
        Columns run, parameterisation, t, sigma, n_images, r_t_median, r_t_q25, r_t_q75, calibration_samples,
        calibration_heldout, heldout_accuracy, mean_max_softmax, frechet_distance, frechet_distance_real_baseline,
        claims_holds, claims_fails,
        claims_not_measurable.
    """
    rows = []
    for run, tabs in per_run.items():
        d, cal, q, claims = tabs["diagnostics"], tabs["calibration"], tabs["quality"], tabs["claims"]
        counts = claims["verdict"].value_counts()
        for t, g in d.groupby("t", sort=True):
            c = cal[np.isclose(cal["t"], t)].set_index("source")["calibration_ratio"]
            rows.append({
                "run": run, "parameterisation": tabs.get("parameterisation", ""), "t": t,
                "sigma": float(g["sigma"].iloc[0]), "n_images": len(g),
                "r_t_median": float(g["local_dim"].median()), "r_t_q25": float(g["local_dim"].quantile(0.25)),
                "r_t_q75": float(g["local_dim"].quantile(0.75)),
                "calibration_samples": float(c.get("model_samples", np.nan)),
                "calibration_heldout": float(c.get("heldout_noisy", np.nan)),
                **{k: float(q[k].iloc[0]) if k in q else np.nan
                   for k in ("heldout_accuracy", "mean_max_softmax", "frechet_distance",
                             "frechet_distance_real_baseline")},
                "claims_holds": int(counts.get("holds", 0)), "claims_fails": int(counts.get("fails", 0)),
                "claims_not_measurable": int(counts.get("not measurable here", 0)),
            })
    return pd.DataFrame(rows)

"""Several runs side by side: each run's config (the default config with presets merged over it, as Snakemake
merges --configfile), and the cross-run comparison tables. No torch: the comparison workflow imports it while
it builds the DAG.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["SHARED_RULES", "SHARED_KEYS", "SHARED_FILES", "deep_merge", "run_config", "share_sources",
           "comparison_table", "TrajectoryPlan", "trajectory_plan"]

#: The rules whose outputs do not depend on the score model (the data, the quality classifier, the Fig. 1 toy,
#: the Appendix B VAEs), and the config keys they read between them: two runs that agree on these keys build
#: byte-identical outputs, so a trajectory's budgets and a comparison's runs (`share_from`) take them from one
#: run instead of recomputing them. Local dimensions of each run's own samples under those VAEs stay each run's.
SHARED_RULES = ("prepare_data", "train_classifier", "train_toy", "analyse_toy", "train_vae")
SHARED_KEYS = ("seed", "device", "data", "sde", "classifier", "toy", "vae")

#: The outputs of `SHARED_RULES`, as a regular expression of paths under results/<run>/.
SHARED_FILES = (r"data/dataset\.h5|classifier/classifier\.pt|classifier/metrics\.json"
                r"|toy/(model\.pt|training_options\.json|metrics\.jsonl|points\.parquet|summary\.csv|field\.h5"
                r"|controls\.csv)|vae/[^/]+/(vae\.pt|training_options\.json|metrics\.jsonl)")


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


def share_sources(runs: Mapping[str, Mapping[str, Any]], configs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Which runs of a comparison take the model-independent outputs (`SHARED_FILES`) from which other run.

    Args:
        runs: the comparison's ``runs:`` entries by name; an entry's optional ``share_from`` names another run.
        configs: each run's full config (`run_config`).

    Returns:
        {run name: name of the run it takes them from}, only for the runs that set ``share_from``.

    Raises:
        ConfigError: ``share_from`` names no run, the run itself, or a run that shares from a third (the source
            must build its own), or the two runs differ in a key of `SHARED_KEYS` (named), so the shared files
            would not be what this run's config asks for.
    """
    from .config import ConfigError

    sources = {name: r["share_from"] for name, r in runs.items() if r.get("share_from") is not None}
    for name, src in sources.items():
        key = f"runs.{name}.share_from"
        if src not in runs or src == name:
            raise ConfigError(f"{key}: the name of another run of this comparison ({sorted(set(runs) - {name})}), "
                              f"got {src!r}")
        if src in sources:
            raise ConfigError(f"{key}: run {src!r} takes its files from {sources[src]!r}; share from a run that "
                              "builds its own")
        for k in SHARED_KEYS:
            if configs[name].get(k) != configs[src].get(k):
                raise ConfigError(f"{key}: runs {name!r} and {src!r} differ in {k!r}, so {src!r}'s data, "
                                  "classifier, toy and VAE are not this run's; drop share_from or make them agree")
    return sources


@dataclass(frozen=True)
class TrajectoryPlan:
    """One training run followed along its budgets (workflow/trajectory.smk).

    Attributes:
        name: results/<name>/ holds the trajectory's tables and figure, and the base run (shared files).
        budgets: the training budgets (optimiser steps), strictly increasing.
        base: the base run's config (train.steps = the largest budget): data, classifier, toy and VAE.
        runs: budget -> that budget's run config (results/<name>_step<budget>/): the base with ``per_budget``
            merged over it and train.steps = the budget.
    """

    name: str
    budgets: tuple[int, ...]
    base: dict[str, Any]
    runs: dict[int, dict[str, Any]]

    def run_dir(self, budget: int) -> str:
        return f"results/{self.runs[budget]['run']}"


def trajectory_plan(default: Mapping[str, Any], trajectory: Mapping[str, Any],
                    overlays: Sequence[Mapping[str, Any]]) -> TrajectoryPlan:
    """The runs of a trajectory config (presets/trajectory.yaml): ``trajectory`` (its name), ``overlays`` (read
    by the caller: the preset files' contents, in order), ``set``, ``budgets``, ``per_budget``.

    Raises:
        ConfigError: an unknown key, or budgets that are not a non-empty, strictly increasing list of positive
            integers (the message names the key).
    """
    from .config import ConfigError

    known = {"trajectory", "overlays", "set", "budgets", "per_budget"}
    if unknown := sorted(set(trajectory) - known):
        raise ConfigError(f"trajectory config: unknown key(s) {unknown}; allowed: {sorted(known)}")
    name, budgets = trajectory.get("trajectory"), trajectory.get("budgets")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"trajectory: a non-empty run name, got {name!r}")
    if (not isinstance(budgets, list) or not budgets
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in budgets)
            or any(a >= b for a, b in zip(budgets, budgets[1:]))):
        raise ConfigError(f"budgets: a strictly increasing list of positive integers (optimiser steps), got {budgets!r}")
    layers = [*overlays, dict(trajectory.get("set") or {})]
    base = run_config(default, [*layers, {"train": {"steps": budgets[-1]}}], run=name)
    per_budget = dict(trajectory.get("per_budget") or {})
    runs = {b: run_config(default, [*layers, per_budget, {"train": {"steps": b}}], run=f"{name}_step{b}")
            for b in budgets}
    return TrajectoryPlan(name, tuple(budgets), base, runs)


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


# --- one training run along its budgets (workflow/trajectory.smk) --------------------------------------------

#: A claim's margin must rise (fall) with this Spearman correlation against the budget to be read as moving
#: towards (away from) holding; anything weaker is "flat".
TREND_RHO = 0.6
TOWARDS, AWAY, FLAT = "towards holding", "away from holding", "flat"


def _floor_error_correlation(d: pd.DataFrame, column: str) -> pd.Series:
    """Per t: `analysis.floor_error_spearman` of `column` (a local dimension)."""
    from .analysis import floor_error_spearman

    return pd.Series({t: floor_error_spearman(g, column) for t, g in d.groupby("t", sort=True)})


def budget_measures(quality: Mapping[str, Any], diagnostics: pd.DataFrame) -> pd.DataFrame:
    """What a budget's run measures besides the claims: sample quality and memorisation (samples/quality.json)
    and, per t, the median r_t, its share of Jacobians individually inside the calibration band and the
    correlation of r_t with the floor error (paper's threshold, and each Jacobian's own floor where analysed).

    Returns:
        Columns id, statistic, value.
    """
    from .analysis import CALIBRATION_BAND

    rows = [{"id": k, "statistic": f"samples/quality.json {k}", "value": float(quality[k])}
            for k in ("frechet_distance", "frechet_distance_real_baseline", "mean_max_softmax", "memorisation_ratio",
                      "copy_share", "copy_share_null") if k in quality]
    lo, hi = CALIBRATION_BAND
    d = diagnostics
    columns = [c for c in ("local_dim", "local_dim_own_floor") if c in d]
    for t, g in d.groupby("t", sort=True):
        rows.append({"id": f"in_band_share t={t:g}", "statistic": f"share of Jacobians with calibration ratio in "
                     f"[{lo}, {hi}] at t={t:g}", "value": float(g["calibration_ratio"].between(lo, hi).mean())})
        for c in columns:
            rows.append({"id": f"{c}_median t={t:g}", "statistic": f"median {c} at t={t:g}",
                         "value": float(g[c].median())})
    for c in columns:
        for t, rho in _floor_error_correlation(d, c).items():
            rows.append({"id": f"{c}_floor_error_spearman t={t:g}", "statistic": f"Spearman ρ(calibration ratio, "
                         f"{c}) over Jacobians at t={t:g}", "value": rho})
    return pd.DataFrame(rows)


def trajectory_table(per_budget: Mapping[int, Mapping[str, Any]]) -> pd.DataFrame:
    """Every claim's statistic and verdict, and the `budget_measures`, at each budget.

    Args:
        per_budget: budget (optimiser steps) -> claims (stats/claims.csv), quality (samples/quality.json as a
            dict), diagnostics (stats/diagnostics.parquet).

    Returns:
        Long table: steps, kind (claim | measure), id, statistic, lower, upper, value, verdict, and the claims
        table's other verdict columns where it has them (verdict_*).
    """
    parts = []
    for steps, tabs in sorted(per_budget.items()):
        c = tabs["claims"]
        keep = ["id", "statistic", "lower", "upper", "value", "verdict", *[k for k in c if k.startswith("verdict_")]]
        parts.append(c[[k for k in keep if k in c]].assign(steps=int(steps), kind="claim"))
        parts.append(budget_measures(tabs["quality"], tabs["diagnostics"]).assign(steps=int(steps), kind="measure"))
    table = pd.concat(parts, ignore_index=True)
    first = ["steps", "kind", "id", "statistic", "lower", "upper", "value", "verdict"]
    return table[[c for c in first if c in table] + [c for c in table if c not in first]]


def _margin(value: np.ndarray, lower: float | None, upper: float | None) -> np.ndarray:
    """How far inside the holding side of its threshold a value is (negative: outside)."""
    sides = [value - lower if lower is not None and np.isfinite(lower) else None,
             upper - value if upper is not None and np.isfinite(upper) else None]
    sides = [m for m in sides if m is not None]
    return np.minimum.reduce(sides) if sides else np.full(len(value), np.nan)


def trajectory_trends(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim, read from the numbers: does its statistic move towards holding as training goes on?

    The margin (`_margin`: distance inside the threshold, negative outside) is correlated with the budget:
    Spearman ρ ≥ `TREND_RHO` with a larger margin at the last budget than the first reads "towards holding",
    ρ ≤ −`TREND_RHO` with a smaller one "away from holding", anything else "flat"; fewer than 3 finite
    budgets, or no numeric threshold: no trend.

    Returns:
        One row per claim: id, budgets, first_steps, last_steps, first_value, last_value, first_verdict,
        last_verdict, verdicts (one per budget), margin_spearman, trend, holds_from (the smallest budget from which
        every later budget holds; NaN if the last does not).
    """
    from scipy.stats import spearmanr

    rows = []
    for cid, g in table[table["kind"] == "claim"].groupby("id", sort=False):
        g = g.sort_values("steps")
        value, steps = g["value"].to_numpy(float), g["steps"].to_numpy()
        lower, upper = g["lower"].iloc[0], g["upper"].iloc[0]
        lower = None if pd.isna(lower) else float(lower)
        upper = None if pd.isna(upper) else float(upper)
        m = _margin(value, lower, upper)
        ok = np.isfinite(m)
        rho, trend = np.nan, "no trend (fewer than 3 finite budgets or no numeric threshold)"
        if ok.sum() >= 3 and np.ptp(m[ok]) > 0:
            rho = float(spearmanr(steps[ok], m[ok]).statistic)
            delta = m[ok][-1] - m[ok][0]
            trend = TOWARDS if rho >= TREND_RHO and delta > 0 else AWAY if rho <= -TREND_RHO and delta < 0 else FLAT
        elif ok.sum() >= 3:
            rho, trend = 0.0, FLAT
        verdicts = g["verdict"].tolist()
        holds_from = np.nan
        for k in range(len(verdicts) - 1, -1, -1):
            if verdicts[k] != "holds":
                break
            holds_from = int(steps[k])
        rows.append({"id": cid, "budgets": len(g), "first_steps": int(steps[0]), "last_steps": int(steps[-1]),
                     "first_value": value[0], "last_value": value[-1], "first_verdict": verdicts[0],
                     "last_verdict": verdicts[-1], "verdicts": " → ".join(verdicts), "margin_spearman": rho,
                     "trend": trend, "holds_from": holds_from})
    return pd.DataFrame(rows)

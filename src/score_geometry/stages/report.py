"""The report stages: the stage benchmarks of a run (rule summarise_benchmarks) and several runs side by side
(rule compare_runs of workflow/compare.smk)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ..compare import comparison_table
from ..report import ReportTable, markdown_table, report_table, stage_times


def summarise_benchmarks(benchmarks: Mapping[str, pd.DataFrame]) -> ReportTable:
    """Rule summarise_benchmarks: wall/CPU time and peak memory of every stage (`report.stage_times`)."""
    return report_table(stage_times(benchmarks), title="Stage benchmarks (seconds, MB)", floatfmt=".1f", digits=4)


def compare_runs(runs: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, str, pd.DataFrame, Any]:
    """Rule compare_runs: the runs side by side (r_t, calibration, sample quality, claims).

    Args:
        runs: run name -> parameterisation (str), diagnostics (stats/diagnostics.parquet), calibration
            (stats/calibration_summary.csv), quality (samples/quality.json as a dict), claims (stats/claims.csv).

    Returns:
        The comparison table (`compare.comparison_table`), its Markdown, the claims' verdicts (one column per
        run) and the comparison figure (`plots.plot_comparison`).
    """
    from ..plots.diagnostics import plot_comparison

    per_run = {name: {"parameterisation": r["parameterisation"], "diagnostics": r["diagnostics"],
                      "calibration": r["calibration"], "claims": r["claims"],
                      "quality": pd.DataFrame([{k: v for k, v in r["quality"].items() if isinstance(v, (int, float))}])}
               for name, r in runs.items()}
    table = comparison_table(per_run)
    claims = pd.concat([r["claims"].assign(run=name)[["run", "id", "value", "verdict", "origin"]]
                        for name, r in per_run.items()])
    wide = claims.pivot(index="id", columns="run", values="verdict").reset_index()
    return table, markdown_table(table, floatfmt=".3g"), wide, plot_comparison(table)


def summarise_trajectory(per_budget: Mapping[int, Mapping[str, Any]], *, name: str
                         ) -> tuple[pd.DataFrame, pd.DataFrame, str, Any]:
    """Rule summarise_trajectory (workflow/trajectory.smk): every claim along the training run's budgets.

    Args:
        per_budget: budget -> claims (stats/claims.csv), quality (samples/quality.json as a dict), calibration
            (stats/calibration_summary.csv), diagnostics (stats/diagnostics.parquet) of that budget's run.

    Returns:
        The long table (`compare.trajectory_table`), each claim's trend (`compare.trajectory_trends`), both as
        Markdown, and the figure (`plots.trajectory.plot_trajectory`).
    """
    from ..compare import trajectory_table, trajectory_trends
    from ..plots.trajectory import plot_trajectory

    table = trajectory_table(per_budget)
    trends = trajectory_trends(table)
    wide = table.pivot_table(index="id", columns="steps", values="value", sort=False).reset_index()
    text = (f"# Trajectory `{name}`: every claim along one training run\n\n## Trends\n\n"
            + markdown_table(trends, floatfmt=".3g") + "\n## Values per budget (optimiser steps)\n\n"
            + markdown_table(wide, floatfmt=".3g"))
    return table, trends, text, plot_trajectory(table)

"""One training run followed along its budgets (workflow/trajectory.smk, score_geometry.compare)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from score_geometry import io
from score_geometry.compare import FLAT, TOWARDS, AWAY, trajectory_plan, trajectory_trends
from score_geometry.config import ConfigError

DEFAULT = {"run": "default", "train": {"steps": 2500, "lr": 1e-3}, "sample": {"n_images": 128}}


def test_plan_builds_one_run_per_budget_and_a_base():
    plan = trajectory_plan(DEFAULT, {"trajectory": "tr", "budgets": [10, 20], "set": {"train": {"lr": 2e-3}},
                                     "per_budget": {"sample": {"n_images": 8}}}, [])
    assert plan.budgets == (10, 20) and plan.base["run"] == "tr" and plan.base["train"]["steps"] == 20
    assert plan.runs[10]["run"] == "tr_step10" and plan.runs[10]["train"] == {"steps": 10, "lr": 2e-3}
    assert plan.runs[20]["sample"]["n_images"] == 8 and plan.base["sample"]["n_images"] == 128


@pytest.mark.parametrize("bad, key", [({"budgets": [20, 10]}, "budgets"), ({"budgets": []}, "budgets"),
                                      ({"budgets": [0, 5]}, "budgets"), ({"budgets": [5.0]}, "budgets"),
                                      ({"budget": [5]}, "unknown"), ({"trajectory": ""}, "trajectory")])
def test_plan_refuses_bad_configs_naming_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        trajectory_plan(DEFAULT, {"trajectory": "tr", "budgets": [5], **bad}, [])


def _claim_rows(values, lower=None, upper=None, verdicts=None):
    steps = [625, 1250, 2500, 5000]
    verdicts = verdicts or ["fails"] * len(values)
    return pd.DataFrame({"steps": steps, "kind": "claim", "id": "c", "statistic": "s", "lower": lower,
                         "upper": upper, "value": values, "verdict": verdicts})


@pytest.mark.parametrize("values, lower, upper, trend", [
    ([0.1, 0.2, 0.3, 0.4], 0.5, None, TOWARDS),   # rising towards a lower bound
    ([0.4, 0.3, 0.2, 0.1], 0.5, None, AWAY),
    ([0.9, 0.8, 0.7, 0.6], None, 0.5, TOWARDS),   # falling towards an upper bound
    ([0.3, 0.31, 0.29, 0.3], 0.5, None, FLAT),
])
def test_trends_are_read_from_the_margin_to_the_threshold(values, lower, upper, trend):
    t = trajectory_trends(_claim_rows(values, lower, upper)).iloc[0]
    assert t["trend"] == trend and t["first_steps"] == 625 and t["last_steps"] == 5000


def test_holds_from_is_the_budget_after_which_every_budget_holds():
    rows = _claim_rows([0.4, 0.6, 0.4, 0.7], 0.5, verdicts=["fails", "holds", "fails", "holds"])
    assert trajectory_trends(rows).iloc[0]["holds_from"] == 5000
    rows = _claim_rows([0.4, 0.6, 0.6, 0.7], 0.5, verdicts=["fails", "holds", "holds", "holds"])
    assert trajectory_trends(rows).iloc[0]["holds_from"] == 1250
    assert np.isnan(trajectory_trends(_claim_rows([0.1] * 4, 0.5)).iloc[0]["holds_from"])


@pytest.mark.slow
def test_tiny_trajectory_end_to_end_is_one_training_run(workflow_dir, tiny_run):
    """Both budgets analysed, the tables and figure written, and the last budget's model bit-identical to the
    tiny run's own 20-step model: the segments are one run, not a retrained or over-trained model."""
    args = ("-s", "workflow/trajectory.smk", "--cores", "8", "--configfile", "presets/trajectory_tiny.yaml")
    proc = run_snakemake(workflow_dir, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = workflow_dir / "results" / "trajectory_tiny"
    table = pd.read_csv(out / "trajectory.csv")
    assert sorted(table["steps"].unique()) == [10, 20]
    assert {"memorisation_ratio", "copy_share", "frechet_distance"} <= set(table["id"])
    trends = pd.read_csv(out / "trends.csv")
    assert len(trends) == (table["kind"] == "claim").sum() / 2 and trends["budgets"].eq(2).all()
    assert (out / "trajectory.png").stat().st_size > 0 and (out / "trajectory.md").exists()
    last = io.load_checkpoint(workflow_dir / "results" / "trajectory_tiny_step20" / "model" / "model.pt")
    single = io.load_checkpoint(tiny_run / "results" / "tiny" / "model" / "model.pt")
    assert last["step"] == single["step"] == 20
    for part in ("model", "ema"):
        for k, v in single["state"][part].items():
            assert np.array_equal(last["state"][part][k].numpy(), v.numpy()), (part, k)
    first = io.read_json(workflow_dir / "results" / "trajectory_tiny_step10" / "model" / "training_options.json")
    assert first["final_step"] == 10
    again = run_snakemake(workflow_dir, *args, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

"""Runs side by side (score_geometry.compare, workflow/compare.smk)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from conftest import LONG_E2E_TIMEOUT, run_snakemake
from test_workflow import assert_oracle_geometry
from score_geometry.compare import SHARED_KEYS, SHARED_RULES, comparison_table, deep_merge, run_config, share_sources
from score_geometry.config import ConfigError


def test_deep_merge_like_snakemake_configfiles():
    base = {"run": "default", "model": {"parameterisation": "x0", "channels": [32, 64, 64]}, "seed": 0}
    out = deep_merge(base, {"model": {"parameterisation": "eps"}}, {"model": {"channels": [8, 8, 8]}})
    assert out == {"run": "default", "model": {"parameterisation": "eps", "channels": [8, 8, 8]}, "seed": 0}
    assert base["model"]["parameterisation"] == "x0"  # inputs untouched
    # the run name is set last: a preset naming its own run cannot send two runs to one folder
    assert run_config(base, [{"run": "eps"}], run="mine")["run"] == "mine"


def test_run_config_orders_keys_as_snakemake_does():
    """Snakemake compares rule params as text: `snakemake --configfile tiny.yaml` puts the preset's keys first,
    and the comparison's module config must match it key for key, or every job of that run reruns."""
    base = {"run": "default", "model": {"a": 1, "b": 2, "c": 3}, "train": {"x": 1}}
    preset = {"model": {"c": 30}, "sample": {"n": 6}}
    out = run_config(base, [preset], run="tiny")
    assert out == {"run": "tiny", "model": {"a": 1, "b": 2, "c": 30}, "train": {"x": 1}, "sample": {"n": 6}}
    assert list(out) == ["model", "sample", "run", "train"] and list(out["model"]) == ["c", "a", "b"]


def test_share_from_names_a_run_that_builds_its_own_with_the_same_shared_keys():
    base = {"seed": 0, "data": {"name": "mnist"}, "model": {"parameterisation": "eps"}, "toy": {"n": 1}}
    configs = {"a": base, "b": {**base, "model": {"parameterisation": "x0"}}, "c": {**base, "toy": {"n": 2}}}
    runs = {"a": {}, "b": {"share_from": "a"}, "c": {}}
    assert share_sources(runs, configs) == {"b": "a"}  # the model differs: it is not a shared key
    for bad, match in (({"b": {"share_from": "z"}}, "runs.b.share_from: the name of another run"),
                       ({"b": {"share_from": "b"}}, "runs.b.share_from: the name of another run"),
                       ({"a": {"share_from": "b"}}, "share from a run that builds"),
                       ({"c": {"share_from": "a"}}, "runs.c.share_from: runs 'c' and 'a' differ in 'toy'")):
        with pytest.raises(ConfigError, match=match):
            share_sources({**runs, **bad}, configs)
    assert {"classifier", "toy", "vae", "data", "seed"} <= set(SHARED_KEYS) and "model" not in SHARED_KEYS


def test_compare_workflow_excludes_exactly_the_shared_rules():
    """compare.smk spells the rules a sharing run leaves out (Snakemake's `exclude` takes names, not a
    variable): each list must be SHARED_RULES, whose outputs are SHARED_FILES."""
    from conftest import ROOT

    text = (ROOT / "workflow" / "compare.smk").read_text()
    lists = re.findall(r"use rule \* from \w+ exclude (.+) as \w+_\*", text)
    assert len(lists) == 3 and all([r.strip() for r in found.split(",")] == list(SHARED_RULES) for found in lists)


def _run(r_t, ratio):
    d = pd.DataFrame({"t": np.repeat([0.01, 0.3], 3), "sigma": np.repeat([0.04, 0.77], 3), "local_dim": r_t})
    cal = pd.DataFrame({"source": ["model_samples", "heldout_noisy"] * 2, "t": [0.01, 0.01, 0.3, 0.3],
                        "calibration_ratio": ratio})
    return {"parameterisation": "x0", "diagnostics": d, "calibration": cal,
            "quality": pd.DataFrame([{"heldout_accuracy": 0.98, "mean_max_softmax": 0.9, "frechet_distance": 100.0}]),
            "claims": pd.DataFrame({"verdict": ["holds", "holds", "fails", "not measurable here"]})}


def test_comparison_table_one_row_per_run_and_t():
    table = comparison_table({"a": _run([10, 20, 30, 1, 2, 3], [1.0, 0.99, 1.01, 1.02]),
                              "b": _run([5, 5, 5, 5, 5, 5], [1.2, 1.3, 1.1, 1.1])})
    assert list(table["run"]) == ["a", "a", "b", "b"] and list(table["t"]) == [0.01, 0.3, 0.01, 0.3]
    a = table.iloc[0]
    assert (a["r_t_median"], a["r_t_q25"], a["r_t_q75"]) == (20, 15, 25)
    assert (a["calibration_samples"], a["calibration_heldout"]) == (1.0, 0.99)
    assert (a["claims_holds"], a["claims_fails"], a["claims_not_measurable"]) == (2, 1, 1)
    assert np.isnan(a["frechet_distance_real_baseline"])  # absent from quality: NaN, not an error


@pytest.mark.slow
def test_compare_workflow_on_the_tiny_preset(tiny_run):
    """The README's comparison on the tiny preset, the comparison alone as target: three runs (x0, eps, oracle)
    as modules with their own configs, then the comparison. The eps run is the tiny run already computed by the
    single-run command (the default parameterisation): it is reused (no eps job runs); only what the comparison
    reads is built (no run's figures), while the default target still asks for every run completely; nothing is
    left to do afterwards, and one run's change reruns only that run."""
    workflow_dir = tiny_run  # adds results/tiny_x0, oracle and comparison_tiny; results/tiny is only read
    base = ("-s", "workflow/compare.smk", "--cores", "2")
    config = ("--configfile", "presets/compare_tiny.yaml")
    args = (*base, "results/comparison_tiny/comparison.csv", *config)
    proc = run_snakemake(workflow_dir, *args, timeout=LONG_E2E_TIMEOUT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert not re.search(r"^(?:local)?rule (?:x0|oracle)_plot_", proc.stdout + proc.stderr, re.M)
    everything = run_snakemake(workflow_dir, "-n", *base, *config)
    assert everything.returncode == 0 and "x0_plot_fig2" in everything.stdout + everything.stderr
    assert "rule eps_" not in proc.stdout + proc.stderr  # same config, key order included, as the single run
    assert "rule oracle_train_model" in proc.stdout + proc.stderr  # the same rule builds the oracle checkpoint
    # share_from: eps (presets/compare_tiny.yaml): the other runs copy the tiny run's data, classifier, toy, VAE
    ran = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert "share_from_run" in ran and not ran & {f"{run}_{r}" for run in ("x0", "oracle") for r in SHARED_RULES}
    for run in ("tiny_x0", "oracle"):
        for name in ("data/dataset.h5", "classifier/classifier.pt", "toy/summary.csv", "vae/clean/vae.pt"):
            shared = workflow_dir / "results" / run / name
            assert shared.read_bytes() == (workflow_dir / "results" / "tiny" / name).read_bytes(), (run, name)
    assert_oracle_geometry(workflow_dir / "results" / "oracle")
    out = workflow_dir / "results" / "comparison_tiny"
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["run"]) == {"x0", "eps", "oracle"} and len(table) == 3 * 5
    assert dict(zip(table["run"], table["parameterisation"])) == {"x0": "x0", "eps": "eps", "oracle": "oracle"}
    # the oracle's closed form: its noise floor is exact
    assert np.allclose(table.loc[table["run"] == "oracle", "calibration_heldout"], 1.0, atol=1e-3)
    claims = pd.read_csv(out / "claims.csv").set_index("id")
    assert list(claims.columns) == ["eps", "oracle", "x0"] and len(claims) >= 10
    per_run = pd.read_csv(workflow_dir / "results" / "oracle" / "stats" / "claims.csv").set_index("id")["verdict"]
    assert claims["oracle"].sort_index().equals(per_run.sort_index())
    for run in ("tiny", "tiny_x0", "oracle"):
        assert (workflow_dir / "results" / run / "stats" / "claims.csv").exists()
    assert (out / "comparison.png").stat().st_size > 1000
    again = run_snakemake(workflow_dir, "-n", *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    (workflow_dir / "x0_more.yaml").write_text("runs:\n  x0:\n    set: {analysis: {kappa: 0.2}}\n")
    plan = run_snakemake(workflow_dir, "-n", *args, "x0_more.yaml")
    jobs = {line.split()[0] for line in (plan.stdout + plan.stderr).splitlines()
            if line.strip() and line.split()[0].startswith(("x0_", "eps_", "oracle_"))}
    assert jobs and all(j.startswith("x0_") for j in jobs), jobs

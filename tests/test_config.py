"""The config schema: bad values stop the run before any job, with a message naming the key; nothing is written."""

from __future__ import annotations

import pytest
import yaml

from conftest import run_snakemake

BAD = {
    "t_above_one": ({"sample": {"times": [0.01, 0.3, 1.5]}}, ["sample", "times", "1.5", "maximum"]),
    "t_zero": ({"sample": {"times": [0.0, 0.3]}}, ["sample", "times", "0.0", "minimum"]),
    "unsorted_times": ({"sample": {"times": [0.3, 0.01]}}, ["sample.times", "strictly increasing"]),
    "duplicate_times": ({"sample": {"times": [0.01, 0.01, 0.3]}}, ["sample", "times", "non-unique"]),
    "unknown_dataset": ({"data": {"dataset": "cifar10"}}, ["data", "dataset", "cifar10", "mnist5k", "fashion-mnist"]),
    "zero_steps": ({"train": {"steps": 0}}, ["train", "steps", "minimum of 1"]),
    "negative_batch": ({"sample": {"n_images": -4}}, ["sample", "n_images", "minimum of 1"]),
    "unknown_key": ({"train": {"stpes": 10}}, ["train", "stpes", "Additional properties"]),
    "unknown_section": ({"plot": {}}, ["plot", "Additional properties"]),
    "bad_parameterisation": ({"model": {"parameterisation": "v"}}, ["model", "parameterisation", "eps", "x0"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_stops_before_any_job(workflow_dir, case):
    override, needles = BAD[case]
    (workflow_dir / "bad.yaml").write_text(yaml.safe_dump({"run": "bad", **override}))
    proc = run_snakemake(workflow_dir, "--cores", "1", "--configfile", "bad.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    assert not (workflow_dir / "results").exists()
    assert not (workflow_dir / "logs").exists()


def test_default_config_and_presets_validate(workflow_dir):
    for extra in ([], ["--configfile", "presets/tiny.yaml"], ["--configfile", "presets/paper.yaml"]):
        proc = run_snakemake(workflow_dir, "-n", "--cores", "1", *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (workflow_dir / "results").exists()

"""End-to-end: the tiny preset through the whole Snakemake chain, then nothing left to do; lint passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from score_geometry import io
from score_geometry.sde import VPSDE

pytestmark = pytest.mark.slow


def _planned_jobs(dry_run_output: str) -> set[str]:
    """Rule names in the job-stats table of `snakemake -n`."""
    import re

    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", dry_run_output, re.M)} - {"total", "all"}


def test_lint(workflow_dir):
    proc = run_snakemake(workflow_dir, "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


TINY = ("--cores", "2", "--configfile", "presets/tiny.yaml")
FIGURES = ("fig2_features", "fig3_cosines", "fig3_spectrum", "fig3_local_dims", "fig4_overlaps", "training_loss")


def test_tiny_run_end_to_end(tiny_run):
    out = tiny_run / "results" / "tiny"

    data, attrs = io.read_h5(out / "samples" / "sequences.h5")
    times = [0.01, 0.03, 0.05, 0.15, 0.3]
    assert data["x_t"].shape == (6, 5, 28, 28) and data["x_t"].dtype == np.float32
    assert data["t"].tolist() == times
    sde = VPSDE()
    import torch
    assert np.allclose(data["sigma"], sde.sigma(torch.tensor(times, dtype=torch.float64)).numpy())
    assert np.allclose(data["sigma"] ** 2 + data["alpha"] ** 2, 1)
    assert data["x0_hat"].shape == (6, 28, 28) and np.isfinite(data["x_t"]).all()
    assert attrs["seed"] == 1 and attrs["sampler"]["n_steps"] == 20 and len(attrs["config_hash"]) == 16
    # Samples differ between images and along the path.
    assert not np.allclose(data["x_t"][0], data["x_t"][1])

    quality = json.loads((out / "samples" / "quality.json").read_text())
    assert {"heldout_accuracy", "class_histogram", "mean_max_softmax", "frechet_distance"} <= quality.keys()
    assert sum(quality["class_histogram"]) == 6
    preds = pd.read_parquet(out / "samples" / "predictions.parquet")
    assert list(preds.columns) == ["image", "label", "max_softmax"] and len(preds) == 6

    options = json.loads((out / "model" / "training_options.json").read_text())
    assert options["train"]["steps"] == 20 and options["final_step"] == 20
    assert len(io.read_jsonl(out / "model" / "metrics.jsonl")) == 4
    for rule in ("prepare_data", "train_model", "train_classifier", "sample_sequences"):
        assert (out / "benchmarks" / f"{rule}.tsv").exists()
        assert (tiny_run / "logs" / rule / "tiny.log").exists()
    assert (out / "samples" / "samples_grid.png").stat().st_size > 1000
    summary = pd.read_csv(out / "stats" / "summary.csv")
    assert summary["t"].tolist() == times and (summary["n_images"] == 4).all()
    for fig in FIGURES:
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"{fig}.{ext}").stat().st_size > 1000, (fig, ext)
    # The report's stage table covers every benchmarked rule, shards summed.
    stages = pd.read_csv(out / "stats" / "stage_times.csv").set_index("rule")
    assert stages.loc["compute_jacobians", "jobs"] == 2 and stages.loc["analyse_spectra", "jobs"] == 2
    # every rule with a benchmark, wherever its file is included (the table's input is resolved at DAG time)
    assert {"train_model", "sample_sequences", "calibrate_noise_floor", "train_toy", "train_vae", "estimate_dims",
            "total"} <= set(stages.index)
    for table in ("summary", "calibration_summary", "stage_times"):
        assert "<table" in (out / "stats" / f"{table}.html").read_text()
    # every torch job's OpenMP threads sleep while they wait (the Snakefile's default; the user's setting wins)
    policy = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    for name in ("train_model/tiny.log", "compute_jacobians/tiny_shard_0.log", "sample_sequences/tiny.log"):
        assert f"(OMP_WAIT_POLICY={policy})" in (tiny_run / "logs" / name).read_text(), name


def test_cores_beyond_the_machine_cap_every_job(tiny_run):
    """`--cores 8` (the README's command) gives no job more threads than this process may use, and says so."""
    import re

    from score_geometry.cpus import usable_cpus

    console = (tiny_run / "tiny_run.console.txt").read_text()
    threads = [int(n) for n in re.findall(r"^\s+threads: (\d+)$", console, re.M)]
    # Snakemake prints a job's threads only when above 1
    assert max(threads, default=1) <= usable_cpus() and (threads or usable_cpus() == 1)
    options = json.loads((tiny_run / "results" / "tiny" / "model" / "training_options.json").read_text())
    assert 1 <= options["threads"] <= usable_cpus()
    warned = console.count("exceeds the")
    assert warned == (1 if usable_cpus() < 8 else 0), console


def test_nothing_left_to_do(tiny_run):
    again = run_snakemake(tiny_run, "-n", *TINY)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_analysis_option_reruns_no_jacobians(tiny_run):
    (tiny_run / "kappa.yaml").write_text("analysis:\n  kappa: 0.2\n")
    plan = run_snakemake(tiny_run, "-n", *TINY, "kappa.yaml")
    jobs = _planned_jobs(plan.stdout + plan.stderr)
    assert {"analyse_spectra", "aggregate_spectra", "calibrate_noise_floor"} <= jobs, jobs
    assert {"plot_fig3_spectrum", "plot_fig3_local_dims", "plot_fig4"} <= jobs, jobs
    assert not jobs & {"train_model", "sample_sequences", "compute_jacobians", "compute_heldout_jacobians"}, jobs


@pytest.mark.parametrize("override, scheduled, not_scheduled", [
    # a new sampling run: the held-out calibration Jacobians only need the record times, not the sequences
    ("sample:\n  n_steps: 25\n", {"sample_sequences", "compute_jacobians", "analyse_spectra"},
     {"train_model", "compute_heldout_jacobians", "train_toy", "train_vae"}),
    # a Fig. 1 arrow option: the toy's analysis and figure, never its training
    ("toy:\n  field_t: 0.15\n", {"analyse_toy", "plot_fig1"}, {"train_toy", "train_model"}),
])
def test_upstream_options_rerun_only_what_reads_them(tiny_run, override, scheduled, not_scheduled):
    (tiny_run / "override.yaml").write_text(override)
    plan = run_snakemake(tiny_run, "-n", *TINY, "override.yaml")
    jobs = _planned_jobs(plan.stdout + plan.stderr)
    assert scheduled <= jobs and not jobs & not_scheduled, jobs


def test_plot_option_reruns_only_its_figure(tiny_run):
    (tiny_run / "fig2.yaml").write_text("plots:\n  fig2_image: 1\n")
    plan = run_snakemake(tiny_run, "-n", *TINY, "fig2.yaml")
    assert _planned_jobs(plan.stdout + plan.stderr) == {"plot_fig2"}, plan.stdout


ALL_PLOTS = {"plot_samples", "plot_fig1", "plot_fig2", "plot_fig3_cosines", "plot_fig3_spectrum",
             "plot_fig3_local_dims", "plot_fig4", "plot_skew_shares", "plot_vae_convergence", "plot_estimators", "plot_training_loss"}


def test_figures_target_is_every_plot_rule(tiny_run):
    """`make figures`: the `figures` target with every plot_* rule forced reruns the figures and nothing else."""
    rules = run_snakemake(tiny_run, "--list-rules", *TINY).stdout.split()
    plots = [r for r in rules if r.startswith("plot_")]
    assert set(plots) == ALL_PLOTS, plots
    plan = run_snakemake(tiny_run, "figures", "-n", *TINY, "--forcerun", *plots)
    assert plan.returncode == 0, plan.stderr
    assert _planned_jobs(plan.stdout + plan.stderr) == ALL_PLOTS | {"figures"}, plan.stdout


@pytest.mark.parametrize("module, edit, expected", [
    # the body of one figure's function: that figure alone
    ("spectra", ("ax.set_xlabel(\"rank i\")", "ax.set_xlabel(\"rank  i\")"), {"plot_fig3_cosines"}),
    # a helper shared by the figures that colour by t: exactly those figures
    ("spectra", ("def _t_colours(ts) -> dict:\n", "def _t_colours(ts) -> dict:\n    ts = list(ts)\n"),
     {"plot_fig3_spectrum", "plot_fig3_local_dims", "plot_fig4"}),
    # the image helper of the sample grid and Fig. 2
    ("images", ("def _show(ax, x: np.ndarray, **kwargs: Any):\n",
                "def _show(ax, x: np.ndarray, **kwargs: Any):\n    x = np.asarray(x)\n"),
     {"plot_samples", "plot_fig2"}),
    # the palette, imported from another module of plots/: every figure that uses it or style's set-up
    ("style", ('"#0072B2", ', '"#0072B3", '), ALL_PLOTS),
])
def test_plotting_code_change_reruns_only_its_figures(tiny_run, tmp_path, module, edit, expected):
    """Editing the installed drawing code (a copy of the package, first on PYTHONPATH) reruns only the figures
    whose code changed, never an upstream job."""
    import shutil

    import score_geometry

    pkg = tmp_path / "score_geometry"
    shutil.copytree(Path(score_geometry.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    path = pkg / "plots" / f"{module}.py"
    source = path.read_text()
    old, new = edit
    assert source.count(old) >= 1, old
    path.write_text(source.replace(old, new))
    plan = run_snakemake(tiny_run, "-n", *TINY, env={"PYTHONPATH": str(tmp_path)})
    assert plan.returncode == 0, plan.stderr
    assert _planned_jobs(plan.stdout + plan.stderr) == expected, plan.stdout


def test_same_config_same_results(tiny_run, workflow_dir):
    """Determinism: a second run of the same config from scratch gives identical sequences and Jacobians (it
    builds only the files compared, not the whole run)."""
    compared = ("samples/sequences.h5", "jacobians/shard_0.h5", "model/model.pt", "classifier/classifier.pt")
    rerun = run_snakemake(workflow_dir, *(f"results/tiny/{name}" for name in compared), *TINY)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    a, b = tiny_run / "results" / "tiny", workflow_dir / "results" / "tiny"
    np.testing.assert_array_equal(io.read_h5(a / "samples" / "sequences.h5")[0]["x_t"],
                                  io.read_h5(b / "samples" / "sequences.h5")[0]["x_t"])
    np.testing.assert_array_equal(io.read_h5(a / "jacobians" / "shard_0.h5")[0]["J"],
                                  io.read_h5(b / "jacobians" / "shard_0.h5")[0]["J"])
    # checkpoints of equal content are equal files (torch.save no longer names its entries after a temp file)
    import hashlib

    for ckpt in ("model/model.pt", "classifier/classifier.pt"):
        assert hashlib.sha256((a / ckpt).read_bytes()).digest() == hashlib.sha256((b / ckpt).read_bytes()).digest()


def assert_oracle_geometry(out) -> None:
    """The closed-form Gaussian oracle (presets/oracle.yaml), run through the workflow's rules into `out`
    (results/oracle), gives exactly the known geometry. Run by tests/test_compare.py, whose comparison builds
    that run as one of its modules."""
    from score_geometry.models import expected_local_dim

    ckpt = io.load_checkpoint(out / "model" / "model.pt")
    assert ckpt["kind"] == "gaussian_oracle"
    diag = pd.read_parquet(out / "stats" / "diagnostics.parquet")
    assert len(diag) == 4 * 5 and sorted(diag["image"].unique()) == [0, 1, 2, 3]
    for t, group in diag.groupby("t"):
        assert (group["local_dim"] == expected_local_dim(ckpt, t, kappa=0.1)).all(), t
    assert np.allclose(diag["calibration_ratio"], 1.0, atol=1e-4)
    spectra = pd.read_parquet(out / "stats" / "spectra.parquet")
    assert np.allclose(spectra["cos_uv"], -1.0, atol=1e-3)
    overlaps = pd.read_parquet(out / "stats" / "overlaps.parquet")
    assert np.allclose(overlaps.loc[overlaps.pair == "uv", "Phi"], 1.0, atol=1e-3)
    # u/w and v/w agree wherever the eigenvalues are distinct (the 16 on-manifold ranks) and over the whole
    # space; inside the degenerate off-manifold block any basis is an eigenbasis, so Phi there is arbitrary.
    distinct = overlaps[(overlaps.pair != "uv") & ((overlaps.n <= 16) | (overlaps.n == 784))]
    assert np.allclose(distinct["Phi"], 1.0, atol=1e-3)
    calib = pd.read_csv(out / "stats" / "calibration_summary.csv")
    assert set(calib["source"]) == {"model_samples", "heldout_noisy"}
    assert np.allclose(calib["calibration_ratio"], 1.0, atol=1e-4)
    feats, fattrs = io.read_h5(out / "stats" / "features.h5")
    assert feats["features"].shape == (4, 5, 7, 784) and feats["images"].tolist() == [0, 1, 2, 3]
    # the pipeline's claims table returns the verdicts the closed form predicts
    from scipy.stats import spearmanr

    v = pd.read_csv(out / "stats" / "claims.csv").set_index("id")["verdict"]
    r = [expected_local_dim(ckpt, t, kappa=0.1) for t in sorted(diag["t"].unique())]
    grows = len(set(r)) > 1 and spearmanr(sorted(diag["t"].unique()), r).statistic <= -0.8 and r[0] > r[-1]
    assert v["r_t_grows"] == ("holds" if grows else "fails")
    for claim in ("calibration", "floor_lower_bound", "cos_minus_one_high_ranks", "denoiser_psd"):
        assert v[claim] == "holds", claim
    # one Jacobian for every x (no spread), symmetric (u = -v at every rank, w = v), conservative
    for claim in ("r_t_spreads", "uv_misaligned_low_ranks", "misalignment_rank", "non_conservative_within"):
        assert v[claim] == "fails", claim


def _planned_resources(dry_run_output: str) -> dict[str, dict[str, str]]:
    """rule -> its resources line (key=value) from `snakemake -n` output (last job of each rule)."""
    import re

    plan, rule = {}, None
    for line in dry_run_output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            plan[rule] = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", ") if "=" in kv)
    return plan


def test_every_rule_declares_resources_that_scale_with_the_config(workflow_dir):
    """What a scheduler needs: mem_mb and runtime for every job; Jacobian memory follows the shard size,
    training time the number of steps."""
    def plan(*overrides):
        (workflow_dir / "over.yaml").write_text("\n".join(overrides) + "\n")
        proc = run_snakemake(workflow_dir, "-n", "-F", "--cores", "2", "--configfile", "presets/tiny.yaml",
                             "over.yaml")
        assert proc.returncode == 0, proc.stderr
        return _planned_resources(proc.stdout + proc.stderr)

    base = plan("seed: 0")
    rules = {r for r in base if r != "all"}
    assert len(rules) >= 20, rules
    for rule in rules:
        assert "mem_mb" in base[rule] and "runtime" in base[rule], (rule, base[rule])
    bigger = plan("jacobian:\n  n_images: 6\n  shards: 1", "train:\n  steps: 200000")
    assert int(bigger["compute_jacobians"]["mem_mb"]) > int(base["compute_jacobians"]["mem_mb"])
    assert int(bigger["train_model"]["runtime"]) > int(base["train_model"]["runtime"])


def test_default_profile_prints_a_failing_jobs_log(workflow_dir):
    """profiles/default/ is loaded without being named, so a plain `snakemake --cores N` (and `make run`) shows
    a failing job's log on the console (show-failed-logs), here a data set that is not on disk."""
    (workflow_dir / "missing_data.yaml").write_text("data:\n  dataset: mnist\n  root: no_such_dir\n")
    proc = run_snakemake(workflow_dir, "results/tiny/data/dataset.h5", "--cores", "1", "--configfile",
                         "presets/tiny.yaml", "missing_data.yaml")
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "workflow specific profile profiles/default" in console
    assert "Logfile logs/prepare_data/tiny.log:" in console and "Looked under" in console


def test_default_profile_reruns_an_output_left_incomplete(workflow_dir):
    """After Ctrl-C to Snakemake alone, a finished job's output can keep its incomplete marker; a plain rerun then
    stopped with IncompleteFilesException. profiles/default/ sets rerun-incomplete: the job is simply redone."""
    from base64 import urlsafe_b64encode

    target = "results/tiny/data/dataset.h5"
    args = (target, "--cores", "1", "--configfile", "presets/tiny.yaml")
    assert run_snakemake(workflow_dir, *args).returncode == 0
    marker = workflow_dir / ".snakemake" / "incomplete" / urlsafe_b64encode(target.encode()).decode()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"external_jobid": null}')
    without = run_snakemake(workflow_dir, *args, "--workflow-profile", "none")
    assert without.returncode != 0 and "IncompleteFilesException" in without.stdout + without.stderr
    rerun = run_snakemake(workflow_dir, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "rule prepare_data" in rerun.stdout + rerun.stderr and not marker.exists()


def test_unwritable_results_stop_the_run_before_any_job(workflow_dir):
    """An output location that cannot be written (here `results` is a file) is refused with one message naming
    it before any job runs, instead of a traceback from the first job that writes."""
    (workflow_dir / "results").write_text("not a folder")
    proc = run_snakemake(workflow_dir, "-n", "--cores", "1", "--configfile", "presets/tiny.yaml")
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"cannot write the run's outputs under results/tiny/: {workflow_dir / 'results'} is not a directory" \
        in console
    assert "Traceback" not in console and not (workflow_dir / "logs").exists()


def test_every_script_is_read_one_stage_call_write():
    """A script logs, reads through `io`, makes one call into `score_geometry.stages` and writes through `io`:
    no other library import (the science lives in the package), the training scripts included."""
    import ast

    from conftest import ROOT
    from score_geometry import stages

    rules = set()
    for smk in [*(ROOT / "workflow" / "rules").glob("*.smk"), *(ROOT / "workflow").glob("*.smk")]:
        rules |= {line.split()[1].rstrip(":") for line in smk.read_text().splitlines() if line.startswith("rule ")}
    for path in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        imported = {}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("score_geometry"):
                imported.setdefault(node.module, set()).update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                assert all(a.name == "pathlib" for a in node.names), (path.name, [a.name for a in node.names])
        assert set(imported) <= {"score_geometry", "score_geometry.runtime", "score_geometry.stages"}, path.name
        assert imported.get("score_geometry", {"io"}) == {"io"}, path.name
        assert imported["score_geometry.runtime"] <= {"setup_logging", "setup_torch", "resolve_device"}, path.name
        calls = imported.get("score_geometry.stages", set())
        io_only = {"aggregate_spectra", "share_with_budget", "share_from_run"}  # concatenation, copies: io alone
        assert len(calls) == (0 if path.stem in io_only else 1), (path.name, calls)
        assert all(hasattr(stages, c) for c in calls), calls
        if path.stem != "plot_figure":
            assert path.stem in rules and calls <= {path.stem}, (path.name, calls)  # rule = script = stage
    for rule in rules - {"all", "figures"}:
        assert f"    {rule if not rule.startswith('plot_') else 'plot_* (every figure)'} " in stages.__doc__, rule


@pytest.mark.slow
def test_after_a_real_kill_unlock_and_rerun_rebuild_the_model(workflow_dir):
    """kill -9 of Snakemake's whole process group while train_model runs: the next run stops on the lock (as
    README says), `--unlock` with the same config frees it, and the rerun resumes training to the full budget."""
    import os
    import signal
    import time

    from conftest import E2E_TIMEOUT

    (workflow_dir / "longer.yaml").write_text("train: {steps: 400, checkpoint_every: 10}\n")
    target = "results/tiny/model/model.pt"
    args = (target, "--cores", "1", "--configfile", "presets/tiny.yaml", "longer.yaml")
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.Popen([str(exe), *args], cwd=workflow_dir, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    state = workflow_dir / "results" / "tiny" / "model" / "work" / "train_state.pt"
    deadline = time.monotonic() + E2E_TIMEOUT
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state.exists() and proc.poll() is None, "training never checkpointed before the run ended"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not (workflow_dir / target).exists()
    locked = run_snakemake(workflow_dir, *args)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    assert run_snakemake(workflow_dir, *args, "--unlock").returncode == 0
    rerun = run_snakemake(workflow_dir, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    log = (workflow_dir / "logs" / "train_model" / "tiny.log").read_text()
    assert "resumed from" in log
    options = json.loads((workflow_dir / "results" / "tiny" / "model" / "training_options.json").read_text())
    assert options["final_step"] == 400 and not state.exists()  # a finished training keeps no resume state


@pytest.mark.slow
def test_a_run_missing_its_model_is_not_complete(tiny_run, tmp_path):
    """The model files users are told to use are in the default target: with model.pt gone (a killed
    --forcerun train_model), the plain command rebuilds it instead of reporting "Nothing to be done"."""
    import shutil

    wd = tmp_path / "copy"
    shutil.copytree(tiny_run, wd, symlinks=True)
    (wd / "results" / "tiny" / "model" / "model.pt").unlink()
    proc = run_snakemake(wd, "-n", "--cores", "1", "--configfile", "presets/tiny.yaml")
    assert proc.returncode == 0 and "rule train_model" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

"""Shared fixtures: the repository root and a disposable copy of the workflow to run Snakemake in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "presets", "envs", "profiles")


def _e2e_timeout() -> float:
    value = os.environ.get("SCORE_GEOMETRY_TEST_TIMEOUT", "3600")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise pytest.UsageError(f"SCORE_GEOMETRY_TEST_TIMEOUT={value!r}: give the seconds as a positive number")
    return seconds


#: Seconds an end-to-end subprocess of the tests (a Snakemake run, the CLI, an example or a benchmark script) may
#: take before the test fails on its timeout. The one place to change them all: the environment variable
#: SCORE_GEOMETRY_TEST_TIMEOUT (seconds, default 3600). Generous, because a tiny run that takes ~2 min on an idle
#: 2-core machine takes many times that on a loaded one (600 s made 21 tests error there). The runs that build
#: several tiny runs in one command (the comparison, the SLURM run) get `LONG_E2E_TIMEOUT`, twice as long.
E2E_TIMEOUT = _e2e_timeout()
LONG_E2E_TIMEOUT = 2 * E2E_TIMEOUT


#: The modules that take minutes (their Snakemake runs), longest first by `pytest --durations` on an idle 2-core
#: machine; `make test` hands whole modules to its two xdist workers in collection order
#: (`--no-loadscope-reorder`), and this order puts these first (longest-processing-time first: the workers end
#: together, where xdist's default, modules with the most tests first, left these to one worker at the end). The
#: first builds its own run, not the shared tiny run, so one worker runs it while the other builds that (its last
#: test dry-runs against the tiny run, by then built or nearly).
HEAVY_MODULES = ("test_lowrank_workflow.py", "test_score_models.py", "test_slurm.py", "test_shapes.py",
                 "test_compare.py", "test_trajectory.py", "test_workflow.py", "test_report.py", "test_toy.py",
                 "test_train.py", "test_cli.py", "test_benchmarks.py", "test_lowrank.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY_MODULES)))  # stable: each module's own order


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    # Deterministic and fast on a 2-core machine; bit-identity tests compare runs in one thread count.
    torch.set_num_threads(1)


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (no results) into `dest`."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh copy of the workflow (no results) to run `snakemake` in."""
    return copy_workflow(tmp_path)


def _build_tiny_run(wd: Path) -> None:
    copy_workflow(wd)
    # --cores 8 is what README tells users to run, whatever the machine (the jobs' threads are capped).
    proc = run_snakemake(wd, "--cores", "8", "--configfile", "presets/tiny.yaml")
    (wd / "tiny_run.console.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, request) -> Path:
    """The workflow directory after one complete run of the tiny preset, built once per test session and shared
    by the tests that only read its outputs, add runs of other names beside it or dry-run against it
    (`snakemake -n`); tests that change its results use `workflow_dir`.

    Under pytest-xdist (`make test` runs two workers) the run is built once for all workers, by the first that
    needs it, under a file lock, and each worker gets its own copy (times, Snakemake's metadata and logs
    included), so the runs a test adds beside it never meet another worker's."""
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    if worker is None:
        wd = tmp_path_factory.mktemp("tiny_run")
        _build_tiny_run(wd)
        return wd
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the session's directory, above every worker's own
    built, failed = shared / "tiny_run_built", shared / "tiny_run_failed.txt"
    with FileLock(str(shared / "tiny_run.lock")):
        if not built.exists() and not failed.exists():
            partial = shared / "tiny_run_partial"
            partial.mkdir()
            try:
                _build_tiny_run(partial)
            except BaseException as e:
                failed.write_text(f"the shared tiny run failed on worker {worker}:\n{e}")
                raise
            partial.rename(built)
    if failed.exists():
        pytest.fail(failed.read_text()[-6000:])
    wd = tmp_path_factory.mktemp("tiny_run")
    shutil.copytree(built, wd, symlinks=True, dirs_exist_ok=True)
    return wd


def run_snakemake(cwd: Path, *args: str, timeout: float | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the snakemake CLI of this interpreter's environment in `cwd` (extra environment variables in `env`),
    failing after `timeout` seconds (default `E2E_TIMEOUT`)."""
    timeout = E2E_TIMEOUT if timeout is None else timeout
    exe = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)

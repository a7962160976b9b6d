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


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    # Deterministic and fast on a 2-core machine; bit-identity tests compare runs in one thread count.
    torch.set_num_threads(1)


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh copy of the workflow (no results) to run `snakemake` in."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        elif src.exists():
            shutil.copy2(src, tmp_path / name)
    return tmp_path


def run_snakemake(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the snakemake CLI of this interpreter's environment in `cwd`."""
    exe = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)

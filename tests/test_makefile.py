"""The Makefile's environment stamp (issue 24): `.venv/.installed-<checksum of pyproject.toml and
envs/constraints.txt>` is the only trigger of a reinstall. A fresh clone or a branch switch gives the files new
modification times but the same content: nothing is reinstalled; a change of content is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT


def _make(cwd, *args: str) -> str:
    proc = subprocess.run(["make", "-n", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def _stamp_name(cwd) -> str:
    """The stamp the Makefile computes, from `make -n -p`'s database (no install needed)."""
    database = subprocess.run(["make", "-n", "-p", "venv"], cwd=cwd, capture_output=True, text=True, timeout=60)
    return re.search(r"^STAMP := (\S+)$", database.stdout, re.M).group(1)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_the_stamp_reinstalls_on_a_new_checksum_only(tmp_path):
    for name in ("Makefile", "pyproject.toml", "envs/constraints.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    stamp = tmp_path / _stamp_name(tmp_path)
    assert stamp.parent.name == ".venv" and stamp.name.startswith(".installed-")
    assert "pip install" in _make(tmp_path, "venv")  # no stamp yet: install

    stamp.parent.mkdir()
    stamp.touch()
    os.utime(stamp, (1_000_000_000, 1_000_000_000))  # the stamp older than both files: a fresh clone, a checkout
    for name in ("pyproject.toml", "envs/constraints.txt"):
        (tmp_path / name).touch()
    assert "pip install" not in _make(tmp_path, "venv"), "same checksum, newer files: nothing to reinstall"
    assert "Nothing to be done" in _make(tmp_path, "venv")

    with (tmp_path / "envs" / "constraints.txt").open("a") as f:
        f.write("# a changed pin\n")
    assert _stamp_name(tmp_path) != stamp.relative_to(tmp_path).as_posix()
    assert "pip install" in _make(tmp_path, "venv"), "a new checksum reinstalls"

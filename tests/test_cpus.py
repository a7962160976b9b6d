"""CPUs a job may use (score_geometry.cpus): affinity and cgroup quota, and the cap on every job's threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from score_geometry import cpus
from score_geometry.runtime import set_threads


def _cgroup_v2(tmp_path: Path, limits: dict[str, str]) -> tuple[Path, Path]:
    """A fake unified hierarchy: `limits` maps a cgroup path (relative) to its cpu.max line."""
    root = tmp_path / "cgroup"
    for rel, line in limits.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.max").write_text(line + "\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/slurm/job_1/step_0\n")
    return root, proc


def test_cgroup_v2_tightest_quota_on_the_path(tmp_path):
    root, proc = _cgroup_v2(tmp_path, {".": "max 100000", "slurm": "800000 100000",
                                       "slurm/job_1": "250000 100000", "slurm/job_1/step_0": "max 100000"})
    assert cpus.cgroup_cpu_limit(root, proc) == pytest.approx(2.5)


def test_cgroup_v2_no_quota(tmp_path):
    root, proc = _cgroup_v2(tmp_path, {".": "max 100000", "slurm/job_1/step_0": "max 100000"})
    assert cpus.cgroup_cpu_limit(root, proc) is None


def test_cgroup_v1_cpu_controller(tmp_path):
    root = tmp_path / "cgroup"
    d = root / "cpu,cpuacct" / "docker" / "abc"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("150000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpus.cgroup_cpu_limit(root, proc) == pytest.approx(1.5)


def test_unreadable_cgroup_means_no_limit(tmp_path):
    assert cpus.cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None


def test_usable_cpus_is_min_of_affinity_and_rounded_quota(monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 16)
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 2.5)
    assert cpus.usable_cpus() == 3
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 0.2)
    assert cpus.usable_cpus() == 1
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    assert cpus.usable_cpus() == 16
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 4)
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 8.0)
    assert cpus.usable_cpus() == 4


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity")
def test_affinity_mask_is_honoured_in_a_real_process():
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}}); from score_geometry.cpus import usable_cpus; " \
           "print(usable_cpus())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "1"


def test_set_threads_never_exceeds_usable_cpus(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr("score_geometry.runtime.usable_cpus", lambda: 1)
    try:
        assert set_threads(8) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cores_warning_once_per_process(monkeypatch):
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 2)
    monkeypatch.setattr(cpus, "_warned", set())
    assert cpus.cores_warning(2) is None and cpus.cores_warning(None) is None
    msg = cpus.cores_warning(8)
    assert msg.startswith("--cores 8 exceeds the 2 CPUs") and cpus.cores_warning(8) is None


def test_openmp_waits_are_passive_unless_the_user_chose():
    from score_geometry.cpus import passive_openmp_waits

    environ: dict[str, str] = {}
    assert passive_openmp_waits(environ) == "PASSIVE" and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert passive_openmp_waits(mine) == "ACTIVE" and mine == {"OMP_WAIT_POLICY": "ACTIVE"}

"""How many CPUs this process may actually use: its affinity mask and its cgroup's CPU quota.

`os.cpu_count()` counts the machine's CPUs, not the ones a container, a SLURM allocation (cgroup) or
`taskset` leave to us; a job that starts one torch thread per machine CPU inside a 2-CPU quota is throttled
instead of faster. Imports nothing heavy: the Snakefile calls it while the DAG is built.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cpus", "affinity_cpus", "cgroup_cpu_limit", "cores_warning", "passive_openmp_waits"]


def passive_openmp_waits(environ: dict[str, str] | None = None) -> str:
    """Make OpenMP threads sleep, not spin, while they wait: ``OMP_WAIT_POLICY=PASSIVE`` unless it is set
    already. Returns the policy in force.

    Snakemake runs several torch jobs at once, each with ``threads:`` intra-op threads, so the machine is often
    oversubscribed (``--cores 8`` on a 2-core laptop). libgomp's default makes an idle thread spin for a while
    before it sleeps, and there those spins take the cores from the threads with work: three 2-thread Jacobian
    jobs on 2 cores took 5.4x the wall time and 6x the CPU time with spinning as with sleeping waits, while one
    job alone on idle cores is within 5% either way (docs/benchmarks.md, `benchmarks/openmp_wait.py`). libgomp reads the variable once, when torch
    loads it, so the Snakefile sets it in its own environment before any job starts, and every job (local or
    submitted, whose Snakemake re-reads the Snakefile) inherits it.
    """
    environ = os.environ if environ is None else environ
    return environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (`taskset`, SLURM's cpuset binding); all CPUs where unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[tuple[int, Path]]:
    """(version, directory) of this process's cgroup and its ancestors up to `root` (v2 and v1 'cpu')."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    out: list[tuple[int, Path]] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            version, base = 2, root
        elif "cpu" in controllers.split(","):
            version = 1
            base = next((root / name for name in ("cpu,cpuacct", "cpu", "cpuacct,cpu")
                         if (root / name).is_dir()), root / "cpu")
        else:
            continue
        rel = Path(path.lstrip("/"))
        for d in [rel, *rel.parents]:
            out.append((version, base / d))
    return out


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup",
                     proc_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """The tightest CPU quota (quota / period, in CPUs) on this process's cgroup or its ancestors.

    cgroup v2 (`cpu.max`: "<quota> <period>" or "max <period>") and v1 (`cpu.cfs_quota_us`, -1 = none, and
    `cpu.cfs_period_us`). Returns None when no quota is set or the files cannot be read (not Linux).
    """
    limits = []
    for version, d in _cgroup_dirs(Path(root), Path(proc_cgroup)):
        try:
            if version == 2:
                quota, period = (d / "cpu.max").read_text().split()[:2]
                if quota != "max":
                    limits.append(int(quota) / int(period))
            else:
                quota = int((d / "cpu.cfs_quota_us").read_text())
                if quota > 0:
                    limits.append(quota / int((d / "cpu.cfs_period_us").read_text()))
        except (OSError, ValueError, ZeroDivisionError):
            continue
    return min(limits) if limits else None


def usable_cpus() -> int:
    """Whole CPUs this process may use: min(affinity mask, cgroup quota rounded up), at least 1."""
    n = affinity_cpus()
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


_warned: set[int] = set()


def cores_warning(cores: int | None) -> str | None:
    """The message for a `--cores` above `usable_cpus()`, once per process (the comparison workflow parses the
    workflow once per run), else None."""
    n = usable_cpus()
    if not cores or cores <= n or cores in _warned:
        return None
    _warned.add(cores)
    return (f"--cores {cores} exceeds the {n} CPUs this process may use (affinity and cgroup quota): each job gets "
            f"at most {n} threads. Jobs may still run side by side and share them; --cores {n} avoids that.")

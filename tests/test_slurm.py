"""The tiny preset end-to-end through `--profile profiles/slurm` on a real single-node SLURM with fake GPUs.

The cluster (tests/slurm_cluster.py) is Debian's Slurm with slurmdbd accounting, so the executor plugin's
default `sacct` status checks run as on a real cluster. The profile is used as a user would: the file is
copied and its EDIT lines (partitions, CPUs per GPU) are set for this one-node cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import LONG_E2E_TIMEOUT, run_snakemake
from score_geometry import io
from slurm_cluster import LocalSlurm, install_packages, missing_commands

pytestmark = pytest.mark.slow

GPU_RULES = {"train_model", "sample_sequences", "compute_jacobians", "compute_heldout_jacobians", "train_vae",
             "estimate_dims"}

#: What the SLURM run builds: every GPU rule, CPU rules that go to SLURM (prepare_data, analyse_spectra,
#: calibrate_noise_floor) and local rules that must not (aggregate_spectra, a figure), not the whole tiny run:
#: the rest of the chain is the same rules with the same resources, and every job costs a submission here.
TARGETS = tuple(f"results/tiny/{name}" for name in (
    "stats/diagnostics.parquet", "stats/calibration_summary.csv", "estimators/estimates.parquet",
    "vae/clean/vae.pt", "figures/fig3_spectrum.png"))


@pytest.fixture
def slurm(tmp_path_factory):
    if missing_commands():
        if os.geteuid() != 0 or subprocess.run(["which", "apt-get"], capture_output=True).returncode != 0:
            pytest.skip(f"SLURM is not installed ({', '.join(missing_commands())} missing) and this machine cannot "
                        "install packages (needs root and apt-get)")
        install_packages()
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM test runs its daemons as root")
    with LocalSlurm(tmp_path_factory.mktemp("slurm"), gpus=2, cpus=os.cpu_count(), mem_mb=12000) as cluster:
        yield cluster


def _edit_profile(workflow_dir: Path, threads: int) -> None:
    """What a user does to profiles/slurm/config.yaml (its EDIT lines), for this one-partition, small node."""
    import yaml

    path = workflow_dir / "profiles" / "slurm" / "config.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["default-resources"]["slurm_partition"] = "main"
    for rule, res in profile["set-resources"].items():
        profile["set-resources"][rule] = {**res, "slurm_partition": "main", "cpus_per_gpu": threads}
    profile["set-threads"] = {rule: threads for rule in profile["set-threads"]}
    profile["local-cores"] = threads
    path.write_text(yaml.safe_dump(profile))


class _KillOnce(threading.Thread):
    """SIGKILL the process of the first SLURM job of `rule` once its job step runs, as a crash or the OOM
    killer would: the step fails, the job ends FAILED, and Snakemake must resubmit it.

    Not `scancel` (with or without --signal): the job then ends as "CANCELLED by <uid>", a state the executor
    plugin (2.8.0) does not match against its failure states, and Snakemake waits for that job forever.
    """

    def __init__(self, cluster: LocalSlurm, rule: str):
        super().__init__(daemon=True)
        self.cluster, self.rule, self.killed, self.stop = cluster, rule, None, threading.Event()

    def _job_id(self) -> str | None:
        out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i|%k"], env=self.cluster.env,
                             capture_output=True, text=True).stdout
        for line in out.split():
            job_id, comment = line.split("|", 1)
            if comment.startswith(f"rule_{self.rule}"):
                return job_id
        return None

    @staticmethod
    def _step_pids(job_id: str) -> list[int]:
        """Processes of step 0 of `job_id` (the rule's own Snakemake process, started by srun)."""
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if f"SLURM_JOB_ID={job_id}".encode() in env and b"SLURM_STEP_ID=0" in env:
                pids.append(int(proc.name))
        return pids

    def run(self):
        while not self.stop.is_set() and self.killed is None:
            job_id = self._job_id()
            pids = self._step_pids(job_id) if job_id else []
            if pids:
                for pid in pids:
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
                self.killed = job_id
                return
            time.sleep(0.1)


def test_tiny_run_on_slurm(slurm, tiny_run, workflow_dir):
    threads = os.cpu_count() or 1
    _edit_profile(workflow_dir, threads)
    kill = _KillOnce(slurm, "train_model")
    kill.start()
    try:
        proc = run_snakemake(workflow_dir, *TARGETS, "--profile", "profiles/slurm", "--configfile",
                             "presets/tiny.yaml", "--slurm-init-seconds-before-status-checks", "1",
                             "--seconds-between-status-checks", "2", timeout=LONG_E2E_TIMEOUT, env=slurm.env)
    finally:
        kill.stop.set()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]

    # Every non-local job went through sbatch and is in SLURM's accounting, GPU rules with one GPU each.
    jobs = slurm.sacct("JobID", "State", "Comment", "AllocTRES")
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", job["Comment"]).group(1)
        by_rule.setdefault(rule, []).append(job)
    localrules = {"all", "aggregate_spectra", "summarise_results", "summarise_benchmarks"}
    assert not set(by_rule) & localrules and not any(r.startswith("plot_") for r in by_rule), by_rule.keys()
    ran_locally = set(re.findall(r"^localrule (\w+):", log, re.M))
    assert {"aggregate_spectra", "plot_fig3_spectrum"} <= ran_locally, ran_locally
    submitted = set(re.findall(r"^rule (\w+):", log, re.M))
    assert GPU_RULES | {"prepare_data", "analyse_spectra", "calibrate_noise_floor"} <= submitted <= set(by_rule), (
        submitted, by_rule.keys())
    assert len(by_rule["compute_jacobians"]) == 2  # one job per shard
    for rule in GPU_RULES & set(by_rule):
        for job in by_rule[rule]:
            assert "gres/gpu=1" in job["AllocTRES"], (rule, job)  # exactly one GPU, never grouped
    for rule in set(by_rule) - GPU_RULES:
        assert all("gres/gpu" not in job["AllocTRES"] for job in by_rule[rule]), rule
    # The GPU jobs saw the GPU SLURM gave them, found CUDA unusable (fake devices) and fell back to the CPU.
    for name in ("train_model/tiny.log", "compute_jacobians/tiny_shard_0.log", "sample_sequences/tiny.log"):
        text = (workflow_dir / "logs" / name).read_text()
        assert re.search(r"device cpu \(asked for auto; CUDA_VISIBLE_DEVICES=\d\)", text), (name, text[-2000:])

    # The killed training job was retried by Snakemake and the run completed.
    assert kill.killed is not None
    states = {j["JobID"]: j["State"] for j in by_rule["train_model"]}
    assert states[kill.killed] == "FAILED", states
    assert sum(s == "COMPLETED" for s in states.values()) == 1, states

    # Same config, same seed: the same numbers as the local run.
    a, b = tiny_run / "results" / "tiny", workflow_dir / "results" / "tiny"
    for name, key in (("samples/sequences.h5", "x_t"), ("jacobians/shard_0.h5", "J"), ("jacobians/shard_1.h5", "J")):
        np.testing.assert_array_equal(io.read_h5(a / name)[0][key], io.read_h5(b / name)[0][key], err_msg=name)
    for table in ("spectra", "local_dims", "overlaps", "diagnostics"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / "stats" / f"{table}.parquet"),
                                      pd.read_parquet(b / "stats" / f"{table}.parquet"))

"""Concurrent torch jobs on few cores: OpenMP threads that spin while they wait against threads that sleep.

    python benchmarks/openmp_wait.py [--jobs 3] [--threads 2] [--images 3] [--repeats 2] [--out FILE.csv]

What Snakemake does when it runs several torch jobs at once (`--cores 8` on a 2-core machine): `--jobs`
processes start together, each computing `--images` exact 784 x 784 score Jacobians of the tiny preset's
U-Net (channels [8, 8, 8], untrained; the cost does not depend on the weights) with `--threads` intra-op
threads, once with libgomp's default wait policy (spin, then sleep) and once with OMP_WAIT_POLICY=PASSIVE,
which the workflow sets by default (`score_geometry.cpus.passive_openmp_waits`). Then the same with one job
alone. Prints, per setting and job, the wall and CPU seconds; the ratio default / passive is the number that
counts (machines are noisy; the settings are interleaved over `--repeats`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pandas as pd

WORKER = r"""
import json, sys, time
import numpy as np, torch
from score_geometry.networks import build_network
from score_geometry.stages.jacobians import jacobians_at_times
threads, images = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
net = build_network({"channels": [8, 8, 8], "num_res_blocks": 1, "attention": False, "dropout": 0.0, "groups": 4})
net.eval()
score = lambda x, t: net(x, t)
x = np.random.default_rng(0).standard_normal((images, 1, 28, 28)).astype(np.float32)
w0, c0 = time.perf_counter(), time.process_time()
jacobians_at_times(score, x, [0.1], progress=False)
print(json.dumps({"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}))
"""


def run_jobs(n_jobs: int, threads: int, images: int, policy: str | None) -> list[dict]:
    """Start `n_jobs` workers at once under `policy` (None: libgomp's default) and collect their timings."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(threads), str(images)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(n_jobs)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table to this CSV")
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        for n_jobs in (args.jobs, 1):
            for policy in (None, "PASSIVE"):
                for job, r in enumerate(run_jobs(n_jobs, args.threads, args.images, policy)):
                    rows.append({"repeat": repeat, "concurrent_jobs": n_jobs, "threads": args.threads,
                                 "policy": policy or "default", "job": job, **r})
    table = pd.DataFrame(rows)
    summary = table.groupby(["concurrent_jobs", "policy"])[["wall_s", "cpu_s"]].median().unstack("policy")
    for what in ("wall_s", "cpu_s"):
        summary[(what, "default/PASSIVE")] = summary[(what, "default")] / summary[(what, "PASSIVE")]
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, {args.images} Jacobians per job, medians:")
    print(summary.round(2).to_string())
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()

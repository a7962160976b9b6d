"""How the noise-floor calibration ratio converges with training steps (docs/calibration.md).

    python benchmarks/floor_convergence.py --name eps --set model.parameterisation=eps \
        --budgets 625 1250 2500 5000 --cores 1 --out docs/data/floor_convergence.csv

One run (`results/sweep_<name>/`) is trained to each budget in turn with the workflow itself: every budget
raises `train.steps` and asks Snakemake for the calibration summary, so training resumes from the previous
budget's checkpoint (the learning rate is constant after warm-up and the resume hash leaves out
`train.steps`, so a run trained to 2,500 steps in two legs equals one trained in one leg). Each budget
samples 8 sequences and computes 8 held-out Jacobians per recorded time (the same 8 digits as every other
run, `calibration.seed`), and appends its calibration summary with `steps` and the leg's wall time to
`--out` (rows of an earlier call with the same name and steps are replaced).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml


def parse_set(items: list[str]) -> dict:
    """`a.b=value` strings (YAML values) -> nested dict."""
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="lever name; the run is results/sweep_<name>")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, a.b=value")
    ap.add_argument("--budgets", nargs="+", type=int, required=True)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    run = f"sweep_{args.name}"
    base = {"run": run, "sample": {"n_images": 8, "batch_size": 8}, "jacobian": {"n_images": 8, "shards": 1},
            "plots": {"vae_baseline": False}}
    for key, value in parse_set(args.set).items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    tmp = Path(tempfile.mkdtemp(prefix=f"{run}_"))
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    for steps in sorted(args.budgets):
        (tmp / "steps.yaml").write_text(yaml.safe_dump({"train": {"steps": steps}}))
        t0 = time.perf_counter()
        subprocess.run(["snakemake", "--cores", str(args.cores), f"results/{run}/stats/calibration_summary.csv",
                        "--configfile", str(tmp / "base.yaml"), str(tmp / "steps.yaml")], check=True)
        wall = time.perf_counter() - t0
        rows = pd.read_csv(f"results/{run}/stats/calibration_summary.csv")
        rows.insert(0, "steps", steps)
        rows.insert(0, "lever", args.name)
        rows["wall_s"] = round(wall, 1)
        if args.out.exists():
            old = pd.read_csv(args.out)
            rows = pd.concat([old[~((old.lever == args.name) & (old.steps == steps))], rows])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)
        print(f"{args.name} {steps} steps: {wall:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

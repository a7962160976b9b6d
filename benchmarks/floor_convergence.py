"""How the noise-floor calibration ratio converges with training steps (docs/calibration.md).

    python benchmarks/floor_convergence.py --name eps --set model.parameterisation=eps train.t_sampling=uniform \
        --budgets 625 1250 2500 5000 --cores 1 --out docs/data/floor_convergence.csv

    python benchmarks/floor_convergence.py --plot docs/data/floor_convergence.csv docs/figures/floor_convergence.png

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

import numpy as np
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


def plot(table: Path, out: Path) -> None:
    """Median calibration ratio against training steps, one panel per source, one line per (lever, t), with
    the band [0.95, 1.10] shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = pd.read_csv(table)
    times = sorted(d["t"].unique())
    colours = dict(zip(times, plt.get_cmap("viridis")(np.linspace(0, 0.9, len(times)))))
    styles = dict(zip(sorted(d["lever"].unique()), ["-", "--", ":", "-."]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (source, title) in zip(axes, (("heldout_noisy", "noisy held-out digits"),
                                          ("model_samples", "the model's own samples"))):
        ax.axhspan(0.95, 1.10, color="0.9", zorder=0)
        ax.axhline(1.0, color="0.5", lw=0.8)
        for (lever, t), g in d[d["source"] == source].groupby(["lever", "t"]):
            g = g.sort_values("steps")
            ax.plot(g["steps"], g["calibration_ratio"], styles[lever], marker="o", ms=3, color=colours[t],
                    label=f"{lever}, t = {t:g}")
        ax.set_xscale("log")
        ax.set_xlabel("training steps (batch 64)")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("median (1/s_i)/σ_t², top half of ranks")
    axes[1].legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=150)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--plot":
        plot(Path(sys.argv[2]), Path(sys.argv[3]))
        return
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

"""Print the Snakemake benchmark of every rule of a run as a Markdown table.

    python benchmarks/stage_times.py results/default

Reads results/<run>/benchmarks/<rule>[_shard_k].tsv (written by the `benchmark:` directives) and sums
sharded rules. Wall seconds are what a user waits for only when jobs run one after another
(`--cores 2` on a 2-core machine gives each torch job both cores).
"""

import sys
from pathlib import Path

import pandas as pd


def stage_table(run_dir: Path) -> pd.DataFrame:
    rows = []
    for f in sorted((run_dir / "benchmarks").glob("*.tsv")):
        b = pd.read_csv(f, sep="\t").iloc[-1]
        rule = f.stem.split("_shard_")[0]
        rows.append({"rule": rule, "jobs": 1, "wall_s": b["s"], "cpu_s": b["cpu_time"], "max_rss_mb": b["max_rss"]})
    df = pd.DataFrame(rows).groupby("rule", as_index=False).agg(
        jobs=("jobs", "sum"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    total = pd.DataFrame([{"rule": "total", "jobs": df["jobs"].sum(), "wall_s": df["wall_s"].sum(),
                           "cpu_s": df["cpu_s"].sum(), "max_rss_mb": df["max_rss_mb"].max()}])
    return pd.concat([df.sort_values("wall_s", ascending=False), total], ignore_index=True)


if __name__ == "__main__":
    table = stage_table(Path(sys.argv[1] if len(sys.argv) > 1 else "results/default"))
    table["wall_min"] = table["wall_s"] / 60
    print(table.to_markdown(index=False, floatfmt=".1f"))

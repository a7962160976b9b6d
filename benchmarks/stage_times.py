"""Print the Snakemake benchmark of every rule of a run as a Markdown table.

    python benchmarks/stage_times.py results/default

Reads results/<run>/benchmarks/<rule>[_shard_k].tsv (written by the `benchmark:` directives) and sums
sharded rules (the same table as results/<run>/stats/stage_times.md, which the workflow writes for the
report). Wall seconds are what a user waits for only when jobs run one after another (`--cores 2` on a
2-core machine gives each torch job both cores).
"""

import sys
from pathlib import Path

from score_geometry import io
from score_geometry.report import stage_times

if __name__ == "__main__":
    run_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "results/default")
    table = stage_times(io.read_benchmarks(sorted((run_dir / "benchmarks").glob("*.tsv"))))
    print(table.to_markdown(index=False, floatfmt=".1f"))

"""The MNIST rows of "where the field is non-conservative" (docs/nonconservative.md) for runs that have
Jacobians, re-analysed with the current code (older runs lack the newer skew columns).

    python benchmarks/nonconservative_mnist.py results/sweep_x0:x0 results/sweep_eps:eps --out verdicts.csv

Each argument is a run directory and its parameterisation; both the sampled Jacobians (jacobians/shard_*.h5)
and the held-out ones (jacobians/heldout.h5) are analysed, and the claims table's four MNIST rows are computed
by `score_geometry.claims` itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from score_geometry import io
from score_geometry.analysis import analyse_jacobians
from score_geometry.claims import CLAIMS, RunTables

IDS = ("non_conservative_within", "non_conservative_within_w", "non_conservative_within_relative",
       "non_conservative_within_relative_w")


def verdicts(run_dir: Path, parameterisation: str) -> pd.DataFrame:
    rows = []
    sources = {"samples": sorted(run_dir.glob("jacobians/shard_*.h5")), "held-out": [run_dir / "jacobians/heldout.h5"]}
    for source, files in sources.items():
        tables = []
        for f in files:
            d, _ = io.read_h5(f)
            labels = d["labels"] if "labels" in d else np.full(len(d["J"]), -1)
            tables.append(analyse_jacobians(d["J"], images=d["images"], labels=labels, t=d["t"], sigma=d["sigma"],
                                            run=run_dir.name, kappa=0.1, kappa_sweep=[0.1], progress=False))
        r = RunTables(diagnostics=pd.concat([t.diagnostics for t in tables]),
                      overlaps=pd.concat([t.overlaps for t in tables]),
                      spectra=pd.concat([t.spectra for t in tables]), parameterisation=parameterisation)
        for c in CLAIMS:
            if c.id in IDS:
                out = c.compute(r)
                rows.append({"run": run_dir.name, "points": source, "claim": c.id, "value": out.value,
                             "verdict": out.verdict, "detail": out.detail})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN_DIR:parameterisation")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    table = pd.concat([verdicts(Path(r.rpartition(":")[0]), r.rpartition(":")[2]) for r in args.runs])
    table.to_csv(args.out, index=False)
    print(table.drop(columns="detail").to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()

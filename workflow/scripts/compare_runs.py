"""Rule compare_runs: the runs side by side (r_t, calibration, sample quality, claims) as a table and a figure."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import pandas as pd

from score_geometry import io
from score_geometry.compare import comparison_table
from score_geometry.plots import plot_comparison

p, i = snakemake.params, snakemake.input
per_run, claims = {}, []
for name, r in p.runs.items():
    quality = io.read_json(i[f"{name}_quality"])
    per_run[name] = {"parameterisation": r["parameterisation"],
                     "diagnostics": io.read_parquet(i[f"{name}_diagnostics"]),
                     "calibration": io.read_csv(i[f"{name}_calibration"]),
                     "quality": pd.DataFrame([{k: v for k, v in quality.items() if isinstance(v, (int, float))}]),
                     "claims": io.read_csv(i[f"{name}_claims"])}
    claims.append(per_run[name]["claims"].assign(run=name)[["run", "id", "value", "verdict", "origin"]])
table = comparison_table(per_run)
io.write_csv(snakemake.output.csv, table)
io.write_text(snakemake.output.markdown, table.to_markdown(index=False, floatfmt=".3g") + "\n")
wide = pd.concat(claims).pivot(index="id", columns="run", values="verdict").reset_index()
io.write_csv(snakemake.output.claims, wide)
io.save_figure(plot_comparison(table), list(snakemake.output.figure), dpi=150)

"""Rule summarise_trajectory (workflow/trajectory.smk): every claim's statistic and verdict per budget, each
claim's trend along the training run, and the figure."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import summarise_trajectory

p, i, o = snakemake.params, snakemake.input, snakemake.output
KINDS = ("claims", "quality", "calibration", "diagnostics")
per_budget = {steps: {kind: io.read_input(i[kind][k]) for kind in KINDS} for k, steps in enumerate(p.budgets)}
table, trends, markdown, figure = summarise_trajectory(per_budget, name=p.name)
io.write_csv(o.table, table)
io.write_csv(o.trends, trends)
io.write_text(o.markdown, markdown)
io.save_figure(figure, list(o.figure), dpi=150)

"""Rule compare_runs: the runs side by side (r_t, calibration, sample quality, claims) as a table and a figure."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import compare_runs

p, i, o = snakemake.params, snakemake.input, snakemake.output
KINDS = ("diagnostics", "calibration", "quality", "claims")
runs = {name: {"parameterisation": r["parameterisation"], **{kind: io.read_input(i[f"{name}_{kind}"]) for kind in KINDS}}
        for name, r in p.runs.items()}
table, markdown, claims, figure = compare_runs(runs)
io.write_csv(o.csv, table)
io.write_text(o.markdown, markdown)
io.write_csv(o.claims, claims)
io.save_figure(figure, list(o.figure), dpi=150)

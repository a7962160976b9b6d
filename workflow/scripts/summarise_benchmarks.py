"""Rule summarise_benchmarks: wall/CPU time and peak memory of every stage, for the report (CSV, Markdown)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.report import html_table, stage_times

table = stage_times(io.read_benchmarks(list(snakemake.input)))
io.write_csv(snakemake.output.csv, table)
io.write_text(snakemake.output.markdown, table.to_markdown(index=False, floatfmt=".1f") + "\n")
io.write_text(snakemake.output.html, html_table(table, title="Stage benchmarks (seconds, MB)", digits=4))

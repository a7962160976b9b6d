"""Rule summarise_results: per-t summary numbers to check against the paper (CSV and Markdown)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.analysis import summary_table
from score_geometry.report import html_table

table = summary_table(io.read_parquet(snakemake.input.diagnostics), io.read_parquet(snakemake.input.overlaps))
io.write_csv(snakemake.output.csv, table)
io.write_text(snakemake.output.markdown, table.to_markdown(index=False, floatfmt=".3f") + "\n")
io.write_text(snakemake.output.html, html_table(table, title="Summary per t: the numbers to check against the paper"))

"""Rule summarise_quality: the sample-quality numbers (quality.json) as a table for the report (Markdown, HTML)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.report import html_table, quality_table

table = quality_table(io.read_json(snakemake.input.quality))
io.write_text(snakemake.output.markdown, table.to_markdown(index=False) + "\n")
io.write_text(snakemake.output.html, html_table(table, title="Sample quality: is the model worth analysing?"))

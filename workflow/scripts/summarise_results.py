"""Rule summarise_results: per-t summary numbers to check against the paper (CSV and Markdown)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import summarise_results

out = summarise_results(io.read_parquet(snakemake.input.diagnostics), io.read_parquet(snakemake.input.overlaps))
io.write_csv(snakemake.output.csv, out.table)
io.write_text(snakemake.output.markdown, out.markdown)
io.write_text(snakemake.output.html, out.html)

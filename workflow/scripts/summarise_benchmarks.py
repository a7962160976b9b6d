"""Rule summarise_benchmarks: wall/CPU time and peak memory of every stage, for the report (CSV, Markdown)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import summarise_benchmarks

out = summarise_benchmarks(io.read_benchmarks(list(snakemake.input)))
io.write_csv(snakemake.output.csv, out.table)
io.write_text(snakemake.output.markdown, out.markdown)
io.write_text(snakemake.output.html, out.html)

"""Rule summarise_quality: the sample-quality numbers (quality.json) as a table for the report (Markdown, HTML)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import summarise_quality

out = summarise_quality(io.read_json(snakemake.input.quality))
io.write_text(snakemake.output.markdown, out.markdown)
io.write_text(snakemake.output.html, out.html)

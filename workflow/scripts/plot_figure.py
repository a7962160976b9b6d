"""Every plot rule (workflow/rules/plots.smk): its registered figure (params.figure) drawn from its inputs, read
by file type, with its plot options (the other params but dpi and code), saved to each output (PDF, PNG)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import draw_figure

options = {k: v for k, v in snakemake.params.items() if k not in ("figure", "code", "dpi")}
fig = draw_figure(snakemake.params.figure, {k: io.read_input(v) for k, v in snakemake.input.items()}, options)
io.save_figure(fig, list(snakemake.output), dpi=snakemake.params.dpi)

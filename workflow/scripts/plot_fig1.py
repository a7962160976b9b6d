"""Rule plot_fig1: the toy density, the learned field's tangential part and the tangent/normal skew shares."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots_toy import fig1_toy

field, attrs = io.read_h5(snakemake.input.field)
fig = fig1_toy(field, attrs, io.read_parquet(snakemake.input.points))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

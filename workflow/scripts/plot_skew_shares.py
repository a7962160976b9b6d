"""Rule plot_skew_shares: where the MNIST score Jacobians' skew part lies (on-manifold, off, cross) against t."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots_toy import skew_shares_figure

fig = skew_shares_figure(io.read_parquet(snakemake.input.diagnostics))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

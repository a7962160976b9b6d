"""Rule plot_estimators: VAE local dimension per digit, and the estimators side by side."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots_estimators import estimators_figure

fig = estimators_figure(io.read_parquet(snakemake.input.vae), io.read_parquet(snakemake.input.estimates),
                        io.read_parquet(snakemake.input.diagnostics))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

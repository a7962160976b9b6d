"""Rule plot_estimators: VAE local dimension per digit, and the estimators side by side."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import pandas as pd

from score_geometry import io
from score_geometry.plots_estimators import estimators_figure

fig = estimators_figure(pd.read_parquet(snakemake.input.vae), pd.read_parquet(snakemake.input.estimates),
                        pd.read_parquet(snakemake.input.diagnostics))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

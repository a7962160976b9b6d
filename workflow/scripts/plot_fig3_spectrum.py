"""Rule plot_fig3_spectrum: inverse singular values, sigma_t^2 and r_t (Fig. 3 bottom left)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots import fig3_spectrum

fig = fig3_spectrum(io.read_parquet(snakemake.input.spectra), io.read_parquet(snakemake.input.diagnostics),
                    examples=list(snakemake.params.examples))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

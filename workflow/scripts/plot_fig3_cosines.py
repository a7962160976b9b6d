"""Rule plot_fig3_cosines: cos(u_i, v_i) against rank per t (Fig. 3 top)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots import fig3_cosines

fig = fig3_cosines(io.read_parquet(snakemake.input.spectra), examples=list(snakemake.params.examples))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

"""Rule plot_fig4: subspace overlaps Phi_n with the mean r_t marked (Fig. 4)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots import fig4_overlaps

fig = fig4_overlaps(io.read_parquet(snakemake.input.overlaps), io.read_parquet(snakemake.input.diagnostics))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

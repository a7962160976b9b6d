"""Rule plot_fig3_local_dims: distribution of r_t over images at each t (Fig. 3 bottom right), with the VAE
baseline's range on held-out digits shaded when plots.vae_baseline is on."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots import fig3_local_dims
from score_geometry.vae import clean_heldout_local_dims

baseline = clean_heldout_local_dims(io.read_parquet(snakemake.input.vae[0])) if snakemake.input.vae else None
fig = fig3_local_dims(io.read_parquet(snakemake.input.diagnostics), baseline=baseline,
                      baseline_label="VAE, held-out digits")
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

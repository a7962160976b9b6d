"""Rule plot_vae_convergence: gamma against sqrt(MSE) and the held-out count per epoch, and the posterior
variances per digit class, for every VAE (docs/vae.md)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.plots_estimators import vae_convergence_figure

p = snakemake.params
metrics = {c: io.read_jsonl(path) for c, path in zip(p.conditions, snakemake.input.metrics)}
dims = io.read_parquet(snakemake.input.local_dims)
trained_on = dims.groupby("condition")["trained_on"].first().to_dict()
fig = vae_convergence_figure(metrics, io.read_parquet(snakemake.input.variances), threshold=p.threshold,
                             trained_on=trained_on)
io.save_figure(fig, snakemake.output, dpi=p.dpi)

"""Rule sample_sequences: Euler–Maruyama paths from the EMA model, x_t saved at the configured times."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.sample import sequences_to_h5, sample_from_checkpoint

p = snakemake.params
setup_torch(snakemake.threads)
ckpt = io.load_checkpoint(snakemake.input.model)
result, info = sample_from_checkpoint(ckpt, dict(p.sample), device=resolve_device(p.device))
datasets, attrs = sequences_to_h5(result, info)
io.write_h5(snakemake.output[0], datasets, attrs)

"""Rule sample_sequences: Euler–Maruyama paths from the EMA model, x_t saved at the configured times."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import sample_sequences

p = snakemake.params
setup_torch(snakemake.threads)
datasets, attrs = sample_sequences(io.load_checkpoint(snakemake.input.model), dict(p.sample),
                                   device=resolve_device(p.device))
io.write_h5(snakemake.output[0], datasets, attrs)

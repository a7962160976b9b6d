"""Rule train_vae: train (or resume) the Appendix B VAE on clean and on noisy training images, with per-epoch
convergence metrics on the held-out split; write the checkpoints."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import train_vae

p = snakemake.params
threads = setup_torch(snakemake.threads)
trained = train_vae(io.read_dataset(snakemake.input.data), dict(p.vae), data=p.data, sde=p.sde, workdir=p.workdir,
                    device=resolve_device(p.device), threads=threads)
out = snakemake.output
for (checkpoint, options, metrics), model_out, options_out, metrics_out in zip(trained, out.models, out.options,
                                                                             out.metrics, strict=True):
    io.save_checkpoint(model_out, checkpoint)
    io.write_json(options_out, options)
    io.copy_file(metrics, metrics_out)

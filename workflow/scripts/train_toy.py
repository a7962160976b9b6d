"""Rule train_toy: sample the toy density exactly and train (or resume) the MLP score model on it."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import train_toy

p = snakemake.params
threads = setup_torch(snakemake.threads)
checkpoint, options, metrics = train_toy(dict(p.toy), dict(p.sde), workdir=p.workdir, device=resolve_device(p.device),
                                         threads=threads)
io.save_checkpoint(snakemake.output.model, checkpoint)
io.write_json(snakemake.output.options, options)
io.copy_file(metrics, snakemake.output.metrics)

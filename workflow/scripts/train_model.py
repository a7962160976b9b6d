"""Rule train_model: train (or resume) the score network, build the closed-form oracle or reference an external
model; write the checkpoint, the training options and the metrics."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import train_model

p = snakemake.params
threads = setup_torch(snakemake.threads)
cfg = {"seed": p.seed, "data": dict(p.data), "sde": dict(p.sde), "model": dict(p.model), "train": dict(p.train)}
checkpoint, options, metrics = train_model(io.read_dataset(snakemake.input.data), cfg, workdir=p.workdir,
                                           device=resolve_device(p.device), threads=threads)
io.save_checkpoint(snakemake.output.model, checkpoint)
io.write_json(snakemake.output.options, options)
io.copy_file(metrics, snakemake.output.metrics)

"""Rule train_segment (workflow/trajectory.smk): continue the trajectory's training run from the previous
budget's state to this budget; write this budget's model, options, metrics and the state to continue from."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import train_segment

p, i, o = snakemake.params, snakemake.input, snakemake.output
threads = setup_torch(snakemake.threads)
cfg = {"seed": p.seed, "data": dict(p.data), "sde": dict(p.sde), "model": dict(p.model), "train": dict(p.train)}
previous = (i.state, i.metrics) if "state" in i.keys() else None
(checkpoint, options, metrics), state = train_segment(io.read_dataset(i.data), cfg, previous=previous,
                                                      workdir=p.workdir, device=resolve_device(p.device),
                                                      threads=threads)
io.save_checkpoint(o.model, checkpoint)
io.write_json(o.options, options)
io.copy_file(metrics, o.metrics)
io.save_checkpoint(o.state, state)

"""Rule train_model: train (or resume) the score network, or build the closed-form oracle; write the checkpoint."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import shutil
from pathlib import Path

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.models import fit_score_model
from score_geometry.runtime import resolve_device, setup_torch

p = snakemake.params
threads = setup_torch(snakemake.threads)
device = resolve_device(p.device)
cfg = {"seed": p.seed, "data": dict(p.data), "sde": dict(p.sde), "model": dict(p.model), "train": dict(p.train)}
images = to_model_range(io.read_dataset(snakemake.input.data).train_images)
work = Path(p.workdir)
checkpoint, options = fit_score_model(images, cfg, checkpoint_path=work / "train_state.pt",
                                      metrics_path=work / "metrics.jsonl", device=device, threads=threads)
io.save_checkpoint(snakemake.output.model, checkpoint)
io.write_json(snakemake.output.options, options)
shutil.copyfile(work / "metrics.jsonl", snakemake.output.metrics)

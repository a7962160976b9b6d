"""Rule train_model: train (or resume) the score network; write the final EMA checkpoint and options."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import shutil
from pathlib import Path

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.runtime import resolve_device, set_threads
from score_geometry.train import final_checkpoint, train_model, training_options

p = snakemake.params
set_threads(snakemake.threads)
device = resolve_device(p.device)
cfg = {"seed": p.seed, "data": dict(p.data), "sde": dict(p.sde), "model": dict(p.model), "train": dict(p.train)}
images = to_model_range(io.read_dataset(snakemake.input.data).train_images)
work = Path(p.workdir)
state = train_model(images, cfg, checkpoint_path=work / "train_state.pt", metrics_path=work / "metrics.jsonl",
                    device=device)
io.save_checkpoint(snakemake.output.model, final_checkpoint(state, cfg))
io.write_json(snakemake.output.options, training_options(state, cfg, device=device, threads=snakemake.threads))
shutil.copyfile(work / "metrics.jsonl", snakemake.output.metrics)

"""Rule train_vae: train (or resume) the Appendix B VAE on clean and on noisy training digits, with per-epoch
convergence metrics on the held-out digits; write the checkpoints."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import shutil
from pathlib import Path

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.vae import condition_name, fit_vae

p = snakemake.params
threads = setup_torch(snakemake.threads)
device = resolve_device(p.device)
ds = io.read_dataset(snakemake.input.data)
images = to_model_range(ds.train_images)
heldout = (to_model_range(ds.heldout_images), ds.heldout_labels)
for i, t in enumerate([None, *p.vae["times"]]):
    cfg = {"seed": p.vae["seed"], "data": dict(p.data), "sde": dict(p.sde), "vae": dict(p.vae), "t": t}
    work = Path(p.workdir) / condition_name(t)
    checkpoint, options = fit_vae(images, cfg, checkpoint_path=work / "train_state.pt",
                                  metrics_path=work / "metrics.jsonl", device=device, threads=threads,
                                  heldout=heldout)
    io.save_checkpoint(snakemake.output.models[i], checkpoint)
    io.write_json(snakemake.output.options[i], options)
    shutil.copyfile(work / "metrics.jsonl", snakemake.output.metrics[i])

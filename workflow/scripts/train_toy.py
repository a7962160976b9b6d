"""Rule train_toy: sample the toy density exactly and train (or resume) the MLP score model on it."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import shutil
from pathlib import Path

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.toy import fit_toy_model

p = snakemake.params
threads = setup_torch(snakemake.threads)
work = Path(p.workdir)
checkpoint, options = fit_toy_model(dict(p.toy), dict(p.sde), checkpoint_path=work / "train_state.pt",
                                    metrics_path=work / "metrics.jsonl", device=resolve_device(p.device),
                                    threads=threads)
io.save_checkpoint(snakemake.output.model, checkpoint)
io.write_json(snakemake.output.options, options)
shutil.copyfile(work / "metrics.jsonl", snakemake.output.metrics)

"""Rule evaluate_samples: classifier-based quality of the final samples, a grid image of them, and the
classifier's label of the model's denoised estimate at each recorded t (class changes along a sequence)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import torch

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.plots import sample_grid
from score_geometry.quality import Classifier, evaluate_samples, labels_along_sequences
from score_geometry.sde import VPSDE
from score_geometry.stages import denoised_at_times

p = snakemake.params
ckpt = io.load_checkpoint(snakemake.input.classifier)
classifier = Classifier(width=ckpt["config"]["width"])
classifier.load_state_dict(ckpt["state"])
classifier.eval().requires_grad_(False)
seq, _ = io.read_h5(snakemake.input.sequences, ["x0_hat", "x_t", "t"])
ds = io.read_dataset(snakemake.input.data)
samples = torch.as_tensor(seq["x0_hat"]).unsqueeze(1)
quality, per_image = evaluate_samples(classifier, samples, to_model_range(ds.heldout_images),
                           torch.as_tensor(ds.heldout_labels), seed=p.seed)
io.write_json(snakemake.output.quality, quality)
io.write_parquet(snakemake.output.predictions, per_image)
io.save_figure(sample_grid(seq["x0_hat"], labels=per_image["label"].tolist()), [snakemake.output.grid], dpi=150)
x0_hat_t = denoised_at_times(io.load_checkpoint(snakemake.input.model), seq["x_t"], seq["t"], VPSDE(**p.sde))
io.write_parquet(snakemake.output.labels_t,
                 labels_along_sequences(classifier, x0_hat_t, seq["t"], per_image["label"].to_numpy()))

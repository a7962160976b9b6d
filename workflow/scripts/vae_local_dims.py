"""Rule vae_local_dims: the VAEs' local dimension on held-out digits and on the score model's samples (smallest t)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import torch

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.vae import condition_name, local_dims_table

p = snakemake.params
ds = io.read_dataset(snakemake.input.data)
seq, _ = io.read_h5(snakemake.input.sequences, ["x_t", "t"])
labels = io.read_parquet(snakemake.input.predictions).sort_values("image")["label"].to_numpy()
# The samples at the smallest recorded t (sequences.h5 stores times in increasing order).
samples = torch.as_tensor(seq["x_t"][:, 0]).unsqueeze(1).float()
checkpoints = {condition_name(t): io.load_checkpoint(path)
               for t, path in zip([None, *p.vae["times"]], snakemake.input.models)}
table = local_dims_table(checkpoints, {"heldout": (to_model_range(ds.heldout_images), ds.heldout_labels),
                                       "samples": (samples, labels)},
                         threshold=p.vae["threshold"], seed=p.vae["seed"] + 1)
io.write_parquet(snakemake.output[0], table)

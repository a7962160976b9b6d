"""Rule vae_local_dims: the VAEs' local dimension on held-out digits and on the score model's samples (smallest t),
with each VAE's convergence verdict; every latent dim's posterior variance on held-out digits."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import torch

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.vae import condition_name, local_dims_table, posterior_variance_table

p = snakemake.params
ds = io.read_dataset(snakemake.input.data)
seq, _ = io.read_h5(snakemake.input.sequences, ["x_t", "t"])
labels = io.read_parquet(snakemake.input.predictions).sort_values("image")["label"].to_numpy()
# The samples at the smallest recorded t (sequences.h5 stores times in increasing order).
samples = torch.as_tensor(seq["x_t"][:, 0]).unsqueeze(1).float()
conditions = [condition_name(t) for t in [None, *p.vae["times"]]]
checkpoints = {c: io.load_checkpoint(path) for c, path in zip(conditions, snakemake.input.models)}
metrics = {c: io.read_jsonl(path) for c, path in zip(conditions, snakemake.input.metrics)}
heldout = (to_model_range(ds.heldout_images), ds.heldout_labels)
table = local_dims_table(checkpoints, {"heldout": heldout, "samples": (samples, labels)},
                         threshold=p.vae["threshold"], seed=p.vae["seed"] + 1, metrics=metrics)
io.write_parquet(snakemake.output.local_dims, table)
io.write_parquet(snakemake.output.variances, posterior_variance_table(checkpoints, *heldout, seed=p.vae["seed"] + 1))

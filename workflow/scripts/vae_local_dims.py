"""Rule vae_local_dims: the VAEs' local dimension on held-out digits and on the score model's samples (smallest t),
with each VAE's convergence verdict; every latent dim's posterior variance on held-out digits."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import vae_local_dims

i = snakemake.input
sequences, _ = io.read_h5(i.sequences, ["x_t", "t"])
local_dims, variances = vae_local_dims(io.read_dataset(i.data), sequences, io.read_parquet(i.predictions),
                                       [io.load_checkpoint(path) for path in i.models],
                                       [io.read_jsonl(path) for path in i.metrics], vae=snakemake.params.vae)
io.write_parquet(snakemake.output.local_dims, local_dims)
io.write_parquet(snakemake.output.variances, variances)

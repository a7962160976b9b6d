"""Rule estimate_dims: kNN (scikit-dimension) and score-based (normal bundle, FLIPD) local dims of held-out digits."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.estimators import estimate_heldout
from score_geometry.runtime import resolve_device, setup_torch

setup_torch(snakemake.threads)
table = estimate_heldout(io.read_dataset(snakemake.input.data), io.load_checkpoint(snakemake.input.model),
                         snakemake.params.estimators, device=resolve_device(snakemake.params.device))
io.write_parquet(snakemake.output[0], table)

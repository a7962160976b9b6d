"""Rule estimate_dims: every registered estimator (kNN, normal bundle, FLIPD: score_geometry.baselines) on the
held-out digits."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import estimate_dims

setup_torch(snakemake.threads)
table = estimate_dims(io.read_dataset(snakemake.input.data), io.load_checkpoint(snakemake.input.model),
                      snakemake.params.estimators, device=resolve_device(snakemake.params.device))
io.write_parquet(snakemake.output[0], table)

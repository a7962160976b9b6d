"""Rule evaluate_samples: classifier-based quality of the final samples, and the classifier's label of the
model's denoised estimate at each recorded t (class changes along a sequence)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import evaluate_samples

i, o, p = snakemake.input, snakemake.output, snakemake.params
sequences, _ = io.read_h5(i.sequences, ["x0_hat", "x_t", "t"])
quality, predictions, labels_t = evaluate_samples(io.load_checkpoint(i.classifier), sequences,
                                                  io.read_dataset(i.data), io.load_checkpoint(i.model), seed=p.seed,
                                                  sde=p.sde)
io.write_json(o.quality, quality)
io.write_parquet(o.predictions, predictions)
io.write_parquet(o.labels_t, labels_t)

"""Rule train_classifier: the classifier used to measure sample quality; reports held-out accuracy."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import setup_torch
from score_geometry.stages import train_classifier

p = snakemake.params
setup_torch(snakemake.threads)
checkpoint, metrics = train_classifier(io.read_dataset(snakemake.input.data), dict(p.classifier), seed=p.seed)
io.save_checkpoint(snakemake.output.model, checkpoint)
io.write_json(snakemake.output.metrics, metrics)

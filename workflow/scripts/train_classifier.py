"""Rule train_classifier: the digit classifier used to measure sample quality; reports held-out accuracy."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import torch

from score_geometry import io
from score_geometry.datasets import to_model_range
from score_geometry.quality import predict, train_classifier
from score_geometry.runtime import setup_torch

p = snakemake.params
setup_torch(snakemake.threads)
ds = io.read_dataset(snakemake.input.data)
model = train_classifier(to_model_range(ds.train_images), torch.as_tensor(ds.train_labels), dict(p.classifier),
                         seed=p.seed)
probs, _ = predict(model, to_model_range(ds.heldout_images))
accuracy = float((probs.argmax(1).numpy() == ds.heldout_labels).mean())
io.save_checkpoint(snakemake.output.model, {"state": model.state_dict(), "config": dict(p.classifier)})
io.write_json(snakemake.output.metrics, {"heldout_accuracy": accuracy, "n_heldout": len(ds.heldout_labels),
                                         "dataset": ds.name, "config": dict(p.classifier)})

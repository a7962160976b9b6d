"""Rule prepare_data: load the configured data set and store it as uint8 HDF5 (train + held-out)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import logging

from score_geometry import io
from score_geometry.datasets import load_dataset

data_cfg = dict(snakemake.params.data)
ds = load_dataset(data_cfg)
logging.info("%s: %d train / %d held-out images", ds.name, len(ds.train_labels), len(ds.heldout_labels))
io.write_dataset(snakemake.output[0], ds, {"config": data_cfg})

"""Rule prepare_data: load the configured data set and store it as uint8 HDF5 (train + held-out)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import prepare_data

data = dict(snakemake.params.data)
io.write_dataset(snakemake.output[0], prepare_data(data), {"config": data})

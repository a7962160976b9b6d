"""Rule aggregate_spectra: concatenate the shards' tables and features into results/<run>/stats/."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io

tables = list(snakemake.input.tables)
n_tables = len(snakemake.output.tables)
for k, out in enumerate(snakemake.output.tables):
    io.concat_parquet(tables[k::n_tables], out)
io.concat_h5(snakemake.input.features, snakemake.output.features, axis0=("features", "images"))

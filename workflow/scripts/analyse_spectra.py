"""Rule analyse_spectra: SVD, symmetrised eigendecomposition, r_t, overlaps and diagnostics of one shard."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from pathlib import Path

from score_geometry import io
from score_geometry.stages import analyse_spectra

jacobians, _ = io.read_h5(snakemake.input.jacobians)
tables, features, attrs = analyse_spectra(jacobians, io.read_parquet(snakemake.input.predictions),
                                          run=snakemake.params.run, analysis=dict(snakemake.params.analysis))
for path in snakemake.output.tables:
    io.write_parquet(path, tables[Path(path).stem])
io.write_h5(snakemake.output.features, features, attrs)

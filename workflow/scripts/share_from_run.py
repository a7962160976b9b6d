"""Rule share_from_run (workflow/compare.smk): a file that does not depend on the score model, from the run named
by this run's `share_from`."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io

io.copy_file(snakemake.input[0], snakemake.output[0])

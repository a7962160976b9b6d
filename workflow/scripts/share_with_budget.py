"""Rule share_with_budget (workflow/trajectory.smk): a file that does not depend on the budget, from the base run."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io

io.copy_file(snakemake.input[0], snakemake.output[0])

# Config validation (before any job runs), output paths and small input functions.
from snakemake.utils import validate

from score_geometry.config import ConfigError, check_config


validate(config, schema="../schemas/config.schema.yaml")
try:
    check_config(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

RUN = config["run"]
OUT = f"results/{RUN}"
ENV = "../../envs/score-geometry.yaml"


def final_outputs():
    return [
        f"{OUT}/samples/sequences.h5",
        f"{OUT}/samples/quality.json",
        f"{OUT}/samples/samples_grid.png",
    ]


def cpu_threads(wildcards=None):
    """Torch-heavy jobs take every core they are given."""
    return max(1, workflow.cores)

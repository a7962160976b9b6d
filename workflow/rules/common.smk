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
SHARDS = list(range(config["jacobian"]["shards"]))
FIGURES = ("fig2_features", "fig3_cosines", "fig3_spectrum", "fig3_local_dims", "fig4_overlaps")
TABLE_FILES = ("spectra.parquet", "local_dims.parquet", "overlaps.parquet", "diagnostics.parquet")


wildcard_constraints:
    shard=r"\d+",


def final_outputs():
    return [
        f"{OUT}/samples/sequences.h5",
        f"{OUT}/samples/quality.json",
        f"{OUT}/samples/samples_grid.png",
        *expand(f"{OUT}/stats/{{table}}", table=TABLE_FILES),
        f"{OUT}/stats/features.h5",
        f"{OUT}/stats/calibration_summary.csv",
        f"{OUT}/stats/summary.csv",
        *expand(f"{OUT}/figures/{{fig}}.{{ext}}", fig=FIGURES, ext=("pdf", "png")),
    ]


def cpu_threads(wildcards=None):
    """Torch-heavy jobs take every core they are given."""
    return max(1, workflow.cores)


def gpu_count(wildcards=None):
    """Jobs that compute Jacobians ask the scheduler for one GPU when the config says CUDA."""
    return 1 if config["device"] == "cuda" else 0


def jacobian_mem_mb(wildcards=None, attempt=1):
    """A shard holds n_images/shards x n_times Jacobians of 784 x 784 float32 (2.4 MB each) in memory,
    plus the analysis' float64 copies; scale with the shard size, more on each retry."""
    per_shard = -(-config["jacobian"]["n_images"] // config["jacobian"]["shards"])
    n_jac = per_shard * len(config["sample"]["times"])
    return int((2000 + 8 * n_jac) * attempt)

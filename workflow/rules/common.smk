# Config validation (before any job runs), output paths and small input functions.
import math
import shutil
from pathlib import Path

# None of these imports torch (tested): the DAG is built in milliseconds, also on a cluster's login node.
from score_geometry.config import ConfigError, check_config, toy_training_section, validate_config
from score_geometry.cpus import cores_warning, passive_openmp_waits, usable_cpus
from score_geometry.datasets import configured_image_shape, data_identity, data_section
from score_geometry.geometry.routes import choose_route
from score_geometry.io import read_yaml, unwritable
from score_geometry.plots.registry import figure_code

# Not snakemake.utils.validate: it accepts 6.0 for an integer and prints the whole schema on an error.
try:
    config.update(validate_config(config, read_yaml(workflow.source_path("../schemas/config.schema.yaml"))))
    check_config(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

# Before any job starts: the jobs inherit it (several torch jobs share the cores; see the function).
passive_openmp_waits()

RUN = config["run"]
OUT = f"results/{RUN}"
for where in (OUT, "logs"):
    if (why := unwritable(where)) is not None:
        raise WorkflowError(f"cannot write the run's outputs under {where}/: {why}")
ENV = "../../envs/score-geometry.yaml"
SHARDS = list(range(config["jacobian"]["shards"]))
VAE_CONDITIONS = ["clean"] + [f"t={t:g}" for t in config["vae"]["times"]]
TABLE_FILES = ("spectra.parquet", "local_dims.parquet", "overlaps.parquet", "diagnostics.parquet")


wildcard_constraints:
    shard=r"\d+",


def final_outputs():
    """The default target's inputs: the tables, and every figure (call it once every rule is defined)."""
    return [
        # the model files README tells users to use (a killed rerun must rebuild them, not report complete)
        f"{OUT}/model/model.pt",
        f"{OUT}/model/training_options.json",
        f"{OUT}/model/metrics.jsonl",
        f"{OUT}/samples/sequences.h5",
        f"{OUT}/samples/quality.json",
        f"{OUT}/samples/quality.html",
        *expand(f"{OUT}/stats/{{table}}", table=TABLE_FILES),
        f"{OUT}/stats/features.h5",
        f"{OUT}/stats/calibration_summary.csv",
        f"{OUT}/stats/summary.csv",
        f"{OUT}/stats/claims.csv",
        f"{OUT}/toy/summary.csv",
        f"{OUT}/vae/local_dims.parquet",
        f"{OUT}/estimators/comparison.csv",
        f"{OUT}/estimators/comparison.md",
        f"{OUT}/stats/stage_times.csv",
        *figure_outputs(),
    ]


def figure_outputs(wildcards=None):
    """Every figure of this run: the outputs of each rule that draws a registered figure (a `figure` param,
    workflow/rules/plots.smk), in rule order."""
    # only this run's: several runs share one workflow in workflow/compare.smk
    return [
        str(f)
        for r in workflow.rules
        if "figure" in r.params.keys()
        for f in r.output
        if str(f).startswith(f"{OUT}/")
    ]


def external_model_files(wildcards=None):
    """An external model's files (model.source torchscript or diffusers, or a callable's file.py) as inputs of
    train_model, so replacing them reruns everything downstream; a callable in an installed module: none."""
    m = config["model"]
    if m["source"] == "train":
        return []
    path = Path(m["path"].rpartition(":")[0] if m["source"] == "callable" else m["path"])
    if m["source"] == "callable" and path.suffix != ".py":
        return []
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file())
    return [str(path)]


def model_parameterisation():
    """What the analysed model's network predicts, for the claims table's "structural under x0" labels:
    "oracle" (closed form), the config's parameterisation (trained, callable, torchscript), or a diffusers
    scheduler's prediction_type (read from its JSON config; no torch at parse time)."""
    m = config["model"]
    if m["source"] == "train" and m["score_model"] == "gaussian_oracle":
        return "oracle"
    if m["source"] == "diffusers":
        for name in ("scheduler/scheduler_config.json", "scheduler_config.json"):
            if (Path(m["path"]) / name).is_file():
                kind = read_yaml(Path(m["path"]) / name).get("prediction_type", "epsilon")
                return {"epsilon": "eps", "sample": "x0"}.get(kind, kind)
    return m["parameterisation"]


def stage_benchmarks(wildcards=None):
    """Every rule's `benchmark:` file (shards expanded), for the report's stage-time table."""
    files = set()
    for r in workflow.rules:
        if r.benchmark is not None:
            files |= {str(r.benchmark.apply_wildcards({"shard": k})) for k in SHARDS}
    # only this run's: several runs share one workflow in workflow/compare.smk
    return sorted(f for f in files if f.startswith(f"{OUT}/"))


# Threads: no job gets more than the CPUs this process may use, whatever --cores says.
USABLE_CPUS = usable_cpus()
if not workflow.non_local_exec and (warning := cores_warning(workflow.resource_settings.cores)):
    logger.warning(warning)


# --- resources: what a scheduler needs to place each job (profiles/ set partitions, GPUs and threads) ---
# Seconds per unit of work, measured on the default config with 2 CPU cores (docs/benchmarks.md). One GPU is
# assumed GPU_SPEEDUP times faster: an assumption, not a measurement (no GPU was available; see README,
# "Running on a cluster"). Runtimes (minutes) get 50% headroom plus 10 minutes and grow with each attempt, so a
# job that hit its time limit is resubmitted with more (training resumes from its checkpoint).
CPU_SECONDS = {
    "train_image": 717 / (2500 * 64),
    "sample_image_step": 254 / (128 * 1000),
    "jacobian": 170 / 160,
    # one network pass of the matrix-free route at D = 784 (a trained U-Net: 110-137 s for 11,878-15,844
    # passes per Jacobian with k ~ 300-350 triplets, docs/benchmarks.md), and passes per triplet found
    "lowrank_pass": 125 / 14000,
}
LOWRANK_PASSES_PER_TRIPLET = 45
GPU_SPEEDUP = 200


def cpu_threads(wildcards=None):
    """Torch-heavy jobs take every CPU this process may use (affinity and cgroup quota, not the machine's
    count); Snakemake lowers it further to --cores, and on a cluster the profile's set-threads decides."""
    return USABLE_CPUS


def uses_gpu():
    """CUDA in config, or `auto` where a GPU is visible (nvidia-smi) or the jobs go to a cluster (whose profile
    asks for GPUs)."""
    device = config["device"]
    return device == "cuda" or (
        device == "auto" and (shutil.which("nvidia-smi") is not None or workflow.non_local_exec)
    )


def gpu_count(wildcards=None):
    """GPU jobs ask for one GPU (never more: no rule is grouped), so `--resources gpu=1` on a one-GPU
    workstation runs one at a time."""
    return 1 if uses_gpu() else 0


def model_cost():
    """Compute per image of the configured U-Net relative to the default one (squared widths x blocks); an
    external model's is unknown: assumed 10x (set the rules' runtime in a profile to override)."""
    m = config["model"]
    if m["source"] != "train":
        return 10.0
    if m["score_model"] != "unet":
        return 0.05
    widths = sum(c * c for c in m["channels"]) * m["num_res_blocks"] * (1.6 if m["attention"] else 1.0)
    return widths / (32**2 + 64**2 + 64**2)


def _runtime(cpu_seconds, attempt):
    seconds = cpu_seconds / (GPU_SPEEDUP if gpu_count() else 1)
    return int(attempt * (10 + 1.5 * seconds / 60))


def train_runtime(wildcards=None, attempt=1):
    if config["model"]["source"] != "train":  # only loads and checks the external model
        return _runtime(60, attempt)
    t = config["train"]
    return _runtime(t["steps"] * t["batch_size"] * CPU_SECONDS["train_image"] * model_cost(), attempt)


def sample_runtime(wildcards=None, attempt=1):
    s = config["sample"]
    return _runtime(s["n_images"] * s["n_steps"] * CPU_SECONDS["sample_image_step"] * model_cost(), attempt)


def _jacobians_per_shard():
    per_shard = -(-config["jacobian"]["n_images"] // config["jacobian"]["shards"])
    return per_shard * len(config["sample"]["times"])


def image_dim():
    """D, the numbers per image of the configured data."""
    return math.prod(configured_image_shape(config["data"]))


def jacobian_route():
    """The spectral route of this run's Jacobian stages: jacobian.route, with auto resolved by D."""
    return choose_route(config["jacobian"]["route"], image_dim())


#: The jacobian keys only one route reads: the other route's rules do not receive them (so changing k_max
#: recomputes no exact Jacobian).
ROUTE_ONLY_KEYS = {"exact": ("chunk_size", "method"), "lowrank": ("k_max", "lowrank")}


def jacobian_params(keys=None):
    """The jacobian section as a Jacobian rule's params: `keys` (None: all) less the other route's keys; the
    matrix-free route's also name it (so an exact run's params are what they were before the route existed, and
    nothing is recomputed)."""
    route = jacobian_route()
    drop = ROUTE_ONLY_KEYS["lowrank"] + ("route",) if route == "exact" else ROUTE_ONLY_KEYS["exact"]
    section = config["jacobian"]
    out = {k: v for k, v in section.items() if k not in drop and (keys is None or k in keys)}
    return out if route == "exact" else out | {"route": route}


def lowrank_slacks(sweep=True):
    """The kappas the matrix-free route computes r_t at (`stages.lowrank_kappas`: kappa and the sweep's at or
    above it, so it grows k until each is crossed), as the Jacobian rules' params; the exact route's Jacobians do
    not depend on them (empty: changing kappa recomputes none)."""
    if jacobian_route() != "lowrank":
        return {}
    kappa = config["analysis"]["kappa"]
    above = sorted({k for k in config["analysis"]["kappa_sweep"] if k >= kappa}) if sweep else []
    return {"kappa": kappa, **({"kappa_sweep": above} if sweep else {})}


def _seconds_per_jacobian():
    """CPU seconds of one (image, t) on the default U-Net, scaled to D: the exact route's D passes of a network
    whose cost grows with D (so D^2); the matrix-free route's ~45 passes per triplet, up to k_max triplets (an
    estimate from D = 784 only: docs/benchmarks.md)."""
    scale = image_dim() / 784
    if jacobian_route() == "exact":
        return CPU_SECONDS["jacobian"] * scale**2
    k = min(config["jacobian"]["k_max"], image_dim())
    return LOWRANK_PASSES_PER_TRIPLET * k * CPU_SECONDS["lowrank_pass"] * scale


def jacobian_runtime(wildcards=None, attempt=1):
    return _runtime(_jacobians_per_shard() * _seconds_per_jacobian() * model_cost(), attempt)


def heldout_jacobian_runtime(wildcards=None, attempt=1):
    n = config["calibration"]["n_images"] * len(config["sample"]["times"])
    return _runtime(n * _seconds_per_jacobian() * model_cost(), attempt)


def _jacobians_mem_mb(n):
    """MB for n (image, t) points of the configured route: the exact route holds n Jacobians of D x D float32
    (2.4 MB each at D = 784) plus the analysis' float64 copies; the matrix-free route up to k_max triplets and
    eigenpairs per point (u, v, w: D x k each, float64 while computed or analysed, plus the float32 copy written)
    plus its solver's Krylov blocks (depth + 1 blocks of ~1.25 k_max vectors of D float64, their images, the
    Ritz vectors)."""
    D = image_dim()
    if jacobian_route() == "exact":
        return 2000 + 8 * (D / 784) ** 2 * n
    k = min(config["jacobian"]["k_max"], D)
    depth = config["jacobian"]["lowrank"]["depth"]
    solver = (2 * (depth + 1) + 1) * 1.25 * k * D * 8 / 1e6
    return 2000 + solver + 3 * k * D * (8 + 4) / 1e6 * n


def jacobian_mem_mb(wildcards=None, attempt=1):
    """A shard's Jacobian or spectra job (`_jacobians_mem_mb`), more on each retry."""
    return int(_jacobians_mem_mb(_jacobians_per_shard()) * attempt)


def heldout_jacobian_mem_mb(wildcards=None, attempt=1):
    """The held-out calibration points' job (at least 4 GB), more on each retry."""
    n = config["calibration"]["n_images"] * len(config["sample"]["times"])
    return int(max(4000, _jacobians_mem_mb(n)) * attempt)

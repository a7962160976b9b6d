# One training run followed along its budgets: every claim's statistic at each budget, from checkpoints of the
# same run (presets/trajectory.yaml says which budgets and what is measured at each).
#   snakemake -s workflow/trajectory.smk --cores all                               (make trajectory)
#   snakemake -s workflow/trajectory.smk --cores 2 --configfile presets/trajectory_tiny.yaml
# The run is trained in segments, budget after budget, each continuing the previous one's full training state
# (bit-identical to one uninterrupted run: the engine's exact resume), so a budget's analysis starts as soon
# as its segment is done and a killed run loses at most one segment's progress. Each budget is then this
# repository's workflow as a Snakemake module (results/<trajectory>_step<budget>/) with its own model rule
# replaced by that segment, and what does not depend on the budget (data, classifier, toy, VAE) taken from the
# base run (results/<trajectory>/).
from score_geometry.compare import SHARED_FILES, trajectory_plan
from score_geometry.config import ConfigError
from score_geometry.cpus import usable_cpus
from score_geometry.datasets import data_identity
from score_geometry.io import read_yaml


configfile: "presets/trajectory.yaml"


try:
    PLAN = trajectory_plan(
        read_yaml("config.yaml"), config, [read_yaml(f) for f in config.get("overlays", [])]
    )
except ConfigError as e:
    raise WorkflowError(str(e)) from None
TRAJ = f"results/{PLAN.name}"
BUDGET_DIR = f"results/{PLAN.name}_step{{steps}}"
ENV = "../envs/score-geometry.yaml"


wildcard_constraints:
    steps="|".join(map(str, PLAN.budgets)),


module base:
    snakefile:
        "../Snakefile"
    config:
        PLAN.base


# (only its data, classifier, toy and VAE rules are ever needed: the trajectory's targets ask for nothing else)
use rule * from base as base_*


for budget in PLAN.budgets:
    name = f"step{budget}_"

    module:
        name: name
        snakefile:
            "../Snakefile"
        config:
            PLAN.runs[budget]

    # the budget's own model is its segment; the rest that does not depend on the budget comes from the base run
    use rule * from name exclude prepare_data, train_model, train_classifier, train_toy, analyse_toy, train_vae as name*


def previous_segment(wildcards):
    """The training state and metrics of the budget before this one (none for the first)."""
    i = PLAN.budgets.index(int(wildcards.steps))
    if i == 0:
        return {}
    before = BUDGET_DIR.format(steps=PLAN.budgets[i - 1])
    return {"state": f"{before}/model/train_state.pt", "metrics": f"{before}/model/metrics.jsonl"}


def budget_config(wildcards):
    return PLAN.runs[int(wildcards.steps)]


rule train_segment:
    """Train the run from the previous budget's state to this budget (a checkpoint of the one run)."""
    input:
        unpack(previous_segment),
        data=f"{TRAJ}/data/dataset.h5",
    output:
        model=f"{BUDGET_DIR}/model/model.pt",
        options=f"{BUDGET_DIR}/model/training_options.json",
        metrics=f"{BUDGET_DIR}/model/metrics.jsonl",
        state=f"{BUDGET_DIR}/model/train_state.pt",
    log:
        f"logs/train_segment/{PLAN.name}_step{{steps}}.log",
    benchmark:
        f"{BUDGET_DIR}/benchmarks/train_model.tsv"
    conda:
        ENV
    threads: usable_cpus()
    resources:
        mem_mb=4000,
        # 717 s per 2,500 x 64 images of the default U-Net on 2 CPU cores (docs/benchmarks.md), 50 % headroom
        runtime=lambda w, attempt: attempt * (10 + int(1.5 * int(w.steps) * 717 / 2500 / 60)),
    params:
        seed=lambda w: budget_config(w)["seed"],
        device=lambda w: budget_config(w)["device"],
        data=lambda w: data_identity(budget_config(w)["data"]),
        sde=lambda w: budget_config(w)["sde"],
        model=lambda w: budget_config(w)["model"],
        train=lambda w: budget_config(w)["train"],
        workdir=f"{BUDGET_DIR}/model/work",
    script:
        "scripts/train_segment.py"


rule share_with_budget:
    """Copy what does not depend on the budget (data, classifier, toy, VAE) from the base run."""
    input:
        f"{TRAJ}/{{file}}",
    output:
        f"{BUDGET_DIR}/{{file}}",
    log:
        f"logs/share_with_budget/{PLAN.name}_step{{steps}}/{{file}}.log",
    wildcard_constraints:
        file=SHARED_FILES,
    localrule: True
    conda:
        ENV
    script:
        "scripts/share_with_budget.py"


def budget_files(kind):
    names = {
        "claims": "stats/claims.csv",
        "quality": "samples/quality.json",
        "calibration": "stats/calibration_summary.csv",
        "diagnostics": "stats/diagnostics.parquet",
    }
    return [f"{BUDGET_DIR.format(steps=b)}/{names[kind]}" for b in PLAN.budgets]


rule summarise_trajectory:
    """Every claim's statistic and verdict per budget, each claim's trend, and the figure against steps."""
    input:
        claims=budget_files("claims"),
        quality=budget_files("quality"),
        calibration=budget_files("calibration"),
        diagnostics=budget_files("diagnostics"),
    output:
        table=f"{TRAJ}/trajectory.csv",
        trends=f"{TRAJ}/trends.csv",
        markdown=f"{TRAJ}/trajectory.md",
        figure=multiext(f"{TRAJ}/trajectory", ".pdf", ".png"),
    log:
        f"logs/summarise_trajectory/{PLAN.name}.log",
    localrule: True
    conda:
        ENV
    params:
        budgets=list(PLAN.budgets),
        name=PLAN.name,
    script:
        "scripts/summarise_trajectory.py"


rule all:
    """The trajectory's tables and figure."""
    default_target: True
    input:
        rules.summarise_trajectory.output,
    localrule: True

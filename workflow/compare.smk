# Several runs side by side in one workflow: each run is this repository's workflow as a Snakemake module with
# its own config (presets/compare.yaml says how each is built), plus the cross-run comparison.
#   snakemake -s workflow/compare.smk --cores all                      (make compare)
#   snakemake -s workflow/compare.smk --cores 2 --configfile presets/compare_tiny.yaml
from score_geometry.compare import run_config
from score_geometry.io import read_yaml


configfile: "presets/compare.yaml"


BASE = read_yaml("config.yaml")
RUNS = {
    name: run_config(BASE, [*map(read_yaml, r.get("overlays", [])), r.get("set", {})], run=r["run"])
    for name, r in config["runs"].items()
}
COMPARISON = f"results/{config['comparison']}"


module x0:
    snakefile:
        "../Snakefile"
    config:
        RUNS["x0"]


use rule * from x0 as x0_*


module eps:
    snakefile:
        "../Snakefile"
    config:
        RUNS["eps"]


use rule * from eps as eps_*


module oracle:
    snakefile:
        "../Snakefile"
    config:
        RUNS["oracle"]


use rule * from oracle as oracle_*


def run_files(name):
    """The per-run tables the comparison reads, for each run (module) in presets/compare.yaml."""
    out = f"results/{RUNS[name]['run']}"
    return {
        "diagnostics": f"{out}/stats/diagnostics.parquet",
        "calibration": f"{out}/stats/calibration_summary.csv",
        "quality": f"{out}/samples/quality.json",
        "claims": f"{out}/stats/claims.csv",
    }


rule compare_runs:
    """The runs side by side as tables and a figure: rₜ, calibration, sample quality, claims."""
    input:
        **{f"{name}_{kind}": path for name in RUNS for kind, path in run_files(name).items()},
        everything=[rules.x0_all.input, rules.eps_all.input, rules.oracle_all.input],
    output:
        csv=f"{COMPARISON}/comparison.csv",
        markdown=f"{COMPARISON}/comparison.md",
        claims=f"{COMPARISON}/claims.csv",
        figure=multiext(f"{COMPARISON}/comparison", ".pdf", ".png"),
    log:
        f"logs/compare_runs/{config['comparison']}.log",
    localrule: True
    conda:
        "../envs/score-geometry.yaml"
    params:
        runs={
            name: {
                "run": r["run"],
                "parameterisation": (
                    r["model"]["parameterisation"] if r["model"]["score_model"] == "unet" else "oracle"
                ),
            }
            for name, r in RUNS.items()
        },
    script:
        "scripts/compare_runs.py"


rule all:
    """The default target: every run of the comparison and their comparison."""
    default_target: True
    input:
        rules.compare_runs.output,

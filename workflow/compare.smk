# Several runs side by side in one workflow: each run is this repository's workflow as a Snakemake module with
# its own config (presets/compare.yaml says how each is built), plus the cross-run comparison.
#   snakemake -s workflow/compare.smk --cores all                      (make compare)
#   snakemake -s workflow/compare.smk --cores 2 --configfile presets/compare_tiny.yaml
import re

from score_geometry.compare import SHARED_FILES, run_config, share_sources
from score_geometry.config import ConfigError
from score_geometry.io import read_yaml


configfile: "presets/compare.yaml"


BASE = read_yaml("config.yaml")
RUNS = {
    name: run_config(BASE, [*map(read_yaml, r.get("overlays", [])), r.get("set", {})], run=r["run"])
    for name, r in config["runs"].items()
}
COMPARISON = f"results/{config['comparison']}"
# run -> the run whose data, classifier, toy and VAE it takes (its share_from); the rules it excludes below are
# score_geometry.compare.SHARED_RULES (tests/test_compare.py checks the lists agree)
try:
    SHARES = share_sources(config["runs"], RUNS)
except ConfigError as e:
    raise WorkflowError(str(e)) from None
# results/<run>/ -> results/<source run>/ for the share_from_run rule
SHARE_DIRS = {RUNS[name]["run"]: RUNS[src]["run"] for name, src in SHARES.items()}


module x0:
    snakefile:
        "../Snakefile"
    config:
        RUNS["x0"]


if "x0" in SHARES:  # the rules of SHARED_RULES come from another run (rule share_from_run)

    use rule * from x0 exclude prepare_data, train_classifier, train_toy, analyse_toy, train_vae as x0_*

else:

    use rule * from x0 as x0_*


module eps:
    snakefile:
        "../Snakefile"
    config:
        RUNS["eps"]


if "eps" in SHARES:  # the rules of SHARED_RULES come from another run (rule share_from_run)

    use rule * from eps exclude prepare_data, train_classifier, train_toy, analyse_toy, train_vae as eps_*

else:

    use rule * from eps as eps_*


module oracle:
    snakefile:
        "../Snakefile"
    config:
        RUNS["oracle"]


if "oracle" in SHARES:  # the rules of SHARED_RULES come from another run (rule share_from_run)

    use rule * from oracle exclude prepare_data, train_classifier, train_toy, analyse_toy, train_vae as oracle_*

else:

    use rule * from oracle as oracle_*


rule share_from_run:
    """Copy the outputs that do not depend on the score model (data, classifier, toy, VAE)."""
    input:
        lambda w: f"results/{SHARE_DIRS[w.run]}/{w.file}",
    output:
        "results/{run}/{file}",
    log:
        "logs/share_from_run/{run}/{file}.log",
    wildcard_constraints:
        run="|".join(map(re.escape, SHARE_DIRS)) or "(?!)",
        file=SHARED_FILES,
    localrule: True
    conda:
        "../envs/score-geometry.yaml"
    script:
        "scripts/share_from_run.py"


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
        rules.x0_all.input,
        rules.eps_all.input,
        rules.oracle_all.input,

# score-geometry: the local geometry of a diffusion model's score field (Wenliang & Moran).
# Wiring only: rules live in workflow/rules/, science in the installed package `score_geometry`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/jacobian.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/vae.smk"
include: "workflow/rules/report.smk"


# Tiny jobs (figures, tables) run where Snakemake runs, not as cluster jobs: `localrule: True` in their rules.
rule all:
    """The default target: every table and figure of the run."""
    default_target: True
    input:
        final_outputs(),
    localrule: True

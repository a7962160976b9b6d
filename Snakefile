# score-geometry: the local geometry of a diffusion model's score field (Wenliang & Moran).
# Wiring only: rules live in workflow/rules/, science in the installed package `score_geometry`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/jacobian.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/plots.smk"


rule all:
    input:
        final_outputs(),
    default_target: True

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


# Tiny jobs run where Snakemake runs, not as cluster jobs.
localrules:
    all,
    aggregate_spectra,
    summarise_results,
    evaluate_claims,
    summarise_benchmarks,
    plot_fig2,
    plot_fig3_cosines,
    plot_fig3_spectrum,
    plot_fig3_local_dims,
    plot_fig4,
    plot_fig1,
    plot_skew_shares,
    compare_estimators,
    plot_estimators,
    plot_training_loss,
    plot_vae_convergence,
    summarise_quality,


rule all:
    default_target: True
    input:
        final_outputs(),

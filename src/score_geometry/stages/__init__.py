"""Workflow stages: one function per Snakemake rule, what its script calls.

A script reads its inputs through `score_geometry.io`, makes one call here and writes what it returns through
`io`; a stage takes arrays, tables and config sections and returns arrays, tables and figures, never paths.

    rule                       stage
    prepare_data               samples.prepare_data
    train_model                training.train_model
    train_classifier           training.train_classifier
    train_segment              training.train_segment (workflow/trajectory.smk)
    sample_sequences           samples.sample_sequences
    evaluate_samples           samples.evaluate_samples
    summarise_quality          samples.summarise_quality
    compute_jacobians          jacobians.compute_jacobians
    compute_heldout_jacobians  jacobians.compute_heldout_jacobians
    analyse_spectra            geometry.analyse_spectra
    aggregate_spectra          (I/O only: `io.concat_parquet`, `io.concat_h5`)
    calibrate_noise_floor      geometry.calibrate_noise_floor
    summarise_results          geometry.summarise_results
    evaluate_claims            geometry.evaluate_claims
    train_toy                  training.train_toy
    analyse_toy                toy.analyse_toy
    train_vae                  training.train_vae
    vae_local_dims             baselines.vae_local_dims
    estimate_dims              baselines.estimate_dims
    compare_estimators         baselines.compare_estimators
    summarise_benchmarks       report.summarise_benchmarks
    compare_runs               report.compare_runs (workflow/compare.smk)
    summarise_trajectory       report.summarise_trajectory (workflow/trajectory.smk)
    share_with_budget          (I/O only: `io.copy_file`)
    share_from_run             (I/O only: `io.copy_file`; workflow/compare.smk)
    plot_* (every figure)      figures.draw_figure
    score-geometry analyse     geometry.analyse_images (the command line, no Snakemake)

Every name is importable from this package (``from score_geometry.stages import model_jacobians``), loaded on
first use: importing one stage does not import the others' dependencies (matplotlib, scikit-dimension, the
training code).
"""

from __future__ import annotations

from .. import lazy_exports

_EXPORTS = {
    # jacobians
    "DTYPES": "jacobians", "MEMORY_FORMATS": "jacobians", "memory_format": "jacobians", "shard_images": "jacobians",
    "jacobians_at_times": "jacobians", "model_jacobians": "jacobians", "noisy_heldout": "jacobians",
    "heldout_jacobians": "jacobians", "compute_jacobians": "jacobians", "compute_heldout_jacobians": "jacobians",
    "model_spectra": "jacobians", "lowrank_kappas": "jacobians",
    # geometry
    "SHARD_TABLES": "geometry", "analyse_spectra": "geometry", "calibrate_noise_floor": "geometry",
    "summarise_results": "geometry", "evaluate_claims": "geometry", "analyse_images": "geometry",
    # samples
    "prepare_data": "samples", "sample_sequences": "samples",
    "evaluate_samples": "samples", "summarise_quality": "samples", "denoised_at_times": "samples",
    # training
    "train_model": "training", "train_classifier": "training", "train_toy": "training", "train_vae": "training",
    "finish_training": "training", "train_segment": "training",
    # baselines, toy, report, figures
    "estimate_dims": "baselines", "compare_estimators": "baselines", "vae_local_dims": "baselines",
    "analyse_toy": "toy",
    "summarise_benchmarks": "report", "compare_runs": "report", "summarise_trajectory": "report",
    "draw_figure": "figures",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

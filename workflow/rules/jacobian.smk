rule compute_jacobians:
    """Score Jacobians, or their matrix-free spectra (jacobian.route), at each saved (image, t) of a shard."""
    input:
        model=f"{OUT}/model/model.pt",
        sequences=f"{OUT}/samples/sequences.h5",
    output:
        f"{OUT}/jacobians/shard_{{shard}}.h5",
    log:
        f"logs/compute_jacobians/{RUN}_shard_{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/compute_jacobians_shard_{{shard}}.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=jacobian_mem_mb,
        runtime=jacobian_runtime,
        gpu=gpu_count,
    params:
        device=config["device"],
        jacobian=jacobian_params(),
        lowrank=lowrank_slacks(),
    script:
        "../scripts/compute_jacobians.py"


rule compute_heldout_jacobians:
    """Score Jacobians at forward-noised held-out images, for the noise-floor calibration."""
    input:
        model=f"{OUT}/model/model.pt",
        data=f"{OUT}/data/dataset.h5",
    output:
        f"{OUT}/jacobians/heldout.h5",
    log:
        f"logs/compute_heldout_jacobians/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/compute_heldout_jacobians.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=heldout_jacobian_mem_mb,
        runtime=heldout_jacobian_runtime,
        gpu=gpu_count,
    params:
        device=config["device"],
        # the sampled sequences' record times (not the sequences: a new sampling run recomputes nothing here)
        times=config["sample"]["times"],
        jacobian=jacobian_params(("dtype", "chunk_size", "method", "memory_format", "k_max", "lowrank")),
        lowrank=lowrank_slacks(sweep=False),
        calibration=config["calibration"],
    script:
        "../scripts/compute_heldout_jacobians.py"


rule calibrate_noise_floor:
    """Noise-floor calibration: the off-manifold gain against 1/σₜ², held-out images and samples."""
    input:
        heldout=f"{OUT}/jacobians/heldout.h5",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        table=f"{OUT}/stats/calibration.parquet",
        summary=f"{OUT}/stats/calibration_summary.csv",
        markdown=f"{OUT}/stats/calibration_summary.md",
        html=report(
            f"{OUT}/stats/calibration_summary.html",
            caption="../report/calibration.rst",
            category="0. Headline",
            labels={"table": "noise-floor calibration"},
        ),
    log:
        f"logs/calibrate_noise_floor/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/calibrate_noise_floor.tsv"
    conda:
        ENV
    resources:
        mem_mb=heldout_jacobian_mem_mb,
        runtime=30,
    params:
        run=RUN,
        kappa=config["analysis"]["kappa"],
    script:
        "../scripts/calibrate_noise_floor.py"

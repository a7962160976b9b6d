# The VAE baseline of Appendix B and the side-by-side local-dimension estimators (docs/estimators.md).
# Outputs under results/<run>/vae/ and results/<run>/estimators/; their figures are drawn in plots.smk.


rule train_vae:
    """Train or resume the Appendix B VAE on clean and on noisy training images."""
    input:
        data=f"{OUT}/data/dataset.h5",
    output:
        models=expand(f"{OUT}/vae/{{condition}}/vae.pt", condition=VAE_CONDITIONS),
        options=expand(f"{OUT}/vae/{{condition}}/training_options.json", condition=VAE_CONDITIONS),
        metrics=expand(f"{OUT}/vae/{{condition}}/metrics.jsonl", condition=VAE_CONDITIONS),
    log:
        f"logs/train_vae/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/train_vae.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        device=config["device"],
        data=data_identity(config["data"]),
        sde=config["sde"],
        vae=config["vae"],
        # Rolling resume states live outside the declared outputs so a killed job keeps them.
        workdir=f"{OUT}/vae/work",
    script:
        "../scripts/train_vae.py"


rule vae_local_dims:
    """The VAEs' local dimension on held-out images and on the samples; posterior variances."""
    input:
        models=expand(f"{OUT}/vae/{{condition}}/vae.pt", condition=VAE_CONDITIONS),
        metrics=expand(f"{OUT}/vae/{{condition}}/metrics.jsonl", condition=VAE_CONDITIONS),
        data=f"{OUT}/data/dataset.h5",
        sequences=f"{OUT}/samples/sequences.h5",
        predictions=f"{OUT}/samples/predictions.parquet",
    output:
        local_dims=f"{OUT}/vae/local_dims.parquet",
        variances=f"{OUT}/vae/posterior_variances.parquet",
    log:
        f"logs/vae_local_dims/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/vae_local_dims.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        vae=config["vae"],
    script:
        "../scripts/vae_local_dims.py"


rule estimate_dims:
    """Local dimension of held-out images by every registered estimator: kNN, normal bundle, FLIPD."""
    input:
        data=f"{OUT}/data/dataset.h5",
        model=f"{OUT}/model/model.pt",
    output:
        f"{OUT}/estimators/estimates.parquet",
    log:
        f"logs/estimate_dims/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/estimate_dims.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        device=config["device"],
        estimators=config["estimators"],
    script:
        "../scripts/estimate_dims.py"


rule compare_estimators:
    """Every estimator's local dimension beside the paper's VAE and the score model's rₜ."""
    input:
        vae=f"{OUT}/vae/local_dims.parquet",
        estimates=f"{OUT}/estimators/estimates.parquet",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        csv=f"{OUT}/estimators/comparison.csv",
        markdown=f"{OUT}/estimators/comparison.md",
        html=report(
            f"{OUT}/estimators/comparison.html",
            caption="../report/comparison.rst",
            category="2. Tables",
            labels={"table": "local-dimension estimators"},
        ),
    log:
        f"logs/compare_estimators/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/compare_estimators.py"

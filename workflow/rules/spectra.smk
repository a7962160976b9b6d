rule analyse_spectra:
    """SVD, symmetrised eigendecomposition, rₜ, subspace overlaps and diagnostics of one shard."""
    input:
        jacobians=f"{OUT}/jacobians/shard_{{shard}}.h5",
        predictions=f"{OUT}/samples/predictions.parquet",
    output:
        tables=multiext(f"{OUT}/spectra/shard_{{shard}}/", *TABLE_FILES),
        features=f"{OUT}/spectra/shard_{{shard}}/features.h5",
    log:
        f"logs/analyse_spectra/{RUN}_shard_{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/analyse_spectra_shard_{{shard}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=jacobian_mem_mb,
        runtime=60,
    params:
        run=RUN,
        analysis=config["analysis"],
    script:
        "../scripts/analyse_spectra.py"


rule aggregate_spectra:
    """Concatenate the shards' tables and Fig. 2 feature vectors into stats/."""
    input:
        tables=expand(f"{OUT}/spectra/shard_{{shard}}/{{table}}", shard=SHARDS, table=TABLE_FILES),
        features=expand(f"{OUT}/spectra/shard_{{shard}}/features.h5", shard=SHARDS),
    output:
        tables=multiext(f"{OUT}/stats/", *TABLE_FILES),
        features=f"{OUT}/stats/features.h5",
    log:
        f"logs/aggregate_spectra/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/aggregate_spectra.py"


rule summarise_results:
    """The per-t numbers to check against the paper: summary.csv, .md and .html."""
    input:
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
        overlaps=f"{OUT}/stats/overlaps.parquet",
    output:
        csv=f"{OUT}/stats/summary.csv",
        markdown=f"{OUT}/stats/summary.md",
        html=report(
            f"{OUT}/stats/summary.html",
            caption="../report/summary.rst",
            category="0. Headline",
            labels={"table": "summary per t"},
        ),
    log:
        f"logs/summarise_results/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/summarise_results.py"


rule evaluate_claims:
    """The paper's claims as computed verdicts: claims.csv, .md and .html."""
    input:
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
        overlaps=f"{OUT}/stats/overlaps.parquet",
        spectra=f"{OUT}/stats/spectra.parquet",
        local_dims=f"{OUT}/stats/local_dims.parquet",
        features=f"{OUT}/stats/features.h5",
        calibration=f"{OUT}/stats/calibration_summary.csv",
        sequences=f"{OUT}/samples/sequences.h5",
        toy=f"{OUT}/toy/summary.csv",
        vae_dims=f"{OUT}/vae/local_dims.parquet",
        vae_metrics=f"{OUT}/vae/clean/metrics.jsonl",
    output:
        csv=f"{OUT}/stats/claims.csv",
        markdown=f"{OUT}/stats/claims.md",
        html=report(
            f"{OUT}/stats/claims.html",
            caption="../report/claims.rst",
            category="0. Headline",
            labels={"table": "claims of the paper"},
        ),
    log:
        f"logs/evaluate_claims/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        run=RUN,
        kappa=config["analysis"]["kappa"],
        kappa_sweep=config["analysis"]["kappa_sweep"],
        parameterisation=model_parameterisation(),
    script:
        "../scripts/evaluate_claims.py"

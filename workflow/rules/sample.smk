rule sample_sequences:
    """Sample Euler–Maruyama paths from the score model, keeping xₜ at the configured times."""
    input:
        model=f"{OUT}/model/model.pt",
    output:
        f"{OUT}/samples/sequences.h5",
    log:
        f"logs/sample_sequences/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/sample_sequences.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=4000,
        runtime=sample_runtime,
        gpu=gpu_count,
    params:
        device=config["device"],
        sample=config["sample"],  # the SDE comes with the checkpoint
    script:
        "../scripts/sample_sequences.py"


rule evaluate_samples:
    """Classifier-based sample quality, and each sequence's labels along its recorded times."""
    input:
        sequences=f"{OUT}/samples/sequences.h5",
        classifier=f"{OUT}/classifier/classifier.pt",
        data=f"{OUT}/data/dataset.h5",
        model=f"{OUT}/model/model.pt",
    output:
        quality=f"{OUT}/samples/quality.json",
        predictions=f"{OUT}/samples/predictions.parquet",
        labels_t=f"{OUT}/samples/labels_along_sequences.parquet",
    log:
        f"logs/evaluate_samples/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_samples.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        seed=config["seed"],
        sde=config["sde"],
    script:
        "../scripts/evaluate_samples.py"

# Fig. 1 toy (issue 6): a density on a sphere in R^3, an MLP score model trained with the image model's
# VP-SDE, loss and loop, and where its non-conservative part acts (docs/nonconservative.md), with the controls
# whose answers are known. Its figure and the MNIST skew shares are drawn in plots.smk.


rule train_toy:
    """Fig. 1 toy: sample the density on a sphere exactly and train or resume its MLP score model."""
    output:
        model=f"{OUT}/toy/model.pt",
        options=f"{OUT}/toy/training_options.json",
        metrics=f"{OUT}/toy/metrics.jsonl",
    log:
        f"logs/train_toy/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/train_toy.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        device=config["device"],
        sde=config["sde"],
        toy=toy_training_section(config["toy"]),  # figure and analysis options never retrain
        # The rolling resume state lives outside the declared outputs so a killed job keeps it.
        workdir=f"{OUT}/toy/work",
    script:
        "../scripts/train_toy.py"


rule analyse_toy:
    """Fig. 1 toy: learned against exact score and where its non-conservative part acts, with controls."""
    input:
        model=f"{OUT}/toy/model.pt",
    output:
        points=f"{OUT}/toy/points.parquet",
        summary=f"{OUT}/toy/summary.csv",
        field=f"{OUT}/toy/field.h5",
        # the exact score, plus a tangent rotation, plus a tangent-normal skew: the same analysis, known answers
        controls=f"{OUT}/toy/controls.csv",
    log:
        f"logs/analyse_toy/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/analyse_toy.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sde=config["sde"],
        toy=config["toy"],
    script:
        "../scripts/analyse_toy.py"

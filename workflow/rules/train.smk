# model.source train: train the network (resumably) or fit the oracle; otherwise only write the reference to
# the external model (checked to load and to serve this data), and nothing is trained.
rule train_model:
    """Train or resume the score network, fit the Gaussian oracle, or reference an external model."""
    input:
        data=f"{OUT}/data/dataset.h5",
        external=external_model_files,
    output:
        model=f"{OUT}/model/model.pt",
        options=f"{OUT}/model/training_options.json",
        metrics=f"{OUT}/model/metrics.jsonl",
    log:
        f"logs/train_model/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/train_model.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=4000,
        runtime=train_runtime,
        gpu=gpu_count,
    params:
        seed=config["seed"],
        device=config["device"],
        data=data_identity(config["data"]),  # not where the files are: moving them retrains nothing
        sde=config["sde"],
        model=config["model"],
        train=config["train"],
        # The rolling resume state lives outside the declared outputs so a killed job keeps it.
        workdir=f"{OUT}/model/work",
    script:
        "../scripts/train_model.py"


rule train_classifier:
    """Train the classifier that labels the samples and measures their quality."""
    input:
        data=f"{OUT}/data/dataset.h5",
    output:
        model=f"{OUT}/classifier/classifier.pt",
        metrics=f"{OUT}/classifier/metrics.json",
    log:
        f"logs/train_classifier/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/train_classifier.tsv"
    conda:
        ENV
    threads: cpu_threads
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        seed=config["seed"],
        classifier=config["classifier"],
    script:
        "../scripts/train_classifier.py"

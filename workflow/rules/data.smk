rule prepare_data:
    """Load the configured data set and store its train and held-out images as uint8 HDF5."""
    output:
        f"{OUT}/data/dataset.h5",
    log:
        f"logs/prepare_data/{RUN}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        data=data_section(config["data"]),
    script:
        "../scripts/prepare_data.py"

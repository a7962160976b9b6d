# One rule per figure; each reads only the aggregated tables and receives only its own plot options,
# so changing a plot option reruns that figure alone.


rule plot_fig2:
    input:
        sequences=f"{OUT}/samples/sequences.h5",
        features=f"{OUT}/stats/features.h5",
    output:
        multiext(f"{OUT}/figures/fig2_features", ".pdf", ".png"),
    params:
        image=config["plots"]["fig2_image"],
        dpi=config["plots"]["dpi"],
    log:
        f"logs/plot_fig2/{RUN}.log",
    conda:
        ENV
    script:
        "../scripts/plot_fig2.py"


rule plot_fig3_cosines:
    input:
        spectra=f"{OUT}/stats/spectra.parquet",
    output:
        multiext(f"{OUT}/figures/fig3_cosines", ".pdf", ".png"),
    params:
        examples=config["plots"]["examples"],
        dpi=config["plots"]["dpi"],
    log:
        f"logs/plot_fig3_cosines/{RUN}.log",
    conda:
        ENV
    script:
        "../scripts/plot_fig3_cosines.py"


rule plot_fig3_spectrum:
    input:
        spectra=f"{OUT}/stats/spectra.parquet",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        multiext(f"{OUT}/figures/fig3_spectrum", ".pdf", ".png"),
    params:
        examples=config["plots"]["examples"],
        dpi=config["plots"]["dpi"],
    log:
        f"logs/plot_fig3_spectrum/{RUN}.log",
    conda:
        ENV
    script:
        "../scripts/plot_fig3_spectrum.py"


rule plot_fig3_local_dims:
    input:
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        multiext(f"{OUT}/figures/fig3_local_dims", ".pdf", ".png"),
    params:
        dpi=config["plots"]["dpi"],
    log:
        f"logs/plot_fig3_local_dims/{RUN}.log",
    conda:
        ENV
    script:
        "../scripts/plot_fig3_local_dims.py"


rule plot_fig4:
    input:
        overlaps=f"{OUT}/stats/overlaps.parquet",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        multiext(f"{OUT}/figures/fig4_overlaps", ".pdf", ".png"),
    params:
        dpi=config["plots"]["dpi"],
    log:
        f"logs/plot_fig4/{RUN}.log",
    conda:
        ENV
    script:
        "../scripts/plot_fig4.py"

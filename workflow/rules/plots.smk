# One rule per figure; each reads only the aggregated tables and receives only its own plot options and a
# fingerprint of its own drawing code, so changing either reruns that figure alone. The PNGs go to the
# Snakemake report (captions in workflow/report/).


rule plot_fig2:
    input:
        sequences=f"{OUT}/samples/sequences.h5",
        features=f"{OUT}/stats/features.h5",
        labels_t=f"{OUT}/samples/labels_along_sequences.parquet",
    output:
        pdf=f"{OUT}/figures/fig2_features.pdf",
        png=report(
            f"{OUT}/figures/fig2_features.png",
            caption="../report/fig2.rst",
            category="1. Figures",
            labels={"figure": "Fig. 2", "content": "feature vectors of one sequence"},
        ),
    log:
        f"logs/plot_fig2/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        image=config["plots"]["fig2_image"],
        n_analysed=config["jacobian"]["n_images"],
        dpi=config["plots"]["dpi"],
        code=plot_code("fig2_features"),
    script:
        "../scripts/plot_fig2.py"


rule plot_fig3_cosines:
    input:
        spectra=f"{OUT}/stats/spectra.parquet",
    output:
        pdf=f"{OUT}/figures/fig3_cosines.pdf",
        png=report(
            f"{OUT}/figures/fig3_cosines.png",
            caption="../report/fig3_cosines.rst",
            category="1. Figures",
            labels={"figure": "Fig. 3a", "content": "(top) cos(uᵢ, vᵢ) against rank"},
        ),
    log:
        f"logs/plot_fig3_cosines/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        examples=config["plots"]["examples"],
        dpi=config["plots"]["dpi"],
        code=plot_code("fig3_cosines"),
    script:
        "../scripts/plot_fig3_cosines.py"


rule plot_fig3_spectrum:
    input:
        spectra=f"{OUT}/stats/spectra.parquet",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        pdf=f"{OUT}/figures/fig3_spectrum.pdf",
        png=report(
            f"{OUT}/figures/fig3_spectrum.png",
            caption="../report/fig3_spectrum.rst",
            category="1. Figures",
            labels={"figure": "Fig. 3b", "content": "(bottom left) 1/sᵢ against rank, σₜ² floor"},
        ),
    log:
        f"logs/plot_fig3_spectrum/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        examples=config["plots"]["examples"],
        dpi=config["plots"]["dpi"],
        code=plot_code("fig3_spectrum"),
    script:
        "../scripts/plot_fig3_spectrum.py"


rule plot_fig3_local_dims:
    input:
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
        vae=[f"{OUT}/vae/local_dims.parquet"] if config["plots"]["vae_baseline"] else [],
    output:
        pdf=f"{OUT}/figures/fig3_local_dims.pdf",
        png=report(
            f"{OUT}/figures/fig3_local_dims.png",
            caption="../report/fig3_local_dims.rst",
            category="1. Figures",
            labels={"figure": "Fig. 3c", "content": "(bottom right) local dimension rₜ over images"},
        ),
    log:
        f"logs/plot_fig3_local_dims/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dpi=config["plots"]["dpi"],
        code=plot_code("fig3_local_dims"),
        vae_baseline=config["plots"]["vae_baseline"],
    script:
        "../scripts/plot_fig3_local_dims.py"


rule plot_fig4:
    input:
        overlaps=f"{OUT}/stats/overlaps.parquet",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        pdf=f"{OUT}/figures/fig4_overlaps.pdf",
        png=report(
            f"{OUT}/figures/fig4_overlaps.png",
            caption="../report/fig4.rst",
            category="1. Figures",
            labels={"figure": "Fig. 4", "content": "subspace overlaps Φₙ"},
        ),
    log:
        f"logs/plot_fig4/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dpi=config["plots"]["dpi"],
        code=plot_code("fig4_overlaps"),
    script:
        "../scripts/plot_fig4.py"


rule plot_training_loss:
    input:
        metrics=f"{OUT}/model/metrics.jsonl",
    output:
        pdf=f"{OUT}/figures/training_loss.pdf",
        png=report(
            f"{OUT}/figures/training_loss.png",
            caption="../report/training_loss.rst",
            category="3. Run",
            labels={"result": "training loss"},
        ),
    log:
        f"logs/plot_training_loss/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dpi=config["plots"]["dpi"],
        code=plot_code("training_loss_figure"),
    script:
        "../scripts/plot_training_loss.py"

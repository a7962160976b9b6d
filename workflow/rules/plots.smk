# Every figure: one rule each, named plot_<what>, all drawn by one script (scripts/plot_figure.py ->
# score_geometry.stages.draw_figure). A rule names its registered figure (params.figure: a function decorated
# @figure("<name>") in score_geometry/plots/), reads only finished tables, and receives only its own plot
# options and a fingerprint of its own drawing code (params.code), so changing either reruns that figure alone.
# Its inputs and options are the drawing function's parameters (names must match). The PNGs go to the
# Snakemake report (captions in workflow/report/). `rule all` and the `figures` target (make figures) collect
# every rule with a figure param: a new figure is its function, its rule here and its caption.


rule plot_samples:
    """Draw the grid of final samples, titled with the classifier's labels."""
    input:
        sequences=f"{OUT}/samples/sequences.h5",
        predictions=f"{OUT}/samples/predictions.parquet",
    output:
        png=report(
            f"{OUT}/samples/samples_grid.png",
            caption="../report/samples.rst",
            category="1. Figures",
            labels={"figure": "samples", "content": "generated digits with predicted labels"},
        ),
    log:
        f"logs/plot_samples/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="samples_grid",
        code=figure_code("samples_grid"),
        dpi=150,  # not plots.dpi: one row of small digits must stay legible in the report at any setting
    script:
        "../scripts/plot_figure.py"


rule plot_fig1:
    """Draw Fig. 1 on the toy: where a learned score field is non-conservative."""
    input:
        field=f"{OUT}/toy/field.h5",
        points=f"{OUT}/toy/points.parquet",
    output:
        pdf=f"{OUT}/figures/fig1_toy.pdf",
        png=report(
            f"{OUT}/figures/fig1_toy.png",
            caption="../report/fig1.rst",
            category="1. Figures",
            labels={"figure": "Fig. 1", "content": "toy: where a learned field is non-conservative"},
        ),
    log:
        f"logs/plot_fig1/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig1_toy",
        code=figure_code("fig1_toy"),
        dpi=config["plots"]["dpi"],
    script:
        "../scripts/plot_figure.py"


rule plot_fig2:
    """Draw Fig. 2: one sequence's xₜ and its feature vectors."""
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
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig2_features",
        code=figure_code("fig2_features"),
        dpi=config["plots"]["dpi"],
        image=config["plots"]["fig2_image"],
        n_analysed=config["jacobian"]["n_images"],
    script:
        "../scripts/plot_figure.py"


rule plot_fig3_cosines:
    """Draw Fig. 3, top: cos(uᵢ, vᵢ) against rank."""
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
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig3_cosines",
        code=figure_code("fig3_cosines"),
        dpi=config["plots"]["dpi"],
        examples=config["plots"]["examples"],
        # the matrix-free route computes ranks 1..k only: no largest singular value to draw apart
        full_spectrum=jacobian_route() == "exact",
    script:
        "../scripts/plot_figure.py"


rule plot_fig3_spectrum:
    """Draw Fig. 3, bottom left: 1/sᵢ against rank, with the σₜ² floor."""
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
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig3_spectrum",
        code=figure_code("fig3_spectrum"),
        dpi=config["plots"]["dpi"],
        examples=config["plots"]["examples"],
    script:
        "../scripts/plot_figure.py"


rule plot_fig3_local_dims:
    """Draw Fig. 3, bottom right: the local dimension rₜ over images against t."""
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
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig3_local_dims",
        code=figure_code("fig3_local_dims"),
        dpi=config["plots"]["dpi"],
        vae_baseline=config["plots"]["vae_baseline"],
    script:
        "../scripts/plot_figure.py"


rule plot_fig4:
    """Draw Fig. 4: the subspace overlaps Φₙ of (u, v), (u, w) and (v, w) against n."""
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
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig4_overlaps",
        code=figure_code("fig4_overlaps"),
        dpi=config["plots"]["dpi"],
    script:
        "../scripts/plot_figure.py"


rule plot_skew_shares:
    """Draw where the skew part J − Jᵀ lies, inside and outside the first rₜ directions."""
    input:
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        pdf=f"{OUT}/figures/skew_shares.pdf",
        png=report(
            f"{OUT}/figures/skew_shares.png",
            caption="../report/skew_shares.rst",
            category="1. Figures",
            labels={"figure": "Skew shares", "content": "MNIST: where J − Jᵀ lies"},
        ),
    log:
        f"logs/plot_skew_shares/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="skew_shares",
        code=figure_code("skew_shares"),
        dim=math.prod(configured_image_shape(config["data"])),
        dpi=config["plots"]["dpi"],
    script:
        "../scripts/plot_figure.py"


rule plot_vae_convergence:
    """Draw the VAEs' convergence: γ against √MSE, active dims per epoch, posterior variances."""
    input:
        metrics=expand(f"{OUT}/vae/{{condition}}/metrics.jsonl", condition=VAE_CONDITIONS),
        variances=f"{OUT}/vae/posterior_variances.parquet",
        local_dims=f"{OUT}/vae/local_dims.parquet",
    output:
        pdf=f"{OUT}/figures/vae_convergence.pdf",
        png=report(
            f"{OUT}/figures/vae_convergence.png",
            caption="../report/vae_convergence.rst",
            category="1. Figures",
            labels={
                "figure": "VAE convergence",
                "content": "gamma vs sqrt(MSE), count vs epoch, posterior variances",
            },
        ),
    log:
        f"logs/plot_vae_convergence/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="vae_convergence",
        code=figure_code("vae_convergence"),
        dpi=config["plots"]["dpi"],
        threshold=config["vae"]["threshold"],
        conditions=VAE_CONDITIONS,
    script:
        "../scripts/plot_figure.py"


rule plot_estimators:
    """Draw the local dimension by estimator and digit, beside the paper's VAE and rₜ."""
    input:
        vae=f"{OUT}/vae/local_dims.parquet",
        estimates=f"{OUT}/estimators/estimates.parquet",
        diagnostics=f"{OUT}/stats/diagnostics.parquet",
    output:
        pdf=f"{OUT}/figures/estimators.pdf",
        png=report(
            f"{OUT}/figures/estimators.png",
            caption="../report/estimators.rst",
            category="1. Figures",
            labels={"figure": "VAE and estimators", "content": "local dimension by estimator and digit"},
        ),
    log:
        f"logs/plot_estimators/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="estimators",
        code=figure_code("estimators"),
        dpi=config["plots"]["dpi"],
    script:
        "../scripts/plot_figure.py"


rule plot_training_loss:
    """Draw the score model's training loss."""
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
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="training_loss",
        code=figure_code("training_loss"),
        dpi=config["plots"]["dpi"],
    script:
        "../scripts/plot_figure.py"


# Every figure of this run, without the rest of `all` (make figures: snakemake figures --forcerun <plot rules>).
rule figures:
    """Every figure of this run and nothing else: make figures."""
    input:
        figure_outputs,
    localrule: True

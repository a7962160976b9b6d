# Tables that exist for the Snakemake report (`snakemake --report results/<run>/report.html`).


rule summarise_benchmarks:
    input:
        stage_benchmarks,  # a function: evaluated once every rule is defined
    output:
        csv=f"{OUT}/stats/stage_times.csv",
        markdown=f"{OUT}/stats/stage_times.md",
        html=report(
            f"{OUT}/stats/stage_times.html",
            caption="../report/stage_times.rst",
            category="3. Run",
            labels={"table": "stage benchmarks"},
        ),
    log:
        f"logs/summarise_benchmarks/{RUN}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/summarise_benchmarks.py"

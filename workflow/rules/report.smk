# Tables that exist for the Snakemake report (`snakemake --report results/<run>/report.html`). The report's menu
# sorts categories by name: "0. Headline" (the tables to read first: the paper's claims, sample quality, the
# per-t summary, the noise-floor calibration; another joins with one report() entry), "1. Figures",
# "2. Tables", "3. Run" (training loss, stage benchmarks). Two results of one category must not have two label
# keys with different values: the report would turn the second key into a toggle between them.


rule summarise_benchmarks:
    """Wall time, CPU time and peak memory of every stage, as a table for the report."""
    input:
        stage_benchmarks,  # a function: evaluated once every rule is defined
    output:
        csv=f"{OUT}/stats/stage_times.csv",
        markdown=f"{OUT}/stats/stage_times.md",
        html=report(
            f"{OUT}/stats/stage_times.html",
            caption="../report/stage_times.rst",
            category="3. Run",
            labels={"result": "stage benchmarks"},
        ),
    log:
        f"logs/summarise_benchmarks/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/summarise_benchmarks.py"


rule summarise_quality:
    """The sample-quality numbers of quality.json as a table for the report."""
    input:
        quality=f"{OUT}/samples/quality.json",
    output:
        markdown=f"{OUT}/samples/quality.md",
        html=report(
            f"{OUT}/samples/quality.html",
            caption="../report/quality.rst",
            category="0. Headline",
            labels={"table": "sample quality"},
        ),
    log:
        f"logs/summarise_quality/{RUN}.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/summarise_quality.py"

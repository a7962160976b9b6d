"""Rule compare_estimators: per estimator mean +- std and per-digit means, beside the paper's VAE and our r_t."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import pandas as pd

from score_geometry import io
from score_geometry.estimators import comparison_markdown, comparison_table
from score_geometry.report import html_table

estimates = pd.concat([io.read_parquet(snakemake.input.vae), io.read_parquet(snakemake.input.estimates)],
                      ignore_index=True)
table = comparison_table(estimates, io.read_parquet(snakemake.input.diagnostics))
io.write_csv(snakemake.output.csv, table)
io.write_text(snakemake.output.markdown, comparison_markdown(table))
io.write_text(snakemake.output.html, html_table(table, title="Local dimension by estimator, next to the paper and r_t"))

"""Rule compare_estimators: per estimator mean +- std and per-digit means, beside the paper's VAE and our r_t."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import compare_estimators

i, o = snakemake.input, snakemake.output
out = compare_estimators(io.read_parquet(i.vae), io.read_parquet(i.estimates), io.read_parquet(i.diagnostics))
io.write_csv(o.csv, out.table)
io.write_text(o.markdown, out.markdown)
io.write_text(o.html, out.html)

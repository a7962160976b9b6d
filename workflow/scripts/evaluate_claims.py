"""Rule evaluate_claims: the paper's claims as computed verdicts (stats/claims.{csv,md,html})."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.claims import RunTables, claims_markdown, claims_table
from score_geometry.report import html_table

p, i = snakemake.params, snakemake.input
features, _ = io.read_h5(i.features, ["features", "images", "t"])
sequences, _ = io.read_h5(i.sequences, ["x0_hat"])
tables = RunTables(
    diagnostics=io.read_parquet(i.diagnostics), overlaps=io.read_parquet(i.overlaps),
    spectra=io.read_parquet(i.spectra), parameterisation=p.parameterisation, kappa=p.kappa,
    calibration=io.read_csv(i.calibration), features=features["features"], feature_images=features["images"],
    feature_t=features["t"], stroke=sequences["x0_hat"].reshape(len(sequences["x0_hat"]), -1) > 0,
    toy=io.read_csv(i.toy), vae_dims=io.read_parquet(i.vae_dims), vae_metrics=io.read_jsonl(i.vae_metrics))
table = claims_table(tables)
io.write_csv(snakemake.output.csv, table)
io.write_text(snakemake.output.markdown, claims_markdown(table, run=p.run))
io.write_text(snakemake.output.html, html_table(table, title=f"Claims of the paper: computed verdicts ({p.run})"))

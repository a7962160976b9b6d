"""Rule evaluate_claims: the paper's claims as computed verdicts (stats/claims.{csv,md,html})."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import evaluate_claims

p, i, o = snakemake.params, snakemake.input, snakemake.output
features, _ = io.read_h5(i.features, ["features", "images", "t"])
sequences, _ = io.read_h5(i.sequences, ["x0_hat"])
out = evaluate_claims(
    diagnostics=io.read_parquet(i.diagnostics), overlaps=io.read_parquet(i.overlaps),
    spectra=io.read_parquet(i.spectra), features=features, calibration=io.read_csv(i.calibration),
    x0_hat=sequences["x0_hat"], toy=io.read_csv(i.toy), vae_dims=io.read_parquet(i.vae_dims),
    vae_metrics=io.read_jsonl(i.vae_metrics), run=p.run, kappa=p.kappa, parameterisation=p.parameterisation,
    local_dims=io.read_parquet(i.local_dims), kappa_sweep=p.kappa_sweep)
io.write_csv(o.csv, out.table)
io.write_text(o.markdown, out.markdown)
io.write_text(o.html, out.html)

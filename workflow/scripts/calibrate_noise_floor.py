"""Rule calibrate_noise_floor: is the model's off-manifold Jacobian gain 1/sigma_t^2? Compares the noisy
held-out digits' Jacobians with the model's own x_t (from the aggregated diagnostics)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.stages import calibrate_noise_floor

p, o = snakemake.params, snakemake.output
heldout, _ = io.read_h5(snakemake.input.heldout)
table, summary = calibrate_noise_floor(heldout, io.read_parquet(snakemake.input.diagnostics), run=p.run,
                                       kappa=p.kappa)
io.write_parquet(o.table, table)
io.write_csv(o.summary, summary.table)
io.write_text(o.markdown, summary.markdown)
io.write_text(o.html, summary.html)

"""Rule calibrate_noise_floor: is the model's off-manifold Jacobian gain 1/sigma_t^2? Compares the noisy
held-out digits' Jacobians with the model's own x_t (from the aggregated diagnostics)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.analysis import calibration_from_jacobians
from score_geometry.report import html_table

p = snakemake.params
heldout, _ = io.read_h5(snakemake.input.heldout)
table, summary = calibration_from_jacobians(heldout, io.read_parquet(snakemake.input.diagnostics), run=p.run,
                                            kappa=p.kappa)
io.write_parquet(snakemake.output.table, table)
io.write_csv(snakemake.output.summary, summary)
io.write_text(snakemake.output.markdown, summary.to_markdown(index=False, floatfmt=".3f") + "\n")
io.write_text(snakemake.output.html, html_table(summary, title="Noise-floor calibration per source and t"))

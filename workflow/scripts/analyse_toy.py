"""Rule analyse_toy: learned vs exact toy score, 3x3 Jacobians, the three measures of where the skew part acts
(shares, relative block asymmetry, tangent curl) for the model and the controls, and Fig. 1's arrays."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import setup_torch
from score_geometry.stages import analyse_toy

p, o = snakemake.params, snakemake.output
setup_torch(snakemake.threads)
points, summary, controls, field, attrs = analyse_toy(io.load_checkpoint(snakemake.input.model), toy=p.toy,
                                                      sde=p.sde)
io.write_parquet(o.points, points)
io.write_csv(o.summary, summary)
io.write_csv(o.controls, controls)
io.write_h5(o.field, field, attrs)

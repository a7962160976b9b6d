"""Rule analyse_toy: learned vs exact toy score, 3x3 Jacobians, the three measures of where the skew part acts
(shares, relative block asymmetry, tangent curl) for the model and the controls, and Fig. 1's arrays."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import setup_torch
from score_geometry.toy import analyse_toy_controls, analyse_toy_model

p = snakemake.params
setup_torch(snakemake.threads)
points, summary, field, attrs = analyse_toy_model(io.load_checkpoint(snakemake.input.model), dict(p.toy),
                                                  dict(p.sde))
io.write_parquet(snakemake.output.points, points)
io.write_csv(snakemake.output.summary, summary)
io.write_csv(snakemake.output.controls, analyse_toy_controls(dict(p.toy), dict(p.sde)))
io.write_h5(snakemake.output.field, field, {**attrs, "config_hash": io.config_hash({"toy": p.toy, "sde": p.sde})})

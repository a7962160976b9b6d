"""Rule analyse_toy: learned vs exact toy score, 3x3 Jacobians, tangent/normal skew shares, curl, Fig. 1 arrays."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import setup_torch
from score_geometry.toy import analyse_toy_model

p = snakemake.params
setup_torch(snakemake.threads)
points, summary, field, attrs = analyse_toy_model(io.load_checkpoint(snakemake.input.model), dict(p.toy),
                                                  dict(p.sde))
io.write_parquet(snakemake.output.points, points)
io.write_csv(snakemake.output.summary, summary)
io.write_h5(snakemake.output.field, field, {**attrs, "config_hash": io.config_hash({"toy": p.toy, "sde": p.sde})})

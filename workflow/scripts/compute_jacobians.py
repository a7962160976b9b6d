"""Rule compute_jacobians: score Jacobians (or their matrix-free spectra) of the EMA model at every saved (image, t)
of one shard."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import compute_jacobians

p = snakemake.params
setup_torch(snakemake.threads)
device = resolve_device(p.device)
seq, attrs = io.read_h5(snakemake.input.sequences, ["x_t", "t", "sigma"])
out, out_attrs = compute_jacobians(io.load_checkpoint(snakemake.input.model, map_location=device), seq,
                                   shard=int(snakemake.wildcards.shard), device=device, jacobian=dict(p.jacobian),
                                   config_hash=attrs["config_hash"], **p.lowrank)
io.write_h5(snakemake.output[0], out, out_attrs, chunks=io.point_chunks(out))

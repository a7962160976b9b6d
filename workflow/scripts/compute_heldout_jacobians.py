"""Rule compute_heldout_jacobians: the model's score Jacobians on forward-noised held-out real digits."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import compute_heldout_jacobians

p = snakemake.params
setup_torch(snakemake.threads)
device = resolve_device(p.device)
out, attrs = compute_heldout_jacobians(io.load_checkpoint(snakemake.input.model, map_location=device),
                                       io.read_dataset(snakemake.input.data), list(p.times), device=device,
                                       jacobian=dict(p.jacobian), calibration=dict(p.calibration), **p.lowrank)
io.write_h5(snakemake.output[0], out, attrs, chunks=io.point_chunks(out))

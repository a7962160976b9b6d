"""Rule compute_jacobians: exact score Jacobians of the EMA model at every saved (image, t) of one shard."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, set_threads
from score_geometry.models import score_fn_from_checkpoint
from score_geometry.stages import DTYPES, jacobians_at_times, shard_images

p = snakemake.params
jac = dict(p.jacobian)
set_threads(snakemake.threads)
device, dtype = resolve_device(p.device), DTYPES[jac["dtype"]]
images = shard_images(jac["n_images"], jac["shards"], int(snakemake.wildcards.shard))
seq, attrs = io.read_h5(snakemake.input.sequences, ["x_t", "t", "sigma"])
score_fn = score_fn_from_checkpoint(io.load_checkpoint(snakemake.input.model, map_location=device), device=device,
                                    dtype=dtype)
J = jacobians_at_times(score_fn, seq["x_t"][images], seq["t"], device=device, dtype=dtype,
                       chunk_size=jac["chunk_size"])
io.write_h5(snakemake.output[0], {"J": J, "images": images, "t": seq["t"], "sigma": seq["sigma"]},
            {"config_hash": attrs["config_hash"], "jacobian": jac, "device": str(device)}, chunks={"J": (1, 1, *J.shape[2:])})

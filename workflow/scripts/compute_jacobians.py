"""Rule compute_jacobians: exact score Jacobians of the EMA model at every saved (image, t) of one shard."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.runtime import resolve_device, setup_torch
from score_geometry.stages import model_jacobians, shard_images

p = snakemake.params
jac = dict(p.jacobian)
setup_torch(snakemake.threads)
device = resolve_device(p.device)
images = shard_images(jac["n_images"], jac["shards"], int(snakemake.wildcards.shard))
seq, attrs = io.read_h5(snakemake.input.sequences, ["x_t", "t", "sigma"])
J = model_jacobians(io.load_checkpoint(snakemake.input.model, map_location=device), seq["x_t"][images], seq["t"],
                    device=device, jacobian=jac)
io.write_h5(snakemake.output[0], {"J": J, "images": images, "t": seq["t"], "sigma": seq["sigma"]},
            {"config_hash": attrs["config_hash"], "jacobian": jac, "device": str(device)}, chunks={"J": (1, 1, *J.shape[2:])})

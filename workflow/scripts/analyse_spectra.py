"""Rule analyse_spectra: SVD, symmetrised eigendecomposition, r_t, overlaps and diagnostics of one shard."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

from score_geometry import io
from score_geometry.analysis import FEATURE_NAMES, analyse_jacobians

p = snakemake.params
analysis = dict(p.analysis)
jac, _ = io.read_h5(snakemake.input.jacobians)
labels = io.read_parquet(snakemake.input.predictions).set_index("image")["label"]
result = analyse_jacobians(jac["J"], images=jac["images"], labels=labels.loc[jac["images"]].to_numpy(), t=jac["t"],
                           sigma=jac["sigma"], run=p.run, kappa=analysis["kappa"], kappa_sweep=analysis["kappa_sweep"])
for path, name in zip(snakemake.output.tables, ("spectra", "local_dims", "overlaps", "diagnostics")):
    io.write_parquet(path, getattr(result, name))
io.write_h5(snakemake.output.features, {"features": result.features, "images": jac["images"], "t": jac["t"],
                                        "sigma": jac["sigma"]}, {"feature_names": list(FEATURE_NAMES)})

"""Rule calibrate_noise_floor: is the model's off-manifold Jacobian gain 1/sigma_t^2? Measured on noisy held-out
digits (Jacobians computed here) and on the model's own x_t (from the aggregated diagnostics)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import pandas as pd

from score_geometry import io
from score_geometry.analysis import calibration_tables
from score_geometry.runtime import resolve_device, set_threads
from score_geometry.stages import DTYPES, heldout_diagnostics

p = snakemake.params
set_threads(snakemake.threads)
device = resolve_device(p.device)
seq, _ = io.read_h5(snakemake.input.sequences, ["t", "sigma"])
heldout = heldout_diagnostics(io.load_checkpoint(snakemake.input.model, map_location=device),
                               io.read_dataset(snakemake.input.data), seq["t"], run=p.run, device=device,
                               dtype=DTYPES[p.jacobian["dtype"]], chunk_size=p.jacobian["chunk_size"],
                               analysis=dict(p.analysis), calibration=dict(p.calibration))
table, summary = calibration_tables(model=pd.read_parquet(snakemake.input.diagnostics), heldout=heldout)
io.write_parquet(snakemake.output.table, table)
io.write_csv(snakemake.output.summary, summary)
io.write_text(snakemake.output.markdown, summary.to_markdown(index=False, floatfmt=".3f") + "\n")

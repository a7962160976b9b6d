"""Rule plot_fig2: one sequence's x_t and its feature vectors (Fig. 2)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import numpy as np

from score_geometry import io
from score_geometry.plots import fig2_features

feats, attrs = io.read_h5(snakemake.input.features)
row = int(np.flatnonzero(feats["images"] == snakemake.params.image)[0])
seq, _ = io.read_h5(snakemake.input.sequences, ["x_t"])
fig = fig2_features(seq["x_t"][snakemake.params.image], feats["features"][row], feats["t"], feats["sigma"],
                    list(attrs["feature_names"]))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

"""Rule plot_fig2: one sequence's x_t and its feature vectors (Fig. 2)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import logging

import numpy as np

from score_geometry import io
from score_geometry.plots import fig2_features
from score_geometry.quality import class_change_example

p = snakemake.params
labels_t = io.read_parquet(snakemake.input.labels_t)
if p.image == "auto":
    image, title = class_change_example(labels_t, n_analysed=p.n_analysed)
else:
    image = int(p.image)
    final = labels_t[labels_t["image"] == image]["final_label"].iloc[0]
    title = f"sequence {image} (plots.fig2_image): final label {final}"
logging.getLogger("plot_fig2").info("Fig. 2 shows %s", title)
feats, attrs = io.read_h5(snakemake.input.features)
row = int(np.flatnonzero(feats["images"] == image)[0])
seq, _ = io.read_h5(snakemake.input.sequences, ["x_t"])
fig = fig2_features(seq["x_t"][image], feats["features"][row], feats["t"], feats["sigma"],
                    list(attrs["feature_names"]), title=title)
io.save_figure(fig, snakemake.output, dpi=p.dpi)

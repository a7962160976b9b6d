"""Rule plot_training_loss: the score model's training loss against step, from its metrics log."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import pandas as pd

from score_geometry import io
from score_geometry.plots import training_loss_figure

fig = training_loss_figure(pd.DataFrame(io.read_jsonl(snakemake.input.metrics)))
io.save_figure(fig, snakemake.output, dpi=snakemake.params.dpi)

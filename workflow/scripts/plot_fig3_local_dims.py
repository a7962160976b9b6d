"""Rule plot_fig3_local_dims: distribution of r_t over images at each t (Fig. 3 bottom right)."""
from score_geometry.runtime import setup_logging

setup_logging(snakemake.log[0])

import pandas as pd

from score_geometry import io
from score_geometry.plots import fig3_local_dims

io.save_figure(fig3_local_dims(pd.read_parquet(snakemake.input.diagnostics)), snakemake.output, dpi=snakemake.params.dpi)

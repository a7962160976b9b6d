"""The README's "Analyse your own score model" example runs and gives the stand-in's known answer."""

import subprocess
import sys

import pandas as pd

from conftest import E2E_TIMEOUT, ROOT


def test_analyse_own_model_example(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "analyse_own_model.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    diag = pd.read_parquet(tmp_path / "diagnostics.parquet")
    assert len(diag) == 9
    # A 12-dim Gaussian with variances >= 0.5: r_t = 12 at every t here, the floor exactly calibrated.
    assert (diag["local_dim"] == 12).all()
    assert diag["calibration_ratio"].between(0.9999, 1.0001).all()
    for name in ("spectra", "local_dims", "overlaps"):
        assert len(pd.read_parquet(tmp_path / f"{name}.parquet")) > 0

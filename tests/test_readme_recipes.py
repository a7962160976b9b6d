"""README's recipe for the CLI examples' inputs (issue 24: `digits.npy` and `ddpm-mnist/` were used and never
made) runs as printed and makes what the example expects."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import E2E_TIMEOUT, ROOT


def _recipe() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (recipe,) = [b for b in blocks if 'np.save("digits.npy"' in b]
    return recipe


def test_the_cli_inputs_recipe_makes_digits_and_a_diffusers_folder(tmp_path):
    pytest.importorskip("diffusers")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", _recipe()], cwd=tmp_path, capture_output=True,
                          text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    digits = np.load(tmp_path / "digits.npy")
    assert digits.shape == (4, 1, 28, 28) and digits.dtype == np.float32
    assert digits.min() == -1 and digits.max() == 1
    unet = json.loads((tmp_path / "ddpm-mnist" / "unet" / "config.json").read_text())
    assert (unet["in_channels"], unet["out_channels"], unet["sample_size"]) == (1, 1, 28)
    scheduler = json.loads((tmp_path / "ddpm-mnist" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["beta_schedule"] == "linear" and scheduler["prediction_type"] == "epsilon"
    assert "ddpm-mnist/" in (ROOT / "README.md").read_text()  # the folder the CLI example reads
